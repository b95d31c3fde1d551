"""Splits by subject: no subject or duplicate group crosses splits; stratified; deterministic."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import sqlite_utils

from neuroonco.finetune import annotated
from neuroonco.finetune.splits import SplitRatios, plan_splits
from neuroonco.tools.synthetic_annotations import write_synthetic_store


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    db = tmp_path_factory.mktemp("split") / "s.db"
    write_synthetic_store(db, 4000, seed=2, slices_per_subject=4, duplicate_rate=0.05)
    conn = sqlite_utils.Database(db)
    choice = annotated.choose_run(conn, None, "s.db")
    return list(annotated.iter_split_keys(conn, choice, ("accepted",)))


def test_duplicates_tie_subjects_into_one_split(keys):
    plan = plan_splits(keys, seed=0)
    pairs = [(row[1], row[2]) for row in keys if row[2]]
    assert len(pairs) > 20
    assert all(plan.split_of(a) == plan.split_of(b) for a, b in pairs)
    subjects = {row[1] for row in keys}
    assert set(plan.by_subject) == subjects  # every subject has exactly one split


def test_stratified_by_diagnosis_and_deterministic(keys):
    plan = plan_splits(keys, seed=0)
    assert plan_splits(keys, seed=0).by_subject == plan.by_subject
    assert plan_splits(keys, seed=1).by_subject != plan.by_subject
    dx_of = {}
    for row in keys:
        dx_of.setdefault(row[1], row[3])
    per = defaultdict(Counter)
    for subject, split in plan.by_subject.items():
        per[dx_of[subject]][split] += 1
    for dx, counts in per.items():
        total = sum(counts.values())
        assert 0.05 < counts["test"] / total < 0.16, (dx, counts)
        assert 0.05 < counts["val"] / total < 0.16, (dx, counts)


def test_small_strata_still_reach_test_and_val():
    rows = [(f"s{i}", f"sub{i}", None, "ependymoma", None) for i in range(3)]
    plan = plan_splits(rows, seed=0, ratios=SplitRatios(val=0.1, test=0.1))
    assert sorted(plan.by_subject.values()) == ["test", "train", "val"]


def test_source_splits_kept_on_request():
    rows = [(f"s{i}", f"sub{i}", None, "glioma", "test" if i < 5 else "train") for i in range(40)]
    rows += [("d1", "sub39", "sub0", "glioma", "train")]  # a duplicate of a held-out subject
    kept = plan_splits(rows, seed=0, keep_source_splits=True)
    assert all(kept.split_of(f"sub{i}") == "test" for i in range(5))
    assert kept.split_of("sub39") == "test"  # tied to sub0, the held-out side wins
    assert all(kept.split_of(f"sub{i}") == "train" for i in range(5, 39))
    ignored = plan_splits(rows, seed=0)
    assert [ignored.split_of(f"sub{i}") for i in range(5)] != ["test"] * 5
