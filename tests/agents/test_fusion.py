"""Fusion rules: unanimous, majority, seed_rules; agreement, abstentions, ties and status."""

from __future__ import annotations

import pytest

from neuroonco.agents.fusion import fuse, opinion_agreement
from neuroonco.schemas.agents import DiagnosisOpinion
from neuroonco.schemas.findings import LESION_FIELDS, SliceFindings

MEASURED = {"area_fraction": 0.02, "circularity": 0.41, "shape": "irregular", "size": "medium"}


def vote(**values: object) -> SliceFindings:
    return SliceFindings(lesion_found=True, modality="flair", **values)


def test_unanimous_keeps_only_full_agreement() -> None:
    votes = [vote(shape="round", size="small"), vote(shape="lobulated", size="small"), vote()]
    c = fuse(votes, rule="unanimous")
    assert c.shape is None and c.agreement["shape"] == 0.0
    # The abstaining third vote does not block unanimity but counts against agreement.
    assert c.size.value == "small" and c.agreement["size"] == pytest.approx(2 / 3, abs=1e-4)
    assert c.agreement["margins"] == 1.0  # every vote abstained


def test_majority_needs_more_than_half_of_all_votes() -> None:
    votes = [vote(shape="irregular"), vote(shape="irregular"), vote(shape="lobulated")]
    c = fuse(votes, rule="majority")
    assert c.shape.value == "irregular" and c.agreement["shape"] == pytest.approx(0.6667)
    tie = fuse([vote(shape="irregular"), vote(shape="lobulated")], rule="majority")
    assert tie.shape is None and tie.agreement["shape"] == 0.0
    lone = fuse([vote(texture="homogeneous"), vote(), vote()], rule="majority")
    assert lone.texture is None  # one vote of three is not a majority
    even = fuse([vote(size="small"), vote(size="small"), vote(), vote()], rule="majority")
    assert even.size is None  # 2 of 4 is not more than half


def test_seed_rules_settle_mask_fields_by_measurement_only() -> None:
    votes = [
        vote(shape="round_oval", margins="ill_defined", size="large"),
        vote(shape="lobulated", margins="well_circumscribed", size="large"),
    ]
    c = fuse(votes, rule="seed_rules", measurements=MEASURED)
    assert c.shape.value == "irregular"  # disagreement on a mask field: the measured value
    assert c.agreement["shape"] == 0.0
    assert c.margins is None  # disagreement elsewhere: null
    assert c.size.value == "large"  # agreement is kept, even against the measurement
    no_mask = fuse(votes, rule="seed_rules")
    assert no_mask.shape is None


def test_seed_rules_settle_lesion_presence_by_the_mask() -> None:
    votes = [SliceFindings(lesion_found=False), SliceFindings(lesion_found=True, size="small")]
    assert fuse(votes, rule="seed_rules", has_mask=True).lesion_found is False
    c = fuse(votes, rule="seed_rules", measurements=MEASURED)
    assert c.lesion_found is True and c.size.value == "small"


def test_no_lesion_consensus_clears_lesion_fields() -> None:
    votes = [
        SliceFindings(lesion_found=False),
        SliceFindings(lesion_found=False),
        vote(size="small"),
    ]
    c = fuse(votes, rule="unanimous")
    assert c.lesion_found is None  # lesion presence itself is disputed: nothing to describe
    assert c.size is None and c.agreement["size"] == 0.0
    c = fuse(votes, rule="majority")
    assert c.lesion_found is False
    assert all(getattr(c, name) is None for name in LESION_FIELDS)
    assert c.agreement["size"] == 0.0


def test_overall_agreement_and_status() -> None:
    votes = [vote(size="small", shape="irregular"), vote(size="small", shape="lobulated")]
    c = fuse(votes, rule="majority", review_threshold=0.75)
    # lesion_found 1.0, size 1.0, shape 0.0 -> 2/3; all-abstain fields are left out.
    assert c.overall_agreement == pytest.approx(0.6667)
    assert c.status == "needs_review"
    assert "Left unset for lack of agreement: shape" in c.rationale
    assert fuse(votes, rule="majority", review_threshold=0.5).status == "accepted"


def test_diagnosis_conflict_needs_review() -> None:
    votes = [vote(size="small"), vote(size="small")]
    conflict = DiagnosisOpinion(
        diagnosis="no_tumor",
        reasoning="label",
        conflicts_with_source=True,
        conflict_note="label no_tumor but a lesion is measured",
    )
    c = fuse(votes, rule="majority", diagnosis=conflict)
    assert c.overall_agreement == 1.0 and c.status == "needs_review"
    assert c.diagnosis.value == "no_tumor"
    ok = DiagnosisOpinion(diagnosis="glioma", reasoning="label", confidence=1.0)
    accepted = fuse(votes, rule="majority", diagnosis=ok)
    assert accepted.status == "accepted"
    assert accepted.findings_json()["diagnosis"] == "glioma"


def test_no_valid_vote_is_rejected() -> None:
    assert fuse([], rule="majority").status == "rejected"
    c = fuse([None, None], rule="unanimous", modality="t2")
    assert c.status == "rejected" and c.modality.value == "t2"
    assert "No valid describer vote among 2" in c.rationale


def test_failed_describers_do_not_count_as_votes() -> None:
    c = fuse([vote(size="small"), None, vote(size="small")], rule="majority")
    assert c.size.value == "small" and c.agreement["size"] == 1.0


def test_nothing_voted_gives_zero_overall() -> None:
    c = fuse([SliceFindings(), SliceFindings()], rule="majority")
    assert c.overall_agreement == 0.0 and c.status == "needs_review"


def test_consensus_respects_the_sequence() -> None:
    votes = [
        SliceFindings(lesion_found=True, edema="mild"),
        SliceFindings(lesion_found=True, edema="mild"),
    ]
    assert fuse(votes, rule="majority", modality="t1").edema is None
    assert fuse(votes, rule="majority", modality="flair").edema.value == "mild"


def test_unknown_rule_raises() -> None:
    with pytest.raises(ValueError, match="unknown fusion rule 'vote'"):
        fuse([vote()], rule="vote")  # type: ignore[arg-type]


def test_opinion_agreement_is_measured_on_first_votes_and_opinion_fields_only():
    base = {"lesion_found": True, "size": "medium", "shape": "round_oval", "margins": "ill_defined"}
    a = SliceFindings.model_validate({**base, "texture": "heterogeneous"})
    b = SliceFindings.model_validate({**base, "size": "large", "texture": "homogeneous"})
    c = SliceFindings.model_validate({**base, "texture": "heterogeneous", "edema": "mild"})
    overall, by_field = opinion_agreement([a, b, c], measured=True)
    # margins 3/3, texture 2/3, edema 1/3 (two abstain); size/shape/lesion_found are facts.
    assert by_field == {"margins": 1.0, "texture": 0.6667, "edema": 0.3333}
    assert overall == round((1 + 2 / 3 + 1 / 3) / 3, 4)
    _, unmeasured = opinion_agreement([a, b], measured=False)
    assert unmeasured["size"] == 0.5 and unmeasured["lesion_found"] == 1.0
    assert opinion_agreement([a], measured=True) == (None, {})
