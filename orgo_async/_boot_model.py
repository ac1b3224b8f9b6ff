"""The boot times a session has learned, and where the dense probing window falls.

:class:`BootModel` is what :mod:`orgo_async.health` places its probes by: the
boot durations seen (with how sharply each is known), the boots still in
progress, and from them the window where boots end and the probes' spacing
across it. It does no I/O and reads no clock: callers pass ``now``.
"""

from __future__ import annotations

import bisect
import collections
import math
import weakref
from typing import Final, Protocol

from ._checks import check_seconds

__all__ = ["BootModel"]

# Orgo: "~300 ms with golden snapshots", "boot in under 500ms".
DEFAULT_BOOT_SECONDS: Final = 0.3
# Inside the window, probes are never further apart than a 10 ms polling loop's
# (send to send, that loop's period is its round trip plus 10 ms).
MAX_DENSE_SPACING: Final = 0.010
MIN_DENSE_SPACING: Final = 0.003
# A boot known to within this (its start and its end together) is a sharp sample.
SHARP_SAMPLE: Final = 0.020
# Before any boot is seen (a session's first burst of hundreds), probes at most this far apart.
PRIOR_SPACING: Final = 0.100
# ...growing with the boots waited for past this many...
PRIOR_DENSE_BOOTS: Final = 32
# ...from these: near Orgo's published boot time, and elsewhere.
PRIOR_NEAR_SPACING: Final = 0.007
PRIOR_FAR_SPACING: Final = 0.010
# In a fleet, before any boot is seen, only this many of the boots in progress (the
# oldest) probe, at the prior's pace; the others hold until the first boot is seen...
SCOUTS: Final = 32
# ...or until they are this many times Orgo's published boot time old.
HOLD_BOOTS: Final = 2.0
# Fewer boots than min_samples teach the window once this many all ended within this
# much of each other, while fewer than min_samples boots are in progress (a small fleet
# of like computers learns from its first wave; a wide one waits for min_samples, since
# its first few boots are only its quickest).
FEW_SAMPLES: Final = 6
NARROW_SPREAD: Final = 0.050


class _Recent:
    """The last ``keep`` boots, in arrival order; sorted, and their bounds sorted too.

    A boot known to within ``spread`` ended between ``value - spread / 2``
    (``earliest``) and ``value + spread / 2`` (``latest``). ``exact`` boots
    have no spread: their bounds are ``sorted`` itself.
    """

    def __init__(self, keep: int, *, exact: bool = False) -> None:
        self.values: collections.deque[tuple[float, float]] = collections.deque(maxlen=keep)
        self.sorted: list[float] = []
        self.earliest: list[float] = self.sorted if exact else []
        self.latest: list[float] = self.sorted if exact else []

    def add(self, value: float, spread: float = 0.0) -> None:
        if len(self.values) == self.values.maxlen:
            old, old_spread = self.values[0]
            for data, bound in self._bounds(old, old_spread):
                del data[bisect.bisect_left(data, bound)]
        self.values.append((value, spread))
        for data, bound in self._bounds(value, spread):
            bisect.insort(data, bound)

    def _bounds(self, value: float, spread: float) -> tuple[tuple[list[float], float], ...]:
        if self.earliest is self.sorted:  # exact
            return ((self.sorted, value),)
        half = spread / 2
        return (self.sorted, value), (self.earliest, value - half), (self.latest, value + half)


class Sleeper(Protocol):
    """What waits for a model's first boot (a fleet's :class:`~orgo_async.health.ProbeBudget`)."""

    def wake_sparse(self) -> None: ...


def _nearest(data: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``data`` (nearest rank)."""
    return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]


class BootModel:
    """What this session has learned about boot times, to place the dense probing window.

    Keeps the most recent boot durations (seconds from the server handling the
    create to the computer answering its health probe), and the boots still in
    progress: in a burst the first boots seen are the fastest, so a window
    learned from them alone would end too early. While more than the window's
    tail share of all boots (finished and running) has been running longer than
    the window's end, the end moves out with them (a censored estimate).

    Args:
        default: The boot time assumed before any is seen (Orgo's ~300 ms).
        keep: How many recent boots to keep.
        min_samples: Below this many, the window is the wide prior (from a tenth
            of ``default`` to ten times it); unless there are at least 6, all
            ended within 50 ms of each other, and fewer than ``min_samples``
            boots are in progress: a small fleet of like computers (8 at a
            time) then learns from its first wave. Boots that spread wider, and
            a wider fleet's first wave, wait for ``min_samples`` (the first seen
            are the quickest: a few would place the window too early).
        coverage: The share of boots the dense window covers. Of those it leaves
            out, five in six are the earliest and one in six the latest (its
            quantiles are 0.5 % and 99.9 % by default): an earlier start costs
            every boot a probe, a later end only the boots that run that long,
            and a boot outside the window is found late either way.
        window_probes: About how many probes span the window (the spacing is the
            window's width divided by this, within 3 to 10 ms).
    """

    def __init__(
        self,
        *,
        default: float = DEFAULT_BOOT_SECONDS,
        keep: int = 512,
        min_samples: int = 12,
        coverage: float = 0.994,
        window_probes: int = 10,
    ) -> None:
        check_seconds("default", default, inclusive=False)
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must be between 0 and 1; got {coverage!r}")
        self.default = default
        self.min_samples = min_samples
        self.coverage = coverage
        self.window_probes = window_probes
        self._all = _Recent(keep)
        # Known to within SHARP_SAMPLE, as exact (bounds would pull a long tail's start later).
        self._sharp = _Recent(keep, exact=True)
        self._running: list[float] = []  # the start instants of boots in progress, sorted
        # The fleets whose probes wait for this model's first boot (see first_boot_seen).
        self._sleepers: weakref.WeakSet[Sleeper] = weakref.WeakSet()
        # Goes up with every boot observed: what the caches below are keyed by.
        self._learned = 0
        self._median_cache: tuple[tuple[float, int, int], float] = ((math.nan, 0, -1), 0.0)
        self._window_cache: tuple[tuple[object, ...], tuple[float, float, float, float]] = (
            (),
            (0.0, 0.0, 0.0, 0.0),
        )

    def __repr__(self) -> str:
        start, end, spacing = self.window()
        return (
            f"<BootModel samples={self.samples} window={start * 1000:.0f}.."
            f"{end * 1000:.0f}ms spacing={spacing * 1000:.1f}ms>"
        )

    @property
    def samples(self) -> int:
        return len(self._all.values)

    @property
    def _learned_from(self) -> _Recent:
        """The boots the window is learned from: the sharp ones once there are enough."""
        if self._enough(self._sharp):
            return self._sharp
        return self._all

    def _enough(self, recent: _Recent) -> bool:
        """Whether these boots are enough to learn the window from (see ``min_samples``)."""
        n = len(recent.values)
        if n >= self.min_samples:
            return True
        return (
            n >= FEW_SAMPLES
            and self._small()
            and recent.latest[-1] - recent.earliest[0] <= NARROW_SPREAD
        )

    def _small(self) -> bool:
        """Whether too few boots are in progress to show ``min_samples`` at once."""
        return len(self._running) < self.min_samples

    @property
    def learned(self) -> bool:
        """Whether the window is learned from the boots seen (else it is the wide prior)."""
        return self._enough(self._sharp) or self._enough(self._all)

    @property
    def _sorted(self) -> list[float]:
        return self._learned_from.sorted

    def observe(self, seconds: float, spread: float = 0.0) -> None:
        """Record one boot's duration, known to within ``spread`` seconds.

        A boot whose start or end is known only roughly (more than 20 ms: one
        seen between sparse probes, or started while the server's clock was
        still unknown) is kept, with its bounds (``seconds`` ± ``spread / 2``),
        but the window is learned from the sharp ones alone, taken as exact,
        once there are enough of them (``min_samples``).
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            return
        spread = max(0.0, spread)
        self._all.add(seconds, spread)
        if spread <= SHARP_SAMPLE:
            self._sharp.add(seconds)
        self._learned += 1

    def running(self, t0: float) -> None:
        """A boot that started at ``t0`` is being waited for (see :meth:`done`)."""
        bisect.insort(self._running, t0)

    @property
    def in_progress(self) -> int:
        """How many boots are being waited for."""
        return len(self._running)

    def done(self, t0: float) -> None:
        """The boot that started at ``t0`` is no longer waited for."""
        i = bisect.bisect_left(self._running, t0)
        if i < len(self._running) and self._running[i] == t0:
            del self._running[i]

    def scout(self, t0: float) -> bool:
        """Whether the boot that started at ``t0`` is one of the ``SCOUTS`` oldest in progress.

        Before a fleet has seen any boot, its scouts probe for the first one and
        the others hold (:attr:`ProbePlan.scouting <orgo_async.health.ProbePlan.scouting>`):
        the oldest boots are the likeliest to end first. As they end (or fail),
        the next oldest take their place from their next probe on; a computer
        that holds probes on its own once it is twice Orgo's boot time old.
        """
        return bisect.bisect_left(self._running, t0) < SCOUTS

    def wake_on_first_boot(self, sleeper: Sleeper) -> None:
        """Call ``sleeper.wake_sparse()`` when a boot is first seen (held weakly).

        A fleet's held probes must wake when any fleet of this session sees
        the first boot, not only their own.
        """
        if not self._all.values:
            self._sleepers.add(sleeper)

    def first_boot_seen(self) -> None:
        """A boot was seen while the model had none: wake every fleet waiting for one.

        They stay registered until a boot is learned (one seen late teaches
        nothing: its fleets are woken again by the next).
        """
        for sleeper in list(self._sleepers):
            sleeper.wake_sparse()
        if self._all.values:
            self._sleepers.clear()

    def first_boots(self) -> float:
        """How long after its start the earliest boot seen so far ended (0 once learned).

        Until the model has its samples, probes are sparse before this point:
        in a burst nothing ends before the first boots of the burst do, and
        the first one seen makes every computer of that age probe densely.
        With no boot seen yet, infinity.
        """
        if self.learned:
            return 0.0
        if not self._sorted:
            return math.inf
        return max(0.0, self._sorted[0] - MAX_DENSE_SPACING)

    def prior_spacing(self, age: float | None = None, *, probing: int | None = None) -> float:
        """The probes' spacing before any boot is seen, for a boot ``age`` seconds old.

        Orgo publishes its boot time (``default``): from half of it to twice it,
        where boots most likely end, 7 ms; elsewhere (or with no ``age``),
        10 ms, a polling loop's pace: a long tail's first boots end well
        before Orgo's time, and the first boot a fleet sees wakes the others
        (so seeing it late makes the whole first wave late). Both grow with
        the boots in progress past 32 (up to
        ``PRIOR_SPACING``, 100 ms), so that a burst of hundreds does not spend
        the client's and the server's time probing computers that cannot be
        ready yet: past 32, the burst's probe rate stays that of 32 computers.
        Together they still probe the burst densely (a probe every 0.2 ms
        near Orgo's time, every 0.3 ms elsewhere), so its first boot is seen
        within a millisecond, and in a fleet that wakes them all
        (:meth:`ProbeBudget.wake_sparse`). ``probing``: how many of the boots
        in progress probe this way (all of them by default). A fleet's 32
        scouts (:meth:`scout`) give 32: the others hold, so the scouts probe
        at the pace the whole burst would have shared.
        """
        near = age is not None and self.default / 2 <= age <= self.default * 2
        base = PRIOR_NEAR_SPACING if near else PRIOR_FAR_SPACING
        crowd = (self.in_progress if probing is None else probing) / PRIOR_DENSE_BOOTS
        return min(PRIOR_SPACING, base * max(1.0, crowd))

    def share(self, now: float, low: float, high: float = math.inf) -> float:
        """The share of the boots in progress at ``now`` that are ``low`` to ``high`` seconds old.

        1 with none in progress: a boot waited for alone is all of them.
        """
        running = self._running
        if not running:
            return 1.0
        inside = bisect.bisect_right(running, now - low) - bisect.bisect_left(running, now - high)
        return inside / len(running)

    def median(self, now: float | None = None) -> float:
        """The median boot, counting the boots still in progress at ``now``.

        In a burst the first boots to end are the fastest: the median of those
        alone is too short while most are still running. Each running boot
        lasts at least its age, so while the median falls among the running
        ones it is not known yet: infinity. Cached per millisecond of ``now``.
        """
        running = self._running
        if now is None or not running:
            return self.quantile(0.5)
        key = (round(now, 3), len(running), self._learned)
        if self._median_cache[0] == key:
            return self._median_cache[1]
        data = self._sorted
        k = math.ceil(0.5 * (len(data) + len(running)))  # the median's rank

        def at_most(value: float) -> int:  # boots known or taken to last at most value
            ended = bisect.bisect_right(data, value)
            return ended + len(running) - bisect.bisect_left(running, now - value)

        # The smallest finished boot, and the youngest running boot's age (ages ascend
        # as the start instants descend), with k boots at most that long.
        ages = [now - t for t in reversed(running)]
        value = math.inf
        for values in (data, ages):
            i = bisect.bisect_left(range(len(values)), True, key=lambda j: at_most(values[j]) >= k)
            if i < len(values) and values[i] < value:
                # A running boot as the median: it lasts longer than its age, so unknown.
                value = values[i] if values is data else math.inf
        self._median_cache = (key, value)
        return value

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the kept boots (nearest rank); the default if none."""
        data = self._sorted
        if not data:
            return self.default
        return _nearest(data, q)

    def window(self, now: float | None = None) -> tuple[float, float, float]:
        """``(start, end, spacing)`` of the dense window, in seconds after the boot start.

        ``now`` (the caller's clock, as the ``t0`` given to :meth:`running`) lets
        the boots in progress move the end out.
        """
        start, end, spacing, pad = self._finished_window()
        if now is not None and self._running:
            # The k-th longest of all boots, finished or still running (a running
            # one is at least as long as it has run so far). One straggler alone
            # (or two) does not hold the window open for itself.
            late = (1 - self.coverage) / 6
            k = max(3, math.ceil(late * (len(self._sorted) + len(self._running))))
            ended = self._learned_from.earliest[-k:]  # at least this long
            longest = sorted(ended + [now - t for t in self._running[:k]], reverse=True)
            if len(longest) >= k:
                end = max(end, longest[k - 1] + pad)
        return start, end, spacing

    def _finished_window(self) -> tuple[float, float, float, float]:
        """``(start, end, spacing, pad)`` from the finished boots alone.

        Every probe asks for the window, several times: it is worked out again
        only when a boot has been observed since, a setting was changed, or the
        boots in progress crossed ``min_samples`` (which may decide whether a
        few boots are enough, see :meth:`_enough`).
        """
        key = (
            self._learned,
            self._small(),
            self.default,
            self.coverage,
            self.min_samples,
            self.window_probes,
        )
        if self._window_cache[0] == key:
            return self._window_cache[1]
        n = len(self._sorted)
        early = (1 - self.coverage) * 5 / 6
        late = (1 - self.coverage) / 6
        if not self.learned:
            start, end, spacing = self.default * 0.1, self.default * 10, MAX_DENSE_SPACING
            pad = MIN_DENSE_SPACING
        else:
            # Each side from the boots' bounds: the start from when boots ended at
            # the latest, the end from when they ended at the earliest. From the
            # midpoints alone, boots seen between probes 60 ms apart would widen the
            # window by up to 30 ms each side, and a fleet whose probes are sparse
            # would take its boots for a long tail. (Sharp boots have no bounds.)
            recent = self._learned_from
            mid = self.quantile(0.5)
            low = min(mid, _nearest(recent.latest, early))
            high = max(mid, _nearest(recent.earliest, 1 - late))
            # Few samples say little about the extremes: widen each side by a share
            # of its own spread that shrinks as they accumulate (a quarter of it at 12
            # samples). Each side its own: a long upper tail must not pull the start
            # of the window back to zero.
            floor = 0.005 * high
            shrink = 0.9 / math.sqrt(n)
            pad = MIN_DENSE_SPACING + shrink * max(high - low, floor)
            start = max(0.0, low - MIN_DENSE_SPACING - shrink * max(mid - low, floor))
            end = high + MIN_DENSE_SPACING + shrink * max(high - mid, floor)
            spacing = min(
                MAX_DENSE_SPACING, max(MIN_DENSE_SPACING, (end - start) / self.window_probes)
            )
        self._window_cache = (key, (start, end, spacing, pad))
        return start, end, spacing, pad
