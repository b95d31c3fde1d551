"""The describers' own votes of one run, read back from ``agent_calls`` (no model is called).

A vote is one describer's output for one slice, before the critic's corrections: the arbiter
applies the critique only when it fuses, so the stored describer outputs are the raw opinions.
``which="first"`` takes each describer's round-1 output (independent: nobody has seen a critique
yet); ``which="last"`` takes its latest round (after revising on the critic's reasons, but
before the last critique is applied). A describer call that failed, or whose output no longer
validates, is a missing vote. The rater is the panel slot (``agent_calls.target``, "<i>:<spec>"),
so a panel of two identical specs still has two raters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlite_utils
from pydantic import ValidationError

from neuroonco.errors import NeuroOncoError
from neuroonco.schemas.findings import LESION_FIELDS, SliceFindings

Which = Literal["first", "last"]
VOTED_FIELDS: tuple[str, ...] = ("lesion_found", *LESION_FIELDS)


@dataclass
class SliceVotes:
    slice_id: str
    modality: str | None
    measurements: dict[str, Any] | None
    has_mask: bool
    findings: dict[str, SliceFindings | None] = field(default_factory=dict)
    """rater -> its vote (None: no valid output)."""
    consensus: dict[str, Any] | None = None
    status: str | None = None

    def values(self, rater: str) -> dict[str, Any]:
        """The rater's field values as plain strings/bools (all None for a missing vote)."""
        vote = self.findings.get(rater)
        if vote is None:
            return dict.fromkeys(VOTED_FIELDS)
        return vote.lesion_values()


@dataclass
class RunVotes:
    run_id: str
    which: Which
    raters: list[str]
    slices: list[SliceVotes]


def latest_run(db: sqlite_utils.Database) -> str:
    """The most recently started run; a clear error when the store has none."""
    if not db["runs"].exists():
        raise NeuroOncoError("the store has no annotation run yet; run `neuroonco annotate` first")
    rows = list(db.query("SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1"))
    if not rows:
        raise NeuroOncoError("the store has no annotation run yet; run `neuroonco annotate` first")
    return str(rows[0]["id"])


def _parse(output: str | None) -> SliceFindings | None:
    if not output:
        return None
    try:
        return SliceFindings.model_validate(json.loads(output))
    except (ValueError, ValidationError):
        return None


def load_votes(db: sqlite_utils.Database, run_id: str, which: Which = "first") -> RunVotes:
    """Every annotated slice of ``run_id`` with each describer's vote."""
    known = [r["id"] for r in db.query("SELECT id FROM runs WHERE id = ?", [run_id])]
    if not known:
        raise NeuroOncoError(f"no run {run_id!r} in the store; see the runs table for run ids")
    picked: dict[tuple[str, str], tuple[int, str, str | None]] = {}
    rows = db.query(
        "SELECT slice_id, COALESCE(target, model) AS rater, round, created_at, id, output "
        "FROM agent_calls WHERE run_id = ? AND role = 'describer' ORDER BY round, created_at, id",
        [run_id],
    )
    for row in rows:
        key = (row["slice_id"], row["rater"])
        rnd = int(row["round"] or 1)
        if which == "first" and key in picked and picked[key][0] < rnd:
            continue  # keep the earliest round's output (the last call within it: retries)
        picked[key] = (rnd, row["rater"], row["output"])
    raters = sorted({rater for _, rater in picked})
    slices: dict[str, SliceVotes] = {}
    ann = db.query(
        "SELECT a.slice_id, a.findings, a.status, s.modality, s.measurements, s.mask_path "
        "FROM annotations a LEFT JOIN slices s ON s.id = a.slice_id WHERE a.run_id = ? "
        "ORDER BY a.slice_id",
        [run_id],
    )
    for row in ann:
        slices[row["slice_id"]] = SliceVotes(
            slice_id=row["slice_id"],
            modality=row["modality"],
            measurements=json.loads(row["measurements"]) if row["measurements"] else None,
            has_mask=bool(row["mask_path"]),
            consensus=json.loads(row["findings"]) if row["findings"] else None,
            status=row["status"],
        )
    for (slice_id, rater), (_, _, output) in picked.items():
        if slice_id in slices:
            slices[slice_id].findings[rater] = _parse(output)
    for sv in slices.values():
        for rater in raters:
            sv.findings.setdefault(rater, None)
    return RunVotes(run_id=run_id, which=which, raters=raters, slices=list(slices.values()))
