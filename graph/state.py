"""The state one slice carries through the graph: a narrow input and the full state.

Reducers: describer branches run in parallel and each adds its vote under its own key, so
``votes`` and ``critiques`` merge dicts, and ``overrides``, ``review`` and ``failures`` append.
The ``agent_calls`` rows go from the run's model caller straight to the writer.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from neuroonco.agents.providers.base import ImagePart


def merge(left: dict | None, right: dict | None) -> dict:
    """Dict reducer: later keys win (a revised vote replaces the describer's earlier one)."""
    return {**(left or {}), **(right or {})}


class SliceInput(TypedDict):
    """What the runner passes in: the stored slice row (with its group's sibling images)."""

    slice: dict[str, Any]
    seq: int


class SliceState(SliceInput, total=False):
    images: tuple[ImagePart, ...]
    """The slice's PNG first, then the other sequences of its group."""
    grounding: dict[str, Any]
    """Measured facts every agent is grounded in (see neuroonco.agents.prompts)."""
    round: int
    votes: Annotated[dict[str, dict[str, Any] | None], merge]
    """Describer key ("<i>:<spec>") -> SliceFindings as a dict, or None when it failed."""
    first_votes: Annotated[dict[str, dict[str, Any] | None], merge]
    """Describer key -> its first findings, before any critique (opinion agreement)."""
    critiques: Annotated[dict[str, dict[str, Any]], merge]
    """Describer key -> the critic's Critique of that describer's latest findings."""
    revise: list[str]
    """Describer keys sent back for another round by the last critique."""
    diagnosis: dict[str, Any] | None
    consensus: dict[str, Any] | None
    overrides: Annotated[list[dict[str, Any]], operator.add]
    """What the fact policy overruled (neuroonco.agents.facts.Override dicts)."""
    review: Annotated[list[str], operator.add]
    """Why the slice needs a person whatever the agreement (a failed critic...)."""
    failures: Annotated[list[str], operator.add]
    """Describer calls that gave no usable answer, with their errors."""
    error: str | None
    """Set when the slice cannot be annotated at all (status failed)."""
    reviews: list[dict[str, Any]]
    """``reviews`` rows of a person's decision (``annotate --review``), written with the
    annotation by the persist node."""


class DescribeTask(TypedDict):
    """The payload of one describer branch (LangGraph ``Send``)."""

    key: str
    spec: str
    slice: dict[str, Any]
    seq: int
    images: tuple[ImagePart, ...]
    grounding: dict[str, Any]
    round: int
    critique: dict[str, Any] | None
    previous: dict[str, Any] | None
