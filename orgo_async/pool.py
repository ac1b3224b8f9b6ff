"""A warm pool: computers launched and ready ahead of time, claimed in microseconds.

:class:`Pool` keeps ``size`` computers launched and ready in the background.
:meth:`Pool.claim` hands one over at once when one is ready (no request is
sent); when none is, it launches one and hands over whichever computer is
ready first, that one or a refill. A claimed computer is the caller's: the
pool refills behind it and never touches it again.

Refills go through an :class:`~orgo_async.fleet.AdaptiveLimiter`, as a
fleet's creates do, so 429s slow them down. A boot that fails is deleted and
retried with backoff; it is never handed out. Leaving the ``async with``
block (normally, by an exception, or by cancellation) deletes every computer
the pool still holds, creates in flight included, in a cleanup that cannot be
cancelled half way. The computers are named ``{name_prefix}-{run}-{n}``, so
``orgo.reap(name_prefix)`` finds what a killed process left.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final, Unpack

import attrs

from ._aio import run_shielded
from ._checks import check_int, check_seconds, check_text, optional
from ._retry import backoff
from .errors import APIConnectionError, CreateOutcomeUnknown, OrgoError, RateLimitError
from .fleet import FATAL_ERRORS, Abandoned, AdaptiveLimiter, create_shielded, sleep_unless
from .models import MAX_NAME_LENGTH, Computer, ComputerFields, ComputerSpec, ComputerStatus

if TYPE_CHECKING:
    from ._session import Session
    from .resources.computers import Computers

__all__ = ["MAX_POOL_SIZE", "Pool", "PoolStats"]

log = logging.getLogger("orgo_async.pool")

# A pool holds (and pays for) every computer it keeps warm: a larger one is a fleet's job.
MAX_POOL_SIZE: Final = 1000


@attrs.frozen(kw_only=True)
class PoolStats:
    """What a pool holds and has done, at one instant.

    Attributes:
        ready: Computers ready to be claimed now.
        launching: Refills in progress (creating, booting, or backing off after a failure).
        claimed: Computers handed out so far.
        failures: Boots or creates that failed (each deleted, never handed out), and
            held computers that failed their health check.
    """

    ready: int
    launching: int
    claimed: int
    failures: int


@attrs.define(eq=False)
class _Launch:
    """One create-and-boot of the pool, from its create to its hand-over."""

    spec: ComputerSpec
    limiter: AdaptiveLimiter
    create: asyncio.Task[Computer] | None = None
    computer: Computer | None = None

    def on_retry(self, failure: OrgoError, delay: float) -> None:
        # A 429 retried inside the request slows every refill of the pool.
        self.limiter.on_retry(failure, delay)


class Pool:
    """Computers kept launched and ready; :meth:`claim` one when you need it.

    Use it as an async context manager::

        async with orgo.pool(workspace_id, size=4, name_prefix="agents") as pool:
            computer = await pool.claim()   # ready, and yours
            ...
            await orgo.computers.delete(computer)

    Leaving the block deletes every computer the pool still holds (ready, booting,
    or being created), never the claimed ones. Get one with
    :meth:`Orgo.pool <orgo_async.Orgo.pool>`.
    """

    def __init__(
        self,
        session: Session,
        computers: Computers,
        workspace_id: str,
        *,
        size: int,
        name_prefix: str,
        ready_timeout: float | None = 120.0,
        recheck: float | None = 60.0,
        limiter: AdaptiveLimiter | None = None,
        rate: float | None = None,
        **fields: Unpack[ComputerFields],
    ) -> None:
        check_int("size", size, minimum=1, maximum=MAX_POOL_SIZE)
        check_text("name_prefix", name_prefix, max_length=MAX_NAME_LENGTH // 2)
        optional(check_seconds)("ready_timeout", ready_timeout, inclusive=False)
        optional(check_seconds)("recheck", recheck, inclusive=False)
        self._session = session
        self._computers = computers
        self.size = size
        """How many computers the pool keeps ready."""
        self.name_prefix = name_prefix
        """Its computers are named ``{name_prefix}-{run}-{n}`` (``orgo.reap(name_prefix)``)."""
        self.run = secrets.token_hex(3)
        """This pool's own part of its computers' names."""
        # The longest name a pool of a million refills makes passes every check now.
        self._template = ComputerSpec(
            workspace_id=workspace_id, name=f"{name_prefix}-{self.run}-{10**6}", **fields
        )
        self._ready_timeout = ready_timeout
        self._recheck = recheck
        self.limiter = (
            limiter if limiter is not None else AdaptiveLimiter(rate, probe_limit=max(8, size))
        )
        """The limiter pacing this pool's creates (share one with a fleet to pace both)."""
        self.last_error: Exception | None = None
        """The latest failure (a boot, a create, a health check), for diagnosis."""
        self._serial = 0
        self._ready: collections.deque[Computer] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[Computer]] = collections.deque()
        self._launches: set[_Launch] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._launching = 0
        self._claimed = 0
        self._failures = 0
        self._failing = 0  # failures in a row: the backoff's exponent
        self._fatal: BaseException | None = None
        self._entered = False
        self._closed = False
        self._stopping = asyncio.Event()
        self._retry = attrs.evolve(session.retry, sleep=self._retry_sleep)

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<Pool size={self.size} ready={s.ready} launching={s.launching} "
            f"claimed={s.claimed} failures={s.failures}>"
        )

    @property
    def stats(self) -> PoolStats:
        """How many computers are ready, launching, claimed, and how many failed."""
        return PoolStats(
            ready=len(self._ready),
            launching=self._launching,
            claimed=self._claimed,
            failures=self._failures,
        )

    # -- public ---------------------------------------------------------------------

    async def __aenter__(self) -> Pool:
        if self._entered:
            raise RuntimeError("a Pool can be entered once")
        self._session.check_open()
        self._entered = True
        self._refill()
        if self._recheck is not None:
            self._spawn(self._recheck_loop(self._recheck))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await run_shielded(self._shutdown())

    async def claim(self, *, timeout: float | None = None, verify: bool = False) -> Computer:
        """A ready computer, now yours (the pool refills behind it).

        When one is ready it is returned at once, without a request. Otherwise one
        more computer is launched, and the first to be ready (that one or a refill)
        is returned. A computer that failed to boot is never returned.

        Args:
            timeout: Seconds to wait when none is ready (``None``: no limit).
            verify: Send one health probe to a computer taken from the ready ones
                before handing it over; one that fails it is deleted and the next
                one is taken. (Held computers are checked every ``recheck`` seconds
                in any case.)

        Cancel-safe: a computer is handed over only when this returns it; one
        that a cancelled claim was about to receive goes back to the pool, and so
        does the computer launched for a claim that gave up (the pool then holds
        one more than ``size`` until the next claim).

        Raises:
            TimeoutError: ``timeout`` passed before a computer was ready.
            OrgoError: a fatal error (a bad key, a plan limit) stopped the pool.
            RuntimeError: the pool is not entered, or it closed (before or while waiting).
        """
        optional(check_seconds)("timeout", timeout)
        if not self._entered or self._closed:
            raise RuntimeError("claim inside `async with orgo.pool(...) as pool:`")
        if self._fatal is not None:
            raise self._fatal
        while self._ready:
            computer = self._ready.popleft()
            if verify:
                try:
                    healthy = await self._healthy(computer)
                except BaseException:
                    self._ready.appendleft(computer)
                    raise
                if not healthy:
                    await run_shielded(self._drop(computer))
                    continue
            self._claimed += 1
            self._refill()
            return computer
        waiter: asyncio.Future[Computer] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._refill()  # one waiter more than the pool covers: one launch more
        try:
            async with asyncio.timeout(timeout):
                computer = await waiter
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._deliver(waiter.result())  # it arrived as we were cancelled: keep it
            else:
                waiter.cancel()
            raise
        self._claimed += 1
        return computer

    # -- refills ----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refill(self) -> None:
        """Start launches until the ready, the launching and the waiting claims balance."""
        if self._stopping.is_set() or self._fatal is not None:
            return
        missing = self.size + len(self._waiters) - len(self._ready) - self._launching
        for _ in range(missing):
            self._launching += 1
            self._spawn(self._refill_one())

    def _next_spec(self) -> ComputerSpec:
        self._serial += 1
        return attrs.evolve(
            self._template, name=f"{self.name_prefix}-{self.run}-{self._serial:04d}"
        )

    async def _refill_one(self) -> None:
        """Launch until one computer is ready, then deliver it; failures back off and retry."""
        try:
            while not self._stopping.is_set():
                launch = _Launch(self._next_spec(), self.limiter)
                self._launches.add(launch)
                try:
                    computer = await self._launch(launch)
                except Abandoned:
                    return  # closing: the shutdown resolves this create
                except FATAL_ERRORS as exc:
                    await run_shielded(self._discard(launch))
                    self._stop_with(exc)
                    return
                except OrgoError as exc:
                    self._failures += 1
                    self._failing += 1
                    self.last_error = exc
                    log.info("pool computer %s failed: %s", launch.spec.name, exc)
                    await run_shielded(self._discard(launch))
                    policy = self._session.retry
                    await policy.sleep(backoff(min(self._failing, 16) - 1, policy))
                    continue
                except Exception as exc:  # a bug must not leave claims waiting for ever
                    await run_shielded(self._discard(launch))
                    self._stop_with(exc)
                    raise
                self._launches.discard(launch)
                self._failing = 0
                self._deliver(computer)
                return
        finally:
            self._launching -= 1

    async def _launch(self, launch: _Launch) -> Computer:
        """Create one computer (paced by the limiter) and wait until it is ready."""
        loop = asyncio.get_running_loop()
        while True:
            await self.limiter.acquire()
            try:
                computer, sent = await create_shielded(
                    self._computers, launch, self._retry, self.limiter.creates
                )
            except RateLimitError as exc:
                # The request's own retries are spent: wait with the whole pool, and again.
                launch.create = None
                self.limiter.on_rate_limited(exc.retry_after)
                continue
            launch.computer = computer
            break
        answered = loop.time()
        self.limiter.on_success()
        probes = self.limiter.probes
        await self._computers.wait_ready(
            computer,
            timeout=self._ready_timeout,
            created=(sent, answered),
            budget=probes,
        )
        return attrs.evolve(computer, status=ComputerStatus.RUNNING)

    def _deliver(self, computer: Computer) -> None:
        """A ready computer: to the first waiting claim, else to the ready ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(computer)
                return
        self._ready.append(computer)

    def _stop_with(self, error: BaseException) -> None:
        """No computer can be launched any more: every claim, now and later, raises."""
        if self._fatal is None:
            self._fatal = error
            self.last_error = error if isinstance(error, Exception) else None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    async def _retry_sleep(self, delay: float) -> None:
        # A closing pool does not wait out retries: the cleanup resolves the create.
        await sleep_unless(self._stopping, delay)

    # -- health of held computers -----------------------------------------------------

    async def _healthy(self, computer: Computer) -> bool:
        """One health probe: does the computer still answer?"""
        path = f"/desktops/{computer.instance_id or computer.id}/proxy/health"
        seconds = self._session.timeouts.probe or 1.0
        try:
            return await self._session.probe(path, timeout=seconds) == 200
        except OrgoError:
            return False

    async def _drop(self, computer: Computer) -> None:
        """A held computer failed its health check: delete it, and replace it."""
        self._failures += 1
        self.last_error = OrgoError(f"pool computer {computer.id} failed its health check")
        log.info("pool computer %s failed its health check", computer.id)
        await self._delete(computer)
        self._refill()

    async def _recheck_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for computer in list(self._ready):
                healthy = await self._healthy(computer)
                if not healthy and computer in self._ready:  # unless claimed meanwhile
                    self._ready.remove(computer)
                    await run_shielded(self._drop(computer))

    # -- cleanup ----------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stopping.set()
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        while self._waiters:  # claims still waiting in other tasks
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RuntimeError("the pool closed before a computer was ready"))
        doomed = list(self._ready)
        self._ready.clear()
        launches, self._launches = list(self._launches), set()
        await asyncio.gather(
            *(self._discard(launch) for launch in launches),
            *(self._delete(computer) for computer in doomed),
        )

    async def _discard(self, launch: _Launch) -> None:
        """Delete whatever this launch made: its computer, or what its create made."""
        self._launches.discard(launch)
        computer = launch.computer
        task, launch.create, launch.computer = launch.create, None, None
        if task is not None:
            await asyncio.wait([task])
            error = None if task.cancelled() else task.exception()
            if task.cancelled() or isinstance(
                error, Abandoned | CreateOutcomeUnknown | APIConnectionError
            ):
                # It may exist without our knowing: its name is unique, look it up.
                try:
                    computer = await self._computers.find(
                        launch.spec.workspace_id, launch.spec.name
                    )
                except OrgoError as exc:
                    log.warning("pool cleanup could not look up %s: %s", launch.spec.name, exc)
            elif error is None:
                computer = task.result()
        if computer is not None:
            await self._delete(computer)

    async def _delete(self, computer: Computer) -> None:
        try:
            await run_shielded(self._computers.delete(computer, missing_ok=True))
        except OrgoError as exc:
            log.warning("pool cleanup could not delete computer %s: %s", computer.id, exc)
