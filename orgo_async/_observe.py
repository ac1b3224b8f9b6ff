"""Observers of retries: how a launch counts its create's retries and a fleet hears of 429s."""

from __future__ import annotations

from typing import Protocol

from .errors import OrgoError


class RetryObserver(Protocol):
    """Told about every retry of the requests it is given to (``observer=`` of a request)."""

    def on_retry(self, failure: OrgoError, delay: float) -> None: ...


class RetryCounter:
    """Counts the retries it is told of, passing each on to ``outer`` (if any).

    A fleet passes its limiter as ``outer``: every retried 429 of its creates
    then slows the whole fleet.
    """

    def __init__(self, outer: RetryObserver | None = None) -> None:
        self.retries = 0
        self._outer = outer

    def on_retry(self, failure: OrgoError, delay: float) -> None:
        self.retries += 1
        if self._outer is not None:
            self._outer.on_retry(failure, delay)
