"""Writing an export's `instructions` rows: one transaction, in this process or in a child process.

:class:`RowWriter` does the SQL: ``BEGIN IMMEDIATE`` (a locked store fails there), the
configuration's previous rows deleted (all at once when the table holds nothing else: SQLite then
frees the pages without visiting each row), the new rows inserted 1,000 to a statement, and a commit
only when told the export succeeded.

``python -m neuroonco.finetune.store_rows`` runs it as the export's store writer, a process of its
own (:class:`~neuroonco.finetune.rowsink.RowSink` starts it): the b-tree work then runs on another
core with no GIL to share, and neither side's caches are thrashed by the other's work. The protocol
on its stdin is a stream of pickles: ``("begin", db, run_ids_sql, params)``, then row lists and
``("link", [(source, target, slice id, image), ...])`` batches of the export's image hard links
(system calls that would cost the generator GIL hand-overs), then ``("commit",)``. It answers one
line on stdout per step (``ready``, ``done``) or ``error <class> <message>``. Anything but a
commit, or the end of its input (the exporter failed or was killed), rolls back; an exporter that
gives up stops the child instead of waiting for what it had queued. Imports stay light (no
sqlite_utils), so it starts in milliseconds.
"""

from __future__ import annotations

import pickle
import signal
import sqlite3
import sys
from contextlib import suppress
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from neuroonco.connection import open_connection
from neuroonco.finetune.exports import place_all
from neuroonco.finetune.records import NULLABLE_AS_EMPTY, ROW_COLUMNS, InvalidRecord

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


class RowWriter:
    """One export's write transaction on the store at ``db_path``."""

    def __init__(self, db_path: Path | str, run_ids_sql: str, params: list[str]) -> None:
        self._conn = open_connection(db_path)
        self._pending: list[tuple] = []  # rows short of a whole statement, kept for the next put
        try:
            self._conn.execute("PRAGMA cache_size = -32768")
            self._conn.execute("BEGIN IMMEDIATE")  # here: a locked store fails at once
        except BaseException:
            self._conn.close()
            raise
        self._clear_args: tuple[str, list[str]] | None = (run_ids_sql, params)

    def clear(self) -> None:
        """Delete the configuration's previous rows (once; :meth:`put` does it if not done)."""
        if self._clear_args is None:
            return
        run_ids_sql, params = self._clear_args
        self._clear_args = None
        others = self._conn.execute(
            "select 1 from instructions where run_id is null or run_id not in"
            f" ({run_ids_sql}) limit 1",
            params,
        ).fetchone()
        if others is None:  # all rows are the set being replaced: SQLite drops them at
            self._conn.execute("delete from instructions")  # once, not row by row
        else:
            self._conn.execute(f"delete from instructions where run_id in ({run_ids_sql})", params)

    def put(self, rows: list[tuple]) -> None:
        """Insert ``rows`` (in :data:`ROW_COLUMNS` order) after those put before."""
        self.clear()
        pending = self._pending
        pending += rows
        full = len(pending) - len(pending) % CHUNK
        if full:
            self._pending = pending[full:]
            del pending[full:]
            if sum(map(len, pending)) != len(pending) * _WIDTH:  # else values would shift rows
                raise ValueError(f"an instruction row without {_WIDTH} values")
            values = chain.from_iterable(pending)
            self._conn.executemany(_INSERT_CHUNK, zip(*[values] * (CHUNK * _WIDTH), strict=False))

    def finish(self, commit: bool) -> None:
        """Commit (the rows still pending inserted first) or roll back; closes the connection."""
        conn = self._conn
        try:
            if commit:
                self.clear()
                conn.executemany(_INSERT, self._pending)
                self._pending = []
            if conn.in_transaction:
                conn.execute("COMMIT" if commit else "ROLLBACK")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()


def _answer(out: TextIO, line: str) -> None:
    out.write(line.replace("\n", " ") + "\n")
    out.flush()


def serve(source: BinaryIO, out: TextIO) -> int:
    """The child's loop (module docstring); returns its exit status."""
    writer: RowWriter | None = None
    try:
        _, db_path, run_ids_sql, params = pickle.load(source)
        writer = RowWriter(db_path, run_ids_sql, params)
        _answer(out, "ready")
        writer.clear()  # while the exporter starts generating
        while True:
            try:
                message: Any = pickle.load(source)
            except EOFError:  # the exporter failed or was killed: nothing it sent is kept
                writer.finish(commit=False)
                return 1
            if isinstance(message, list):
                writer.put(message)
                continue
            if message[0] == "link":
                place_all(message[1])
                continue
            commit = message == ("commit",)
            done, writer = writer, None
            done.finish(commit=commit)
            _answer(out, "done")
            return 0
    except BaseException as exc:
        if writer is not None:
            with suppress(BaseException):  # the error worth reporting is the first one
                writer.finish(commit=False)
        named = isinstance(exc, sqlite3.Error | InvalidRecord)
        kind = type(exc).__name__ if named else "StoreError"
        _answer(out, f"error {kind} {exc}")
        return 2


def main() -> None:
    # Ctrl-C reaches the whole process group: the exporter decides (it sends a rollback, or
    # its death closes this pipe), so the child must not die half-way on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(serve(sys.stdin.buffer, sys.stdout))


if __name__ == "__main__":
    main()
