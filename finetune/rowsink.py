"""The store side of an instruction export: rows inserted in one transaction, own connection.

The configuration's previous rows are deleted first, so plain inserts suffice (when the table
holds nothing else, all at once: SQLite then frees the pages without visiting each row). One write
transaction runs from that delete to the end and commits only when told the export succeeded: a
failed or killed export leaves the store's rows as they were.

The delete and the inserts run on a background thread (:mod:`~neuroonco.finetune.offload`)
while the generator goes on: SQLite releases the GIL while it steps a statement, so its b-tree
work overlaps with the generation on a second core. What decides whether that pays is how often
the two threads hand the GIL over: the worker takes it back after every step, so rows go in
1,000 to a statement (one a statement was measured slower than no thread at all; with 32, the
worker spent almost twice as long as with 1,000, most of it waiting for the GIL).
Image links have a thread of their own (:class:`~neuroonco.finetune.exports.ImageLinks`), for the
same reason batched: one ``os.link`` is one hand-over.
The commit runs in the caller's thread once the worker is drained.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

from neuroonco import store
from neuroonco.finetune.offload import Offload
from neuroonco.finetune.records import NULLABLE_AS_EMPTY, ROW_COLUMNS

# A row carries NULL as "" in the nullable text columns (records.Instruction.row says why).
_ROW = (
    "(" + ", ".join("nullif(?, '')" if c in NULLABLE_AS_EMPTY else "?" for c in ROW_COLUMNS) + ")"
)
_INSERT = f"insert into instructions ({', '.join(ROW_COLUMNS)}) values {_ROW}"
# 16,000 parameters a statement, under SQLite's limit of 32,766 (3.32 and later).
CHUNK = 1000
_INSERT_CHUNK = f"insert into instructions ({', '.join(ROW_COLUMNS)}) values " + ", ".join(
    [_ROW] * CHUNK
)
_WIDTH = len(ROW_COLUMNS)


class RowSink:
    def __init__(
        self, db_path: Path, run_ids_sql: str, params: list[str], background: bool = True
    ) -> None:
        self._db = store.connect(db_path)
        self._pending: list[tuple] = []  # rows short of a whole statement, kept for the next put
        self._closed = False
        self._offload = Offload() if background else None
        try:
            self._db.conn.execute("BEGIN IMMEDIATE")  # here: a locked store fails at once
            self._run(self._clear, run_ids_sql, params)
        except BaseException:
            self._close(commit=False)
            raise

    def put(self, rows: list[tuple]) -> None:
        """Insert ``rows`` (in :data:`ROW_COLUMNS` order) after those put before."""
        pending = self._pending
        pending += rows
        full = len(pending) - len(pending) % CHUNK
        if full:
            self._pending = pending[full:]
            del pending[full:]
            self._run(self._insert_chunks, pending)

    def finish(self, commit: bool) -> None:
        """Commit (the export succeeded) or roll back; the connection is closed either way.

        On a commit, a failed insert makes it a rollback and is raised; on a rollback the
        caller's own error is the one that matters."""
        try:
            if commit and self._pending:
                self._run(self._insert_rows, self._pending)
            if self._offload is not None:
                self._offload.drain()
        except BaseException:
            self._close(commit=False)
            if commit:
                raise
            return
        self._close(commit)

    def _run(self, fn: Callable[..., None], *args: Any) -> None:
        if self._offload is None:
            fn(*args)
        else:
            self._offload.submit(fn, *args)

    def _clear(self, run_ids_sql: str, params: list[str]) -> None:
        conn = self._db.conn
        others = conn.execute(
            "select 1 from instructions where run_id is null or run_id not in"
            f" ({run_ids_sql}) limit 1",
            params,
        ).fetchone()
        if others is None:  # all rows are the set being replaced: SQLite drops them at
            conn.execute("delete from instructions")  # once, not row by row
        else:
            conn.execute(f"delete from instructions where run_id in ({run_ids_sql})", params)

    def _insert_chunks(self, rows: list[tuple]) -> None:
        if sum(map(len, rows)) != len(rows) * _WIDTH:  # else values would shift rows
            raise ValueError(f"an instruction row without {_WIDTH} values")
        values = chain.from_iterable(rows)
        self._db.conn.executemany(_INSERT_CHUNK, zip(*[values] * (CHUNK * _WIDTH), strict=False))

    def _insert_rows(self, rows: list[tuple]) -> None:
        self._db.conn.executemany(_INSERT, rows)

    def _close(self, commit: bool) -> None:
        if self._closed:  # finish after a failed finish: nothing left to do
            return
        self._closed = True
        try:
            if self._offload is not None:
                self._offload.close()
        finally:
            conn = self._db.conn
            try:
                if conn.in_transaction:
                    conn.execute("COMMIT" if commit else "ROLLBACK")
            finally:
                self._db.close()
