"""Prompts: deterministic rendering of the grounding, per role."""

from __future__ import annotations

import pytest

from neuroonco.agents.prompts import (
    PROMPT_VERSION,
    RESPONSE_MODELS,
    SYSTEMS,
    render_prompt,
    validation_context,
)
from neuroonco.schemas.agents import Consensus
from neuroonco.schemas.findings import SliceFindings

MEASUREMENTS = {
    "area_fraction": 0.0174,
    "circularity": 0.41,
    "elongation": 1.8,
    "components": 1,
    "largest_component_ratio": 1.0,
    "centroid": [0.3, 0.5],
    "size": "medium",
    "shape": "irregular",
    "spread": "solitary",
    "location": "center_left",
    "laterality": "right",
    "laterality_source": "radiological_convention",
    "subregions": {"necrotic_core": 0.2, "edema": 0.6, "enhancing": 0.2},
    "intensity": {
        "flair": {"signal_intensity": "hyperintense", "texture": None, "enhancement": None}
    },
}
GROUNDING = {"modality": "flair", "label": "Glioma", "measurements": MEASUREMENTS, "has_mask": True}


def test_version_and_roles() -> None:
    assert PROMPT_VERSION == "2026-12-02.1"
    assert (
        set(SYSTEMS)
        == set(RESPONSE_MODELS)
        == {
            "describer",
            "diagnostician",
            "critic",
            "arbiter",
        }
    )
    assert RESPONSE_MODELS["describer"] is SliceFindings
    assert RESPONSE_MODELS["arbiter"] is Consensus


def test_describer_prompt_grounds_the_mask_fields() -> None:
    system, prompt = render_prompt("describer", GROUNDING)
    assert "omission is acceptable, fabrication is not" in system
    assert "ground truth for size, shape, spread, location and laterality" in prompt
    assert "Sequence: flair" in prompt and "Source label: glioma" in prompt
    assert "- shape: irregular (circularity 0.41 < 0.5)" in prompt
    assert "- size: medium (lesion area 1.74% of the image" in prompt
    assert "subregions (share of the lesion): edema 0.6, enhancing 0.2, necrotic_core 0.2" in prompt
    # enhancement is not judged on flair, so its hint is not even mentioned.
    assert "Intensity hints (heuristic): signal_intensity hyperintense, texture unclear\n" in prompt


def test_rendering_is_deterministic_and_order_free() -> None:
    shuffled = {k: GROUNDING[k] for k in reversed(list(GROUNDING))}
    shuffled["measurements"] = {k: MEASUREMENTS[k] for k in reversed(list(MEASUREMENTS))}
    for role in SYSTEMS:
        assert render_prompt(role, GROUNDING) == render_prompt(role, dict(GROUNDING))
        assert render_prompt(role, GROUNDING) == render_prompt(role, shuffled)


def test_mask_absent_or_empty_is_said() -> None:
    _, none = render_prompt("describer", {"modality": "t1"})
    assert "No segmentation mask" in none and "Source label: none" in none
    _, empty = render_prompt("describer", {"modality": "t1", "has_mask": True})
    assert "mask of this slice is empty" in empty


def test_revising_describer_sees_its_critique() -> None:
    grounding = {
        **GROUNDING,
        "previous": {"lesion_found": True, "shape": "round_oval", "rationale": "round mass"},
        "critique": {
            "verdicts": {
                "shape": {
                    "action": "downgrade",
                    "value": "irregular",
                    "reason": "round_oval claimed but circularity 0.41 < 0.5",
                }
            }
        },
    }
    _, prompt = render_prompt("describer", grounding)
    assert "Your previous answer:\nlesion_found=true, shape=round_oval" in prompt
    assert "- shape: downgrade to irregular (round_oval claimed but circularity 0.41 < 0.5)" in (
        prompt
    )


def test_critic_and_arbiter_prompts() -> None:
    findings = SliceFindings(lesion_found=True, modality="flair", shape="round_oval")
    _, critic = render_prompt("critic", {**GROUNDING, "findings": findings})
    assert "lesion_found=true, modality=flair, shape=round_oval" in critic
    votes = [findings.model_dump(mode="json"), None]
    diagnosis = {
        "diagnosis": "no_tumor",
        "reasoning": "label",
        "conflicts_with_source": True,
        "conflict_note": "lesion on a no_tumor slice",
    }
    grounding = {
        **GROUNDING,
        "votes": votes,
        "diagnosis": diagnosis,
        "rule": "seed_rules",
        "review_threshold": 0.8,
    }
    _, arbiter = render_prompt("arbiter", grounding)
    assert "1. lesion_found=true" in arbiter and "2. (no valid output)" in arbiter
    assert "Rule: seed_rules. Agreeing votes keep their value" in arbiter
    assert "overall_agreement < 0.8" in arbiter
    assert "Conflict with the source: lesion on a no_tumor slice" in arbiter
    _, diagnostician = render_prompt("diagnostician", grounding)
    assert "Describer votes:" in diagnostician and "conflicts_with_source" in diagnostician


def test_bare_grounding_renders_for_every_role() -> None:
    for role in SYSTEMS:
        system, prompt = render_prompt(role, {})
        assert system and "Sequence: unknown" in prompt


def test_unknown_role_and_validation_context() -> None:
    with pytest.raises(ValueError, match="unknown role 'judge'"):
        render_prompt("judge", {})
    assert validation_context({"modality": "T1 with contrast"}) == {"modality": "t1ce"}
    assert validation_context({"modality": None}) is None


def test_a_non_axial_plane_is_named_in_the_prompt_and_axial_prompts_do_not_change():
    """Ingest keeps sagittal and coronal series in their plane; a model must be told, or it
    reads a side view as an axial slice. Axial (and unknown) slices render as before."""
    base = {"modality": "t1ce", "label": "glioma", "measurements": None, "has_mask": False}
    axial = render_prompt("describer", {**base, "plane": "axial"}).prompt
    assert "Plane:" not in axial and axial == render_prompt("describer", base).prompt
    sagittal = render_prompt("describer", {**base, "plane": "sagittal"}).prompt
    assert "Plane: sagittal (a side view: superior at the top, anterior on the left" in sagittal
    coronal = render_prompt("describer", {**base, "plane": "coronal"}).prompt
    assert "Plane: coronal" in coronal and "right on the image left" in coronal
