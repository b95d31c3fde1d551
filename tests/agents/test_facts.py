"""The fact policy: whatever a model says, the mask, the sequence and the label win, and each
overruled value is recorded."""

from __future__ import annotations

from neuroonco.agents.facts import Facts, arbitrate, enforce_critique, enforce_diagnosis
from neuroonco.schemas.agents import Consensus, Critique, DiagnosisOpinion, FieldVerdict
from neuroonco.schemas.findings import SliceFindings

LESION = {
    "area_fraction": 0.02,
    "circularity": 0.9,
    "elongation": 1.1,
    "components": 1,
    "centroid": [0.3, 0.5],
    "size": "medium",
    "shape": "round_oval",
    "spread": "solitary",
    "location": "center_left",
    "laterality": "right",
}


def facts(measurements=LESION, modality="t2", label="glioma", has_mask=True) -> Facts:
    return Facts.of(
        {"measurements": measurements, "modality": modality, "label": label, "has_mask": has_mask}
    )


def opinion(diagnosis: str | None, **extra) -> DiagnosisOpinion:
    return DiagnosisOpinion(diagnosis=diagnosis, reasoning="r", **extra)


def test_a_critic_downgrading_a_measured_field_to_a_wrong_value_is_overruled() -> None:
    findings = SliceFindings(lesion_found=True, size="medium", shape="round_oval", modality="t2")
    model = Critique(
        verdicts={
            "size": FieldVerdict(action="downgrade", value="large", reason="looks big"),
            "shape": FieldVerdict(action="erase", reason="cannot tell"),
            "margins": FieldVerdict(action="downgrade", value="ill_defined", reason="blurred"),
        }
    )
    kept, overrides = enforce_critique(model, findings, facts(), model="openai:x", target="0:a")
    assert kept.verdicts["size"].action == "keep"  # medium is what the mask measures
    assert kept.verdicts["shape"].action == "keep"  # the erase of a correct value is undone
    assert kept.verdicts["margins"].value == "ill_defined"  # no fact decides margins
    by_field = {o.field: o for o in overrides}
    assert set(by_field) == {"size", "shape"}
    assert by_field["size"].said == "downgrade to large" and by_field["size"].model == "openai:x"
    assert "2.00%" in by_field["size"].reason and by_field["size"].target == "0:a"


def test_a_critic_cannot_add_a_wrong_value_to_an_unclaimed_fact_field() -> None:
    findings = SliceFindings(lesion_found=True, modality="t2")
    model = Critique(verdicts={"size": FieldVerdict(action="downgrade", value="small", reason="")})
    kept, overrides = enforce_critique(model, findings, facts(), model="m")
    assert "size" not in kept.verdicts and [o.field for o in overrides] == ["size"]
    right = Critique(verdicts={"size": FieldVerdict(action="downgrade", value="medium", reason="")})
    assert enforce_critique(right, findings, facts(), model="m")[1] == []


def test_a_lesion_claim_on_an_empty_mask_is_downgraded_whatever_the_critic_kept() -> None:
    findings = SliceFindings(lesion_found=True, size="small", modality="t2")
    keep = FieldVerdict(action="keep", reason="fine")
    model = Critique(verdicts={"lesion_found": keep, "size": keep})
    empty = facts(measurements=None, label="no_tumor")
    kept, overrides = enforce_critique(model, findings, empty, model="m")
    assert kept.verdicts["lesion_found"].value == "false"
    assert kept.verdicts["size"].action == "erase"
    assert {o.field for o in overrides} == {"lesion_found", "size"}


def test_a_random_arbiter_on_an_empty_mask_cannot_invent_a_lesion() -> None:
    votes = [SliceFindings(lesion_found=False, modality="t2") for _ in range(2)]
    random = Consensus(
        lesion_found=True,
        size="small",
        diagnosis="metastasis",
        status="accepted",
        overall_agreement=1.0,
        rationale="A small metastasis.",
    )
    empty = facts(measurements=None, label="no_tumor")
    consensus, overrides = arbitrate(
        votes,
        empty,
        rule="majority",
        diagnosis=opinion("no_tumor"),
        review_threshold=0.75,
        n_votes=2,
        proposal=random,
        model="openai:arb",
    )
    assert consensus.lesion_found is False and consensus.size is None
    assert consensus.diagnosis.value == "no_tumor"
    assert consensus.overall_agreement == 1.0 and consensus.status == "accepted"
    assert consensus.rationale == "A small metastasis."  # the arbiter may write the rationale
    assert {"lesion_found", "size", "diagnosis"} <= {o.field for o in overrides}
    assert all(o.model == "openai:arb" for o in overrides)


def test_an_arbiter_may_fill_an_open_field_with_a_voted_value_only() -> None:
    votes = [
        SliceFindings(lesion_found=True, modality="t2", margins="ill_defined", size="medium"),
        SliceFindings(lesion_found=True, modality="t2", margins="well_circumscribed"),
    ]
    pick = Consensus(lesion_found=True, margins="ill_defined", texture="homogeneous")
    consensus, overrides = arbitrate(
        votes,
        facts(),
        rule="majority",
        diagnosis=None,
        review_threshold=0.75,
        n_votes=2,
        proposal=pick,
        model="m",
    )
    assert consensus.margins.value == "ill_defined" and consensus.agreement["margins"] == 0.5
    assert consensus.texture is None  # nobody voted homogeneous
    assert consensus.size.value == "medium" and consensus.shape.value == "round_oval"  # facts
    assert any(o.field == "texture" and "no describer" in o.reason for o in overrides)


def test_fusion_of_wrong_votes_is_overruled_by_the_mask() -> None:
    votes = [SliceFindings(lesion_found=True, size="large", modality="t2") for _ in range(3)]
    consensus, overrides = arbitrate(
        votes,
        facts(),
        rule="majority",
        diagnosis=None,
        review_threshold=0.75,
        n_votes=3,
    )
    assert consensus.size.value == "medium" and consensus.agreement["size"] == 0.0
    assert [(o.field, o.said, o.kept) for o in overrides] == [("size", "large", "medium")]
    assert overrides[0].model == "rule:majority"


def test_known_label_is_the_answer_and_a_disagreement_is_a_conflict() -> None:
    result, overrides = enforce_diagnosis(opinion("glioma"), facts(label="meningioma"), model="m")
    assert result.diagnosis.value == "meningioma" and result.conflicts_with_source is True
    assert "glioma" in result.conflict_note and [d.value for d in result.differential] == ["glioma"]
    assert overrides[0].said == "glioma" and overrides[0].kept == "meningioma"


def test_agreeing_or_abstaining_model_is_no_conflict() -> None:
    assert enforce_diagnosis(opinion("glioma"), facts(), model="m") == (opinion("glioma"), [])
    result, _ = enforce_diagnosis(opinion(None), facts(), model="m")
    assert result.diagnosis.value == "glioma" and result.conflicts_with_source is False


def test_unknown_label_keeps_the_model_answer() -> None:
    result, overrides = enforce_diagnosis(opinion("metastasis"), facts(label=None), model="m")
    assert result.diagnosis.value == "metastasis" and overrides == []
