"""The store side of an instruction export, as the exporter sees it: rows put, then one commit.

By default the rows go to a store writer in a child process
(``python -m neuroonco.finetune.store_rows``), pickled in the batches the exporter puts, while the
exporter goes on generating: SQLite's b-tree work (about a third of an export's CPU) then runs on a
second core. A thread could not do that: the GIL is handed over at every statement, and the
generator and the inserts thrash each other's caches (measured on 30,000 slices: a background thread
saved a tenth of the wall time for a tenth more CPU; the process takes a fifth off the thread's
wall time, for about the same CPU).

All of the export's rows are written in one transaction, committed only when :meth:`finish` is told
the export succeeded: a failed or interrupted export stops the child, and a killed one closes its
input (the child then rolls back); either way the store's rows stay as they were. A failure in the
child is raised here, at the next :meth:`put` or at :meth:`finish`, as the same ``sqlite3`` error
(an ``InvalidRecord`` for a missing image, else a :class:`~neuroonco.errors.StoreError`) with the
child's message.
``background=False`` writes in this process (tests, and a platform without subprocesses).
"""

from __future__ import annotations

import fcntl
import pickle
import sqlite3
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

from neuroonco.errors import StoreError
from neuroonco.finetune.exports import place_all
from neuroonco.finetune.offload import Offload
from neuroonco.finetune.records import InvalidRecord
from neuroonco.finetune.store_rows import CHUNK, RowWriter

# Batches pickled and waiting for the pipe: the exporter never waits for the child's slow moments
# (the delete of the previous rows, a checkpoint), and memory stays bounded (a batch is the few
# thousand rows the exporter puts at once, about a megabyte).
_QUEUED_BATCHES = 32
_PIPE_BYTES = 1 << 20

__all__ = ["CHUNK", "RowSink"]


class RowSink:
    def __init__(
        self, db_path: Path, run_ids_sql: str, params: list[str], background: bool = True
    ) -> None:
        self._closed = False
        self._writer: RowWriter | None = None
        self._child: subprocess.Popen | None = None
        if not background or not sys.executable:  # (an embedded interpreter cannot spawn one)
            self._writer = RowWriter(db_path, run_ids_sql, params)
            return
        self._child = subprocess.Popen(
            [sys.executable, "-m", "neuroonco.finetune.store_rows"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        with suppress(AttributeError, OSError):  # a larger pipe: fewer hand-overs (Linux)
            fcntl.fcntl(self._child.stdin, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        # Waits for BEGIN IMMEDIATE: a locked store fails here, before anything is generated.
        self._send(("begin", str(db_path), run_ids_sql, list(params)))
        self._expect("ready")
        # Pipe writes release the GIL: one thread, a write a batch, overlaps them with the rest.
        self._feeder = Offload(depth=_QUEUED_BATCHES)

    def put(self, rows: list[tuple]) -> None:
        """Insert ``rows`` (in :data:`~neuroonco.finetune.records.ROW_COLUMNS` order) after
        those put before."""
        if self._writer is not None:
            self._writer.put(rows)
        elif rows:
            self._submit(rows)

    def _submit(self, message: object) -> None:
        """A batch, queued for the feeder thread."""
        try:
            self._feeder.submit(self._write, pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, OSError):
            self._closed = True
            self._raise_child_error()

    def place_images(self, batch: list[tuple[str, str, str, str]]) -> None:
        """Hard-link (source, target, slice id, image) in order with the rows (the export's
        :class:`~neuroonco.finetune.exports.ImageLinks` hand their batches here): in the store
        writer, whose system calls then cost the generator no GIL hand-overs. A missing image
        is raised as :class:`~neuroonco.finetune.records.InvalidRecord` by :meth:`finish` at the
        latest."""
        if self._writer is not None:
            place_all(batch)
        else:
            self._submit(("link", batch))

    def finish(self, commit: bool) -> None:
        """Commit (the export succeeded) or roll back; the connection is closed either way.

        On a commit, a failed insert makes it a rollback and is raised; on a rollback the
        caller's own error is the one that matters."""
        if self._closed:  # finish after a failed finish: nothing left to do
            return
        self._closed = True
        if self._writer is not None:
            try:
                self._writer.finish(commit)
            except BaseException:
                if commit:
                    raise
            return
        if not commit:
            # Nothing it still has queued matters: it is stopped rather than told, and SQLite
            # drops the uncommitted transaction of a process that ends (as after a kill -9).
            self._child.kill()  # type: ignore[union-attr]
            self._stop()
            return
        try:
            try:
                self._feeder.drain()
            except (BrokenPipeError, OSError):  # it stopped: say why
                self._raise_child_error()
            self._send(("commit",))
            self._expect("done")
        finally:
            self._stop()

    def _write(self, blob: bytes) -> None:
        stdin = self._child.stdin  # type: ignore[union-attr]
        view = memoryview(blob)
        while view:  # an unbuffered pipe may take part of it
            view = view[stdin.write(view) :]

    def _send(self, message: object) -> None:
        """A control message, written at once (in the caller's thread)."""
        try:
            self._write(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, OSError):  # it stopped: say why
            self._closed = True
            self._raise_child_error()

    def _expect(self, word: str) -> None:
        child = self._child
        assert child is not None and child.stdout is not None
        line = child.stdout.readline().decode("utf-8", "replace").strip()
        if line != word:
            self._closed = True
            self._raise_child_error(line)

    def _raise_child_error(self, line: str = "") -> None:
        child = self._child
        assert child is not None
        if not line and child.stdout is not None:
            line = child.stdout.readline().decode("utf-8", "replace").strip()
        self._stop()
        if line.startswith("error "):
            _, kind, message = [*line.split(" ", 2), ""][:3]
            if kind == "InvalidRecord":
                raise InvalidRecord(message)
            error = getattr(sqlite3, kind, None)
            if isinstance(error, type) and issubclass(error, sqlite3.Error):
                raise error(message)
            raise StoreError(message)
        stderr = child.stderr.read().decode("utf-8", "replace") if child.stderr else ""
        code = child.returncode
        why = stderr.strip().splitlines()[-1:] or [
            f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        ]
        raise StoreError(
            f"the export's store writer stopped ({why[0]}); the store's instructions are as they "
            "were: run the export again"
        )

    def _stop(self) -> None:
        """Close the pipe (a child still reading takes it as a rollback) and reap the child."""
        child = self._child
        if child is None:
            return
        if hasattr(self, "_feeder"):
            self._feeder.close()
        try:
            if child.stdin is not None and not child.stdin.closed:
                child.stdin.close()
        except OSError:
            pass
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
