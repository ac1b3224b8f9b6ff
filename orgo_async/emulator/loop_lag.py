"""The emulator's event-loop lag monitor: how late its loop wakes a timer (:class:`LoopLagMonitor`).

A loop that is busy answering requests runs a timer late by the time its
other callbacks took; every answer it gives is late by about as much. The
monitor sleeps ``interval`` seconds, again and again, and records how much
later than asked each sleep ended, in a bounded buffer of the latest
:data:`MAX_SAMPLES` samples. A benchmark reads it to tell a slow client from
a saturated server: a detection lag the emulator's own loop lag explains is
the server's, not the client's.

It is off unless :attr:`~orgo_async.emulator.EmulatorConfig.loop_lag_interval`
is set (``python -m orgo_async.emulator --monitor-loop-ms 5``); its summary
is ``loop_lag_ms`` in ``GET /_emulator/counters``, and ``DELETE
/_emulator/counters`` clears its samples with the other counters.
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Any, Final

__all__ = ["MAX_SAMPLES", "LoopLagMonitor"]

MAX_SAMPLES: Final = 65536
"""Samples kept: at a 5 ms interval, about the last five and a half minutes."""


class LoopLagMonitor:
    """Samples the running loop's timer lateness every ``interval`` seconds while started.

    Args:
        interval: Seconds each sample sleeps (> 0).
        max_samples: The buffer's bound; the oldest samples are dropped first.
    """

    def __init__(self, interval: float, *, max_samples: int = MAX_SAMPLES) -> None:
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(f"interval must be a number > 0, got {interval!r}")
        self.interval: Final = interval
        self._samples: collections.deque[float] = collections.deque(maxlen=max_samples)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="emulator loop-lag monitor"
            )

    async def stop(self) -> None:
        """Stop sampling and wait for the sampler to end (idempotent; samples are kept)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            # asyncio may run a timer up to its clock resolution early: that is no lag.
            self.record(max(0.0, loop.time() - asked))

    def record(self, lag: float) -> None:
        """Add one sample, in seconds (the sampler's own way in; also for tests)."""
        self._samples.append(lag)

    def reset(self) -> None:
        """Forget every sample (sampling goes on)."""
        self._samples.clear()

    def summary(self) -> dict[str, Any]:
        """``interval_ms``, ``samples`` and the lag's ``p50`` / ``p99`` / ``max`` in ms.

        Percentiles are nearest-rank (each is a measured sample); they are
        ``None`` before the first sample.
        """
        data = sorted(self._samples)
        n = len(data)

        def rank(p: int) -> float | None:
            return round(data[max(1, math.ceil(p / 100 * n)) - 1] * 1000, 3) if n else None

        return {
            "interval_ms": round(self.interval * 1000, 3),
            "samples": n,
            "p50": rank(50),
            "p99": rank(99),
            "max": rank(100),
        }
