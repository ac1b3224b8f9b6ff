"""A context-local observer of retries, so a fleet can react to the 429s of its requests."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from .errors import OrgoError


class RetryObserver(Protocol):
    """Told about every retry of the requests made in its context (see :func:`observe_retries`)."""

    def on_retry(self, failure: OrgoError, delay: float) -> None: ...


_observer: contextvars.ContextVar[RetryObserver | None] = contextvars.ContextVar(
    "orgo_async_retry_observer", default=None
)


@contextmanager
def observe_retries(observer: RetryObserver) -> Iterator[None]:
    """Report the retries of every request made in this context (and tasks it starts).

    The fleet uses it to slow the whole fleet down on a 429, and launches to
    count their create retries.
    """
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def current_observer() -> RetryObserver | None:
    """The observer of the current context, if any."""
    return _observer.get()


class RetryCounter:
    """Counts the retries of the requests in its context, passing each on to ``outer``.

    ``outer`` defaults to the observer of the context the counter is made in;
    pass it explicitly when the counter is made elsewhere (a fleet passes its
    limiter, so that every retried 429 of its creates slows the whole fleet).
    """

    _UNSET: object = object()

    def __init__(self, outer: RetryObserver | None | object = _UNSET) -> None:
        self.retries = 0
        self._outer: RetryObserver | None = (
            current_observer() if outer is RetryCounter._UNSET else outer  # type: ignore[assignment]
        )

    def on_retry(self, failure: OrgoError, delay: float) -> None:
        self.retries += 1
        if self._outer is not None:
            self._outer.on_retry(failure, delay)
