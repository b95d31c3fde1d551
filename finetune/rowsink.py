"""The store side of an instruction export: rows inserted in one transaction, own connection.

The configuration's previous rows are deleted first, so plain inserts suffice (when the table
holds nothing else, all at once: SQLite then frees the pages without visiting each row). One write
transaction runs from that delete to the end and commits only when told the export succeeded: a
failed or killed export leaves the store's rows as they were.

The rows are inserted by the generating thread, batch by batch. A writer thread was tried and
measured worse: Python's sqlite3 releases the GIL around each row's step and takes it back to bind
the next row's values, so the two threads hand the GIL to and fro once a row, costing more CPU
than the overlap saves.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path

from neuroonco import store
from neuroonco.finetune.records import NULLABLE_AS_EMPTY, ROW_COLUMNS

# A row carries NULL as "" in the nullable text columns (records.Instruction.row says why).
_ROW = (
    "(" + ", ".join("nullif(?, '')" if c in NULLABLE_AS_EMPTY else "?" for c in ROW_COLUMNS) + ")"
)
_INSERT = f"insert into instructions ({', '.join(ROW_COLUMNS)}) values {_ROW}"
# Rows go in 32 to a statement: each execution of an insert pays for opening the table and its
# index and for a round trip through the sqlite3 module, about a seventh of a row's cost alone.
_CHUNK = 32
_INSERT_CHUNK = f"insert into instructions ({', '.join(ROW_COLUMNS)}) values " + ", ".join(
    [_ROW] * _CHUNK
)


class RowSink:
    def __init__(self, db_path: Path, run_ids_sql: str, params: list[str]) -> None:
        self._db = store.connect(db_path)
        conn = self._db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            others = conn.execute(
                "select 1 from instructions where run_id is null or run_id not in"
                f" ({run_ids_sql}) limit 1",
                params,
            ).fetchone()
            if others is None:  # all rows are the set being replaced: SQLite drops them at
                conn.execute("delete from instructions")  # once, not row by row
            else:
                conn.execute(f"delete from instructions where run_id in ({run_ids_sql})", params)
        except BaseException:
            self._close(commit=False)
            raise

    def put(self, rows: list[tuple]) -> None:
        """Insert ``rows`` (in :data:`ROW_COLUMNS` order), in order."""
        conn = self._db.conn
        full = len(rows) - len(rows) % _CHUNK
        if full:
            chunked = rows[:full]
            if sum(map(len, chunked)) != full * len(ROW_COLUMNS):  # else values would shift rows
                raise ValueError(f"an instruction row without {len(ROW_COLUMNS)} values")
            values = chain.from_iterable(chunked)
            conn.executemany(
                _INSERT_CHUNK, zip(*[values] * (_CHUNK * len(ROW_COLUMNS)), strict=False)
            )
        if full < len(rows):
            conn.executemany(_INSERT, rows[full:])

    def finish(self, commit: bool) -> None:
        """Commit (the export succeeded) or roll back; the connection is closed either way."""
        self._close(commit)

    def _close(self, commit: bool) -> None:
        conn = self._db.conn
        try:
            if conn.in_transaction:
                conn.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            self._db.close()
