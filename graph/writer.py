"""The run's single writer: annotations and their agent calls, in short batched transactions.

Nodes hand over a finished slice (its annotation row and every call row); the writer commits
them together every ``flush_interval_s`` or ``batch_size`` slices, so a crash loses at most the
last fraction of a second of finished slices, never half a slice, and SQLite sees a few commits
per second instead of one per call.
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

    async def put(self, annotation: dict[str, Any] | None, calls: list[dict[str, Any]]) -> None:
        """Queue a slice's annotation (None: calls only) and its call rows."""
        self._calls.extend(calls)
        if annotation is not None:
            annotation.setdefault("created_at", store.now())
            self._annotations.append(annotation)
            status = annotation["status"]
            self.status_counts[status] = self.status_counts.get(status, 0) + 1
        if len(self._annotations) >= self.batch_size:
            self.flush()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            self.flush()

    def flush(self) -> None:
        if not self._annotations and not self._calls:
            return
        annotations, calls = self._annotations, self._calls
        self._annotations, self._calls = [], []
        with store.transaction(self.db):
            if calls:
                self.db["agent_calls"].insert_all(calls, ignore=True)
            if annotations:
                self.db["annotations"].upsert_all(annotations, pk=("slice_id", "run_id"))
        self.written += len(annotations)
        if self.on_flush is not None:
            self.on_flush([c["cache_key"] for c in calls])
