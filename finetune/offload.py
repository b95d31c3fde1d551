"""A background thread for one kind of an export's blocking work (the pipe to the store writer;
image links when there is no store writer).

Generating instructions is pure Python and holds the GIL; pipe writes and ``os.link`` release it.
Handing those to a thread lets them overlap with the generation, provided each task is large
(every release is a hand-over of the GIL, and getting it back can wait for the generator's switch
interval): a pipe write moves a whole batch of rows. Tasks run in the order they were submitted;
the queue is bounded, so a slow disk slows the generator instead of buffering the whole set in
memory. The first failure is kept and raised in the submitting thread at its next
:meth:`Offload.submit` or at :meth:`Offload.drain`, and every later task is skipped, so an export
fails as it would have inline, only a moment later (before anything is renamed into place or
committed).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class Offload:
    def __init__(self, depth: int = 32) -> None:
        self._tasks: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="neuroonco-offload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                if task is _STOP:
                    return
                if self._error is None:
                    fn, args = task
                    fn(*args)
            except BaseException as exc:  # kept for the submitting thread
                self._error = exc
            finally:
                self._tasks.task_done()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the background, after everything submitted before."""
        self._raise()
        if not self._thread.is_alive():
            raise RuntimeError("the export's background thread has stopped")
        self._tasks.put((fn, args))

    def drain(self) -> None:
        """Wait until every submitted task has run; raise the first failure, if any."""
        if self._thread.is_alive():
            self._tasks.join()
        self._raise()

    def close(self) -> None:
        """Stop the thread once the queue is empty (failures are not raised here)."""
        if self._thread.is_alive():
            self._tasks.put(_STOP)
            self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:  # stays set: every later call fails the same way
            raise self._error
