"""DiagnosisOpinion, Critique and Consensus: validation rules and the annotations.findings dict."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from neuroonco.schemas.agents import (
    FINDINGS_KEYS,
    Consensus,
    Critique,
    DiagnosisOpinion,
    FieldVerdict,
)
from neuroonco.schemas.vocabulary import Diagnosis


def test_diagnosis_opinion_normalises_labels() -> None:
    opinion = DiagnosisOpinion(
        diagnosis="Glioblastoma",
        reasoning="ring-enhancing mass",
        differential=["metastasis", "Metastases", "unknown", "Meningioma"],
        confidence=0.8,
    )
    assert opinion.diagnosis is Diagnosis.glioma
    assert opinion.differential == [Diagnosis.metastasis, Diagnosis.meningioma]
    assert DiagnosisOpinion(reasoning="x", differential="pituitary").differential == [
        Diagnosis.pituitary_tumor
    ]


def test_diagnosis_opinion_rules() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        DiagnosisOpinion(reasoning="x", confidence=1.5)
    with pytest.raises(ValidationError, match="say what the conflict is in conflict_note"):
        DiagnosisOpinion(reasoning="x", conflicts_with_source=True)
    with pytest.raises(ValidationError, match="use one of: glioma"):
        DiagnosisOpinion(diagnosis="flu", reasoning="x")


def test_field_verdict_value_only_for_downgrade() -> None:
    with pytest.raises(ValidationError, match="a downgrade needs the replacement"):
        FieldVerdict(action="downgrade", reason="x")
    assert FieldVerdict(action="keep", reason="x", value="round").value is None
    with pytest.raises(ValidationError):
        FieldVerdict(action="delete", reason="x")


def test_critique_keys_must_be_finding_fields() -> None:
    with pytest.raises(ValidationError, match="'colour' is not a finding field"):
        Critique(verdicts={"colour": {"action": "erase", "reason": "x"}})
    with pytest.raises(ValidationError, match="not a finding field"):
        Critique(verdicts={"diagnosis": {"action": "erase", "reason": "x"}})


def test_critique_normalises_values_and_derives_revise() -> None:
    critique = Critique(
        verdicts={
            "Shape": {"action": "downgrade", "reason": "circularity 0.41", "value": "Irregular"},
            "lesion_found": {"action": "downgrade", "reason": "empty mask", "value": False},
            "size": {"action": "keep", "reason": "matches"},
        },
        revise=False,
    )
    assert critique.verdicts["shape"].value == "irregular"
    assert critique.verdicts["lesion_found"].value == "false"
    assert critique.revise is True
    assert Critique(verdicts={"size": {"action": "keep", "reason": "ok"}}, revise=True).revise is (
        False
    )
    with pytest.raises(ValidationError, match="not a valid shape"):
        Critique(verdicts={"shape": {"action": "downgrade", "reason": "x", "value": "blob"}})


def test_consensus_findings_json_is_the_store_contract() -> None:
    consensus = Consensus(
        lesion_found=True,
        modality="T2",
        size="Large",
        edema="severe",
        diagnosis="pituitary",
        rationale="r",
        agreement={"size": 1.0, "edema": 0.5},
        overall_agreement=0.75,
        status="accepted",
    )
    data = consensus.findings_json()
    assert tuple(data) == FINDINGS_KEYS
    assert data["diagnosis"] == "pituitary_tumor" and data["size"] == "large"
    assert data["edema"] == "extensive" and data["shape"] is None
    assert data["lesion_found"] is True and data["rationale"] == "r"
    assert set(FINDINGS_KEYS) == {
        "modality", "diagnosis", "size", "shape", "spread", "location", "laterality",
        "margins", "texture", "enhancement", "edema", "signal_intensity", "lesion_found",
        "rationale",
    }  # fmt: skip


def test_consensus_validates_agreement_and_physics() -> None:
    with pytest.raises(ValidationError, match="agreement key 'colour'"):
        Consensus(agreement={"colour": 1.0})
    with pytest.raises(ValidationError, match=r"must lie in 0\.\.1"):
        Consensus(agreement={"size": 1.5})
    with pytest.raises(ValidationError, match="set enhancement to null"):
        Consensus(modality="flair", enhancement="ring")
    with pytest.raises(ValidationError):
        Consensus(status="maybe")


def test_critic_verdicts_are_a_closed_object_with_one_optional_field_per_finding() -> None:
    from neuroonco.schemas.findings import FINDING_FIELDS

    schema = Critique.model_json_schema()
    verdicts = schema["$defs"][schema["properties"]["verdicts"]["$ref"].rsplit("/", 1)[-1]]
    assert list(verdicts["properties"]) == list(FINDING_FIELDS)
    assert not verdicts.get("required") and "additionalProperties" not in verdicts
    critique = Critique.model_validate({"verdicts": {"size": {"action": "erase", "reason": "r"}}})
    assert critique.model_dump(mode="json")["verdicts"] == {
        "size": {"action": "erase", "reason": "r", "value": None}
    }
    assert Critique.model_validate(critique.model_dump(mode="json")) == critique
