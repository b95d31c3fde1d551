"""Review decisions and the gold set: vocabulary-checked edits, latest decision wins."""

from __future__ import annotations

import pytest

from neuroonco.errors import NeuroOncoError
from neuroonco.review import gold
from tests.neuroonco.review.synthetic import RUN, make_run

V = {"lesion_found": True, "margins": "ill_defined", "size": "small"}


def store(tmp_path):
    return make_run(
        tmp_path / "g.db",
        {
            "s1": {
                "votes": {"0:builtin": V},
                "consensus": {"margins": "ill_defined", "size": "small"},
            },
            "s2": {"votes": {"0:builtin": V}, "consensus": {"size": "small"}},
        },
    )


def test_edit_is_normalised_and_accept_records_the_consensus(tmp_path):
    db = store(tmp_path)
    row = gold.record(
        db, "s1", "margins", "edit", value="Well-Circumscribed", reviewer="ana", run_id=RUN
    )
    assert row["value"] == '"well_circumscribed"'
    gold.record(db, "s1", "size", "accept", reviewer="ana", run_id=RUN)
    assert gold.gold_values(db) == {"s1": {"margins": "well_circumscribed", "size": "small"}}


def test_bad_edits_are_refused_with_the_allowed_values_and_nothing_is_written(tmp_path):
    db = store(tmp_path)
    with pytest.raises(NeuroOncoError, match="ill_defined"):
        gold.record(db, "s1", "margins", "edit", value="fluffy", reviewer="ana")
    with pytest.raises(NeuroOncoError, match="reviewable field"):
        gold.record(db, "s1", "colour", "edit", value="red", reviewer="ana")
    with pytest.raises(NeuroOncoError, match="reviewer"):
        gold.record(db, "s1", "size", "accept", reviewer=" ")
    with pytest.raises(NeuroOncoError, match="no annotation"):
        gold.record(db, "nope", "size", "accept", reviewer="ana")
    assert db["reviews"].count == 0


def test_latest_decision_wins_and_gold_findings_overlay_the_consensus(tmp_path):
    db = store(tmp_path)
    gold.record(db, "s1", "margins", "edit", value="well_circumscribed", reviewer="ana")
    gold.record(db, "s1", "margins", "reject", reviewer="bo", source="label_studio")
    found = gold.gold_findings(db, RUN)
    assert set(found) == {"s1"}  # s2 has no review: the builds keep its model consensus
    assert found["s1"]["margins"] is None and found["s1"]["size"] == "small"
    gold.record(db, "s1", "lesion_found", "edit", value="false", reviewer="ana")
    found = gold.gold_findings(db, RUN)
    assert found["s1"]["lesion_found"] is False and found["s1"]["size"] is None


def test_whole_slice_decisions_are_not_field_values(tmp_path):
    db = store(tmp_path)
    gold.record(db, "s1", "slice", "reject", reviewer="ana", run_id=RUN)
    gold.record(db, "s2", "size", "edit", value="large", reviewer="ana", run_id=RUN)
    gold.record(db, "s2", "slice", "accept", reviewer="ana", run_id=RUN)
    with pytest.raises(NeuroOncoError, match="accepted or rejected"):
        gold.record(db, "s1", "slice", "edit", value="x", reviewer="ana")
    assert gold.gold_values(db) == {"s2": {"size": "large"}}
    reviewed = gold.reviewed_set(db)
    assert reviewed.slices == {"s1", "s2"} and reviewed.rejected == {"s1"}
    assert set(gold.gold_findings(db, RUN)) == {"s2"}
    gold.record(db, "s1", "slice", "accept", reviewer="bo", run_id=RUN)  # the latest wins
    assert gold.reviewed_set(db).rejected == set()
