"""A counting semaphore that wakes the most urgent waiter first.

The runner bounds model calls in flight across all slices (``--concurrency``). Waking later
stages of a slice (critic before diagnostician before describers) and older slices first lets
slices finish instead of all advancing together, which keeps the pipe full to the end of a run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PrioritySlots:
    """``async with slots.hold(priority):`` - lower priority values are served first."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"concurrency must be >= 1, got {limit}")
        self.limit = limit
        self.in_use = 0
        self._waiters: list[tuple[tuple, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def hold(self, priority: tuple = ()) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: tuple) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # woken and cancelled at once: pass the slot on
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # the slot moves straight to the waiter
                return
        self.in_use -= 1
