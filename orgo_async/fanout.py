"""The same desktop action on many computers at once, with one outcome per computer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

from ._checks import check_count
from .models import Computer

if TYPE_CHECKING:
    from .resources.desktop import Desktop

__all__ = ["Outcome", "for_each"]

T = TypeVar("T")


@attrs.frozen
class Outcome(Generic[T]):
    """What one computer's action gave: a ``value``, or the ``error`` it raised."""

    computer: Computer
    value: T | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> T:
        """The value, or the error raised."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


async def for_each(
    desktops: Sequence[Desktop],
    action: Callable[[Desktop], Awaitable[T]],
    *,
    concurrency: int = 16,
) -> list[Outcome[T]]:
    """Run ``action(desktop)`` for every desktop, ``concurrency`` at a time.

    Returns one :class:`Outcome` per desktop, in the order given; a failure
    (any ``Exception``) is that computer's outcome, not the call's. Cancelling
    the call cancels and awaits every action in flight.
    """
    check_count("concurrency", concurrency)
    gate = asyncio.Semaphore(concurrency)

    async def one(desktop: Desktop) -> Outcome[T]:
        async with gate:
            try:
                return Outcome(desktop.computer, value=await action(desktop))
            except Exception as exc:
                return Outcome(desktop.computer, error=exc)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(d)) for d in desktops]
    return [t.result() for t in tasks]
