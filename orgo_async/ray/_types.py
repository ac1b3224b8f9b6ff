"""What crosses between the driver and the shard actors: ids, names, results, errors.

No :class:`~orgo_async.models.Computer` and no session ever crosses a process
boundary; the API key crosses once, into each actor's constructor, wrapped in
:class:`Secret` so that no ``repr`` shows it.
"""

from __future__ import annotations

import pickle
from typing import Generic, TypeVar

import attrs

from ..errors import OrgoError
from ..fleet import FleetFailure

__all__ = ["ActorLost", "EpisodeError", "EpisodeResult", "RayComputer", "RayFleetResult"]

T = TypeVar("T")


class ActorLost(OrgoError):
    """The actor that owned a computer died (killed, out of memory, its node lost).

    The computer was deleted by the driver (its shard's name prefix was reaped),
    unless it had been handed to you. Attributes: ``actor``, the shard's index.
    """

    def __init__(self, actor: int, cause: str = "died") -> None:
        super().__init__(actor, cause)
        self.actor = actor
        self.cause = cause

    def __str__(self) -> str:
        return f"the shard actor {self.actor} that owned this computer {self.cause}"


class EpisodeError(OrgoError):
    """An episode raised an exception that could not be sent back whole (not picklable).

    Attributes: ``kind``, the exception's type name; its message is the exception's.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@attrs.frozen(kw_only=True)
class RayComputer:
    """A handle on a computer of a Ray fleet: where it lives, not the computer itself.

    Attributes:
        index: Its position in the fleet (0 to ``count - 1``).
        id: The computer's id.
        name: Its name, ``{prefix}-{run}-{actor}-{shard run}-{n}``.
        actor: The index of the shard actor that owns its session.
    """

    index: int
    id: str
    name: str
    actor: int


@attrs.frozen(kw_only=True)
class RayFleetResult:
    """The outcome of a collect-all Ray launch: every ready handle and every failure."""

    ready: tuple[RayComputer, ...]
    failures: tuple[FleetFailure, ...]


@attrs.frozen(kw_only=True)
class EpisodeResult(Generic[T]):
    """One episode's outcome: its value, or the exception it ended with.

    Attributes:
        computer: The handle it ran on.
        value: What the episode returned (``None`` on an error).
        error: The exception (an :class:`ActorLost` when its actor died), else ``None``.
        seconds: The episode's wall time on its actor (0 when it never ran).
    """

    computer: RayComputer
    value: T | None = None
    error: Exception | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.frozen(kw_only=True, repr=False)
class Secret:
    """A value that must reach an actor but never a ``repr``, a log line or an error."""

    value: str

    def __repr__(self) -> str:
        return "Secret(***)"


def portable(exc: BaseException) -> Exception:
    """``exc`` if it survives pickling (it is about to cross processes), else an
    :class:`EpisodeError` with its type name and message."""
    if isinstance(exc, Exception):
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            pass
        else:
            return exc
    return EpisodeError(type(exc).__name__, str(exc))
