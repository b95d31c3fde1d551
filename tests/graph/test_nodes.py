"""Node-level rules that hold whatever model answers."""

from __future__ import annotations

from pathlib import Path

from neuroonco.agents.prompts import render_prompt
from neuroonco.graph.nodes import current_votes, slice_grounding
from neuroonco.graph.routers import describer_keys


def test_describer_keys_keep_repeated_models_apart() -> None:
    assert describer_keys(["builtin", "builtin", "openai:x"]) == [
        ("0:builtin", "builtin"),
        ("1:builtin", "builtin"),
        ("2:openai:x", "openai:x"),
    ]


def test_current_votes_apply_the_last_critique_and_skip_failed_describers() -> None:
    vote = {"lesion_found": True, "size": "large", "shape": "irregular"}
    critique = {"verdicts": {"size": {"action": "downgrade", "value": "small", "reason": "mask"}}}
    state = {"votes": {"0:a": vote, "1:b": None}, "critiques": {"0:a": critique}}
    (only,) = current_votes(state)
    assert only.size.value == "small" and only.shape.value == "irregular"


def test_the_stored_plane_reaches_every_role_prompt():
    row = {"modality": "t2", "plane": "sagittal", "label": None, "measurements": None}
    grounding = slice_grounding(row, Path("."))
    assert grounding["plane"] == "sagittal"
    for role in ("describer", "critic", "diagnostician", "arbiter"):
        assert "Plane: sagittal" in render_prompt(role, grounding).prompt
