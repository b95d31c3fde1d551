"""The review queue: which slices a person should look at first, lowest agreement first.

By default the queue is the run's ``needs_review`` slices. A query replaces that selection:
``field``/``below`` picks slices where the describers' own votes on one field agree less than
``below`` (share of the panel giving the most common answer), ``disagrees`` picks slices where
one describer's vote on a mask-derived field differs from the measurement. Slices with a review
already are left out unless ``include_reviewed``. Order: pre-critique agreement (mean over the
fields voted on), then the slice id, so the queue is stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from neuroonco.errors import NeuroOncoError
from neuroonco.review.agreement import MEASURED_FIELDS, measured_value, slice_agreement
from neuroonco.review.gold import latest_reviews
from neuroonco.review.votes import VOTED_FIELDS, RunVotes, SliceVotes, load_votes


@dataclass
class QueueItem:
    slice_id: str
    status: str | None
    agreement: float
    by_field: dict[str, float]
    votes: dict[str, dict[str, Any]]
    consensus: dict[str, Any]
    disputed: list[str] = field(default_factory=list)
    """Fields where the panel is not unanimous or a vote contradicts the measurement."""


def _contradicted(sv: SliceVotes, rater: str) -> list[str]:
    values = sv.values(rater)
    out = []
    for name in MEASURED_FIELDS:
        truth = measured_value(sv, name)
        if truth is not None and values[name] is not None and values[name] != truth:
            out.append(name)
    return out


def build_queue(
    db: sqlite_utils.Database,
    run_id: str,
    *,
    field_name: str | None = None,
    below: float = 1.0,
    disagrees: str | None = None,
    include_reviewed: bool = False,
    votes: RunVotes | None = None,
) -> list[QueueItem]:
    """The ordered queue of ``run_id`` (see the module docstring for the selection)."""
    if field_name is not None and field_name not in VOTED_FIELDS:
        raise NeuroOncoError(
            f"--field {field_name!r} is not a voted field; use one of: " + ", ".join(VOTED_FIELDS)
        )
    votes = votes or load_votes(db, run_id)
    if disagrees is not None and disagrees not in votes.raters:
        raise NeuroOncoError(
            f"--disagrees {disagrees!r} is not a describer of run {run_id}; "
            f"the panel is: {', '.join(votes.raters) or '(empty)'}"
        )
    reviewed = set() if include_reviewed else set(latest_reviews(db))
    items = []
    for sv in votes.slices:
        if sv.slice_id in reviewed:
            continue
        by_field = slice_agreement(sv, votes.raters)
        if field_name is not None:
            chosen = by_field.get(field_name, 1.0) < below
        elif disagrees is not None:
            chosen = bool(_contradicted(sv, disagrees))
        else:
            chosen = sv.status == "needs_review"
        if not chosen:
            continue
        contradicted = {n for r in votes.raters for n in _contradicted(sv, r)}
        disputed = [n for n in VOTED_FIELDS if by_field.get(n, 1.0) < 1.0 or n in contradicted]
        mean = sum(by_field.values()) / len(by_field) if by_field else 0.0
        items.append(
            QueueItem(
                slice_id=sv.slice_id,
                status=sv.status,
                agreement=round(mean, 4),
                by_field=by_field,
                votes={r: sv.values(r) for r in votes.raters},
                consensus=sv.consensus or {},
                disputed=disputed,
            )
        )
    items.sort(key=lambda it: (it.agreement, it.slice_id))
    return items
