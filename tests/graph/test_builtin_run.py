"""The whole graph with the offline builtin backend, on phantoms whose truth is known."""

from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils

from neuroonco.graph.context import AnnotateConfig
from neuroonco.graph.runner import annotate

MASK_FIELDS = ("size", "shape", "spread", "location", "laterality")
LESION_FIELDS = (
    *MASK_FIELDS,
    "margins",
    "texture",
    "enhancement",
    "edema",
    "signal_intensity",
)


def consensus_rows(db_path: Path) -> list[dict]:
    db = sqlite_utils.Database(db_path)
    rows = list(
        db.query(
            "select s.*, a.status, a.findings, a.agreement, a.rounds, a.error "
            "from annotations a join slices s on s.id = a.slice_id order by s.rowid"
        )
    )
    for row in rows:
        row["findings"] = json.loads(row["findings"]) if row["findings"] else None
        row["measurements"] = json.loads(row["measurements"]) if row["measurements"] else None
    return rows


def test_every_unique_slice_gets_one_validated_consensus(fresh_db: Path) -> None:
    summary = annotate(fresh_db, AnnotateConfig(), concurrency=4)
    db = sqlite_utils.Database(fresh_db)
    unique = db.execute("select count(*) from slices where duplicate_of is null").fetchone()[0]
    assert summary.done == unique > 40
    assert db["annotations"].count == unique
    assert summary.by_status.get("failed", 0) == 0
    statuses = {r["status"] for r in db["annotations"].rows}
    assert statuses <= {"accepted", "needs_review"}
    # Every call of every role is in the trace, with its output validated.
    roles = {r["role"] for r in db["agent_calls"].rows}
    assert roles == {"describer", "diagnostician", "critic", "arbiter"}
    assert db.execute("select count(*) from agent_calls where output is null").fetchone()[0] == 0
    run = next(iter(db["runs"].rows))
    assert run["finished_at"] and json.loads(run["versions"])["langgraph"]
    assert json.loads(run["config"])["describers"] == ["builtin"]


def test_builtin_consensus_matches_phantom_truth(fresh_db: Path) -> None:
    annotate(fresh_db, AnnotateConfig(), concurrency=4)
    rows = consensus_rows(fresh_db)
    masked = [r for r in rows if r["measurements"] and r["measurements"].get("lesion")]
    assert len(masked) > 20
    for row in masked:
        found, measured = row["findings"], row["measurements"]
        assert found["lesion_found"] is True
        for name in MASK_FIELDS:
            if name == "shape" and row["mask_kind"] == "box":
                assert found["shape"] is None  # a box outlines the box, not the lesion
                continue
            assert found[name] == measured[name], (row["source_path"], name)
        assert found["modality"] == row["modality"]
        assert found["diagnosis"] == row["label"]
        if row["modality"] != "t1ce":
            assert found["enhancement"] is None
        if row["modality"] in ("t1", "t1ce"):
            assert found["edema"] is None
    # BraTS phantoms: the four sequences of one position agree on the patient's side.
    brats = [r for r in masked if r["source_format"].startswith("brats")]
    by_group: dict[str, set] = {}
    for row in brats:
        by_group.setdefault(row["group_id"], set()).add(row["findings"]["laterality"])
    assert by_group and all(len(sides) == 1 for sides in by_group.values())


def test_tumour_free_slices_get_no_lesion_fields(fresh_db: Path) -> None:
    annotate(fresh_db, AnnotateConfig(), concurrency=4)
    negatives = [r for r in consensus_rows(fresh_db) if r["label"] == "no_tumor"]
    assert len(negatives) >= 8  # BraTS negatives (4 sequences x cases) and notumor images
    for row in negatives:
        assert row["findings"]["lesion_found"] is False, row["source_path"]
        assert all(row["findings"][name] is None for name in LESION_FIELDS)
        assert row["findings"]["diagnosis"] == "no_tumor"


def test_rerun_makes_no_calls_and_adds_nothing(fresh_db: Path) -> None:
    first = annotate(fresh_db, AnnotateConfig(), concurrency=4)
    db = sqlite_utils.Database(fresh_db)
    calls, annotations = db["agent_calls"].count, db["annotations"].count
    second = annotate(fresh_db, AnnotateConfig(), concurrency=4)
    assert first.done > 0 and second.done == 0 and second.tally.calls == 0
    assert (db["agent_calls"].count, db["annotations"].count) == (calls, annotations)


def test_limit_then_resume_finishes_the_rest(fresh_db: Path) -> None:
    first = annotate(fresh_db, AnnotateConfig(), concurrency=2, limit=5)
    assert first.done == 5
    rest = annotate(fresh_db, AnnotateConfig(), concurrency=2)
    db = sqlite_utils.Database(fresh_db)
    unique = db.execute("select count(*) from slices where duplicate_of is null").fetchone()[0]
    assert rest.done == unique - 5
    per_slice = db.execute(
        "select max(n) from (select count(*) n from annotations group by slice_id)"
    ).fetchone()[0]
    assert per_slice == 1


def test_other_config_annotates_again_and_rules_are_recorded(fresh_db: Path) -> None:
    annotate(fresh_db, AnnotateConfig(), concurrency=2, limit=3)
    summary = annotate(
        fresh_db, AnnotateConfig(describers=["builtin", "builtin"], rule="unanimous"), limit=3
    )
    assert summary.done == 3
    db = sqlite_utils.Database(fresh_db)
    assert db.execute("select count(distinct config_hash) from annotations").fetchone()[0] == 2
