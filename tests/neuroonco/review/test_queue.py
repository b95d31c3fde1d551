"""The review queue: needs_review by default, queries by field or by a model's contradictions."""

from __future__ import annotations

import pytest

from neuroonco.errors import NeuroOncoError
from neuroonco.review import gold
from neuroonco.review.queue import build_queue
from tests.neuroonco.review.synthetic import RUN, lesion_measurements, make_run

RA, RB = "0:builtin", "1:builtin"


def vote(**fields):
    return {"lesion_found": True, **fields}


def store(tmp_path):
    m = lesion_measurements(size="small")
    return make_run(
        tmp_path / "q.db",
        {
            # needs_review, one field split
            "a": {
                "status": "needs_review",
                "measurements": m,
                "votes": {
                    RA: vote(size="small", margins="ill_defined"),
                    RB: vote(size="small", margins="well_circumscribed"),
                },
            },
            # needs_review, two fields split: lower agreement, comes first
            "b": {
                "status": "needs_review",
                "measurements": m,
                "votes": {
                    RA: vote(size="small", margins="ill_defined"),
                    RB: vote(size="large", margins="well_circumscribed"),
                },
            },
            # accepted, but B contradicts the mask
            "c": {
                "status": "accepted",
                "measurements": m,
                "votes": {RA: vote(size="small"), RB: vote(size="medium")},
            },
            "d": {
                "status": "accepted",
                "measurements": m,
                "votes": {RA: vote(size="small"), RB: vote(size="small")},
            },
        },
    )


def test_default_queue_is_needs_review_lowest_agreement_first(tmp_path):
    items = build_queue(store(tmp_path), RUN)
    assert [i.slice_id for i in items] == ["b", "a"]
    assert items[0].disputed == ["size", "margins"]
    assert items[1].by_field["margins"] == 0.5


def test_queries_by_field_and_by_model(tmp_path):
    db = store(tmp_path)
    assert [i.slice_id for i in build_queue(db, RUN, field_name="size")] == ["b", "c"]
    assert [i.slice_id for i in build_queue(db, RUN, disagrees=RB)] == ["b", "c"]
    assert build_queue(db, RUN, disagrees=RA) == []
    with pytest.raises(NeuroOncoError, match="panel is"):
        build_queue(db, RUN, disagrees="9:nobody")
    with pytest.raises(NeuroOncoError, match="not a voted field"):
        build_queue(db, RUN, field_name="colour")


def test_reviewed_slices_leave_the_queue(tmp_path):
    db = store(tmp_path)
    gold.record(db, "b", "size", "accept", reviewer="ana", run_id=RUN)
    assert [i.slice_id for i in build_queue(db, RUN)] == ["a"]
    assert [i.slice_id for i in build_queue(db, RUN, include_reviewed=True)] == ["b", "a"]
