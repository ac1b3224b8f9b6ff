"""One shard of a Ray fleet: the actor that owns a session and a slice of the computers.

The driver makes it a Ray actor (``ray.remote(Shard)``), so this module does
not import ray: the class is plain asyncio, and a test can run it in process.
It launches its slice with the in-process :class:`~orgo_async.fleet.Fleet`
(every computer it has not received is deleted by that fleet's own cleanup),
keeps the computers it received (its ``held`` ones), reports them to the
driver by name and id, runs episodes on them, and deletes all but those the
driver handed out when it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from .._client import Orgo
from .._config import RetryPolicy, Timeouts
from ..errors import OrgoError
from ..fleet import AdaptiveLimiter, Fleet, FleetFailure
from ..models import Computer, ComputerSpec
from ._types import Secret, portable

__all__ = ["Report", "Shard", "ShardLimiter"]

Episode = Callable[[Orgo, Computer], Awaitable[Any]]


class ShardLimiter(AdaptiveLimiter):
    """A shard's share of the fleet-wide create pace.

    It is the limiter of the shard's in-process fleet, so it hears every 429,
    those retried inside a request included; each one wakes the driver's poll
    (``wake``), which re-splits the pace over the other shards (:meth:`share`).
    """

    def __init__(self, rate: float | None, *, probe_limit: int, wake: Callable[[], None]) -> None:
        super().__init__(rate, probe_limit=probe_limit)
        self._wake = wake
        self.retry_after: float | None = None
        """The ``Retry-After`` of the last 429 heard."""

    def on_rate_limited(self, retry_after: float | None) -> None:
        super().on_rate_limited(retry_after)
        self.retry_after = retry_after
        self._wake()

    def share(self, rate: float | None, pause: float) -> None:
        """Take this pace now (another shard met a 429), and wait out ``pause`` seconds first."""
        if rate is not None:
            self.rate = max(self.min_rate, rate)
        until = asyncio.get_running_loop().time() + pause
        self._paused_until = max(self._paused_until, until)


@attrs.frozen(kw_only=True)
class Report:
    """What a shard tells the driver on each poll (only what is new since the last one).

    Attributes:
        ready: ``(name, id)`` of each computer that became ready.
        failures: Each computer that failed (already deleted by the shard's fleet).
        done: The launch is over: every computer is ready or failed.
        fatal: The error that ended the launch early (a bad key, a plan limit).
        rate: The shard's create pace now (``None``: unpaced).
        rate_limited: 429s heard so far, in all.
        retry_after: The last 429's ``Retry-After``.
    """

    ready: tuple[tuple[str, str], ...]
    failures: tuple[FleetFailure, ...]
    done: bool
    fatal: Exception | None
    rate: float | None
    rate_limited: int
    retry_after: float | None


@attrs.frozen(kw_only=True)
class Outcome:
    """An episode's value or error, and its wall time."""

    value: Any = None
    error: Exception | None = None
    seconds: float = 0.0


@attrs.define(eq=False, repr=False)
class Shard:
    """The body of a shard actor (the driver wraps it with ``ray.remote``)."""

    index: int
    _key: Secret = attrs.field(alias="api_key")
    _base_url: str = attrs.field(alias="base_url")
    _timeouts: Timeouts | None = attrs.field(kw_only=True, default=None, alias="timeouts")
    _retry: RetryPolicy | None = attrs.field(kw_only=True, default=None, alias="retry")
    _orgo: Orgo | None = attrs.field(init=False, default=None)
    _fleet: Fleet | None = attrs.field(init=False, default=None)
    _limiter: ShardLimiter | None = attrs.field(init=False, default=None)
    _launch: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _held: dict[str, Computer] = attrs.field(init=False, factory=dict)
    _ready: list[tuple[str, str]] = attrs.field(init=False, factory=list)
    _done: bool = attrs.field(init=False, default=False)
    _fatal: Exception | None = attrs.field(init=False, default=None)
    _changed: asyncio.Event | None = attrs.field(init=False, default=None)
    _maps: dict[str, tuple[Episode, asyncio.Semaphore]] = attrs.field(init=False, factory=dict)
    _episodes: set[asyncio.Task[Any]] = attrs.field(init=False, factory=set)
    _closed: bool = attrs.field(init=False, default=False)

    def __repr__(self) -> str:
        return f"<Shard {self.index} held={len(self._held)}>"

    # -- the launch ----------------------------------------------------------------

    def _session(self) -> Orgo:
        if self._orgo is None:
            self._orgo = Orgo(
                api_key=self._key.value,
                base_url=self._base_url,
                timeouts=self._timeouts,
                retry=self._retry,
            )
        return self._orgo

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def launch(
        self,
        workspace_id: str,
        specs: Sequence[ComputerSpec],
        *,
        concurrency: int,
        rate: float | None,
        ready_timeout: float | None,
        deadline: float | None,
    ) -> None:
        """Start launching ``specs``; :meth:`report` says how it goes.

        Nothing is created once the shard is closed: an actor slow to start may run a
        ``close`` sent after its ``launch`` first, and a launch after it would leave
        computers that nobody deletes.
        """
        if self._launch is not None:
            raise RuntimeError("a shard launches once")
        if self._closed:
            self._done = True
            return
        self._changed = asyncio.Event()
        self._limiter = ShardLimiter(rate, probe_limit=max(8, concurrency), wake=self._wake)
        self._fleet = self._session().fleet(
            workspace_id,
            specs=specs,
            concurrency=concurrency,
            limiter=self._limiter,
            ready_timeout=ready_timeout,
            deadline=deadline,
            check_capacity=False,  # the driver checked the whole fleet
        )
        self._launch = asyncio.get_running_loop().create_task(self._run(self._fleet))

    async def _run(self, fleet: Fleet) -> None:
        try:
            async with fleet:
                async for launched in fleet:
                    computer = launched.computer
                    self._held[computer.id] = computer
                    self._ready.append((computer.name, computer.id))
                    self._wake()
        except Exception as exc:  # a fatal error ended the launch
            self._fatal = portable(exc)
        finally:
            self._done = True
            self._wake()

    async def report(self, ready_seen: int, failures_seen: int, wait: float) -> Report:
        """What is new past the counts the driver has seen; waits up to ``wait`` s for news."""
        if self._changed is None or self._fleet is None or self._limiter is None:
            raise RuntimeError("report() before launch()")
        if len(self._ready) == ready_seen and not self._done:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()
        failures = tuple(
            attrs.evolve(f, error=portable(f.error)) for f in self._fleet.failures[failures_seen:]
        )
        return Report(
            ready=tuple(self._ready[ready_seen:]),
            failures=failures,
            done=self._done,
            fatal=self._fatal,
            rate=self._limiter.rate,
            rate_limited=self._limiter.rate_limited,
            retry_after=self._limiter.retry_after,
        )

    def share(self, rate: float | None, pause: float) -> None:
        """The driver's re-split of the fleet-wide pace."""
        if self._limiter is not None:
            self._limiter.share(rate, pause)

    # -- episodes ------------------------------------------------------------------

    def begin_map(self, map_id: str, episode: Episode, concurrency: int) -> None:
        """Register ``episode`` for :meth:`run`, at most ``concurrency`` running at once."""
        self._maps[map_id] = (episode, asyncio.Semaphore(concurrency))

    def end_map(self, map_id: str) -> None:
        self._maps.pop(map_id, None)

    async def run(self, map_id: str, computer_id: str) -> Outcome:
        """Run the map's episode on one held computer; its error is returned, not raised."""
        episode, gate = self._maps[map_id]
        computer = self._held.get(computer_id)
        if computer is None:
            return Outcome(error=KeyError(f"computer {computer_id} is not held by this shard"))
        async with gate:
            task = asyncio.current_task()
            assert task is not None
            self._episodes.add(task)
            started = time.perf_counter()
            try:
                value = await episode(self._session(), computer)
            except Exception as exc:
                return Outcome(error=portable(exc), seconds=time.perf_counter() - started)
            finally:
                self._episodes.discard(task)
        return Outcome(value=value, seconds=time.perf_counter() - started)

    # -- the end -------------------------------------------------------------------

    async def close(self, keep: Sequence[str]) -> int:
        """Stop everything, delete every computer but ``keep`` (ids), close the session.

        Returns how many held computers were deleted (the launch's own cleanup
        deletes those never received, creates in flight included). A launch
        that comes after this starts nothing.
        """
        self._closed = True
        for task in list(self._episodes):
            task.cancel()
        if self._launch is not None:
            self._launch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._launch
        kept = set(keep)
        doomed = [c for c in self._held.values() if c.id not in kept]
        self._held = {c.id: c for c in self._held.values() if c.id in kept}
        if self._orgo is None:
            return 0
        computers = self._orgo.computers
        results = await asyncio.gather(
            *(computers.delete(c, missing_ok=True) for c in doomed), return_exceptions=True
        )
        await self._orgo.close()
        return sum(not isinstance(r, OrgoError) for r in results)
