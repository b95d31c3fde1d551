"""Read-only views of annotation runs for the inspection notebooks: runs, slices, agent traces.

Nothing here writes. :func:`open_store` opens an existing store with ``query_only`` set (and never
creates or migrates one), so a notebook pointed at a live run cannot change it. Image paths in
``slices`` are relative to the database's folder, which is read back from the connection.
:func:`slice_trace` gathers everything the panel did on one slice;
:mod:`neuroonco.trace_views` draws it (overlay, tables) without pandas.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from PIL import Image

from neuroonco.errors import StoreError

ROLES = ("describer", "diagnostician", "critic", "arbiter")
SLICE_FIELDS = ("id", "dataset", "modality", "plane", "slice_index", "label", "subject_id")


@dataclass
class CallTrace:
    """One ``agent_calls`` row with its JSON columns parsed."""

    id: str
    role: str
    model: str
    round: int
    output: dict[str, Any] | None
    error: str | None
    attempts: int
    attempt_log: list[dict[str, Any]]
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cached: bool
    prompt: str
    response: str | None
    target: str | None = None
    """The panel member ("<i>:<spec>") a describer or critic call was about."""
    reviews: str | None = None
    """For a critic call: the id of the describer call whose findings it checked, if found."""


@dataclass
class SliceTrace:
    """Everything stored about one slice in one run, ready to display."""

    slice: dict[str, Any]
    run_id: str | None
    measurements: dict[str, Any]
    image: np.ndarray | None
    mask: np.ndarray | None
    annotation: dict[str, Any] | None
    calls: list[CallTrace] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.annotation["status"] if self.annotation else "not_annotated"

    @property
    def error(self) -> str | None:
        return self.annotation.get("error") if self.annotation else None

    @property
    def rounds(self) -> dict[int, dict[str, list[CallTrace]]]:
        """Round -> role (in graph order) -> that role's calls."""
        out: dict[int, dict[str, list[CallTrace]]] = {}
        for call in self.calls:
            out.setdefault(call.round, {}).setdefault(call.role, []).append(call)
        return out

    def totals(self) -> dict[str, Any]:
        return call_totals(self.calls)


def open_store(path: Path | str) -> sqlite_utils.Database:
    """Open an existing store read-only; a relative path is also looked up in parent folders."""
    found = _find(Path(path))
    db = sqlite_utils.Database(sqlite3.connect(found, check_same_thread=False))
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA query_only = ON")
        if db["slices"].exists() and db["annotations"].exists():
            return db
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read {found}: {exc}") from exc
    raise StoreError(f"{found} is not a NeuroOnco store: point NEUROONCO_DB at one")


def _find(path: Path) -> Path:
    # Notebooks run from notebooks/, while `make demo` writes demo/ at the repository root.
    candidates = (
        [path] if path.is_absolute() else [d / path for d in (Path.cwd(), *Path.cwd().parents)]
    )
    for candidate in candidates[:4]:
        if candidate.is_file():
            return candidate.resolve()
    raise StoreError(f"no store at {path}: run `make demo`, or set NEUROONCO_DB to a database")


def base_dir(db: sqlite_utils.Database) -> Path:
    """The folder of the database file: stored image paths are relative to it."""
    return Path(db.execute("PRAGMA database_list").fetchone()[2]).parent


def runs(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every run, newest first, with config/summary parsed and its annotation count."""
    rows = db.query(
        "select r.*, (select count(*) from annotations a where a.run_id = r.id) as annotated"
        " from runs r order by r.started_at desc, r.id desc"
    )
    return [_parse(row, "config", "versions", "summary") for row in rows]


def latest_run_id(db: sqlite_utils.Database) -> str:
    """The newest run that annotated something (a resumed run that skipped all slices is not)."""
    found = runs(db)
    if not found:
        raise StoreError("the store has no annotation run yet: run `neuroonco annotate --db ...`")
    return next((r["id"] for r in found if r["annotated"]), found[0]["id"])


def slices_by_status(db: sqlite_utils.Database, run_id: str, status: str) -> list[dict[str, Any]]:
    """Annotations of ``run_id`` with ``status`` joined with their slice, lowest agreement first."""
    rows = db.query(
        "select s.id, s.dataset, s.modality, s.label, a.status, a.agreement, a.rounds, a.error"
        " from annotations a join slices s on s.id = a.slice_id"
        " where a.run_id = ? and a.status = ? order by a.agreement, s.rowid",
        [run_id, status],
    )
    return list(rows)


def slices_needing_review(db: sqlite_utils.Database, run_id: str) -> list[dict[str, Any]]:
    return slices_by_status(db, run_id, "needs_review")


def pick_slice(db: sqlite_utils.Database, run_id: str, wanted: str | None = None) -> str:
    """``wanted`` if given, else the first slice needing review, else the run's first slice."""
    if wanted:
        return wanted
    review = slices_needing_review(db, run_id)
    if review:
        return review[0]["id"]
    row = db.execute(
        "select a.slice_id from annotations a join slices s on s.id = a.slice_id"
        " where a.run_id = ? order by s.rowid limit 1",
        [run_id],
    ).fetchone()
    if row is None:
        raise StoreError(f"run {run_id} annotated no slice; pick another run")
    return row[0]


def slice_trace(db: sqlite_utils.Database, slice_id: str, run_id: str | None = None) -> SliceTrace:
    """The slice, its image and mask, its annotation and every agent call of ``run_id``.

    Without ``run_id``, the run of the slice's latest annotation. A missing image file gives
    ``image=None`` (a failed slice is often one whose image went missing), never an exception.
    """
    row = _first(db, "select * from slices where id = ?", slice_id)
    if row is None:
        raise StoreError(f"no slice {slice_id!r} in the store; see slices_needing_review()")
    row = _parse(row, "measurements")
    if run_id is None:
        latest = _first(
            db,
            "select run_id from annotations where slice_id = ? order by created_at desc",
            slice_id,
        )
        run_id = latest["run_id"] if latest else None
    annotation = _first(
        db, "select * from annotations where slice_id = ? and run_id = ?", slice_id, run_id
    )
    if annotation is not None:
        annotation = _parse(annotation, "findings", "agreement_by_field", "overrides")
    base = base_dir(db)
    return SliceTrace(
        slice=row,
        run_id=run_id,
        measurements=row.pop("measurements") or {},
        image=_png(base, row["image_path"]),
        mask=_png(base, row["mask_path"]),
        annotation=annotation,
        calls=_calls(db, slice_id, run_id),
    )


def _calls(db: sqlite_utils.Database, slice_id: str, run_id: str | None) -> list[CallTrace]:
    rows = db.query(
        "select * from agent_calls where slice_id = ? and run_id = ? order by id",
        [slice_id, run_id],
    )
    calls = [_call(r) for r in rows]
    calls.sort(key=lambda c: (c.round, ROLES.index(c.role) if c.role in ROLES else 9))
    _link_critiques(calls)
    return calls


def _call(row: dict[str, Any]) -> CallTrace:
    row = _parse(row, "output", "attempt_log")
    return CallTrace(
        id=row["id"],
        role=row["role"],
        model=row["model"],
        round=row["round"] or 0,
        output=row["output"],
        error=row["error"],
        attempts=row["attempts"] or 0,
        attempt_log=row["attempt_log"] or [],
        latency_ms=row["latency_ms"] or 0.0,
        input_tokens=row["input_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        cost_usd=row["cost_usd"] or 0.0,
        cached=bool(row["cached"]),
        prompt=row["prompt"] or "",
        response=row["response"],
        target=row.get("target"),
    )


def _link_critiques(calls: list[CallTrace]) -> None:
    """Point each critic call at the describer call it reviewed: the same panel member
    (``target``), its latest round up to the critic's."""
    describers = [c for c in calls if c.role == "describer" and c.output is not None]
    for critic in (c for c in calls if c.role == "critic"):
        for d in sorted(describers, key=lambda c: -c.round):
            if d.target == critic.target and d.round <= critic.round:
                critic.reviews = d.id
                break


def critic_verdicts(trace: SliceTrace) -> list[dict[str, Any]]:
    """One row per field verdict of every critic call: what was claimed and what was ruled."""
    by_id = {c.id: c for c in trace.calls}
    rows = []
    for critic in (c for c in trace.calls if c.role == "critic"):
        reviewed = by_id.get(critic.reviews or "")
        claims = (reviewed.output or {}) if reviewed else {}
        verdicts = (critic.output or {}).get("verdicts") or {}
        if critic.output is None:
            rows.append({"round": critic.round, "call": critic.id, "error": critic.error})
        for name, verdict in sorted(verdicts.items()):
            rows.append(
                {
                    "round": critic.round,
                    "describer": f"{reviewed.model} ({reviewed.id})" if reviewed else "?",
                    "field": name,
                    "claimed": claims.get(name),
                    "action": verdict.get("action"),
                    "value": verdict.get("value"),
                    "reason": verdict.get("reason"),
                }
            )
    return rows


def agreement_rows(trace: SliceTrace) -> list[dict[str, Any]]:
    """The arbiter's decision per field: consensus value, agreement, and which models the facts
    overruled on it (empty if no consensus)."""
    if not trace.annotation or trace.annotation.get("findings") is None:
        return []
    findings = trace.annotation["findings"]
    agreement = trace.annotation.get("agreement_by_field") or {}
    overruled: dict[str, list[str]] = {}
    for o in override_rows(trace):
        overruled.setdefault(o["field"], []).append(f"{o['step']} {o['model']}")
    names = [k for k in findings if k != "rationale"] + [k for k in agreement if k not in findings]
    return [
        {
            "field": k,
            "consensus": findings.get(k),
            "agreement": agreement.get(k),
            "overruled": ", ".join(dict.fromkeys(overruled.get(k, ()))),
        }
        for k in names
    ]


def override_rows(trace: SliceTrace) -> list[dict[str, Any]]:
    """What the fact policy overruled for the slice: step, model, field, said, kept, reason."""
    if not trace.annotation:
        return []
    keys = ("step", "model", "target", "field", "said", "kept", "reason")
    return [{k: o.get(k) for k in keys} for o in trace.annotation.get("overrides") or ()]


def output_rows(calls: list[CallTrace]) -> list[dict[str, Any]]:
    """Calls side by side: one row per output field, one column per call; errors in a last row.

    A critic's ``verdicts`` are left out here: :func:`critic_verdicts` tabulates them.
    """
    columns = {f"{c.role} {c.model} #{c.id.rsplit('-', 1)[-1]}": c for c in calls}
    names = [k for c in calls for k in (c.output or {}) if k != "verdicts"]
    names = list(dict.fromkeys(names))
    rows = [{"field": k, **{n: (c.output or {}).get(k) for n, c in columns.items()}} for k in names]
    if any(c.error for c in calls):
        rows.append({"field": "error", **{n: c.error for n, c in columns.items()}})
    return rows


def call_rows(calls: list[CallTrace]) -> list[dict[str, Any]]:
    """Tokens, latency, cost and outcome of each call (for the per-call table)."""
    return [
        {
            "round": c.round,
            "role": c.role,
            "model": c.model,
            "ok": c.output is not None,
            "attempts": c.attempts,
            "cached": c.cached,
            "latency_ms": c.latency_ms,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "cost_usd": c.cost_usd,
            "error": c.error,
        }
        for c in calls
    ]


def call_totals(calls: list[CallTrace]) -> dict[str, Any]:
    return {
        "calls": len(calls),
        "failed": sum(c.output is None for c in calls),
        "cached": sum(c.cached for c in calls),
        "input_tokens": sum(c.input_tokens for c in calls),
        "output_tokens": sum(c.output_tokens for c in calls),
        "latency_ms": round(sum(c.latency_ms for c in calls), 2),
        "cost_usd": round(sum(c.cost_usd for c in calls), 6),
    }


def run_overview(db: sqlite_utils.Database, run_id: str) -> dict[str, Any]:
    """Run-level numbers: status counts, calls per role and model, cached share, tokens, cost."""
    status = dict(
        db.execute("select status, count(*) from annotations where run_id = ? group by 1", [run_id])
    )
    per = list(
        db.query(
            "select role, model, count(*) as calls, sum(cached) as cached,"
            " sum(output is null) as failed, sum(input_tokens) as input_tokens,"
            " sum(output_tokens) as output_tokens, round(avg(latency_ms), 2) as mean_latency_ms,"
            " round(sum(cost_usd), 6) as cost_usd"
            " from agent_calls where run_id = ? group by role, model",
            [run_id],
        )
    )
    per.sort(key=lambda r: (ROLES.index(r["role"]) if r["role"] in ROLES else 9, r["model"]))
    calls = sum(r["calls"] for r in per)
    return {
        "run_id": run_id,
        "slices": sum(status.values()),
        "by_status": dict(status),
        "calls": calls,
        "cached_share": round(sum(r["cached"] or 0 for r in per) / calls, 3) if calls else 0.0,
        "cost_usd": round(sum(r["cost_usd"] or 0.0 for r in per), 6),
        "by_role_model": per,
    }


def _first(db: sqlite_utils.Database, sql: str, *params: Any) -> dict[str, Any] | None:
    return next(iter(db.query(sql, list(params))), None)


def _parse(row: dict[str, Any], *columns: str) -> dict[str, Any]:
    row = dict(row)
    for name in columns:
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    return row


def _png(base: Path, rel: str | None) -> np.ndarray | None:
    if not rel:
        return None
    try:
        with Image.open(base / rel) as im:
            return np.asarray(im)
    except OSError:
        return None
