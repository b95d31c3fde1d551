"""Build the request each agent role sends: prompt, response model, images, validation context.

The four agents differ only in what they are grounded in and what they must answer with, so one
builder serves describer, diagnostician, critic and arbiter; their texts live in
:mod:`neuroonco.agents.prompts` and their answer schemas in :mod:`neuroonco.schemas`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neuroonco.agents.prompts import RESPONSE_MODELS, render_prompt, validation_context
from neuroonco.agents.providers.base import ImagePart, ModelRequest


def build_request(
    role: str,
    grounding: Mapping[str, Any],
    images: tuple[ImagePart, ...] = (),
    *,
    temperature: float = 0.0,
    max_tokens: int = 1024,
) -> ModelRequest:
    """The request for ``role`` grounded in ``grounding``; images only for roles that look."""
    rendered = render_prompt(role, grounding)
    return ModelRequest(
        role=role,
        system=rendered.system,
        prompt=rendered.prompt,
        response_model=RESPONSE_MODELS[role],
        images=images if role in ("describer", "diagnostician") else (),
        grounding=dict(grounding),
        validation_context=validation_context(grounding),
        temperature=temperature,
        max_tokens=max_tokens,
    )
