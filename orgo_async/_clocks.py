"""Clocks of the readiness race: probe round trips, and the server's own clock.

:class:`RttEstimator` smooths the health probes' round trips and splits them
into the way to the server and the way back; :class:`ServerClock` learns
where the server's wall clock falls on this process's loop clock from the
creates' ``created_at`` stamps; :func:`boot_start` places a boot's start
with both. :mod:`orgo_async.health` schedules the probes with them.
"""

from __future__ import annotations

import collections
import math
from datetime import UTC, datetime

from ._checks import check_seconds

__all__ = ["RttEstimator", "ServerClock", "boot_start", "server_stamp"]


class RttEstimator:
    """The smoothed round-trip time of health probes and its variation (RFC 6298).

    Args:
        initial: The RTT assumed before any sample (a loopback-ish guess).
        min_rto, max_rto: Bounds of the retransmission timeout.
    """

    def __init__(
        self, *, initial: float = 0.005, min_rto: float = 0.1, max_rto: float = 2.0
    ) -> None:
        check_seconds("initial", initial, inclusive=False)
        self.srtt = initial
        """The smoothed RTT (seconds)."""
        self.rttvar = initial / 2
        """Its mean deviation."""
        self.min_rtt = math.inf
        """The smallest RTT seen (the server unloaded)."""
        self.samples = 0
        self.local_lag = 0.0
        """How late this process's event loop wakes a due probe (smoothed): the part of
        a round trip spent here, not in the network or the server's queue."""
        self.min_rto = min_rto
        self.max_rto = max_rto
        self._backoff = 1.0

    def __repr__(self) -> str:
        return (
            f"<RttEstimator srtt={self.srtt * 1000:.1f}ms rttvar={self.rttvar * 1000:.1f}ms "
            f"samples={self.samples}>"
        )

    def observe(self, rtt: float) -> None:
        """Record one round trip (an answered probe)."""
        if not (math.isfinite(rtt) and rtt >= 0):
            return
        if self.samples == 0:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.min_rtt = min(self.min_rtt, rtt)
        self.samples += 1
        self._backoff = 1.0

    def woke_late(self, lateness: float) -> None:
        """A probe due at some instant was sent ``lateness`` seconds after it."""
        if math.isfinite(lateness):
            self.local_lag += 0.125 * (max(0.0, lateness) - self.local_lag)

    @property
    def queueing(self) -> float:
        """How much longer answers take than the server's best, beyond this loop's own lag.

        A busy client (hundreds of computers on one event loop) reads every
        answer late, so its RTT rises although the server is idle; only the
        rest is the server's queue. An answer's delay here counts about twice
        (its send and its reading each wait for the loop).
        """
        if self.samples == 0:
            return 0.0
        return max(0.0, self.srtt - self.min_rtt - 2 * self.local_lag)

    def timed_out(self) -> None:
        """A probe outlived :attr:`rto`: back off (Karn), until the next sample."""
        self._backoff = min(self._backoff * 2, 64.0)

    @property
    def rto(self) -> float:
        """How long a probe may take before it is given up and replaced."""
        base = self.srtt + 4 * self.rttvar
        return min(self.max_rto, max(self.min_rto, base) * self._backoff)

    @property
    def one_way(self) -> float:
        """How long a request takes to reach the server.

        Half the quickest round trip, plus the server's queue (:attr:`queueing`).
        The rest of a round trip is the answer's way back, and the time it
        waits for this process's loop to read it: a busy client's answers are
        read late, but its requests still reach the server at once. Half the
        smoothed RTT before the first sample.
        """
        if self.samples == 0:
            return self.srtt / 2
        return min(self.srtt, self.min_rtt / 2 + self.queueing)

    @property
    def way_back(self) -> float:
        """How long an answer takes from the server to this code: the rest of a round trip."""
        return max(0.0, self.srtt - self.one_way)


class ServerClock:
    """Where the server's wall clock falls on this process's loop clock, from create answers.

    A computer's ``created_at`` is the server's own reading of when it handled
    the create, and so of when the boot started. The server handled it after
    the create was sent and before its answer was read, so the offset between
    the two clocks lies between ``sent - created_at`` and
    ``answered - created_at``. Each create narrows that interval (the quickest
    round trips bound it), so a boot's start is known to within a few
    milliseconds even when its create's answer was read a hundred later,
    behind a burst of others in the server's queue or in this loop (see
    :func:`boot_start`).

    Only the last ``horizon`` seconds of creates count (the two clocks drift
    apart slowly); bounds that no offset satisfies (the server's clock was
    set) start the interval over.

    Args:
        resolution: The stamps' resolution (Orgo's are milliseconds, truncated).
        horizon: How long a create's bounds are kept, in seconds.
    """

    def __init__(self, *, resolution: float = 0.001, horizon: float = 60.0) -> None:
        self.resolution = resolution
        self.horizon = horizon
        self._bounds: collections.deque[tuple[float, float, float]] = collections.deque()
        self.low = -math.inf
        """The offset (loop time minus server time) is at least this..."""
        self.high = math.inf
        """... and at most this."""

    def __repr__(self) -> str:
        return f"<ServerClock creates={len(self._bounds)} width={self.width * 1000:.1f}ms>"

    @property
    def width(self) -> float:
        """How uncertain the offset is (seconds; infinite before any create)."""
        return self.high - self.low

    def observe(self, sent: float, answered: float, stamp: float) -> None:
        """A create sent and answered at these loop times was stamped ``stamp`` (server epoch)."""
        if not (math.isfinite(stamp) and sent <= answered):
            return
        low, high = sent - stamp - self.resolution, answered - stamp
        bounds = self._bounds
        stale = False
        while bounds and bounds[0][0] < answered - self.horizon:
            _, old_low, old_high = bounds.popleft()
            stale = stale or old_low == self.low or old_high == self.high
        if stale:  # a create that set a bound has aged out
            self.low = max((b[1] for b in bounds), default=-math.inf)
            self.high = min((b[2] for b in bounds), default=math.inf)
        if bounds and (low > self.high or high < self.low):
            bounds.clear()  # no offset fits both: the server's clock was set; start over
            self.low, self.high = -math.inf, math.inf
        bounds.append((answered, low, high))
        self.low = max(self.low, low)
        self.high = min(self.high, high)

    def bounds(self, stamp: float) -> tuple[float, float]:
        """The earliest and latest loop time that a server ``stamp`` may stand for."""
        return stamp + self.low, stamp + self.high + self.resolution


def boot_start(
    sent: float,
    answered: float,
    rtt: RttEstimator | None = None,
    *,
    stamp: float | None = None,
    clock: ServerClock | None = None,
) -> tuple[float, float]:
    """When the server most likely started a computer's boot, and how uncertain that is.

    For a create sent and answered at these loop times, returns ``(start,
    spread)``: the moment, and the width of the span it must lie in.
    The server handled the create somewhere in between. A guess: a create
    that waited in a busy server's queue was handled late, just before its
    answer went out, so a probe's way back before the answer
    (:attr:`RttEstimator.way_back`), and never before the create was sent;
    without an estimator, the midpoint.
    Given the create's ``stamp`` (the computer's ``created_at``, in seconds
    since the epoch) and the session's ``clock``, no guess: once the clock
    places the stamp more sharply than the create's own round trip does, the
    middle of the moments both allow.
    """
    guess = (sent + answered) / 2 if rtt is None else max(sent, answered - rtt.way_back)
    if stamp is None or clock is None:
        return guess, answered - sent
    earliest, latest = clock.bounds(stamp)
    if latest - earliest >= answered - sent:
        return guess, answered - sent  # the clock knows no more than this round trip
    # Both are certain: the middle of what the clock and the round trip allow.
    low, high = max(sent, earliest), min(answered, latest)
    if low > high:
        return guess, answered - sent
    return (low + high) / 2, high - low


def server_stamp(moment: datetime | None) -> float | None:
    """A server timestamp in seconds since the epoch (naive ones are UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
