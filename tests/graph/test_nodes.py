"""Node-level rules that hold whatever model answers."""

from __future__ import annotations

from neuroonco.graph.nodes import source_label_wins
from neuroonco.graph.routers import describer_keys


def opinion(diagnosis: str | None, **extra) -> dict:
    return {
        "diagnosis": diagnosis,
        "reasoning": "r",
        "differential": [],
        "confidence": 0.5,
        "conflicts_with_source": False,
        "conflict_note": None,
        **extra,
    }


def test_known_label_is_the_answer_and_a_disagreement_is_a_conflict() -> None:
    result = source_label_wins(opinion("glioma"), {"label": "meningioma"})
    assert result["diagnosis"] == "meningioma"
    assert result["conflicts_with_source"] is True
    assert "glioma" in result["conflict_note"] and result["differential"] == ["glioma"]


def test_agreeing_or_abstaining_model_is_no_conflict() -> None:
    assert source_label_wins(opinion("glioma"), {"label": "glioma"}) == opinion("glioma")
    result = source_label_wins(opinion(None), {"label": "glioma"})
    assert result["diagnosis"] == "glioma" and result["conflicts_with_source"] is False


def test_unknown_label_keeps_the_model_answer() -> None:
    assert source_label_wins(opinion("metastasis"), {"label": None})["diagnosis"] == "metastasis"


def test_describer_keys_keep_repeated_models_apart() -> None:
    assert describer_keys(["builtin", "builtin", "openai:x"]) == [
        ("0:builtin", "builtin"),
        ("1:builtin", "builtin"),
        ("2:openai:x", "openai:x"),
    ]
