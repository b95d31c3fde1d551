"""The critic's rules: claims against the mask, the sequence physics and the intensity hints."""

from __future__ import annotations

import numpy as np

from neuroonco.agents.evidence import (
    apply_critique,
    check_claims,
    intensity_hints,
    mask_state,
)
from neuroonco.schemas.findings import LESION_FIELDS, SliceFindings
from neuroonco.tools.measurements import measure_mask


def measured(**overrides: object) -> dict:
    """A measure_mask-like dict: a medium, irregular, solitary lesion on the image's left."""
    base = {
        "area_px": 1000,
        "area_fraction": 0.0174,
        "circularity": 0.41,
        "elongation": 1.8,
        "components": 1,
        "largest_component_ratio": 1.0,
        "centroid": [0.3, 0.5],
        "image_left_share": 1.0,
        "image_right_share": 0.0,
        "size": "medium",
        "shape": "irregular",
        "spread": "solitary",
        "location": "center_left",
        "laterality": "right",
        "laterality_source": "radiological_convention",
    }
    return {**base, **overrides}


def test_round_oval_at_circularity_041_is_downgraded() -> None:
    findings = SliceFindings(lesion_found=True, modality="t2", shape="round_oval", size="medium")
    critique = check_claims(findings, measured(), "t2")
    shape = critique.verdicts["shape"]
    assert shape.action == "downgrade" and shape.value == "irregular"
    assert "round_oval claimed but circularity 0.41 < 0.5" in shape.reason
    assert critique.verdicts["size"].action == "keep"
    assert "1.74% of the image" in critique.verdicts["size"].reason
    assert critique.revise is True
    assert "downgraded: shape" in critique.summary


def test_every_mask_field_is_checked_with_numbers() -> None:
    findings = SliceFindings(
        lesion_found=True, size="large", spread="multifocal", location="center", laterality="left"
    )
    verdicts = check_claims(findings, measured(), None).verdicts
    assert verdicts["size"].value == "medium" and "1.74%" in verdicts["size"].reason
    assert verdicts["spread"].value == "solitary" and "1 connected component" in (
        verdicts["spread"].reason
    )
    assert verdicts["location"].value == "center_left" and "x=0.30" in verdicts["location"].reason
    assert verdicts["laterality"].value == "right"
    assert "radiological convention" in verdicts["laterality"].reason


def test_lesion_claimed_on_empty_mask_is_erased() -> None:
    findings = SliceFindings(lesion_found=True, modality="flair", size="small", edema="mild")
    critique = check_claims(findings, None, "flair", has_mask=True)
    assert critique.verdicts["lesion_found"].action == "downgrade"
    assert critique.verdicts["lesion_found"].value == "false"
    assert critique.verdicts["size"].action == "erase"
    assert critique.verdicts["edema"].action == "erase"
    fixed = apply_critique(findings, critique)
    assert fixed.lesion_found is False
    assert all(getattr(fixed, name) is None for name in LESION_FIELDS)
    assert "Corrected by the critic" in fixed.rationale


def test_no_lesion_claimed_where_the_mask_marks_one() -> None:
    critique = check_claims(SliceFindings(lesion_found=False), measured(), "t1")
    verdict = critique.verdicts["lesion_found"]
    assert verdict.action == "downgrade" and verdict.value == "true" and "1.74%" in verdict.reason
    assert apply_critique(SliceFindings(lesion_found=False), critique).lesion_found is True


def test_enhancement_on_non_contrast_sequence_is_erased() -> None:
    # The describer claimed t1ce, but the source knows the slice is t2.
    findings = SliceFindings(lesion_found=True, modality="t1ce", enhancement="ring")
    critique = check_claims(findings, measured(), "t2")
    assert critique.verdicts["modality"].action == "downgrade"
    assert critique.verdicts["modality"].value == "t2"
    assert critique.verdicts["enhancement"].action == "erase"
    assert "only be judged on t1ce" in critique.verdicts["enhancement"].reason
    fixed = apply_critique(findings, critique)
    assert fixed.modality.value == "t2" and fixed.enhancement is None


def test_edema_on_t1_is_erased() -> None:
    findings = SliceFindings(lesion_found=True, edema="extensive")
    critique = check_claims(findings, measured(), "t1")
    assert critique.verdicts["edema"].action == "erase"


def test_intensity_hint_contradiction_is_downgraded() -> None:
    m = measured(
        intensity={
            "t2": {
                "signal_intensity": "hyperintense",
                "texture": None,
                "edema": "mild",
                "contrast_ratio": 1.4213,
                "cv": 0.2,
            },
            "t1": {"signal_intensity": "hypointense"},
        }
    )
    findings = SliceFindings(
        lesion_found=True,
        modality="t2",
        signal_intensity="hypointense",
        texture="homogeneous",
        edema="mild",
        margins="ill_defined",
    )
    verdicts = check_claims(findings, m, "t2").verdicts
    assert verdicts["signal_intensity"].action == "downgrade"
    assert verdicts["signal_intensity"].value == "hyperintense"
    assert verdicts["signal_intensity"].reason == (
        "hypointense claimed but the t2 intensity measurements suggest hyperintense "
        "(lesion/normal mean ratio 1.42)"
    )
    assert verdicts["edema"].action == "keep"
    assert verdicts["texture"].action == "keep" and "unverified" in verdicts["texture"].reason
    assert verdicts["margins"].action == "keep" and "unverified" in verdicts["margins"].reason


def test_unsupported_claims_without_mask_are_kept_but_noted() -> None:
    findings = SliceFindings(
        lesion_found=True, modality="flair", shape="lobulated", texture="heterogeneous"
    )
    critique = check_claims(findings, None, "flair", has_mask=False)
    assert {v.action for v in critique.verdicts.values()} == {"keep"}
    assert "no mask" in critique.verdicts["shape"].reason
    assert "unverified" in critique.verdicts["lesion_found"].reason
    assert critique.revise is False
    assert critique.summary == "all 4 claims consistent with the evidence"
    assert apply_critique(findings, critique) == findings


def test_no_claims_gives_an_empty_critique() -> None:
    critique = check_claims(SliceFindings(), None, None)
    assert len(critique.verdicts) == 0 and critique.revise is False


def test_apply_critique_drops_values_the_new_status_forbids() -> None:
    # An LLM critic may downgrade lesion_found without erasing the lesion fields.
    findings = SliceFindings(lesion_found=True, size="small", shape="irregular")
    from neuroonco.schemas.agents import Critique

    critique = Critique(
        verdicts={"lesion_found": {"action": "downgrade", "value": "false", "reason": "empty"}}
    )
    fixed = apply_critique(findings, critique)
    assert fixed.lesion_found is False and fixed.size is None and fixed.shape is None


def test_mask_state_and_intensity_hints() -> None:
    assert mask_state(measured()) == "lesion"
    assert mask_state(None, has_mask=True) == "empty"
    assert mask_state({"area_fraction": 0.0}) == "empty"
    assert mask_state(None) == "none"
    assert mask_state({"intensity": {}}, has_mask=False) == "none"
    m = {"intensity": {"flair": {"hints": {"texture": "Heterogenous", "margins": "blob"}}}}
    assert intensity_hints(m, "flair") == {"texture": "heterogeneous"}
    assert intensity_hints(m, None) == {"texture": "heterogeneous"}  # the only channel
    two = {"intensity": {"t1": {"texture": "homogeneous"}, "t2": {"texture": "heterogeneous"}}}
    assert intensity_hints(two, "t2") == {"texture": "heterogeneous"}
    assert intensity_hints(two, None) == {}
    assert intensity_hints(None, "t2") == {}


def test_claims_against_a_real_measured_disc() -> None:
    yy, xx = np.mgrid[:120, :120]
    mask = ((yy - 30) ** 2 + (xx - 90) ** 2 <= 12**2).astype(np.uint8)
    m = measure_mask(mask, orientation_known=False)
    assert m is not None and m["shape"] == "round_oval"
    findings = SliceFindings(
        lesion_found=True, shape="irregular", location=m["location"], size=m["size"]
    )
    verdicts = check_claims(findings, m, None).verdicts
    assert verdicts["shape"].action == "downgrade" and verdicts["shape"].value == "round_oval"
    assert "irregular claimed but circularity" in verdicts["shape"].reason
    assert verdicts["location"].action == "keep" and verdicts["size"].action == "keep"
