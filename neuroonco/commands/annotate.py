"""`neuroonco annotate [SRC...] --db DB`: the agent graph over every stored slice."""

from __future__ import annotations


def annotate_command() -> None:
    """Annotate slices with the describer/diagnostician/critic/arbiter graph."""
