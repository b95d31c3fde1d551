"""The store side of an export: rows kept in order across statements, a failed background insert
raised and rolled back, a rollback that leaves the previous rows, a killed store writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from neuroonco import store
from neuroonco.errors import StoreError
from neuroonco.finetune.records import ROW_COLUMNS
from neuroonco.finetune.rowsink import CHUNK, RowSink

RUNS = "select ?"


def _row(i: int) -> tuple:
    values = dict.fromkeys(ROW_COLUMNS, "")
    values.update(id=f"r:s{i}:task:closed", slice_id=f"s{i}", run_id="r", template=0, trap=0)
    values.update(paraphrased=0, task="modality", kind="closed", question="q", answer="A")
    return tuple(values[c] for c in ROW_COLUMNS)


def _committed(db: Path, n: int) -> None:
    """A store whose table holds rows 0..n-1 from an earlier export."""
    store.connect(db).close()
    sink = RowSink(db, RUNS, ["r"])
    sink.put([_row(i) for i in range(n)])
    sink.finish(commit=True)


def _ids(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("select id from instructions order by rowid")]
    finally:
        conn.close()


@pytest.mark.parametrize("background", [True, False])
def test_rows_keep_their_order_across_statements(tmp_path: Path, background: bool) -> None:
    db = tmp_path / "s.db"
    store.connect(db).close()
    rows = [_row(i) for i in range(3 * CHUNK + 17)]
    sink = RowSink(db, RUNS, ["r"], background=background)
    start = 0
    for size in (1, CHUNK - 2, 5, CHUNK + 300, 0, 2 * CHUNK):  # uneven batches, as slices come
        sink.put(rows[start : start + size])
        start += size
    sink.put(rows[start:])
    sink.finish(commit=True)
    assert _ids(db) == [r[0] for r in rows]
    conn = sqlite3.connect(db)
    nulls = conn.execute(
        "select count(*) from instructions where options is null and keywords is null"
        " and original_answer is null"
    ).fetchone()[0]
    assert nulls == len(rows)  # "" in a row is NULL in the table


def test_a_failed_background_insert_is_raised_and_rolled_back(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _committed(db, 10)
    sink = RowSink(db, RUNS, ["r"])
    rows = [_row(i) for i in range(CHUNK)]
    sink.put(rows + rows)  # the second statement repeats every id: the worker's insert fails
    with pytest.raises(sqlite3.IntegrityError):
        for _ in range(50):  # raised at a later put, or at the latest by finish
            sink.put([])
        sink.finish(commit=True)
    sink.finish(commit=False)  # where a put raised it: the caller's cleanup, which stays quiet
    assert _ids(db) == [f"r:s{i}:task:closed" for i in range(10)]  # as before the export


def test_a_rollback_keeps_the_previous_rows(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _committed(db, 3)
    sink = RowSink(db, RUNS, ["r"])
    sink.put([_row(i) for i in range(100, 100 + 2 * CHUNK)])
    sink.finish(commit=False)
    assert _ids(db) == [f"r:s{i}:task:closed" for i in range(3)]
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # the store writer is gone: its lock with it
    conn.execute("ROLLBACK")
    conn.close()


def test_a_killed_store_writer_fails_the_export_and_keeps_the_rows(tmp_path: Path) -> None:
    """The child that writes the rows dies (OOM killer, kill -9): the exporter says so in one
    line at its next put or at finish, and the store keeps the rows it had."""
    db = tmp_path / "s.db"
    _committed(db, 5)
    sink = RowSink(db, RUNS, ["r"])
    sink.put([_row(i) for i in range(100, 100 + CHUNK)])
    os.kill(sink._child.pid, signal.SIGKILL)
    sink._child.wait()
    with pytest.raises(StoreError, match=r"store writer stopped \(killed by signal 9\)"):
        for _ in range(50):  # the feeder thread notices the closed pipe first
            sink.put([_row(i) for i in range(200, 200 + CHUNK)])
        sink.finish(commit=True)
    sink.finish(commit=False)
    assert _ids(db) == [f"r:s{i}:task:closed" for i in range(5)]
    conn = sqlite3.connect(db)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_the_store_writer_starts_without_sqlite_utils() -> None:
    """Its imports stay light (no sqlite_utils, hence no pandas): it starts in milliseconds."""
    code = (
        "import sys, neuroonco.finetune.store_rows as m; "
        "print(sorted(n for n in ('sqlite_utils', 'pandas', 'numpy') if n in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
