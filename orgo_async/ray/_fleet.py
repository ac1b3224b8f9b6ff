"""The driver of a fleet sharded over Ray actors.

:class:`RayFleet` starts one async actor per shard (:class:`~._shard.Shard`),
each with its own :class:`~orgo_async.Orgo` session and its slice of the
computers, named under a prefix of its own (``{prefix}-{run}-{actor}``), and
launches the slices with the in-process fleet. The driver polls each shard for
what became ready or failed and hands the handles over as they arrive; it
splits the fleet-wide create pace over the shards and re-splits it when one of
them hears a 429; it reaps a dead shard's prefix with its own session, at once
and again once the creates that were in flight can no longer land; and on the
way out of its ``async with`` it has every shard delete what it holds (all
but what was handed out), then reaps the whole fleet's prefix as a backstop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, Unpack

import attrs
import ray
from ray.exceptions import RayActorError, RayError

from .._aio import run_shielded
from .._checks import check_count, check_seconds, optional
from .._client import Orgo
from .._config import RetryPolicy, Timeouts, env_api_key, env_base_url
from ..errors import FleetError, MissingAPIKeyError, OrgoError
from ..fleet import FleetFailure, fleet_specs
from ..models import Computer, ComputerFields
from ._shard import Outcome, Report, Shard
from ._types import ActorLost, EpisodeResult, RayComputer, RayFleetResult, Secret

__all__ = ["RayFleet"]

log = logging.getLogger("orgo_async.ray")

T = TypeVar("T")

# How long one poll of a shard waits for news.
_POLL_WAIT = 0.25


@attrs.define
class _Slot:
    """One shard as the driver sees it."""

    index: int
    prefix: str
    names: dict[str, int]  # name -> index in the fleet
    actor: Any = None
    pending: set[str] = attrs.Factory(set)
    dead: bool = False
    rate_limited: int = 0
    rate: float | None = None


class RayFleet:
    """Launch ``count`` computers over ``actors`` Ray actors; iterate to receive handles.

    ::

        ray.init(address="auto")  # or ray.init() for a local Ray
        async with RayFleet(ws.id, 1000, actors=8) as fleet:
            async for result in fleet.map(episode, concurrency=16):
                print(result.computer.name, result.value, result.error)

    Iterating it (``async for handle in fleet``, or :meth:`collect`) hands
    :class:`RayComputer` handles over as each computer becomes ready: those
    are yours and outlive the block (delete them with your own session). What
    was not handed over, :meth:`map`'s computers included, is deleted when the
    block is left, normally, by an error or by cancellation.

    Args:
        workspace_id: Where the computers go.
        count: How many.
        actors: Shards (Ray actors), each with its own session and ``count / actors``
            computers.
        prefix: Names are ``{prefix}-{run}-{actor}-...``; :attr:`prefix` is the
            fleet's ``{prefix}-{run}``, for ``orgo.reap(fleet.prefix)``.
        api_key, base_url, timeouts, retry: As for :class:`~orgo_async.Orgo`; the
            driver and every actor use them. The key reaches the actors in their
            constructor, never in a ``repr``, log line or error.
        concurrency: Launches in progress at once, per actor.
        rate: Creates per second for the whole fleet, split over the actors.
        ready_timeout, deadline: As for :meth:`Orgo.fleet <orgo_async.Orgo.fleet>`, per actor.
        late_reap: Seconds after an actor's death before its prefix is reaped again
            (creates in flight land late); default ``timeouts.total`` (120 s).
        check_capacity: Check the account's compute limits for the whole fleet first.
        actor_options: For ``.options()`` of each actor (``num_cpus``,
            ``scheduling_strategy``, ``runtime_env``...).
        **fields: The computers' fields, as for ``computers.create``.

    Raises:
        ValueError: bad counts, fields or options (before Ray or the API is touched).
        MissingAPIKeyError: no key and no ``ORGO_API_KEY``.
    """

    def __init__(
        self,
        workspace_id: str,
        count: int,
        *,
        actors: int = 2,
        prefix: str = "fleet",
        api_key: str | None = None,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int = 16,
        rate: float | None = None,
        ready_timeout: float | None = 120.0,
        deadline: float | None = None,
        late_reap: float | None = None,
        check_capacity: bool = True,
        actor_options: Mapping[str, Any] | None = None,
        **fields: Unpack[ComputerFields],
    ) -> None:
        count = check_count("count", count)
        actors = check_count("actors", actors)
        check_count("concurrency", concurrency)
        optional(check_seconds)("late_reap", late_reap)
        key = api_key if api_key is not None else env_api_key()
        if not key:
            raise MissingAPIKeyError("no API key: pass api_key= or set ORGO_API_KEY")
        self._key = Secret(value=key)
        self._base_url = (base_url or env_base_url()).rstrip("/")
        self._timeouts = timeouts or Timeouts()
        self._retry = retry
        self._workspace_id = workspace_id
        self.prefix = f"{prefix}-{secrets.token_hex(3)}"
        """The fleet's name prefix: every computer's name starts with ``{prefix}-``."""
        shards = min(actors, count)
        sizes = [count // shards + (k < count % shards) for k in range(shards)]
        self._specs = []
        self._slots: list[_Slot] = []
        first = 0
        for k, size in enumerate(sizes):
            shard_prefix = f"{self.prefix}-{k}"
            specs = fleet_specs(workspace_id, count=size, specs=None, prefix=shard_prefix, **fields)
            names = {specs[n].name: first + n for n in range(size)}
            self._specs.append(specs)
            self._slots.append(_Slot(k, shard_prefix, names, pending=set(names)))
            first += size
        self._count = count
        self._concurrency = concurrency
        self.rate = rate
        """The fleet-wide create pace now (``None``: unpaced); 429s lower it."""
        for slot in self._slots:
            slot.rate = None if rate is None else rate / shards
        self._ready_timeout = ready_timeout
        self._deadline = deadline
        self._late_reap = late_reap if late_reap is not None else (self._timeouts.total or 120.0)
        self._check_capacity = check_capacity
        self._actor_options = dict(actor_options or {})
        self._orgo: Orgo | None = None
        self._pollers: list[asyncio.Task[None]] = []
        self._late: list[asyncio.Task[None]] = []
        self._ready: collections.deque[RayComputer] = collections.deque()
        self._handed: dict[str, RayComputer] = {}
        self._changed = asyncio.Event()
        self._fatal: Exception | None = None
        self._entered = False
        self.failures: list[FleetFailure] = []
        """The computers that failed or were lost so far (each deleted, or reaped)."""
        self.rate_limited = 0
        """429s the actors heard, in all."""
        self.reaped = 0
        """Computers the driver deleted by prefix (a dead actor's, the backstop's)."""

    def __repr__(self) -> str:
        return (
            f"<RayFleet prefix={self.prefix!r} size={self._count} actors={len(self._slots)} "
            f"failures={len(self.failures)}>"
        )

    @property
    def actors(self) -> int:
        """How many actors the fleet has (fewer than asked when ``count`` is smaller)."""
        return len(self._slots)

    @property
    def actor_handles(self) -> list[Any]:
        """The Ray actor handles, one per shard (to watch them, or to kill one in a test)."""
        return [slot.actor for slot in self._slots]

    @property
    def shard_rates(self) -> list[float | None]:
        """Each actor's create pace as last reported (``None``: unpaced)."""
        return [slot.rate for slot in self._slots]

    # -- entering and leaving --------------------------------------------------------

    async def __aenter__(self) -> RayFleet:
        if self._entered:
            raise RuntimeError("a RayFleet can be entered once")
        self._entered = True
        try:
            self._orgo = Orgo(
                api_key=self._key.value,
                base_url=self._base_url,
                timeouts=self._timeouts,
                retry=self._retry,
            )
            if self._check_capacity:
                await self._orgo.billing.check_capacity(self._count)
            remote = ray.remote(Shard)
            loop = asyncio.get_running_loop()
            for slot, specs in zip(self._slots, self._specs, strict=True):
                slot.actor = remote.options(**self._actor_options).remote(
                    slot.index,
                    self._key,
                    self._base_url,
                    timeouts=self._timeouts,
                    retry=self._retry,
                )
                launch = slot.actor.launch.remote(
                    self._workspace_id,
                    specs,
                    concurrency=self._concurrency,
                    rate=slot.rate,
                    ready_timeout=self._ready_timeout,
                    deadline=self._deadline,
                )
                self._pollers.append(loop.create_task(self._poll(slot, launch)))
        except BaseException:
            await run_shielded(self._shutdown())
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await run_shielded(self._shutdown())

    # -- handing over ---------------------------------------------------------------

    def __aiter__(self) -> RayFleet:
        return self

    async def __anext__(self) -> RayComputer:
        """The next computer to become ready, handed over to you (cancel-safe).

        Raises:
            StopAsyncIteration: every computer is ready, failed or lost.
            OrgoError: a fatal error (a bad key, a plan limit) ended an actor's launch.
        """
        handle = await self._next()
        if handle is None:
            raise StopAsyncIteration
        self._handed[handle.id] = handle
        return handle

    async def _next(self) -> RayComputer | None:
        if not self._entered:
            raise RuntimeError("iterate a RayFleet inside `async with RayFleet(...) as fleet:`")
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._ready:
                return self._ready.popleft()
            if all(task.done() for task in self._pollers):
                return None
            self._changed.clear()
            await self._changed.wait()

    async def collect(self, *, raise_on_failure: bool = False) -> RayFleetResult:
        """Receive every ready handle and every failure (call it inside the block).

        With ``raise_on_failure``, any failure raises :class:`FleetError` and no
        handle is handed over: leaving the block deletes them all.
        """
        ready: list[RayComputer] = []
        while (handle := await self._next()) is not None:
            ready.append(handle)
        if raise_on_failure and self.failures:
            raise FleetError(
                f"{len(self.failures)} of {self._count} computers failed",
                [f.error for f in self.failures],
                ready=len(ready),
            )
        for handle in ready:
            self._handed[handle.id] = handle
        return RayFleetResult(ready=tuple(ready), failures=tuple(self.failures))

    # -- polling the shards -----------------------------------------------------------

    async def _poll(self, slot: _Slot, launch: Any) -> None:
        ready_seen = failures_seen = 0
        try:
            while True:
                try:
                    if launch is not None:
                        # An async actor runs calls in any order: the launch has begun first.
                        await launch
                        launch = None
                    report: Report = await slot.actor.report.remote(
                        ready_seen, failures_seen, _POLL_WAIT
                    )
                except RayError as exc:
                    if not isinstance(exc, RayActorError):
                        log.error("ray fleet actor %d failed: %s", slot.index, type(exc).__name__)
                        ray.kill(slot.actor, no_restart=True)
                    await self._lose(slot)
                    return
                ready_seen += len(report.ready)
                failures_seen += len(report.failures)
                self._take_report(slot, report)
                if report.fatal is not None and self._fatal is None:
                    self._fatal = report.fatal
                if report.done:
                    return
        finally:
            self._changed.set()

    def _take_report(self, slot: _Slot, report: Report) -> None:
        for name, computer_id in report.ready:
            slot.pending.discard(name)
            handle = RayComputer(
                index=slot.names[name], id=computer_id, name=name, actor=slot.index
            )
            self._ready.append(handle)
        for failure in report.failures:
            slot.pending.discard(failure.name)
            self.failures.append(attrs.evolve(failure, index=slot.names[failure.name]))
        slot.rate = report.rate
        if report.rate_limited > slot.rate_limited:
            self.rate_limited += report.rate_limited - slot.rate_limited
            slot.rate_limited = report.rate_limited
            # The server's limit is the fleet's: every shard takes the pace this one was cut to.
            live = [s for s in self._slots if not s.dead]
            if report.rate is not None:
                self.rate = report.rate * len(live)
            pause = report.retry_after if report.retry_after is not None else 1.0
            for other in live:
                if other is not slot:
                    other.rate = report.rate if report.rate is not None else other.rate
                    other.actor.share.remote(report.rate, pause)
        self._changed.set()

    async def _lose(self, slot: _Slot) -> None:
        """A shard's actor died: fail what it had, reap its prefix now and again later."""
        if slot.dead:
            return
        slot.dead = True
        log.warning("ray fleet actor %d died; reaping %s", slot.index, slot.prefix)
        lost = [h for h in self._ready if h.actor == slot.index]
        for handle in lost:
            self._ready.remove(handle)
            self.failures.append(
                FleetFailure(
                    index=handle.index,
                    name=handle.name,
                    error=ActorLost(slot.index),
                    computer_id=handle.id,
                )
            )
        for name in sorted(slot.pending, key=slot.names.__getitem__):
            self.failures.append(
                FleetFailure(index=slot.names[name], name=name, error=ActorLost(slot.index))
            )
        slot.pending.clear()
        live = [s for s in self._slots if not s.dead]
        if self.rate is not None and live:
            for other in live:
                other.rate = self.rate / len(live)
                other.actor.share.remote(other.rate, 0.0)
        self._changed.set()
        self._late.append(asyncio.get_running_loop().create_task(self._reap_later(slot.prefix)))
        await run_shielded(self._reap(slot.prefix))

    async def _reap_later(self, prefix: str) -> None:
        await asyncio.sleep(self._late_reap)
        await self._reap(prefix)

    async def _reap(self, prefix: str) -> None:
        """Delete every computer named ``{prefix}-...`` but those handed out."""
        if self._orgo is None or self._orgo.closed:
            return
        computers = self._orgo.computers
        try:
            found = await computers.list(self._workspace_id)
        except OrgoError as exc:
            log.warning("ray fleet could not list its workspace to reap %s: %s", prefix, exc)
            return
        doomed = [c for c in found if c.name.startswith(prefix + "-") and c.id not in self._handed]
        results = await asyncio.gather(
            *(computers.delete(c, missing_ok=True) for c in doomed), return_exceptions=True
        )
        self.reaped += sum(not isinstance(r, BaseException) for r in results)

    async def _shutdown(self) -> None:
        for task in self._pollers:
            task.cancel()
        await asyncio.gather(*self._pollers, return_exceptions=True)
        closing = []
        for slot in self._slots:
            if slot.actor is None or slot.dead:
                continue
            keep = [cid for cid, h in self._handed.items() if h.actor == slot.index]
            closing.append((slot, slot.actor.close.remote(keep)))
        for slot, ref in closing:
            try:
                async with asyncio.timeout(self._timeouts.total):
                    await ref
            except (RayError, TimeoutError):
                # It died or hung while closing: its prefix is reaped below, and again later.
                slot.dead = True
                self._late.append(
                    asyncio.get_running_loop().create_task(self._reap_later(slot.prefix))
                )
        for slot in self._slots:
            if slot.actor is not None:
                with contextlib.suppress(RayError):
                    ray.kill(slot.actor, no_restart=True)
        try:
            await self._reap(self.prefix)  # the backstop, for the whole fleet
            await asyncio.gather(*self._late, return_exceptions=True)
        finally:
            if self._orgo is not None:
                await self._orgo.close()

    # -- episodes -------------------------------------------------------------------

    async def map(
        self,
        episode: Callable[[Orgo, Computer], Awaitable[T]],
        computers: Iterable[RayComputer] | None = None,
        *,
        concurrency: int = 8,
    ) -> AsyncIterator[EpisodeResult[T]]:
        """Run ``episode(orgo, computer)`` on each computer's own actor; yield results as they end.

        ``episode`` is sent to each actor (it must pickle: a module-level function
        does); it gets that actor's session and the :class:`~orgo_async.models.Computer`,
        which never leaves the actor. What it returns comes back (it must pickle);
        what it raises comes back as the result's ``error``, as does an
        :class:`ActorLost` when the actor dies.

        Args:
            computers: The handles to run on (yours, handed out); by default the
                fleet's computers that were not handed out, each as it becomes
                ready. Those stay the fleet's: leaving the block deletes them.
            concurrency: Episodes running at once, per actor.
        """
        check_count("concurrency", concurrency)
        map_id = secrets.token_hex(4)
        begun: dict[int, asyncio.Future[Any]] = {}
        results: asyncio.Queue[EpisodeResult[T]] = asyncio.Queue()
        gates = {slot.index: asyncio.Semaphore(concurrency) for slot in self._slots}
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()

        async def one(handle: RayComputer) -> None:
            slot = self._slots[handle.actor]
            async with gates[handle.actor]:
                result: EpisodeResult[T]
                try:
                    if slot.dead:
                        raise ActorLost(slot.index)
                    if handle.actor not in begun:
                        ref = slot.actor.begin_map.remote(map_id, episode, concurrency)
                        begun[handle.actor] = asyncio.ensure_future(ref)
                    await begun[handle.actor]
                    outcome: Outcome = await slot.actor.run.remote(map_id, handle.id)
                    result = EpisodeResult(
                        computer=handle,
                        value=outcome.value,
                        error=outcome.error,
                        seconds=outcome.seconds,
                    )
                except RayActorError:
                    await self._lose(slot)
                    result = EpisodeResult(computer=handle, error=ActorLost(slot.index))
                except (ActorLost, RayError) as exc:
                    result = EpisodeResult(computer=handle, error=exc)
            results.put_nowait(result)

        async def feed() -> None:
            if computers is not None:
                source: Iterable[RayComputer] = list(computers)
                for handle in source:
                    if not 0 <= handle.actor < len(self._slots):
                        raise ValueError(f"{handle.name} is not a computer of this fleet")
                    tasks.add(loop.create_task(one(handle)))
                return
            while (taken := await self._next()) is not None:
                tasks.add(loop.create_task(one(taken)))

        feeder = loop.create_task(feed())
        yielded = 0
        try:
            while True:
                if not results.empty():
                    yielded += 1
                    yield results.get_nowait()
                    continue
                if feeder.done() and (feeder.exception() is not None or yielded == len(tasks)):
                    feeder.result()  # its error, if any
                    return
                getter = loop.create_task(results.get())
                waits: set[asyncio.Task[Any]] = {getter}
                if not feeder.done():
                    waits.add(feeder)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yielded += 1
                    yield getter.result()
                else:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
        finally:
            feeder.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(feeder, *tasks, return_exceptions=True)
            for k in begun:
                if not self._slots[k].dead:
                    self._slots[k].actor.end_map.remote(map_id)
