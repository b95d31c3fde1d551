"""Review decisions (`reviews`, DESIGN.md contract) and the gold set they make.

A decision is a person's word on one field of one slice: ``accept`` (the model consensus is
right; its value is recorded so the gold set stands on its own), ``edit`` (the right value,
vocabulary-checked through :func:`~neuroonco.schemas.findings.finding_value`) or ``reject`` (the
consensus value is wrong and no value should be given: the gold value is null). The latest
decision per slice and field wins, whoever made it and wherever (cli, notebook, Label Studio,
the graph's review interrupt).

A decision on the pseudo-field ``slice`` (:data:`SLICE`) is a person's word on the whole slice:
``accept`` (its consensus, with any field decisions, is usable as reviewed) or ``reject`` (it gives
no instruction and no benchmark question). Builds treat a slice with any decision as reviewed:
its gold values win over the model consensus, and a ``needs_review`` slice becomes usable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any, Literal

import sqlite_utils

from neuroonco import store
from neuroonco.errors import NeuroOncoError
from neuroonco.review.votes import VOTED_FIELDS
from neuroonco.schemas.findings import finding_value

Decision = Literal["accept", "edit", "reject"]
Source = Literal["cli", "notebook", "label_studio", "interrupt"]
DECISIONS: tuple[str, ...] = ("accept", "edit", "reject")
SOURCES: tuple[str, ...] = ("cli", "notebook", "label_studio", "interrupt")
REVIEW_FIELDS: tuple[str, ...] = (*VOTED_FIELDS, "modality", "diagnosis")
SLICE = "slice"
"""The pseudo-field of a whole-slice decision (accept or reject)."""


def _encode(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def check_value(field: str, value: Any) -> Any:
    """``value`` as the vocabulary value of ``field``; a clear error naming what is allowed."""
    if field not in REVIEW_FIELDS:
        raise NeuroOncoError(
            f"{field!r} is not a reviewable field; use one of: " + ", ".join(REVIEW_FIELDS)
        )
    if field == "diagnosis":
        from neuroonco.schemas.vocabulary import normalise_label

        try:
            label = normalise_label(value)
        except ValueError as exc:
            raise NeuroOncoError(str(exc)) from exc
        return label.value if label is not None else None
    try:
        return finding_value(field, value)
    except ValueError as exc:
        raise NeuroOncoError(str(exc)) from exc


def consensus_value(db: sqlite_utils.Database, slice_id: str, field: str, run_id: str | None):
    """The model consensus's value of ``field`` for the slice (latest run when run_id is None)."""
    sql = "SELECT findings FROM annotations WHERE slice_id = ?"
    args: list[Any] = [slice_id]
    if run_id is not None:
        sql += " AND run_id = ?"
        args.append(run_id)
    rows = list(db.query(sql + " ORDER BY created_at DESC LIMIT 1", args))
    if not rows:
        raise NeuroOncoError(
            f"slice {slice_id!r} has no annotation"
            + (f" in run {run_id!r}" if run_id else "")
            + "; see `neuroonco review --db DB` for the queue"
        )
    findings = json.loads(rows[0]["findings"]) if rows[0]["findings"] else {}
    return findings.get(field)


def record(
    db: sqlite_utils.Database,
    slice_id: str,
    field: str,
    decision: str,
    *,
    reviewer: str,
    source: str = "cli",
    value: Any = None,
    run_id: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Store one decision and return its row; nothing is written when it does not check."""
    if decision not in DECISIONS:
        raise NeuroOncoError(f"unknown decision {decision!r}; use accept, edit=VALUE or reject")
    if source not in SOURCES:
        raise NeuroOncoError(f"unknown review source {source!r}; use one of: {', '.join(SOURCES)}")
    if not reviewer or not reviewer.strip():
        raise NeuroOncoError("a review needs the reviewer's name (--reviewer NAME)")
    if field == SLICE:
        if decision == "edit":
            raise NeuroOncoError("a whole slice is accepted or rejected; edit one field instead")
        consensus_value(db, slice_id, "lesion_found", run_id)  # the slice must be annotated
        value = None
    elif field not in REVIEW_FIELDS:
        raise NeuroOncoError(
            f"{field!r} is not a reviewable field; use one of: "
            + ", ".join(REVIEW_FIELDS)
            + f" (or {SLICE}: accept/reject the whole slice)"
        )
    elif decision == "edit":
        if value is None or (isinstance(value, str) and not value.strip()):
            raise NeuroOncoError(f"edit needs a value: edit=VALUE for {field}")
        value = check_value(field, value)
    elif decision == "accept":
        value = consensus_value(db, slice_id, field, run_id)
    else:
        value = None
    row = {
        "slice_id": slice_id,
        "field": field,
        "decision": decision,
        "value": _encode(value),
        "reviewer": reviewer.strip(),
        "created_at": store.now(),
        "source": source,
        "run_id": run_id,
        "note": note,
    }
    db["reviews"].insert(row)
    return row


def latest_reviews(db: sqlite_utils.Database) -> dict[str, dict[str, dict[str, Any]]]:
    """slice_id -> field -> the latest decision row (value decoded)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if not db["reviews"].exists():
        return out
    for row in db.query("SELECT * FROM reviews ORDER BY created_at, id"):
        out.setdefault(row["slice_id"], {})[row["field"]] = {**row, "value": _decode(row["value"])}
    return out


def gold_values(db: sqlite_utils.Database) -> dict[str, dict[str, Any]]:
    """slice_id -> field -> the reviewed (gold) value (None where rejected); whole-slice
    decisions are not field values and are left out (see :func:`reviewed_set`)."""
    out = {
        sid: {f: r["value"] for f, r in fields.items() if f != SLICE}
        for sid, fields in latest_reviews(db).items()
    }
    return {sid: fields for sid, fields in out.items() if fields}


@dataclass
class ReviewedSet:
    """What the builds need of the gold set: every reviewed slice, its gold field values and the
    slices a person rejected as a whole. Small (people review hundreds, not millions)."""

    slices: set[str] = _field(default_factory=set)
    fields: dict[str, dict[str, Any]] = _field(default_factory=dict)
    rejected: set[str] = _field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.slices)


def reviewed_set(db: sqlite_utils.Database) -> ReviewedSet:
    """The gold set as the instruction and benchmark builds apply it."""
    out = ReviewedSet()
    for sid, fields in latest_reviews(db).items():
        out.slices.add(sid)
        whole = fields.get(SLICE)
        if whole is not None and whole["decision"] == "reject":
            out.rejected.add(sid)
        values = {f: r["value"] for f, r in fields.items() if f != SLICE}
        if values:
            out.fields[sid] = values
    return out


def overlay(findings: dict[str, Any], gold: dict[str, Any]) -> dict[str, Any]:
    """``findings`` with the gold values put in (a new dict)."""
    out = {**findings, **gold}
    if out.get("lesion_found") is False:
        # A person said there is no lesion: nothing of one may survive from the models.
        out.update({k: None for k in VOTED_FIELDS if k != "lesion_found"})
    return out


def gold_findings(db: sqlite_utils.Database, run_id: str) -> dict[str, dict[str, Any]]:
    """The reviewed consensus of ``run_id``: for every slice with at least one review (and not
    rejected as a whole), its ``annotations.findings`` dict with each reviewed field replaced
    by the gold value.

    Builds (instructions, benchmark) use it in place of the model consensus for those slices.
    """
    gold = reviewed_set(db)
    out: dict[str, dict[str, Any]] = {}
    if not gold:
        return out
    for row in db.query("SELECT slice_id, findings FROM annotations WHERE run_id = ?", [run_id]):
        sid = row["slice_id"]
        if sid not in gold.slices or sid in gold.rejected:
            continue
        findings = json.loads(row["findings"]) if row["findings"] else {}
        out[sid] = overlay(findings, gold.fields.get(sid, {}))
    return out
