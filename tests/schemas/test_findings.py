"""SliceFindings: vocabulary normalisation, sequence physics and re-ask texts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from neuroonco.schemas.findings import (
    LESION_FIELDS,
    SliceFindings,
    describe_findings,
    finding_value,
    judged_on,
    physics_violations,
)
from neuroonco.schemas.vocabulary import Enhancement, Margins, Modality, Shape


def _error(data: dict, context: dict | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        SliceFindings.model_validate(data, context=context)
    return str(info.value)


def test_synonyms_are_normalised() -> None:
    f = SliceFindings(
        modality="T1 post-contrast",
        enhancement="Ring-enhancing",
        shape="Round",
        margins="Well-defined",
        spread="Solitary Lesion",
        location="upper left",
        texture="unknown",
    )
    assert f.modality is Modality.t1ce
    assert f.enhancement is Enhancement.ring
    assert f.shape is Shape.round_oval
    assert f.margins is Margins.well_circumscribed
    assert f.spread.value == "solitary"
    assert f.location.value == "upper_left"
    assert f.texture is None


def test_unknown_value_error_names_the_allowed_values() -> None:
    text = _error({"shape": "blob"})
    assert "'blob' is not a valid shape" in text
    assert "round_oval, lobulated, irregular" in text


def test_enhancement_on_t2_is_rejected_with_what_to_change() -> None:
    text = _error({"enhancement": "ring", "size": "small"}, {"modality": "t2"})
    assert "enhancement can only be judged on t1ce; this slice is t2: set enhancement to null" in (
        text
    )


def test_enhancement_allowed_on_t1ce_from_context_or_own_modality() -> None:
    assert SliceFindings.model_validate({"enhancement": "solid"}, context={"modality": "t1ce"})
    assert SliceFindings(modality="t1ce", enhancement="solid").enhancement is Enhancement.solid


def test_enhancement_with_unknown_sequence_is_rejected() -> None:
    assert "this slice is of unknown sequence" in _error({"enhancement": "patchy"})


def test_context_modality_wins_and_fills_in() -> None:
    text = _error({"modality": "t1ce"}, {"modality": "flair"})
    assert "set modality to flair" in text
    filled = SliceFindings.model_validate({"size": "small"}, context={"modality": "T2-weighted"})
    assert filled.modality is Modality.t2


@pytest.mark.parametrize("sequence", ["t1", "t1ce"])
def test_edema_on_t1_sequences_is_rejected(sequence: str) -> None:
    text = _error({"edema": "mild"}, {"modality": sequence})
    assert f"edema can only be judged on t2 or flair; this slice is {sequence}" in text


def test_edema_allowed_on_flair_and_unknown_sequence() -> None:
    assert SliceFindings(modality="flair", edema="Severe").edema.value == "extensive"
    assert SliceFindings(edema="mild").edema.value == "mild"


def test_no_lesion_means_no_lesion_fields() -> None:
    text = _error({"lesion_found": False, "size": "small", "shape": "irregular"})
    assert "lesion_found is false" in text
    assert "set size, shape to null" in text
    empty = SliceFindings(lesion_found=False, modality="t2", rationale="clean slice")
    assert all(getattr(empty, name) is None for name in LESION_FIELDS)


def test_all_problems_are_reported_at_once() -> None:
    text = _error({"enhancement": "ring", "edema": "mild"}, {"modality": "t1"})
    assert "set enhancement to null" in text and "set edema to null" in text


def test_claims_and_lesion_values() -> None:
    f = SliceFindings(lesion_found=True, modality="flair", size="large", edema="mild")
    assert f.claims() == {
        "lesion_found": True,
        "modality": "flair",
        "size": "large",
        "edema": "mild",
    }
    values = f.lesion_values()
    assert values["size"] == "large" and values["shape"] is None and values["lesion_found"] is True


def test_finding_value_parses_per_field() -> None:
    assert finding_value("lesion_found", "Yes") is True
    assert finding_value("lesion_found", "false") is False
    assert finding_value("shape", "oval") == "round_oval"
    with pytest.raises(ValueError, match="not a finding field"):
        finding_value("diagnosis", "glioma")
    with pytest.raises(ValueError, match="true, false or null"):
        finding_value("lesion_found", "maybe")


def test_judged_on() -> None:
    assert judged_on("enhancement", Modality.t1ce) and not judged_on("enhancement", None)
    assert judged_on("edema", Modality.flair) and judged_on("edema", None)
    assert not judged_on("edema", Modality.t1) and judged_on("texture", Modality.t1)


def test_physics_violations_per_field() -> None:
    problems = physics_violations({"enhancement": "ring", "edema": "mild"}, Modality.t1)
    assert set(problems) == {"enhancement", "edema"}
    assert physics_violations({"enhancement": "ring"}, Modality.t1ce) == {}


def test_schema_descriptions_are_written_for_the_model() -> None:
    props = SliceFindings.model_json_schema()["properties"]
    assert "< 1% of the image" in props["size"]["description"]
    assert "ONLY on t1ce" in props["enhancement"]["description"]
    assert "null" in props["margins"]["description"]


def test_describe_findings_states_only_given_values() -> None:
    text = describe_findings(
        {
            "lesion_found": True,
            "modality": "flair",
            "size": "medium",
            "shape": "irregular",
            "spread": "solitary",
            "location": "center_left",
            "laterality": "right",
            "signal_intensity": "hyperintense",
            "edema": "extensive",
        }
    )
    assert text == (
        "A medium irregular solitary lesion in the center left of the image, on the patient's "
        "right. It is hyperintense on flair, with extensive perilesional edema."
    )
    assert describe_findings({"lesion_found": False}) == "No lesion on this slice."
    assert "cannot be assessed" in describe_findings({})
    assert describe_findings({"enhancement": "none"}) == "A lesion. It has no enhancement."


def test_none_on_a_sequence_where_the_field_is_not_judged_is_null() -> None:
    # Small VLMs fill every field: "none" there says nothing and is no reason for a re-ask.
    t1ce = SliceFindings.model_validate(
        {"lesion_found": True, "edema": "none", "enhancement": "ring"}, context={"modality": "t1ce"}
    )
    assert t1ce.edema is None and t1ce.enhancement.value == "ring"
    t2 = SliceFindings.model_validate(
        {"lesion_found": True, "edema": "none", "enhancement": "none"}, context={"modality": "t2"}
    )
    assert t2.enhancement is None and t2.edema.value == "none"  # judged on t2: kept
    with pytest.raises(ValidationError, match="edema can only be judged"):
        SliceFindings.model_validate({"edema": "mild"}, context={"modality": "t1ce"})
