"""The store side of an instruction export: rows written by a thread on its own connection.

The configuration's previous rows are deleted first, so plain inserts suffice (when the table
holds nothing else, all at once: SQLite then frees the pages without visiting each row). SQLite
releases the GIL while it inserts, so handing batches to a thread lets the generation and the
exports go on meanwhile. The thread holds one write transaction from the first delete (the
configuration's previous instruction set) to the end, and commits only when told the export
succeeded: a failed or killed export leaves the store's rows as they were.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

from neuroonco import store
from neuroonco.finetune.records import ROW_COLUMNS

_INSERT = (
    f"insert into instructions ({', '.join(ROW_COLUMNS)}) "
    f"values ({', '.join('?' for _ in ROW_COLUMNS)})"
)
_DONE = object()


class RowSink:
    def __init__(self, db_path: Path, run_ids_sql: str, params: list[str]) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=8)  # bounded: memory stays flat
        self._error: BaseException | None = None
        self._commit = False
        self._thread = threading.Thread(
            target=self._run, args=(db_path, run_ids_sql, params), daemon=True
        )
        self._thread.start()

    def _run(self, db_path: Path, run_ids_sql: str, params: list[str]) -> None:
        db = store.connect(db_path)
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            others = db.conn.execute(
                "select 1 from instructions where run_id is null or run_id not in"
                f" ({run_ids_sql}) limit 1",
                params,
            ).fetchone()
            if others is None:  # all rows are the set being replaced: SQLite drops them at
                db.conn.execute("delete from instructions")  # once, not row by row
            else:
                db.conn.execute(f"delete from instructions where run_id in ({run_ids_sql})", params)
            while (batch := self._queue.get()) is not _DONE:
                if self._error is None:
                    db.conn.executemany(_INSERT, batch)
            db.conn.execute("COMMIT" if self._commit else "ROLLBACK")
        except BaseException as exc:  # re-raised in the caller's thread by finish()
            self._error = exc
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            while self._queue.get() is not _DONE:  # let put() never block on a dead sink
                pass
        finally:
            db.close()

    def put(self, rows: list[tuple]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(rows)

    def finish(self, commit: bool) -> None:
        self._commit = commit
        self._queue.put(_DONE)
        self._thread.join()
        if self._error is not None and commit:
            raise self._error
