"""Slots in flight under a limit that the caller adapts: the base of the fleet's two windows.

:class:`~orgo_async.health.ProbeBudget` bounds a fleet's health probes in
flight and :class:`~orgo_async.fleet.CreateWindow` its creates; each decides
how its ``limit`` moves, and both hand out slots the same way: at once while
fewer than ``limit`` are taken and nobody waits, else to the waiters in the
order of their keys (ties in the order they asked).
"""

from __future__ import annotations

import asyncio
import heapq


class Slots:
    """``in_flight`` slots taken of ``limit``, with waiters served lowest key first."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.in_flight = 0
        self.max_in_flight = 0
        """The most slots taken at once."""
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = 0

    async def acquire(self, key: float = 0.0) -> None:
        """Take a slot: at once if one is free and nobody waits, else in the order of ``key``.

        Give it back with :meth:`release`.
        """
        if self.in_flight < self.limit and not self._waiters:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._order += 1
        heapq.heappush(self._waiters, (key, self._order, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                Slots.release(self)  # granted just as we were cancelled: pass it on
            raise

    def _take(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def release(self) -> None:
        """Give back a slot taken with :meth:`acquire`.

        The waiters first in line take what the limit now allows.
        """
        self.in_flight -= 1
        while self._waiters and self.in_flight < self.limit:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                self._take()
                future.set_result(None)
