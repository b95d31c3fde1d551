"""Finding the slices an ``annotate --review`` run paused, and resuming them with decisions.

A slice is paused when its annotation (from a run started with ``--review``) is still
``needs_review`` and its checkpoint thread (:func:`neuroonco.graph.review.thread_id`) waits at
the review node's ``interrupt``. Resuming runs the rest of its graph (review, persist) with
``Command(resume=decision)`` in this process, whichever process paused it: the checkpoint file
is all it needs. The persist node commits the reviewed annotation and the ``reviews`` rows in one
transaction before the checkpoint moves on, and the thread is dropped after, so a slice resumed
once is never asked again, and a resume killed half-way is simply resumed again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from neuroonco import store
from neuroonco.graph.calls import CallCache, ModelCaller
from neuroonco.graph.context import AnnotateConfig, GraphContext
from neuroonco.graph.graph import build_graph
from neuroonco.graph.review import checkpoint_path, open_checkpoints, thread_id
from neuroonco.graph.writer import AnnotationWriter


@dataclass
class PausedSlice:
    slice_id: str
    run_id: str
    config_hash: str
    thread_id: str
    payload: dict[str, Any]


def _candidates(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """needs_review annotations of runs started with --review."""
    if not db["runs"].exists() or not db["annotations"].exists():
        return []
    return list(
        db.query(
            "select a.slice_id, a.run_id, a.config_hash from annotations a"
            " join runs r on r.id = a.run_id where a.status = 'needs_review'"
            " and json_extract(r.config, '$.review') = 1 order by a.agreement, a.slice_id"
        )
    )


def resumed_by_interrupt(db: sqlite_utils.Database, slice_id: str) -> bool:
    """Whether a decision given through a resume is on record for the slice."""
    if not db["reviews"].exists():
        return False
    row = db.execute(
        "select 1 from reviews where slice_id = ? and source = 'interrupt' limit 1", [slice_id]
    ).fetchone()
    return row is not None


async def find_paused(db_path: Path) -> tuple[list[PausedSlice], list[str]]:
    """(the paused slices, lowest agreement first; needs_review slices of --review runs that
    have no checkpoint to resume, e.g. a deleted checkpoint file)."""
    db = store.connect(db_path)
    try:
        rows = _candidates(db)
    finally:
        db.close()
    if not rows:
        return [], []
    if not checkpoint_path(db_path).exists():
        return [], [r["slice_id"] for r in rows]
    paused, missing = [], []
    async with open_checkpoints(db_path) as saver:
        graph = build_graph(review_slices=True, checkpointer=saver)
        for row in rows:
            tid = thread_id(row["config_hash"], row["slice_id"])
            snapshot = await graph.aget_state({"configurable": {"thread_id": tid}})
            if snapshot.interrupts:
                paused.append(
                    PausedSlice(
                        row["slice_id"],
                        row["run_id"],
                        row["config_hash"],
                        tid,
                        snapshot.interrupts[0].value,
                    )
                )
            else:
                missing.append(row["slice_id"])
    return paused, missing


def _run_config(db: sqlite_utils.Database, run_id: str) -> AnnotateConfig:
    row = db.execute("select config from runs where id = ?", [run_id]).fetchone()
    stored = json.loads(row[0]) if row and row[0] else {}
    names = {f.name for f in dataclasses.fields(AnnotateConfig)}
    try:
        return AnnotateConfig(**{k: v for k, v in stored.items() if k in names})
    except Exception:  # a config this version no longer reads: nothing after review needs it
        return AnnotateConfig()


async def resume_slices(
    db_path: Path,
    decisions: Iterable[tuple[PausedSlice, dict[str, Any]]],
    on_done: Callable[[PausedSlice, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Resume each paused slice with its checked decision; returns the reviewed consensuses."""
    db = store.connect(db_path)
    done: list[dict[str, Any]] = []
    try:
        async with AnnotationWriter(db) as writer, open_checkpoints(db_path) as saver:
            graph = build_graph(review_slices=True, checkpointer=saver)
            contexts: dict[str, GraphContext] = {}
            for paused, decision in decisions:
                ctx = contexts.get(paused.run_id)
                if ctx is None:
                    # No model is called after the review node: a caller without providers.
                    caller = ModelCaller(
                        {},
                        run_id=paused.run_id,
                        cache=CallCache(None),
                        concurrency=1,
                        record=writer.record_call,
                    )
                    ctx = contexts[paused.run_id] = GraphContext(
                        config=_run_config(db, paused.run_id),
                        caller=caller,
                        base_dir=Path(db_path).parent,
                        run_id=paused.run_id,
                        config_hash=paused.config_hash,
                        writer=writer,
                    )
                from langgraph.types import Command

                config = {"configurable": {"thread_id": paused.thread_id}}
                result = await graph.ainvoke(
                    Command(resume=decision), config, context=ctx, durability="exit"
                )
                if result.get("__interrupt__"):
                    raise RuntimeError(f"{paused.slice_id}: paused again after its decision")
                await saver.adelete_thread(paused.thread_id)
                consensus = result.get("consensus") or {}
                done.append(consensus)
                if on_done is not None:
                    on_done(paused, consensus)
    finally:
        db.close()
    return done
