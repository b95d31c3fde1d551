"""The run's single writer: annotations and their agent calls, in short batched transactions.

The model caller hands over each call row as soon as the call is over (:meth:`record_call`:
calls are stored on every path, a slice that later fails included) and the persist node hands
over a finished slice's annotation (:meth:`put`). Both are committed every ``flush_interval_s``
or ``batch_size`` annotations, so a crash loses at most the last fraction of a second and SQLite
sees a few commits per second instead of one per call.

A slice has one current annotation per configuration: writing one removes that slice's earlier
rows under the same ``config_hash`` (a failed attempt that a re-run retried); the history of
what was tried stays in ``agent_calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import sqlite_utils

from neuroonco import store


class AnnotationWriter:
    def __init__(
        self,
        db: sqlite_utils.Database,
        *,
        batch_size: int = 64,
        flush_interval_s: float = 0.25,
        on_flush: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.db = db
        self.on_flush = on_flush
        """Called with the cache keys of the call rows just committed."""
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._annotations: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []
        self._reviews: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None
        self.written = 0
        self.status_counts: dict[str, int] = {}

    async def __aenter__(self) -> AnnotationWriter:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.flush()

    def record_call(self, row: dict[str, Any]) -> None:
        """Queue one ``agent_calls`` row."""
        self._calls.append(row)
        if len(self._calls) >= 8 * self.batch_size:
            self.flush()

    async def put(self, annotation: dict[str, Any]) -> None:
        """Queue a slice's annotation."""
        annotation.setdefault("created_at", store.now())
        self._annotations.append(annotation)
        status = annotation["status"]
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        if len(self._annotations) >= self.batch_size:
            self.flush()

    def put_reviews(self, rows: list[dict[str, Any]]) -> None:
        """Queue a person's decision (``reviews`` rows); committed with the next flush, in the
        same transaction as the annotations queued before it."""
        self._reviews.extend(rows)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            self.flush()

    def flush(self) -> None:
        if not self._annotations and not self._calls and not self._reviews:
            return
        annotations, calls, reviews = self._annotations, self._calls, self._reviews
        self._annotations, self._calls, self._reviews = [], [], []
        with store.transaction(self.db):
            if calls:
                self.db["agent_calls"].insert_all(calls, ignore=True)
            if annotations:
                self.db.conn.executemany(
                    "delete from annotations where slice_id = ? and config_hash = ?"
                    " and run_id != ?",
                    [(a["slice_id"], a["config_hash"], a["run_id"]) for a in annotations],
                )
                self.db["annotations"].upsert_all(annotations, pk=("slice_id", "run_id"))
            if reviews:
                self.db["reviews"].insert_all(reviews)
        self.written += len(annotations)
        if self.on_flush is not None:
            self.on_flush([c["cache_key"] for c in calls])
