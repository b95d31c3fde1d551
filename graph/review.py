"""A person in the loop (``annotate --review``): the graph pauses a slice that needs review with
LangGraph's ``interrupt`` and resumes it with the person's decision (``Command(resume=...)``).

The rule that pauses is the one that sets ``needs_review`` (agreement below the threshold, a
conflict with the source label, a model that gave no usable answer). The pause carries
:func:`review_payload` (JSON: the slice, the per-field consensus and agreement, each describer's
vote, the critic's verdicts, the diagnosis, why it needs review) and waits for a decision:

    {"reviewer": "ana", "slice": "accept" | "reject" | null,
     "fields": {"size": {"decision": "edit", "value": "large"}, "margins": {"decision": "reject"}}}

``fields`` may also give a decision as text: ``accept``, ``reject``, ``edit=VALUE`` or the value
alone. A field decision is vocabulary-checked (:func:`check_decision`, before anything is
resumed); an edit takes the person's value even against the mask (a person's word is the gold),
a reject leaves the field null; ``slice: reject`` rejects the whole slice (status ``rejected``),
anything else accepts it (status ``accepted``). The decision becomes ``reviews`` rows (source
``interrupt``), written in the same transaction as the reviewed annotation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from neuroonco import store
from neuroonco.errors import NeuroOncoError
from neuroonco.graph.context import GraphContext
from neuroonco.graph.state import SliceState
from neuroonco.review.gold import REVIEW_FIELDS, SLICE, check_value
from neuroonco.review.votes import VOTED_FIELDS
from neuroonco.schemas.agents import Consensus
from neuroonco.schemas.findings import LESION_FIELDS

REVIEW_NODE = "review"


def checkpoint_path(db_path: Path | str) -> Path:
    """Where the paused slices of the store at ``db_path`` are kept: a SQLite file beside it
    (``DB-checkpoints.sqlite``), LangGraph's own tables, one thread per paused slice."""
    return Path(f"{db_path}-checkpoints.sqlite")


@asynccontextmanager
async def open_checkpoints(db_path: Path | str) -> AsyncIterator[Any]:
    """LangGraph's SQLite checkpointer on :func:`checkpoint_path` (imported only here, so a run
    without ``--review`` never loads it)."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(checkpoint_path(db_path))) as saver:
        # WAL: a commit survives a killed process (kill -9) without an fsync per checkpoint.
        await saver.conn.execute("PRAGMA journal_mode = WAL")
        await saver.conn.execute("PRAGMA synchronous = NORMAL")
        await saver.setup()  # adelete_thread does not create the tables itself
        yield saver


def thread_id(config_hash: str, slice_id: str) -> str:
    """One checkpoint thread per slice and configuration."""
    return f"{config_hash}:{slice_id}"


def _vote_values(vote: dict[str, Any] | None) -> dict[str, Any]:
    if vote is None:
        return dict.fromkeys(VOTED_FIELDS)
    return {name: vote.get(name) for name in VOTED_FIELDS}


def _reasons(state: SliceState, threshold: float) -> list[str]:
    """Why the slice needs a person, in words."""
    consensus = state.get("consensus") or {}
    out = []
    overall = consensus.get("overall_agreement")
    if overall is not None and overall < threshold:
        out.append(f"agreement {overall} is below the review threshold {threshold}")
    diagnosis = state.get("diagnosis") or {}
    if diagnosis.get("conflicts_with_source"):
        out.append(f"the diagnosis conflicts with the source: {diagnosis.get('conflict_note')}")
    return out + list(dict.fromkeys(state.get("review") or ()))


def review_payload(state: SliceState, run_id: str, threshold: float) -> dict[str, Any]:
    """What a person needs to decide on the slice (JSON-serialisable)."""
    row = state["slice"]
    consensus = state.get("consensus") or {}
    votes = {k: _vote_values(v) for k, v in sorted((state.get("votes") or {}).items())}
    disputed = [
        name
        for name in VOTED_FIELDS
        if len({json.dumps(v[name]) for v in votes.values()}) > 1
        or (consensus.get("agreement") or {}).get(name, 1.0) < 1.0
    ]
    critiques = {
        key: {
            "summary": c.get("summary", ""),
            "verdicts": {
                name: {
                    "action": v.get("action"),
                    "reason": v.get("reason"),
                    "value": v.get("value"),
                }
                for name, v in (c.get("verdicts") or {}).items()
            },
        }
        for key, c in sorted((state.get("critiques") or {}).items())
    }
    return {
        "slice_id": row["id"],
        "run_id": run_id,
        "image_path": row.get("image_path"),
        "mask_path": row.get("mask_path"),
        "modality": row.get("modality"),
        "label": row.get("label"),
        "measurements": (state.get("grounding") or {}).get("measurements"),
        "consensus": {name: consensus.get(name) for name in REVIEW_FIELDS},
        "agreement": consensus.get("agreement") or {},
        "overall_agreement": consensus.get("overall_agreement"),
        "review_threshold": threshold,
        "disputed": disputed,
        "votes": votes,
        "critiques": critiques,
        "diagnosis": state.get("diagnosis"),
        "reasons": _reasons(state, threshold),
        "fields": list(REVIEW_FIELDS),
    }


def _field_decision(name: str, given: Any) -> dict[str, Any]:
    if isinstance(given, str):
        text = given.strip()
        if text in ("accept", "reject"):
            given = {"decision": text}
        else:  # "edit=VALUE", or the value alone
            given = {"decision": "edit", "value": text.removeprefix("edit=")}
    if not isinstance(given, dict) or given.get("decision") not in ("accept", "edit", "reject"):
        raise NeuroOncoError(
            f"decision for {name} not understood ({given!r}); use accept, reject or edit=VALUE"
        )
    if name not in REVIEW_FIELDS:
        raise NeuroOncoError(
            f"{name!r} is not a reviewable field; use one of: {', '.join(REVIEW_FIELDS)}"
        )
    if given["decision"] != "edit":
        return {"decision": given["decision"], "value": None}
    value = given.get("value")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise NeuroOncoError(f"edit needs a value: edit=VALUE for {name}")
    return {"decision": "edit", "value": check_value(name, value)}


def check_decision(payload: dict[str, Any], decision: Any) -> dict[str, Any]:
    """The person's decision on a paused slice, normalised and checked against the vocabulary
    and the findings schema; a one-line NeuroOncoError otherwise (nothing is resumed)."""
    sid = payload.get("slice_id", "?")
    if not isinstance(decision, dict):
        raise NeuroOncoError(f"{sid}: a decision is a JSON object, got {decision!r}")
    unknown = set(decision) - {"reviewer", "slice", "fields", "note", "slice_id", "decision"}
    if unknown:
        raise NeuroOncoError(
            f"{sid}: unknown keys {sorted(unknown)}; use reviewer, slice/decision, fields, note"
        )
    reviewer = str(decision.get("reviewer") or "").strip()
    if not reviewer:
        raise NeuroOncoError(f"{sid}: a decision needs the reviewer's name (--reviewer NAME)")
    whole = decision.get("slice", decision.get("decision"))
    if whole not in (None, "accept", "reject"):
        raise NeuroOncoError(f"{sid}: a whole slice is accept or reject, got {whole!r}")
    fields = decision.get("fields") or {}
    if not isinstance(fields, dict):
        raise NeuroOncoError(f"{sid}: fields must map a field to its decision, got {fields!r}")
    try:
        checked = {name: _field_decision(name, given) for name, given in fields.items()}
    except NeuroOncoError as exc:
        raise NeuroOncoError(f"{sid}: {exc}") from None
    out = {
        "reviewer": reviewer,
        "slice": whole or "accept",
        "fields": checked,
        "note": decision.get("note"),
    }
    try:
        apply_decision(payload["consensus"] | {"status": "needs_review"}, out)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise NeuroOncoError(f"{sid}: the reviewed findings do not check: {first['msg']}") from None
    return out


def apply_decision(consensus: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """The consensus (a Consensus dict) once the person's decision is applied; validated."""
    out = dict(consensus)
    for name, given in decision["fields"].items():
        if given["decision"] != "accept":
            out[name] = given["value"]
    if out.get("lesion_found") is False:
        out.update(dict.fromkeys(LESION_FIELDS))  # no lesion: nothing of one may survive
    out["status"] = "rejected" if decision["slice"] == "reject" else "accepted"
    changed = [
        f"{name} {'set to ' + str(g['value']) if g['decision'] == 'edit' else g['decision'] + 'ed'}"
        for name, g in decision["fields"].items()
        if g["decision"] != "accept"
    ]
    what = "rejected the slice" if decision["slice"] == "reject" else "accepted the slice"
    note = f"Reviewed by {decision['reviewer']}: {what}" + (
        f" ({'; '.join(changed)})." if changed else "."
    )
    out["rationale"] = " ".join(p for p in (consensus.get("rationale"), note) if p)
    return Consensus.model_validate(out).model_dump(mode="json")


def review_rows(
    payload: dict[str, Any], decision: dict[str, Any], run_id: str
) -> list[dict[str, Any]]:
    """The ``reviews`` rows of a decision: one per field decided, one for the whole slice."""
    created = store.now()
    rows = []
    for name, given in decision["fields"].items():
        value = payload["consensus"].get(name) if given["decision"] == "accept" else given["value"]
        rows.append((name, given["decision"], value))
    rows.append((SLICE, decision["slice"], None))
    return [
        {
            "slice_id": payload["slice_id"],
            "field": name,
            "decision": kind,
            "value": None if value is None else json.dumps(value),
            "reviewer": decision["reviewer"],
            "created_at": created,
            "source": "interrupt",
            "run_id": run_id,
            "note": decision.get("note"),
        }
        for name, kind, value in rows
    ]


async def release_images(state: SliceState) -> dict[str, Any]:
    """Past arbitration nothing looks at the pixels: a pause's checkpoint carries none (the
    reviewer sees the image from the store)."""
    return {"images": ()}


async def review_slice(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Pause a slice that needs review until a person decides; others go straight on.

    Everything before ``interrupt`` runs again on resume, so this node has no side effect: the
    decision is applied here and written by the persist node."""
    consensus = state.get("consensus")
    if state.get("error") or consensus is None or consensus.get("status") != "needs_review":
        return {}
    run_id = runtime.context.run_id  # on resume: the run that paused the slice
    payload = review_payload(state, run_id, runtime.context.config.review_threshold)
    decision = check_decision(payload, interrupt(payload))
    return {
        "consensus": apply_decision(consensus, decision),
        "reviews": review_rows(payload, decision, run_id),
    }
