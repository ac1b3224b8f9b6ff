"""Launching many computers at once, leaving none behind.

:class:`Fleet` creates computers with bounded concurrency (and optionally a
create rate), waits for each to become ready, and hands them over one by one
as they are ready. Every computer the caller has not received when the
launch ends (by cancellation, a deadline, a fatal error, or leaving the
``async with`` block early) is deleted, creates still in flight included, in
a cleanup that cannot itself be cancelled half way.

One :class:`AdaptiveLimiter` paces the whole fleet: a 429 on any create slows
every create down, and the pace recovers with each success.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, Unpack, overload

import attrs

from ._aio import run_shielded
from ._checks import check_count, check_number, check_seconds, check_text, optional
from ._observe import RetryCounter, RetryObserver
from ._slots import Slots
from .errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ClientClosedError,
    CreateOutcomeUnknown,
    FleetError,
    OrgoError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
)
from .health import ProbeBudget
from .models import (
    MAX_NAME_LENGTH,
    Computer,
    ComputerFields,
    ComputerSpec,
    LaunchedComputer,
)

if TYPE_CHECKING:
    from ._config import RetryPolicy
    from ._session import Session
    from .resources.computers import Computers

__all__ = ["AdaptiveLimiter", "CreateWindow", "Fleet", "FleetFailure", "FleetResult"]

log = logging.getLogger("orgo_async.fleet")

FATAL_ERRORS: Final = (
    AuthenticationError,
    PaymentRequiredError,
    PermissionDeniedError,
    ClientClosedError,
)
"""Errors after which no other create can succeed: they end a whole launch (and a pool's
refills)."""


# The pace regained per successful create (creates per second).
_RATE_STEP: Final = 0.05

# Rounds of a create through the shared limiter after its own retries met 429 each time.
_FLEET_RATE_LIMIT_RETRIES: Final = 20

# Creates a fleet has in flight at once before any has been answered (see CreateWindow)...
CREATE_WINDOW: Final = 32
# ...and the queueing (an answer later than the quickest) that shrinks the window: this
# much, or the quickest answer time itself where that is longer (a distant server).
CREATE_QUEUEING: Final = 0.005


class Abandoned(Exception):
    """Raised inside a create's retry wait once its launcher (a fleet, a pool) is stopping."""


class FleetOptions(ComputerFields, total=False):
    """The keyword options of :meth:`Orgo.fleet <orgo_async.Orgo.fleet>` (and ``launch_fleet``).

    Besides the computers' own fields (:class:`~orgo_async.models.ComputerFields`).
    A test keeps this in step with ``Orgo.fleet``'s signature.
    """

    specs: Sequence[ComputerSpec] | None
    prefix: str
    concurrency: int
    rate: float | None
    limiter: AdaptiveLimiter | None
    ready_timeout: float | None
    deadline: float | None
    check_capacity: bool


@attrs.frozen(kw_only=True)
class FleetFailure:
    """One computer of a fleet that did not become ready.

    Attributes:
        index: Its position in the fleet's specs.
        name: Its name.
        error: Why (``ReadyTimeout``, ``ComputerFailedError``, an ``APIError``...).
        computer_id: Its id, if it was created (it has been deleted since).
    """

    index: int
    name: str
    error: Exception
    computer_id: str | None = None


@attrs.frozen(kw_only=True)
class FleetResult:
    """The outcome of a collect-all launch: every ready computer and every failure."""

    ready: tuple[LaunchedComputer, ...]
    failures: tuple[FleetFailure, ...]


class CreateWindow(Slots):
    """How many of a fleet's creates are in flight at once, sized as TCP Vegas sizes its window.

    Hundreds of creates sent in the same millisecond queue in the server, and
    their answers in this process; the health probes of the computers already
    booting wait behind them, and readiness is seen late. So creates take a
    slot first. The window starts at ``initial``. A create answered about as
    fast as the quickest one seen (within ``CREATE_QUEUEING``, 5 ms, or the
    quickest time itself if that is longer) grows a window in use by one, so
    against a server that does not queue them the window doubles every answer
    time; one answered later than that shrinks it by a quarter, at most once per
    answer time, never below ``minimum``. A create that fails gives its slot
    back and teaches nothing; so does one that was retried (its answer time holds
    its back-off, not a queue; a 429 slows the fleet through its limiter).

    Args:
        initial: The starting window.
        minimum: The window never shrinks below this.
        maximum: ... nor grows above this.
    """

    def __init__(self, initial: int = CREATE_WINDOW, *, minimum: int = 4, maximum: int = 4096):
        check_count("initial", initial)
        check_count("minimum", minimum)
        check_count("maximum", maximum)
        if maximum < max(initial, minimum):
            raise ValueError(f"maximum must be at least initial and minimum; got {maximum!r}")
        super().__init__(float(initial))
        self.minimum = minimum
        self.maximum = maximum
        self.quickest = math.inf
        """The quickest create answer seen, in seconds."""
        self.cuts = 0
        self._last_cut = -math.inf

    def __repr__(self) -> str:
        return f"<CreateWindow limit={self.limit:.0f} in_flight={self.in_flight} cuts={self.cuts}>"

    def release(self, answered_in: float | None = None, now: float | None = None) -> None:
        """Give a slot back; ``answered_in``: the create's answer time, if it succeeded."""
        if answered_in is not None and now is not None:
            self._adapt(answered_in, now, in_use=self.in_flight >= self.limit - 1)
        super().release()

    def _adapt(self, answered_in: float, now: float, *, in_use: bool) -> None:
        self.quickest = min(self.quickest, answered_in)
        if answered_in - self.quickest > max(CREATE_QUEUEING, self.quickest):
            if now - self._last_cut >= answered_in:
                self._last_cut = now
                self.cuts += 1
                self.limit = max(float(self.minimum), self.limit * 0.75)
        elif in_use:
            self.limit = min(float(self.maximum), self.limit + 1)


class AdaptiveLimiter:
    """Paces creates for a whole fleet; halves the pace on a 429, regains it on success.

    It also holds the fleet's :class:`~orgo_async.health.ProbeBudget`, the bound
    on health probes in flight (a 429 slows both), and its :class:`CreateWindow`,
    the bound on creates in flight (:attr:`creates`).

    Args:
        rate: The highest create rate per second; ``None`` starts unpaced.
        min_rate: The pace never drops below this.
        probe_limit: The probe budget's starting limit (the fleet's concurrency).
    """

    def __init__(
        self, rate: float | None = None, *, min_rate: float = 0.5, probe_limit: int = 64
    ) -> None:
        optional(check_number)("rate", rate, minimum=0, inclusive=False)
        check_number("min_rate", min_rate, minimum=0, inclusive=False)
        self.probes = ProbeBudget(probe_limit)
        """The fleet's health probe budget."""
        self.creates = CreateWindow()
        """The fleet's creates in flight (replace it to start from another window)."""
        self.max_rate = rate
        self.min_rate = min_rate
        self.rate = rate
        self.rate_limited = 0
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._last_cut = -1e9
        self._starts: collections.deque[float] = collections.deque(maxlen=64)

    def __repr__(self) -> str:
        return f"<AdaptiveLimiter rate={self.rate} rate_limited={self.rate_limited}>"

    async def acquire(self) -> None:
        """Wait for this create's turn."""
        loop = asyncio.get_running_loop()
        # The pause end moves when more 429s arrive, so re-check it after each sleep.
        while (pause := self._paused_until - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(pause)
        if self.rate is not None:
            now = loop.time()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate
            if slot > now:
                await asyncio.sleep(slot - now)
        self._starts.append(loop.time())

    def on_retry(self, failure: OrgoError, delay: float) -> None:
        """A request of the fleet will be retried: on a 429, slow the whole fleet."""
        if isinstance(failure, RateLimitError):
            self.on_rate_limited(failure.retry_after)

    def on_rate_limited(self, retry_after: float | None) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.rate_limited += 1
        self.probes.congested(now)
        wait = retry_after if retry_after is not None else 1.0
        self._paused_until = max(self._paused_until, now + wait)
        # One cut per burst of 429s: the requests in flight all see the same limit.
        if now - self._last_cut < max(wait, 0.2):
            return
        self._last_cut = now
        current = self.rate if self.rate is not None else self._observed_rate(now)
        self.rate = max(self.min_rate, current / 2)

    def on_success(self) -> None:
        """A create of the fleet succeeded: regain pace, additively.

        Successes arrive ``rate`` times a second, so a fixed step per success
        grows the pace by about 5% a second: a cut pace comes back gently
        instead of overshooting the server's limit again within a second.
        """
        if self.rate is None:
            return
        ceiling = self.max_rate
        grown = self.rate + _RATE_STEP
        self.rate = grown if ceiling is None else min(ceiling, grown)

    def _observed_rate(self, now: float) -> float:
        recent = [t for t in self._starts if now - t <= 1.0]
        return float(max(len(recent), 1))


async def sleep_unless(stopping: asyncio.Event, delay: float) -> None:
    """A retry wait of ``delay`` that raises :class:`Abandoned` once ``stopping`` is set."""
    if stopping.is_set():
        raise Abandoned
    try:
        async with asyncio.timeout(delay):
            await stopping.wait()
    except TimeoutError:
        return
    raise Abandoned


class CreateHolder(RetryObserver, Protocol):
    """One computer being launched: its spec, and its create while that is in flight."""

    spec: ComputerSpec
    create: asyncio.Task[Computer] | None


async def create_shielded(
    computers: Computers, holder: CreateHolder, retry: RetryPolicy, window: CreateWindow
) -> tuple[Computer, float]:
    """Create ``holder.spec``, the request's task kept on ``holder.create`` until it answers.

    The create first takes a slot of ``window``, given back when it answers.
    Shielded: a create in flight finishes even if the launch is cancelled, so
    that the cleanup knows what it made. A create that raises stays on
    ``holder`` for the caller to clear or to leave to the cleanup.

    Returns the computer, and when its request left (the loop's clock).
    """
    loop = asyncio.get_running_loop()
    await window.acquire()
    sent = loop.time()
    attempts = RetryCounter(holder)
    holder.create = task = loop.create_task(
        computers.create_from(holder.spec, retry=retry, observer=attempts)
    )
    task.add_done_callback(functools.partial(_answered, window, sent, attempts))
    computer = await asyncio.shield(task)
    holder.create = None
    return computer, sent


def _answered(
    window: CreateWindow, sent: float, attempts: RetryCounter, task: asyncio.Task[Computer]
) -> None:
    now = asyncio.get_running_loop().time()
    # A retried create's answer time includes its back-off: it says nothing of queueing.
    ok = not task.cancelled() and task.exception() is None and not attempts.retries
    window.release(now - sent if ok else None, now)


_END: Final = object()


@attrs.define
class _Item:
    """One computer of the fleet, from the moment a worker takes it up.

    It observes its create's retries (see :meth:`on_retry`), counting them and
    passing each on to the fleet's limiter.
    """

    index: int
    spec: ComputerSpec
    limiter: AdaptiveLimiter
    computer: Computer | None = None
    create: asyncio.Task[Computer] | None = None
    queued: bool = False
    done: bool = False
    retries: int = 0

    def on_retry(self, failure: OrgoError, delay: float) -> None:
        # A 429 retried inside the request slows the whole fleet, not just this create.
        self.retries += 1
        self.limiter.on_retry(failure, delay)


class Fleet:
    """Launch computers concurrently; iterate to receive each as it becomes ready.

    Use it as an async context manager, and iterate inside it::

        async with orgo.fleet(workspace_id, count=50, concurrency=16) as fleet:
            async for launched in fleet:
                print(launched.computer.name, launched.timing.total_seconds)
        print(fleet.failures)

    Leaving the block, normally or not, deletes every computer you were not
    handed. The iterator ends when every computer is ready or has failed;
    failures do not interrupt it (see :attr:`failures`), fatal errors (a bad
    key, a plan limit) do: they end the launch and are raised.

    Get one with :meth:`Orgo.fleet <orgo_async.Orgo.fleet>`.
    """

    def __init__(
        self,
        session: Session,
        computers: Computers,
        specs: Sequence[ComputerSpec],
        *,
        concurrency: int = 16,
        rate: float | None = None,
        ready_timeout: float | None = 120.0,
        deadline: float | None = None,
        limiter: AdaptiveLimiter | None = None,
        capacity_check: Callable[[int], Awaitable[object]] | None = None,
    ) -> None:
        check_count("concurrency", concurrency)
        optional(check_seconds)("deadline", deadline, inclusive=False)
        optional(check_seconds)("ready_timeout", ready_timeout, inclusive=False)
        if not isinstance(specs, _NamedSpecs):  # those are distinct by construction
            keys = [(s.name, s.workspace_id) for s in specs]
            if len(set(keys)) != len(keys):
                raise ValueError("every computer of a fleet needs its own name in its workspace")
        self._session = session
        self._computers = computers
        # Items are made as workers take them up: a fleet of thousands does not keep
        # thousands of objects alive (and promoted by the GC) before it needs them.
        self._specs = specs
        self._next = 0
        self._items: list[_Item] = []
        self._concurrency = concurrency
        self._ready_timeout = ready_timeout
        self._deadline = deadline
        self.limiter = (
            limiter
            if limiter is not None
            else AdaptiveLimiter(rate, probe_limit=max(8, concurrency))
        )
        """The limiter pacing this fleet's creates."""
        self.failures: list[FleetFailure] = []
        """The computers that failed so far (each already deleted)."""
        self.created = 0
        """Creates answered so far (for progress reports)."""
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._finished = False
        self._received: dict[str, _Item] = {}
        self._unresolved: list[_Item] = []
        self._retry = attrs.evolve(session.retry, sleep=self._retry_sleep)
        # Awaited with the fleet's size on entry, before any create (raises to refuse).
        self._capacity_check = capacity_check

    def __repr__(self) -> str:
        return (
            f"<Fleet size={len(self._specs)} concurrency={self._concurrency} "
            f"failures={len(self.failures)}>"
        )

    # -- public -------------------------------------------------------------------

    async def __aenter__(self) -> Fleet:
        if self._supervisor is not None:
            raise RuntimeError("a Fleet can be entered once")
        self._session.check_open()
        if self._capacity_check is not None and self._specs:
            await self._capacity_check(len(self._specs))
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await run_shielded(self._shutdown())

    def __aiter__(self) -> Fleet:
        return self

    async def __anext__(self) -> LaunchedComputer:
        """The next computer to become ready.

        Cancel-safe: a computer is handed over only when this returns it.

        Raises:
            StopAsyncIteration: every computer is ready or failed.
            OrgoError: a fatal error ended the launch.
        """
        if self._supervisor is None:
            raise RuntimeError("iterate a Fleet inside `async with orgo.fleet(...) as fleet:`")
        if self._finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._finished = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        launched, slot = item
        # Received: from now on the computer is the caller's, and no cleanup touches it.
        slot.queued = False
        slot.computer = None
        self._received[launched.computer.id] = slot
        return launched  # type: ignore[no-any-return]

    def _give_back(self, computer: Computer) -> None:
        """Return a received computer, so that the cleanup deletes it."""
        item = self._received.pop(computer.id)
        item.computer = computer
        item.queued = True

    # -- the launch -----------------------------------------------------------------

    async def _supervise(self) -> None:
        end: object = _END
        try:
            async with asyncio.timeout(self._deadline):
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(self._concurrency, len(self._specs))):
                        group.create_task(self._worker())
        except TimeoutError:
            self._fail_unfinished(
                lambda: APITimeoutError(phase="fleet deadline", seconds=self._deadline)
            )
        except BaseExceptionGroup as group_error:
            fatal = _first_fatal(group_error)
            failure: BaseException = group_error if fatal is None else fatal
            self._fail_unfinished(lambda: failure)
            end = failure  # raised to the caller by __anext__
        finally:
            self._stopping.set()
            # Deadline or fatal error: take back what nobody will receive.
            await run_shielded(self._reclaim(include_queued=False))
            self._queue.put_nowait(end)

    async def _worker(self) -> None:
        while self._next < len(self._specs):
            index = self._next
            self._next += 1
            item = _Item(index, self._specs[index], self.limiter)
            self._items.append(item)
            await self._launch_one(item)

    async def _launch_one(self, item: _Item) -> None:
        loop = asyncio.get_running_loop()
        retries = 0
        sent: float | None = None
        while True:
            await self.limiter.acquire()
            if sent is None:
                sent = loop.time()  # the first attempt, as LaunchTiming says
            try:
                computer, request_sent = await create_shielded(
                    self._computers, item, self._retry, self.limiter.creates
                )
            except RateLimitError as exc:
                item.create = None
                retries += 1
                if retries > _FLEET_RATE_LIMIT_RETRIES:
                    self._fail(item, exc)
                    return
                # The request's own retries are spent: wait with the whole fleet.
                self.limiter.on_rate_limited(exc.retry_after)
                continue
            except FATAL_ERRORS:
                item.create = None
                raise
            except Abandoned:
                return  # the fleet is stopping; the cleanup resolves this create
            except OrgoError as exc:
                item.create = None
                if isinstance(exc, CreateOutcomeUnknown | APIConnectionError):
                    # It may exist: the cleanup looks it up by name.
                    self._unresolved.append(item)
                self._fail(item, exc)
                return
            break
        answered = loop.time()
        item.computer = computer
        self.created += 1
        self.limiter.on_success()
        try:
            probes = self.limiter.probes
            info = await self._computers.wait_ready(
                computer,
                timeout=self._ready_timeout,
                created=(request_sent, answered),
                budget=probes,
            )
        except OrgoError as exc:
            self._fail(item, exc)  # with the computer's id, before it goes
            await self._delete(computer)
            item.computer = None
            return
        assert sent is not None
        timing = info.timing(sent=sent, answered=answered, retries=retries + item.retries)
        item.done = item.queued = True
        self._queue.put_nowait((LaunchedComputer(computer=computer, timing=timing), item))

    async def _retry_sleep(self, delay: float) -> None:
        # A stopping fleet does not wait out retries: the cleanup resolves the create.
        await sleep_unless(self._stopping, delay)

    def _fail(self, item: _Item, error: Exception) -> None:
        item.done = True
        computer_id = item.computer.id if item.computer is not None else None
        self.failures.append(
            FleetFailure(
                index=item.index, name=item.spec.name, error=error, computer_id=computer_id
            )
        )

    def _fail_unfinished(self, error: Any) -> None:
        for item in self._items:
            if not item.done:
                self._fail(item, error())
        # Those no worker took up yet fail too (and nothing else will take them up).
        while self._next < len(self._specs):
            index = self._next
            self._next += 1
            spec = self._specs[index]
            self.failures.append(FleetFailure(index=index, name=spec.name, error=error()))

    # -- cleanup --------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stopping.set()
        if self._supervisor is not None and not self._supervisor.done():
            self._supervisor.cancel()
        if self._supervisor is not None:
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
        await self._reclaim(include_queued=True)
        self._finished = True

    async def _reclaim(self, *, include_queued: bool) -> None:
        """Delete every computer of this fleet that the caller does not hold."""
        creates = [i for i in self._items if i.create is not None]
        unknown, self._unresolved = self._unresolved, []
        if creates:
            await asyncio.wait([i.create for i in creates if i.create is not None])
        doomed: list[Computer] = []
        for item in creates:
            task, item.create = item.create, None
            assert task is not None
            if task.cancelled():
                unknown.append(item)
                continue
            exc = task.exception()
            if exc is None:
                doomed.append(task.result())
            elif isinstance(exc, Abandoned | CreateOutcomeUnknown | APIConnectionError):
                unknown.append(item)
        for item in self._items:
            if item.computer is not None and (include_queued or not item.queued):
                doomed.append(item.computer)
                item.computer = None
                item.queued = False
        if unknown:
            doomed.extend(await self._look_up(unknown))
        if doomed:
            await asyncio.gather(*(self._delete(c) for c in doomed))

    async def _look_up(self, items: list[_Item]) -> list[Computer]:
        wanted = {(i.spec.workspace_id, i.spec.name) for i in items}
        found: list[Computer] = []
        for workspace_id in {ws for ws, _ in wanted}:
            try:
                computers = await self._computers.list(workspace_id)
            except OrgoError as exc:
                log.warning("fleet cleanup could not list workspace %s: %s", workspace_id, exc)
                continue
            found.extend(c for c in computers if (workspace_id, c.name) in wanted)
        return found

    async def _delete(self, computer: Computer) -> None:
        try:
            await run_shielded(self._computers.delete(computer, missing_ok=True))
        except OrgoError as exc:
            log.warning("fleet cleanup could not delete computer %s: %s", computer.id, exc)


def _first_fatal(group: BaseExceptionGroup[BaseException]) -> OrgoError | None:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _first_fatal(exc)
            if found is not None:
                return found
        elif isinstance(exc, FATAL_ERRORS):
            return exc
    return None


def fleet_specs(
    workspace_id: str,
    *,
    count: int | None,
    specs: Sequence[ComputerSpec] | None,
    prefix: str,
    **fields: Unpack[ComputerFields],
) -> Sequence[ComputerSpec]:
    """The specs of a fleet: the given ones, or ``count`` named ``{prefix}-{run}-{n}``."""
    if specs is not None:
        if count is not None or fields:
            raise ValueError("give either specs, or count with the computers' fields, not both")
        return list(specs)
    count = check_count("count", count)
    check_text("prefix", prefix, max_length=MAX_NAME_LENGTH // 2)
    run = secrets.token_hex(3)
    width = max(3, len(str(count - 1)))
    names = [f"{prefix}-{run}-{n:0{width}d}" for n in range(count)]
    # The longest name is checked now, with every field: a bad one fails before any request.
    template = ComputerSpec(workspace_id=workspace_id, name=names[-1], **fields)
    return _NamedSpecs(template, names)


class _NamedSpecs(Sequence[ComputerSpec]):
    """``count`` specs alike but for their names, each made when it is asked for.

    The names are distinct, and the template already passed every check.
    """

    def __init__(self, template: ComputerSpec, names: list[str]) -> None:
        self._template = template
        self._names = names

    def __len__(self) -> int:
        return len(self._names)

    @overload
    def __getitem__(self, index: int) -> ComputerSpec: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ComputerSpec]: ...

    def __getitem__(self, index: int | slice) -> ComputerSpec | Sequence[ComputerSpec]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        return attrs.evolve(self._template, name=self._names[index])


async def collect(fleet: Fleet, *, raise_on_failure: bool = False) -> FleetResult:
    """Run a fleet to the end and return what became ready and what failed.

    With ``raise_on_failure``, any failure deletes the ready computers too and
    raises :class:`FleetError`.
    """
    ready: list[LaunchedComputer] = []
    async with fleet:
        try:
            async for launched in fleet:
                ready.append(launched)
        except BaseException:
            # The caller gets an exception, not these: hand them back to the cleanup.
            for launched in ready:
                fleet._give_back(launched.computer)
            raise
        if raise_on_failure and fleet.failures:
            # All or nothing: hand the ready ones back to the fleet's cleanup.
            for launched in ready:
                fleet._give_back(launched.computer)
    result = FleetResult(ready=tuple(ready), failures=tuple(fleet.failures))
    if raise_on_failure and result.failures:
        raise FleetError(
            f"{len(result.failures)} of {len(ready) + len(result.failures)} computers failed",
            [f.error for f in result.failures],
            ready=len(ready),
        )
    return result


async def reap(
    computers: Computers, prefix: str, *, workspace_id: str | None = None, concurrency: int = 16
) -> list[Computer]:
    """Delete every computer whose name starts with ``{prefix}-``: a crashed run's leftovers.

    Returns the computers deleted.
    """
    check_text("prefix", prefix, max_length=MAX_NAME_LENGTH)
    doomed = [c for c in await computers.list(workspace_id) if c.name.startswith(prefix + "-")]
    gate = asyncio.Semaphore(concurrency)

    async def delete(computer: Computer) -> None:
        async with gate:
            await computers.delete(computer, missing_ok=True)

    async with asyncio.TaskGroup() as group:
        for computer in doomed:
            group.create_task(delete(computer))
    return doomed
