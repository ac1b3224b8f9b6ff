"""The emulator's counters: what clients did, for tests and benchmarks (:class:`Counters`)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loop_lag import LoopLagMonitor

__all__ = ["Counters"]


class Counters:
    """What the emulator has seen, for tests and benchmarks.

    Dict keys are computer ids, ``"METHOD /route/{pattern}"`` strings or HTTP
    statuses. ``healthy_at`` / ``ready_at`` hold clock values (the emulator's
    clock, ``time.monotonic`` by default). ``healthy_at`` is the latest
    moment each computer became running; it is settled lazily on read.

    Health probes: ``health_probes`` counts them per computer;
    ``health_inflight_max`` is the most that were in flight at once for each
    computer (one is in flight from its arrival to its answer, a fault's delay
    included): a client that keeps probing a computer before the previous
    probe answered shows there as more than 1.

    Server: ``loop_lag`` is the event-loop lag monitor when the config turns
    it on (its summary is ``loop_lag_ms`` in :meth:`to_dict`, else ``None``);
    :meth:`reset` clears its samples. :meth:`to_dict` also says how much CPU
    the process used since the last reset (``process_cpu_seconds``, every
    thread's, so an emulator run inside a test counts the test's too) and how
    long that was (``seconds_since_reset``): near one CPU second a second, the
    emulator's one event loop is busy all the time, and its answers queue. And
    the process's full garbage collections since the last reset
    (``gc_full_collections``: each stops the event loop, for tens of
    milliseconds in a big process), and how many objects they skip because
    they were frozen (``gc_frozen_objects``: the standalone emulator freezes
    what its start made).

    Desktop sockets: ``ws_connections`` counts the sockets that passed auth,
    the running check and their parameters, per socket name;
    ``ws_rejections`` counts refused ones by close code (4401, 4404, 4500,
    1008, 1001, and 1011 for a desktop that cannot be served) or HTTP status
    (401); ``ws_events_dropped`` counts events a slow ``/ws/events`` consumer
    lost to its full buffer.

    Desktop REST actions: ``actions`` counts the accepted ones per endpoint
    (``screenshot``, ``click``, ``drag``, ``type``, ``key``, ``scroll``,
    ``wait``, ``bash``, ``exec``; platform and proxy routes alike);
    ``screenshots`` the screenshots taken, ``bash_runs`` / ``exec_runs`` the
    processes started, ``uploads`` the files uploaded.
    """

    def __init__(
        self,
        *,
        live: Callable[[], int] | None = None,
        settle: Callable[[], None] | None = None,
    ) -> None:
        self._live = live
        self._settle = settle
        self.creates = 0
        self.create_attempts = 0
        self.clones = 0
        self.deletes = 0
        self.faults_injected = 0
        self.health_probes: dict[str, int] = {}
        self.health_inflight_max: dict[str, int] = {}
        # Probes in flight now: not a counter, so a reset leaves it alone.
        self._health_inflight: dict[str, int] = {}
        self.loop_lag: LoopLagMonitor | None = None
        self.requests: dict[str, int] = {}
        self.responses_by_status: dict[int, int] = {}
        self.ready_at: dict[str, float] = {}
        self._healthy_at: dict[str, float] = {}
        self.ws_connections: dict[str, int] = {}
        self.ws_rejections: dict[int, int] = {}
        self.ws_events_dropped = 0
        self.actions: dict[str, int] = {}
        self.screenshots = 0
        self.bash_runs = 0
        self.exec_runs = 0
        self.uploads = 0
        self._since = _since()

    def bind(self, *, live: Callable[[], int], settle: Callable[[], None]) -> None:
        """Read ``live`` from a store, and let it settle ``healthy_at`` before each read."""
        self._live = live
        self._settle = settle

    def mark_healthy(self, computer_id: str, at: float) -> None:
        """Record that the computer became running at clock time ``at`` (the store settles)."""
        self._healthy_at[computer_id] = at

    def probe_started(self, computer_id: str) -> None:
        """A health probe of the computer arrived (pair with :meth:`probe_ended`)."""
        now = self._health_inflight.get(computer_id, 0) + 1
        self._health_inflight[computer_id] = now
        if now > self.health_inflight_max.get(computer_id, 0):
            self.health_inflight_max[computer_id] = now

    def probe_ended(self, computer_id: str) -> None:
        """A health probe of the computer was answered (or dropped)."""
        left = self._health_inflight.get(computer_id, 0) - 1
        if left > 0:
            self._health_inflight[computer_id] = left
        else:
            self._health_inflight.pop(computer_id, None)

    @property
    def live(self) -> int:
        """Computers that exist right now (not reset by :meth:`reset`)."""
        return self._live() if self._live is not None else 0

    @property
    def healthy_at(self) -> dict[str, float]:
        """Clock time at which each computer (last) became running."""
        if self._settle is not None:
            self._settle()
        return self._healthy_at

    def reset(self) -> None:
        """Zero every counter and clear the loop lag's samples.

        ``live`` reflects the store and is unaffected, and so are the probes
        in flight right now (they still end).
        """
        self.creates = self.create_attempts = self.clones = self.deletes = 0
        self.faults_injected = 0
        self.health_probes.clear()
        self.health_inflight_max.clear()
        if self.loop_lag is not None:
            self.loop_lag.reset()
        self.requests.clear()
        self.responses_by_status.clear()
        self.ready_at.clear()
        self._healthy_at.clear()
        self.ws_connections.clear()
        self.ws_rejections.clear()
        self.ws_events_dropped = 0
        self.actions.clear()
        self.screenshots = self.bash_runs = self.exec_runs = self.uploads = 0
        self._since = _since()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot (status keys become strings)."""
        return {
            "creates": self.creates,
            "create_attempts": self.create_attempts,
            "clones": self.clones,
            "deletes": self.deletes,
            "live": self.live,
            "faults_injected": self.faults_injected,
            "health_probes": dict(self.health_probes),
            "health_inflight_max": dict(self.health_inflight_max),
            "requests": dict(self.requests),
            "responses_by_status": {str(k): v for k, v in self.responses_by_status.items()},
            "ready_at": dict(self.ready_at),
            "healthy_at": dict(self.healthy_at),
            "ws_connections": dict(self.ws_connections),
            "ws_rejections": {str(k): v for k, v in self.ws_rejections.items()},
            "ws_events_dropped": self.ws_events_dropped,
            "actions": dict(self.actions),
            "screenshots": self.screenshots,
            "bash_runs": self.bash_runs,
            "exec_runs": self.exec_runs,
            "uploads": self.uploads,
            "loop_lag_ms": None if self.loop_lag is None else self.loop_lag.summary(),
            "process_cpu_seconds": round(time.process_time() - self._since[0], 6),
            "seconds_since_reset": round(time.monotonic() - self._since[1], 6),
            "gc_full_collections": _full_collections() - self._since[2],
            "gc_frozen_objects": gc.get_freeze_count(),
        }


def _full_collections() -> int:
    """The process's generation-2 collections so far."""
    return int(gc.get_stats()[2]["collections"])


def _since() -> tuple[float, float, int]:
    """Where the per-reset figures start: CPU, wall clock, full collections."""
    return time.process_time(), time.monotonic(), _full_collections()
