"""The readiness race: health probes against one deadline, paced by what the server answers.

A computer that boots in ~300 ms should be reported ready a few milliseconds
after it is, without hammering the API, at any fleet size. The probes are
therefore *scheduled*, and the schedule adapts to the server the way TCP
adapts to a path:

* **One probe in flight per computer.** The next probe is sent when the
  previous one has answered (and its spacing has passed). A probe slower than
  the retransmission timeout (:attr:`RttEstimator.rto`, from the smoothed
  round-trip time and its variation) is abandoned and replaced, so a stuck
  connection costs one RTO, not a whole probe timeout; the RTO doubles after
  each such timeout, so a congested server is not answered with more probes.
* **Probes are placed where boots end.** :class:`BootModel` keeps the boot
  durations this session has seen, and the boots still running (in a burst the
  first boots seen are the fastest: the running ones move the window's end
  out). Nothing is sent before the boot is likely to be over; across the
  window where boots end (their 0.5th to 99.9th percentile, each side widened
  by its own spread while samples are few) probes go out densely, never
  sparser than a 10 ms polling loop (a tenth of the window apart, 5-6 ms for a
  300 ± 20 ms boot; a crowd of boots shares a fleet rate instead, below), with
  a pause after each answer when the server queues them; when the finished
  boots spread over a long tail, the pause makes the probes' period a share of
  that loop's (all of it for a boot younger than the median, less past it,
  where boots end most often; and never more than 6,400 probes a second for
  all the boots in progress together, past 64 of them a period 2 ms longer
  for every 7 more, so a fleet of hundreds of long boots does not poll each
  every 10 ms: :meth:`ProbePlan.rest`). A crowd of boots
  ending together shares a fleet rate too: all together, no more than 12,800
  probes a second (10 ms apart at 128 boots in progress, 20 ms at 256;
  :meth:`ProbePlan.dense_spacing`). The window is learned from each boot's
  bounds (it ended after the last "not ready" and before the winning probe):
  its start from when boots ended at the latest, its end from when they ended
  at the earliest, so that boots seen between sparse probes do not widen it by
  their gaps (a boot known to within 20 ms is taken as exact). Past a narrow
  window, the gaps grow gently up to a few round-trip times, so a late boot is
  still found within a few RTTs; past a long tail's, whose end is only the
  longest boot seen yet, the pace stays. Until the model has seen enough boots
  (12; or 6 that ended within 50 ms of each other, while fewer than 12 are in
  progress: a small fleet's first wave)
  the window is wide (from a tenth of Orgo's published 300 ms to ten times
  it), probed 7 ms apart from half to twice that time and 10 ms apart
  elsewhere, sparser still in a burst of hundreds
  (:meth:`BootModel.prior_spacing`); the first boot a fleet sees wakes its
  sparse probes, and the computers of that age go dense at once. In a
  fleet, until that first boot, only its 32 oldest boots in progress probe
  (its scouts); the others hold their first probe until it is seen, then
  probe from the age at which it ended (:attr:`ProbePlan.scouting`).
* **This process's own lag is not the server's queue.** A client driving
  hundreds of computers on one event loop reads its answers late, so their
  round trip rises while the server idles. How late the loop fires a due
  probe is measured (:attr:`RttEstimator.local_lag`), and only the rest of
  the rise counts as queueing (:attr:`RttEstimator.queueing`). The probes
  themselves go over a lean transport (``_probe.py``): a pre-built GET on a
  kept-alive connection, its status parsed in the protocol.
* **Each computer has its own phase**, and a fleet's probes wait on a shared
  2 ms clock: computers created together neither fire in the same
  millisecond nor each wake the loop alone.
* **Probes are aimed at the server's clock.** The boot starts when the server
  handles the create, which its ``created_at`` stamp says on the server's
  clock; :class:`ServerClock` learns to read that clock from the creates'
  round trips (:func:`boot_start`), so an answer read late does not move the
  boot's start. A probe observes the computer when it reaches the server:
  half the quickest round trip after it is sent, plus the server's queue
  (:attr:`RttEstimator.one_way`; the rest of a slow round trip is the answer
  waiting for a busy client to read it). The schedule is shifted by that
  much, and what the model learns is read from each probe's own send time.
* **A fleet shares one budget** (:class:`ProbeBudget`): the probes in flight
  across all its computers are bounded by a window that shrinks when answers
  come back slower than the server's unloaded round trip, and grows back when
  they do not (as TCP Vegas does), so a fleet of hundreds does not queue its
  own probes in the server.

The schedule itself is sans-I/O (:class:`ProbePlan`): it answers "when is the
next probe due" from the clock readings it is given, so tests can drive it
with a simulated server.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
from typing import TYPE_CHECKING, Final, Protocol

import attrs

from ._boot_model import (
    HOLD_BOOTS,
    MAX_DENSE_SPACING,
    MIN_DENSE_SPACING,
    PRIOR_NEAR_SPACING,
    SCOUTS,
    BootModel,
)
from ._checks import check_seconds, optional
from ._clocks import RttEstimator, boot_start, server_stamp
from ._config import Timeouts
from ._slots import Slots
from .errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ComputerFailedError,
    NotFoundError,
    OrgoError,
    PermissionDeniedError,
    ReadyTimeout,
)
from .models import Computer, ComputerStatus, LaunchTiming

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._session import Session

__all__ = ["BootModel", "ProbeBudget", "ReadyInfo", "RttEstimator"]


# The pause after an answer, per second of queueing the RTT shows (see ProbePlan.rest).
QUEUE_REST_FACTOR: Final = 1.0
# ...once it exceeds this.
QUEUE_TOLERANCE: Final = 0.010
# Windows wider than this get a pause after each answer too (full at twice this).
WIDE_WINDOW: Final = 0.100
# Across a long window, the probes' period as a share of a 10 ms polling loop's period:
# for a boot younger than the median, and for one older.
LONG_EARLY_SHARE: Final = 0.97
LONG_LATE_SHARE: Final = 0.7
# What a polling loop's own client adds to each period beyond the race's round trip: its
# 10 ms timer wakes up to a millisecond late (the event loop waits whole milliseconds),
# and its request goes through a full HTTP client. Measured at 16 on a long tail, the
# loop's period was 11.6-11.8 ms where 10 ms and the race's round trip came to 10.9-11.1:
# 0.5-0.9 ms more, taken as 1 ms (1.5 ms put the lag p99 at 32 above the loop's).
LOOP_OVERHEAD: Final = 0.001
# ...and a fleet's long tail, all its boots in progress together, probed at most this many
# times a second (64 computers polled every 10 ms): past 64, each one's period grows...
LONG_TAIL_RATE: Final = 6400.0
LONG_TAIL_CROWD: Final = 64
# ...by a second for this many more boots in progress (2 ms for every 7 more: 28 ms at 128
# boots, 65 ms at 256), as a polling loop's period grows when one client drives that many.
LONG_TAIL_MORE: Final = 3500.0
# A fleet's boots in progress, all together, are probed densely at most this many times a
# second (64 computers every 5 ms): past that crowd, each one's dense spacing grows with it.
DENSE_RATE: Final = 12800.0
# Past the window the gap grows by this factor per probe...
LATE_GROWTH: Final = 1.4
# ...up to a few round trips (and at least this much).
LATE_GAP_FLOOR: Final = 0.025
LATE_GAP_RTTS: Final = 2.0
# The queueing (RTT above the smallest seen) at which a fleet's probe budget shrinks.
BUDGET_QUEUEING: Final = 0.020
# Status checks (a failed boot fails fast): at the window's end, then this often.
STATUS_CHECK_EVERY: Final = 2.0
# A boot start read again from a sharper server clock moves when it moved this much.
MOVE_START: Final = 0.0005


@attrs.frozen
class ReadyInfo:
    """How a readiness race was won (times are ``loop.time()`` / ``time.monotonic()`` values).

    Attributes:
        since: The instant the boot was taken to start (when the server handled the create).
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

    def timing(self, *, sent: float, answered: float, retries: int) -> LaunchTiming:
        """The :class:`LaunchTiming` of a launch whose create was sent and answered then."""
        return LaunchTiming(
            request_sent=sent,
            create_answered=answered,
            first_probe=self.first_probe,
            ready_detected=self.ready,
            probes=self.probes,
            retries=retries,
        )


class ProbeBudget(Slots):
    """The health probes of a fleet: when they leave, and how many may be in flight at once.

    **When.** Probes wait for their time on a shared clock of ``tick``
    seconds: the probes due in one tick leave together, woken by one timer.
    Spread one by one, each probe would wake an idle server (and this
    process) on its own; grouped by the millisecond, a fleet's probes cost
    far less CPU on both sides, and none leaves more than half a tick from
    its time.

    **How many.** The limit grows by about one per round trip while answers
    come back near the server's unloaded RTT, and shrinks by a quarter (at
    most once per round trip) when they come back much slower: the probes
    then only queue in the server, delaying the creates and each other.
    A probe takes its slot with ``acquire(due)`` and gives it back with
    ``release()``; waiters are served in the order their probes fell due.

    Args:
        limit: The starting limit (the fleet's concurrency is a good one).
        min_limit: The limit never drops below this.
        max_limit: ... nor grows above this.
        tick: The clock's resolution, in seconds.
    """

    def __init__(
        self,
        limit: int = 64,
        *,
        min_limit: int = 8,
        max_limit: int = 1024,
        tick: float = 0.002,
    ) -> None:
        check_seconds("tick", tick, inclusive=False)
        super().__init__(float(max(min_limit, limit)))
        self.tick = tick
        self._ticks: dict[float, list[asyncio.Future[bool]]] = {}
        self._sparse: set[asyncio.Future[bool]] = set()
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.rtt = RttEstimator()
        """The round trips of this budget's probes."""
        self.cuts = 0
        self._last_cut = -math.inf

    def __repr__(self) -> str:
        return f"<ProbeBudget limit={self.limit:.0f} in_flight={self.in_flight} cuts={self.cuts}>"

    async def wait_until(self, due: float, *, sparse: bool = False) -> bool:
        """Sleep until ``due`` (the loop's clock), with the other probes of that tick.

        A ``sparse`` probe (one placed before the fleet has seen any boot end)
        is woken early by :meth:`wake_sparse`; it then returns ``False``: the
        caller should place it again with what was learned.
        """
        loop = asyncio.get_running_loop()
        at = round(due / self.tick) * self.tick
        if at <= loop.time():
            return True
        waiters = self._ticks.get(at)
        if waiters is None:
            waiters = self._ticks[at] = []
            loop.call_at(at, self._wake, at)
        future: asyncio.Future[bool] = loop.create_future()
        waiters.append(future)
        if sparse:
            self._sparse.add(future)
            try:
                on_time = await future
            finally:
                self._sparse.discard(future)
        else:
            on_time = await future
        if on_time:
            self.rtt.woke_late(loop.time() - at)
        return on_time

    def wake_sparse(self) -> None:
        """The first boot was seen: wake the sparse probes, so they go dense from now on."""
        for future in self._sparse:
            if not future.done():
                future.set_result(False)
        self._sparse.clear()

    def _wake(self, at: float) -> None:
        for future in self._ticks.pop(at, ()):
            if not future.done():
                future.set_result(True)

    def observe(self, rtt: float, now: float) -> None:
        """An answered probe: adapt the limit to its round trip."""
        self.rtt.observe(rtt)
        # Answers may queue for up to about a probe spacing: beyond that, more probes
        # in flight only wait in the server's queue, behind each other and the creates.
        # What this process's own busy loop adds is not the server's queue.
        local = 2 * self.rtt.local_lag
        if rtt - local > self.rtt.min_rtt + BUDGET_QUEUEING and self.rtt.queueing > BUDGET_QUEUEING:
            self.congested(now)
        elif self.in_flight >= self.limit - 1:  # only grow a limit that is in use
            self.limit = min(self.max_limit, self.limit + 1 / self.limit)

    def congested(self, now: float) -> None:
        """Slow down: answers are late, or the server asked us to (429)."""
        if now - self._last_cut < self.rtt.srtt:
            return
        self._last_cut = now
        self.cuts += 1
        self.limit = max(self.min_limit, self.limit * 0.75)


@attrs.define
class ProbePlan:
    """The schedule of one computer's probes: when each is due, sans I/O.

    Times are on the caller's clock. ``t0`` is the boot's start (server side).
    The plan reads the model and the RTT afresh at every step, so it follows
    what the session learns while it runs.
    """

    t0: float
    model: BootModel
    rtt: RttEstimator
    immediate: bool = False
    """Probe at once (the computer already says it is running)."""
    phase: float = attrs.field(factory=random.random)
    """Where in its spacing this computer's probes fall, from 0 to 1.

    Computers created together share a window: without their own phase, all
    their probes would leave in the same millisecond, every spacing, and queue
    behind each other in the server. Spread over the spacing, they arrive as a
    steady stream. The first probe falls within the window's first spacing, never
    before the window: a probe ahead of it could find only the boots the window
    leaves out on purpose (its ``coverage``), and every computer would pay for it.
    """
    scouting: bool = False
    """Whether a fleet's first boot wakes this plan (a :class:`ProbeBudget` does).

    Until the fleet sees any boot, only its oldest 32 boots in progress (its
    scouts, :meth:`BootModel.scout`) probe, at the prior's pace for 32
    computers; the others hold their first probe until the first boot is seen
    (which wakes them, :meth:`woken`) or until they are twice Orgo's boot time
    old. A burst of 256 then probes its first boot out at the rate it would
    have spread over all of them, but each computer that holds is probed from
    the age at which boots end, not every 56-80 ms from 30 ms on.
    """
    held: bool = False
    """Whether the first probe held for the fleet's first boot (see ``scouting``)."""
    after_first_boot: bool = False
    """Whether the first probe was placed by the fleet's first boot, not by the window.

    A first probe that wins then says nothing of where the window starts.
    """
    sent: int = 0
    last_sent: float | None = None
    gap: float = 0.0
    sparse: bool = False
    """Whether the next probe was placed sparsely (no boot of the burst seen yet)."""
    woke: float | None = None
    last_check: float | None = None

    def next_due(self, now: float, answered: float | None = None) -> float:
        """When the next probe is due, given the time and when the previous one was answered.

        Never before ``answered``: one probe in flight at a time.
        """
        start, end, spacing = self.model.window(now)
        lead = self.rtt.one_way
        window_start = self.t0 + start - lead
        # The prior window is wide because nothing is known yet, and boots still
        # running hold a learned window's end open: neither means that boots
        # spread widely. Only what the finished boots span paces the probes.
        width = 0.0
        learned = self.model.learned
        if learned:
            finished_start, finished_end, _ = self.model.window()
            width = finished_end - finished_start
        # A crowd of boots shares the fleet's dense rate (see dense_spacing()).
        spacing = self.dense_spacing(spacing)
        if self.last_sent is None:
            # The age at which the fleet's first boot ended (0 once the window is
            # learned; infinite before any boot is seen).
            first = self.model.first_boots() if self.scouting else 0.0
            # A computer that held for it is first probed at that age: woken all at
            # once, those younger must not all probe in the same few milliseconds.
            self.after_first_boot = (
                self.held and math.isfinite(first) and self.t0 + first - lead > window_start
            )
            begin = self.t0 + first - lead if self.after_first_boot else window_start
            due = self.t0 if self.immediate else begin + (1 - self.phase) * spacing
            # Before it, only the fleet's scouts probe; the others hold until it wakes
            # them, then go at their phase of one spacing (see woken()).
            self.sparse = not self.immediate and math.isinf(first) and not self.model.scout(self.t0)
            if self.sparse:
                self.held = True
                self.gap = spacing
                due = max(due, self.t0 + HOLD_BOOTS * self.model.default - lead)
        else:
            # When the previous probe was seen by the server, relative to the boot.
            seen = self.last_sent + lead - self.t0
            # A long tail's window ends at the longest boots seen so far, short of
            # where the tail ends: past it, boots are paced as inside it.
            if seen < end or width > WIDE_WINDOW:
                # Before a first burst's first boot, sparser; from it on, dense.
                # Sparse while the next dense probe would still come before the age
                # at which the first boot of a burst ended; never sparse past it.
                first = self.model.first_boots()
                self.sparse = seen + spacing < first
                if self.sparse:
                    # Once a boot has been seen, those younger than the earliest one
                    # seen are unlikely to be over, near Orgo's time or not.
                    # A fleet's scouts probe at the prior's pace for that many boots.
                    scouts = self.scouting and not math.isfinite(first)
                    prior = self.model.prior_spacing(
                        None if math.isfinite(first) else seen,
                        probing=SCOUTS if scouts and self.model.scout(self.t0) else None,
                    )
                    self.gap = min(prior, max(spacing, first - seen))
                elif not learned:
                    # Past the age at which a boot of the burst ended, before the
                    # window is learned: as dense as the prior is near Orgo's time.
                    self.gap = self.dense_spacing(min(spacing, PRIOR_NEAR_SPACING))
                elif width > WIDE_WINDOW:
                    # Boots spread over a long tail: the pause after each answer
                    # paces the probes (see rest()), not the window's spacing.
                    self.gap = MIN_DENSE_SPACING
                else:
                    self.gap = spacing
            else:
                self.sparse = False
                late_cap = max(LATE_GAP_FLOOR, LATE_GAP_RTTS * self.rtt.srtt)
                self.gap = min(late_cap, max(spacing, self.gap) * LATE_GROWTH)
            # The window may have moved later while we waited (the model learned).
            due = max(self.last_sent + self.gap, min(window_start, self.last_sent + 1.0))
        if self.woke is not None:
            # Woken from a sparse sleep: a probe already overdue goes at this
            # computer's phase of one spacing, not in the same millisecond as
            # every other computer of the burst; one still ahead keeps its time.
            if due < self.woke:
                due = self.woke + self.phase * min(spacing, self.gap)
            self.woke = None
        if answered is None:
            return due
        rest = self.rest(width, due + lead - self.t0, now, bounds=(start, end))
        return max(due, answered + rest)

    def dense_spacing(self, spacing: float) -> float:
        """``spacing``, or wider when the boots in progress together would probe too fast.

        Probing every boot of a crowd of hundreds a few milliseconds apart
        costs this process and the server more than it finds sooner: once the
        boots in progress would together be probed more than ``DENSE_RATE``
        times a second (12,800: past about 60 boots at a 300 ± 20 ms boot's
        spacing), each one's spacing grows with them (10 ms at 128 boots in
        progress, 20 ms at 256).
        """
        return max(spacing, self.model.in_progress / DENSE_RATE)

    def woken(self, now: float) -> None:
        """The fleet saw its first boot while this plan slept sparsely: go dense now.

        The computers of a burst all wake together: those whose next probe is
        already overdue each probe at their own phase of one dense spacing,
        not all in the same millisecond (see :meth:`next_due`).
        """
        self.woke = now

    def rest(
        self,
        width: float = 0.0,
        age: float = 0.0,
        now: float | None = None,
        *,
        bounds: tuple[float, float] | None = None,
    ) -> float:
        """How long to wait after an answer before the next probe.

        Up to a 10 ms polling loop's pause, by the larger of two signals (and
        across a long tail, at least what keeps all the boots in progress
        probed no more than ``LONG_TAIL_RATE`` times a second, the rate of 64
        computers polled every 10 ms, and past 64 a period that grows by 2 ms
        for every 7 more: :meth:`long_tail_period`). *Queueing*: as the smoothed RTT rises
        above the smallest one seen (beyond what this process's own busy loop explains:
        :attr:`RttEstimator.queueing`), so that a queueing server is never
        probed harder than that loop would probe it: the boots in their dense
        window all together, against that loop over every boot in progress
        (:meth:`BootModel.share`), so a later wave's few boots are not paused
        for a queue that the next wave's creates made. *Width*: a window of
        100 ms or less is crossed at full speed (a handful of probes where boots
        are sure to end), one of 200 ms or more at a share of that loop's period
        (10 ms, its answer, and the millisecond its own client adds: ``LOOP_OVERHEAD``)
        at any RTT: boots spread over a long tail, and
        probing faster than the loop would spend more than it does. The share
        is 97 % while the boot is younger than the median boot, 70 % after.
        """
        queueing = self.rtt.queueing
        # A few milliseconds of queueing come and go with every burst of creates:
        # a pause for them would only make this race later than the polling loop.
        queueing = QUEUE_REST_FACTOR * queueing if queueing > QUEUE_TOLERANCE else 0.0
        if queueing and now is not None:
            # Only as long as keeps the boots probed densely, all together, from
            # probing faster than a 10 ms loop of every boot in progress would: a
            # few of them (a later wave's) are not what queues the server (the
            # next wave's creates are), and pausing them would only find them late.
            # The window's start and end at ``now``, from the caller if it has them.
            start, end = bounds if bounds is not None else self.model.window(now)[:2]
            srtt = self.rtt.srtt
            dense = self.model.share(now, start, end)
            queueing = min(queueing, max(0.0, dense * (MAX_DENSE_SPACING + srtt) - srtt))
        spread = min(1.0, max(0.0, (width - WIDE_WINDOW) / WIDE_WINDOW))
        if spread == 0.0:
            return min(MAX_DENSE_SPACING, queueing)
        # Across a long tail, a share of the polling loop's period (10 ms, an answer
        # and what the loop's own client adds): about all of it while the boot is
        # younger than most, less once it is older than half of them (where boots
        # end most often).
        srtt = self.rtt.srtt
        share = LONG_EARLY_SHARE if age < self.model.median(now) else LONG_LATE_SHARE
        pause = MAX_DENSE_SPACING + LOOP_OVERHEAD  # the loop's period, less its answer
        paced = max(0.0, share * (pause + srtt) - srtt)
        rest = min(pause, max(queueing, spread * paced))
        # Hundreds of long boots must not each be polled every 10 ms.
        return max(rest, spread * (self.long_tail_period() - srtt))

    def long_tail_period(self) -> float:
        """The shortest period (probe to probe) of each boot of a fleet's long tail.

        Up to 64 boots in progress, what keeps them all together under
        ``LONG_TAIL_RATE`` (6,400 probes a second: 10 ms at 64). Past 64, 2 ms
        more for every 7 more boots (28 ms at 128, 65 ms at 256): a 10 ms
        polling loop's period grows about so when one client drives that many
        (measured against it at 128 and 256, the race then still saw boots sooner
        at the p50 and p99, with fewer probes or, once, as many; at 6,400 a second
        it sent more than the loop).
        """
        n = self.model.in_progress
        if n <= LONG_TAIL_CROWD:
            return n / LONG_TAIL_RATE
        return LONG_TAIL_CROWD / LONG_TAIL_RATE + (n - LONG_TAIL_CROWD) / LONG_TAIL_MORE

    def sending(self, now: float) -> bool:
        """A probe goes out now; returns whether a status check should go with it."""
        self.sent += 1
        self.last_sent = now
        # Against the end the finished boots give: boots still running (failed ones
        # among them) must not postpone the check that finds the failed ones.
        _, end, _ = self.model.window()
        past = now + self.rtt.one_way - self.t0 >= end
        if not past:
            return False
        if self.last_check is None or now - self.last_check >= STATUS_CHECK_EVERY:
            self.last_check = now
            return True
        return False


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
    created: tuple[float, float] | None = None,
    boot_model: BootModel | None = None,
    budget: ProbeBudget | None = None,
    probe_timeout: float | None = None,
) -> ReadyInfo:
    """Wait until the computer's ``/proxy/health`` answers 200, or the deadline passes.

    Args:
        session: Where the probes are sent.
        computers: Where the status checks of a late boot are read.
        computer: The computer (its ``instance_id`` and ``status`` are used).
        timeout: Seconds from now to give up; ``None`` waits for ever.
        since: The loop time at which the boot started (see :func:`boot_start`);
            defaults to now.
        created: Instead of ``since``: when the computer's create was sent and
            answered (loop times). The boot's start is then read from the
            computer's ``created_at`` on the server's clock (the session's
            :class:`ServerClock`), and read again as that clock sharpens while
            the probes run.
        boot_model: Where to learn boot times from and record this one; defaults
            to the session's.
        budget: The fleet's shared probe budget, if any (its RTT estimate is
            then the one used).
        probe_timeout: The longest one probe may take; defaults to ``Timeouts.probe``.

    Returns:
        When and how the race was won.

    Raises:
        ReadyTimeout: the deadline passed (with the last answer seen and the probe count).
        ComputerFailedError: the computer is ``error``, ``stopped`` or ``deleting``, or gone.
        AuthenticationError, PermissionDeniedError: the key cannot see it.

    Cancel-safe: there is at most one probe in flight, and cancelling abandons it.
    """
    optional(check_seconds)("timeout", timeout, inclusive=False)
    instance = computer.instance_id or computer.id
    if not instance:
        raise ValueError("computer has no instance_id or id to probe")
    if computer.status.is_failed:
        raise ComputerFailedError(computer_id=computer.id, status=computer.status.value)
    model = boot_model if boot_model is not None else session.boot_model
    rtt = budget.rtt if budget is not None else session.probe_rtt
    loop = asyncio.get_running_loop()
    now = loop.time()
    t0 = now if since is None else since
    clock = session.server_clock
    # The boot's start and its uncertainty, read again as the server's clock sharpens.
    start: Callable[[], tuple[float, float]] | None = None
    t0_spread = 0.0
    if created is not None:
        if since is not None:
            raise ValueError("give since or created, not both")
        create_sent, create_answered = created
        stamp = server_stamp(computer.created_at)
        if stamp is not None:
            clock.observe(create_sent, create_answered, stamp)
        start = functools.partial(
            boot_start, create_sent, create_answered, rtt, stamp=stamp, clock=clock
        )
        t0, t0_spread = start()
    deadline = None if timeout is None else now + timeout
    ceiling = probe_timeout if probe_timeout is not None else session.timeouts.probe
    path = f"/desktops/{instance}/proxy/health"
    running = computer.status == ComputerStatus.RUNNING
    plan = ProbePlan(t0=t0, model=model, rtt=rtt, immediate=running, scouting=budget is not None)

    model.running(t0)
    if budget is not None:
        model.wake_on_first_boot(budget)
    checks = 0
    first_probe: float | None = None
    first_late = 0.0  # how long after it was due the first probe left
    last_answer: str | None = None
    last_miss_seen: float | None = None  # when the server saw the latest "not ready"
    answered: float | None = None
    in_flight = False
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                if start is not None:
                    t0, t0_spread = _moved(plan, start())
                due = plan.next_due(loop.time(), answered)
                if budget is not None:
                    if not await budget.wait_until(due, sparse=plan.sparse):
                        plan.woken(loop.time())  # the fleet saw its first boot
                        continue
                    await budget.acquire(due)
                else:
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        rtt.woke_late(loop.time() - due)
                # One probe, inline (no task, no extra coroutine): given up after the
                # RTO, so one stuck connection costs one RTO, not a probe timeout.
                limit = rtt.rto if ceiling is None else min(ceiling, rtt.rto)
                sent = loop.time()
                response: int | None = None
                in_flight = True  # counted even if the deadline cuts it: it left
                try:
                    response = await session.probe(path, timeout=limit)
                except APITimeoutError:
                    rtt.timed_out()
                except APIConnectionError:
                    pass
                finally:
                    if budget is not None:
                        budget.release()
                if first_probe is None:
                    first_probe = sent
                    first_late = sent - due
                check = plan.sending(sent)
                in_flight = False
                answered = loop.time()
                if response is None:  # no answer: timed out or the connection failed
                    last_answer = "no answer"
                else:
                    rtt_sample = answered - sent
                    if budget is not None:
                        budget.observe(rtt_sample, answered)
                    else:
                        rtt.observe(rtt_sample)
                    if response == 200:
                        break
                    last_answer = str(response)
                    last_miss_seen = sent + rtt.one_way
                    if response in (401, 403, 404):
                        raise _fatal(computer, response)
                    if response == 429 and budget is not None:
                        budget.congested(answered)
                if check:
                    checks += 1
                    await _check_status(computers, computer, ceiling)
    except TimeoutError:
        raise ReadyTimeout(
            computer_id=computer.id,
            last_status=last_answer,
            probes=plan.sent + int(in_flight),
            elapsed=loop.time() - now,
        ) from None
    finally:
        model.done(t0)
    ready = answered
    assert ready is not None and plan.last_sent is not None
    if start is not None:
        # The sharpest reading of the boot's start, to learn from. Not through
        # _moved(): the boot is no longer in progress, and must not be again.
        t0, t0_spread = start()
    if not running:
        first_boot = model.samples == 0
        won_seen = plan.last_sent + rtt.one_way
        if last_miss_seen is None or last_miss_seen < t0:
            # The first probe won: the boot ended some time before. Sent on time,
            # it says the window starts too late: one spacing earlier is learned,
            # so that a window that starts too late moves earlier instead of
            # confirming its own lateness. Sent late (this loop was busy), it
            # says nothing of the window, and nothing is learned; nor when it was
            # placed by the fleet's first boot rather than by the window.
            spacing = plan.dense_spacing(model.window()[2])
            if first_late <= spacing and not plan.after_first_boot:
                model.observe(max(0.0, won_seen - t0 - spacing), t0_spread + spacing)
        else:
            # The boot ended between the last "not ready" the server saw and the winner.
            ended = (last_miss_seen + won_seen) / 2 - t0
            model.observe(ended, t0_spread + won_seen - last_miss_seen)
        if first_boot:
            model.first_boot_seen()  # wakes every fleet's sparse probes, this one's too
    return ReadyInfo(
        since=t0, first_probe=first_probe, ready=ready, probes=plan.sent, status_checks=checks
    )


def _moved(plan: ProbePlan, start: tuple[float, float]) -> tuple[float, float]:
    """Move a plan's boot start (and the model's record of it) to a new ``(start, spread)``."""
    t0, spread = start
    if abs(t0 - plan.t0) > MOVE_START:
        plan.model.done(plan.t0)
        plan.model.running(t0)
        plan.t0 = t0
    return plan.t0, spread


_TIMEOUTS_CACHE: dict[float, Timeouts] = {}


def probe_timeouts(seconds: float) -> Timeouts:
    """Every phase bounded by ``seconds``: the timeouts of one health probe."""
    # Timeouts objects are frozen and validated: reuse them (rounded to the ms).
    key = round(seconds, 3) or 0.001
    cached = _TIMEOUTS_CACHE.get(key)
    if cached is None:
        if len(_TIMEOUTS_CACHE) > 4096:
            _TIMEOUTS_CACHE.clear()
        cached = _TIMEOUTS_CACHE[key] = Timeouts(
            connect=key, read=key, request=key, total=key, probe=key
        )
    return cached


async def _check_status(computers: StatusReader, computer: Computer, timeout: float | None) -> None:
    try:
        current = await computers.get(computer.id, timeout=timeout)
    except NotFoundError:
        raise ComputerFailedError(computer_id=computer.id, status="deleted") from None
    except OrgoError:
        return  # a status check is a hint; the probes decide
    if current.status.is_failed:
        raise ComputerFailedError(computer_id=computer.id, status=current.status.value)


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
