"""The readiness race: health probes against one deadline.

A computer that boots in ~300 ms should be reported ready a few milliseconds
after it is, without hammering the API. The probes are therefore scheduled,
not looped:

* before the expected boot time, nothing is sent (unless the computer already
  says it is running);
* across a window around the expected boot time, probes go out densely;
* after the window, the status is checked once (a failed boot fails fast) and
  probes back off exponentially until the deadline.

The window is learned from the boots the session has observed (a
:class:`BootModel`), starting from Orgo's published ~300 ms. Every probe is its
own task with its own short timeout, so a slow probe overlaps the next instead
of delaying it; the first 200 wins and the others are cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import math
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ._config import Timeouts
from .errors import (
    APIConnectionError,
    AuthenticationError,
    ComputerFailedError,
    NotFoundError,
    OrgoError,
    PermissionDeniedError,
    ReadyTimeout,
)
from .models import Computer, ComputerStatus

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["BootModel", "ReadyInfo"]

# Orgo: "~300 ms with golden snapshots", "boot in under 500ms".
DEFAULT_BOOT_SECONDS = 0.3


@attrs.frozen
class ReadyInfo:
    """How a readiness race was won (times are ``loop.time()`` / ``time.monotonic()`` values).

    Attributes:
        since: The instant the boot was taken to start (usually: the create was answered).
        first_probe: When the first health probe was sent (``None`` if none was needed).
        ready: When the winning probe's 200 was seen.
        probes: Health probes sent.
        status_checks: ``GET /computers/{id}`` calls made to detect a failed boot.
    """

    since: float
    first_probe: float | None
    ready: float
    probes: int
    status_checks: int

    @property
    def elapsed(self) -> float:
        return self.ready - self.since


class BootModel:
    """What this session has learned about boot times, to place the dense probing window.

    Keeps the most recent boot durations (seconds from boot start to the first
    200). With too few of them the window sits around Orgo's published 300 ms.
    """

    def __init__(
        self,
        *,
        default: float = DEFAULT_BOOT_SECONDS,
        keep: int = 256,
        min_spacing: float = 0.004,
        max_spacing: float = 0.015,
        window_probes: int = 6,
    ) -> None:
        if not default > 0:
            raise ValueError(f"default must be > 0; got {default!r}")
        self.default = default
        self.min_spacing = min_spacing
        self.max_spacing = max_spacing
        self.window_probes = window_probes
        self._recent: collections.deque[float] = collections.deque(maxlen=keep)
        self._sorted: list[float] = []

    def __repr__(self) -> str:
        return f"<BootModel samples={len(self._recent)} window={self.window()}>"

    def observe(self, seconds: float) -> None:
        """Record one boot's duration."""
        if not (math.isfinite(seconds) and seconds >= 0):
            return
        if len(self._recent) == self._recent.maxlen:
            old = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(seconds)
        bisect.insort(self._sorted, seconds)

    def window(self) -> tuple[float, float, float]:
        """``(start, end, spacing)`` of the dense window, in seconds after the boot start."""
        data = self._sorted
        if len(data) < 5:
            low, high = self.default * 0.8, self.default * 1.35
        else:
            low = data[int(0.05 * (len(data) - 1))]
            high = data[math.ceil(0.95 * (len(data) - 1))]
        spacing = min(self.max_spacing, max(self.min_spacing, (high - low) / self.window_probes))
        return max(0.0, low - spacing), high + spacing, spacing


def boot_start(sent: float, answered: float) -> float:
    """When a computer's boot began, for a create sent and answered at these instants.

    The server made it somewhere in between: late if the server was slow to
    answer, early if the answer sat in a busy client. The midpoint bounds the
    error by half the create's latency either way, so a slow create does not
    push the probing window past the boot.
    """
    return (sent + answered) / 2


def _schedule(
    start: float, end: float, spacing: float, *, immediate: bool
) -> Iterator[tuple[float, bool]]:
    """Probe offsets from the boot start, each with whether to check the status first.

    Infinite: the caller stops at its deadline.
    """
    if immediate:
        yield 0.0, False
    t = start
    while t < end:
        yield t, False
        t += spacing
    # Past the window: the boot is late or failed. Check the status once, keep
    # the pace for another window's width (late boots are usually only a little
    # late), then back off, with a status check every couple of seconds.
    yield t, True
    late = t + (end - start)
    while t + spacing <= late + 1e-9:
        t += spacing
        yield t, False
    gap = spacing * 2
    last_check = t
    while True:
        t += gap
        gap = min(gap * 1.6, 1.0)
        check = t - last_check >= 2.0
        if check:
            last_check = t
        yield t, check


class StatusReader(Protocol):
    """Reads a computer's current state (``orgo.computers`` is one)."""

    async def get(self, computer: str, *, timeout: float | None) -> Computer: ...


async def wait_ready(
    session: Session,
    computers: StatusReader,
    computer: Computer,
    *,
    timeout: float | None = 120.0,
    since: float | None = None,
    boot_model: BootModel | None = None,
    probe_timeout: float | None = None,
) -> ReadyInfo:
    """Wait until the computer's ``/proxy/health`` answers 200, or the deadline passes.

    Args:
        session: Where the probes are sent.
        computers: Where the status checks of a late boot are read.
        computer: The computer (its ``instance_id`` and ``status`` are used).
        timeout: Seconds from now to give up; ``None`` waits for ever.
        since: The loop time at which the boot started (say, when the create was
            answered); defaults to now.
        boot_model: Where to learn boot times from and record this one; defaults
            to the session's.
        probe_timeout: One probe's timeout; defaults to ``Timeouts.probe``.

    Returns:
        When and how the race was won.

    Raises:
        ReadyTimeout: the deadline passed (with the last answer seen and the probe count).
        ComputerFailedError: the computer is ``error``, ``stopped`` or ``deleting``, or gone.
        AuthenticationError, PermissionDeniedError: the key cannot see it.

    Cancel-safe: cancelling it cancels and awaits the probes in flight.
    """
    instance = computer.instance_id or computer.id
    if not instance:
        raise ValueError("computer has no instance_id or id to probe")
    if computer.status.is_failed:
        raise ComputerFailedError(computer_id=computer.id, status=computer.status.value)
    model = boot_model if boot_model is not None else session.boot_model
    loop = asyncio.get_running_loop()
    now = loop.time()
    t0 = now if since is None else since
    deadline = None if timeout is None else now + timeout
    per_probe = probe_timeout if probe_timeout is not None else session.timeouts.probe
    probe_timeouts = Timeouts(connect=per_probe, read=per_probe, request=per_probe, total=per_probe)
    path = f"/desktops/{instance}/proxy/health"
    start, end, spacing = model.window()
    running = computer.status == ComputerStatus.RUNNING

    probes = 0
    checks = 0
    first_probe: float | None = None
    last_answer: str | None = None
    # The winner settles with (when its 200 arrived, when it was sent).
    winner: asyncio.Future[tuple[float, float]] = loop.create_future()
    last_miss: float | None = None  # when the latest probe that saw "not ready" was sent
    pending: set[asyncio.Task[None]] = set()

    async def probe(sent: float) -> None:
        nonlocal last_answer, last_miss
        try:
            response = await session.send("GET", path, timeouts=probe_timeouts)
        except APIConnectionError as exc:
            last_answer = str(exc)
            return
        except OrgoError as exc:  # a redirect
            _settle(winner, exc)
            return
        if response.status == 200:
            if not winner.done():
                winner.set_result((loop.time(), sent))
            return
        last_answer = f"{response.status}"
        last_miss = sent if last_miss is None else max(last_miss, sent)
        if response.status in (401, 403, 404):
            _settle(winner, _fatal(computer, response.status))

    async def check_status() -> None:
        nonlocal last_answer
        try:
            current = await computers.get(computer.id, timeout=per_probe)
        except NotFoundError:
            _settle(winner, ComputerFailedError(computer_id=computer.id, status="deleted"))
            return
        except OrgoError as exc:
            last_answer = str(exc)
            return
        if current.status.is_failed:
            _settle(
                winner, ComputerFailedError(computer_id=computer.id, status=current.status.value)
            )

    try:
        for offset, check in _schedule(start, end, spacing, immediate=running):
            when = t0 + offset
            if deadline is not None and when >= deadline:
                break
            delay = when - loop.time()
            if delay > 0:
                done, _ = await asyncio.wait((winner,), timeout=delay)
                if done:
                    break
            elif winner.done():
                break
            if check:
                checks += 1
                _spawn(pending, check_status())
            probes += 1
            sent = loop.time()
            if first_probe is None:
                first_probe = sent
            _spawn(pending, probe(sent))
        if not winner.done() and deadline is not None:
            await asyncio.wait((winner,), timeout=max(0.0, deadline - loop.time()))
    finally:
        for task in list(pending):
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if not winner.done():
            winner.cancel()
    if winner.cancelled():
        raise ReadyTimeout(
            computer_id=computer.id,
            last_status=last_answer,
            probes=probes,
            elapsed=loop.time() - now,
        )
    ready, won_sent = winner.result()  # raises the fatal error, if that settled it
    if not running:
        if last_miss is None:
            # The first probe won: the boot ended some time before it was sent. Three
            # quarters of that pulls a window that starts too late earlier, so fast
            # boots are learned instead of the window confirming its own lateness.
            model.observe(0.75 * (won_sent - t0))
        else:
            # The boot ended between the last "not ready" probe and the winner.
            model.observe((max(last_miss, t0) + won_sent) / 2 - t0)
    return ReadyInfo(
        since=t0, first_probe=first_probe, ready=ready, probes=probes, status_checks=checks
    )


def _spawn(pending: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    pending.add(task)
    task.add_done_callback(pending.discard)


def _settle(winner: asyncio.Future[tuple[float, float]], exc: BaseException) -> None:
    if not winner.done():
        winner.set_exception(exc)


def _fatal(computer: Computer, status: int) -> OrgoError:
    if status == 404:
        return ComputerFailedError(computer_id=computer.id, status="deleted")
    cls = AuthenticationError if status == 401 else PermissionDeniedError
    return cls(
        status=status,
        message="the health probe was refused",
        method="GET",
        path=f"/desktops/{computer.instance_id or computer.id}/proxy/health",
    )
