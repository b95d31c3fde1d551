"""Train/val/test splits by subject, never by slice.

Slices of one subject always share a split, and so do the subjects a duplicate ties together (a
Kaggle image repackaged from a figshare slice is the same patient's picture: were it in train while
its original is in test, the benchmark would test memory). Such a connected set of subjects is a
*unit*; units are stratified by their most common diagnosis and dealt to splits in an order fixed
by a seeded hash, so a seed always gives the same split and adding one subject moves no other.
``keep_source_splits`` keeps a source's own split (``slices.split_hint``: BraTS training/
validation, Kaggle Training/Testing) for every unit that has one.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

SPLITS = ("train", "val", "test")
# A unit whose slices carry several hints goes to the most protected one: test beats val beats
# train, so nothing a source held out for testing is ever trained on.
_HINT_PRIORITY = {"test": 0, "val": 1, "train": 2}


@dataclass(frozen=True)
class SplitRatios:
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        if not (0 <= self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise ValueError("val and test fractions must be in [0, 1) and sum below 1")


class _Units:
    """Union-find over subject ids."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:  # path compression
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller id becomes the root, so a unit's name does not depend on row order.
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


@dataclass
class SplitPlan:
    """Which split each subject is in."""

    by_subject: dict[str, str] = field(default_factory=dict)
    units: Counter = field(default_factory=Counter)

    def split_of(self, subject_id: str) -> str:
        return self.by_subject.get(subject_id, "train")


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def _deal(names: list[str], ratios: SplitRatios) -> dict[str, str]:
    """Split one stratum's units: test first, then val, at least one each when there are enough."""
    n = len(names)
    n_test = round(n * ratios.test)
    n_val = round(n * ratios.val)
    if ratios.test > 0 and n >= 2 and n_test == 0:
        n_test = 1
    if ratios.val > 0 and n >= 3 and n_val == 0:
        n_val = 1
    out = {}
    for i, name in enumerate(names):
        out[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def plan_splits(
    rows: Iterable[tuple],
    *,
    seed: int = 0,
    ratios: SplitRatios | None = None,
    keep_source_splits: bool = False,
) -> SplitPlan:
    """A split for every subject from (slice id, subject, duplicate's subject, diagnosis, split
    hint, ...) rows: every slice of the store, duplicates included."""
    ratios = ratios or SplitRatios()
    units = _Units()
    diagnoses: dict[str, Counter] = defaultdict(Counter)
    hints: dict[str, str] = {}
    subjects: set[str] = set()
    for row in rows:
        subject, dup_subject, diagnosis, hint = row[1] or row[0], row[2], row[3], row[4]
        units.find(subject)
        if dup_subject:
            units.union(subject, dup_subject)
        subjects.add(subject)
        diagnoses[subject][diagnosis or "unknown"] += 1
        if hint in _HINT_PRIORITY and (
            subject not in hints or _HINT_PRIORITY[hint] < _HINT_PRIORITY[hints[subject]]
        ):
            hints[subject] = hint
    unit_dx: dict[str, Counter] = defaultdict(Counter)
    unit_hint: dict[str, str] = {}
    for subject in subjects:
        root = units.find(subject)
        unit_dx[root].update(diagnoses[subject])
        hint = hints.get(subject)
        if hint and (
            root not in unit_hint or _HINT_PRIORITY[hint] < _HINT_PRIORITY[unit_hint[root]]
        ):
            unit_hint[root] = hint
    by_unit: dict[str, str] = {}
    strata: dict[str, list[str]] = defaultdict(list)
    for root, dx in unit_dx.items():
        if keep_source_splits and root in unit_hint:
            by_unit[root] = unit_hint[root]
            continue
        # Most common diagnosis; ties broken by name so the stratum is deterministic.
        stratum = min(dx.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        strata[stratum].append(root)
    for names in strata.values():
        names.sort(key=lambda name: _rank(seed, name))
        by_unit.update(_deal(names, ratios))
    plan = SplitPlan()
    for subject in subjects:
        plan.by_subject[subject] = by_unit[units.find(subject)]
    plan.units = Counter(by_unit.values())
    return plan
