"""The fleet latency benchmark behind ``orgo-async bench``: the runs and their figures.

It launches ``count`` computers with the SDK (``Orgo.fleet``) and, in the same
run against the same server, with a hand-written raw-aiohttp loop doing the
same requests (the *baseline*), then deletes everything it made. The two
alternate per round (SDK first on even rounds, baseline first on odd ones) so
that they share the machine's noise; ratios are what count.

Modes:

* ``sequential``: one computer at a time (concurrency 1);
* ``staggered``: creates paced at one per ``stagger_ms``, at most ``concurrency``
  launches in flight;
* ``burst``: everything at once, bounded by ``concurrency``.

A *sweep* runs the burst mode at several concurrencies, each with its own
count, in one run (``BenchConfig.sweep``): the health race must hold at every
concurrency a user will pick, not at one.

Figures (see ``benchmarks/README.md``), per computer: create latency, create →
ready, ready-detection lag (the emulator's record of when the computer became
healthy → the launcher saw the 200; needs the emulator on this machine, whose
``CLOCK_MONOTONIC`` is the client's), health probes per computer (counted by
the emulator, and by the client itself). Per run: wall time, client CPU
(``time.process_time()`` of this process; an emulator child is not counted)
and the client's full (generation 2) garbage collections, from the first
request to the last computer ready, cleanup excluded; and from the emulator,
whose counters are reset before each run and read after it, the most health
probes one computer had in flight at once and its own event-loop lag (the
spawned emulator runs its loop lag monitor).

Percentiles use the **nearest-rank** method (see
:func:`~orgo_async.cli._format.percentiles`), so every reported figure is one
that was actually measured.

Only timestamps are taken inside the launch loops; every figure is computed
after the run.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import platform
import secrets
import ssl
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import aiohttp
import attrs

from .._client import Orgo
from .._config import env_api_key, env_base_url
from .._version import __version__
from ..errors import MissingAPIKeyError, OrgoError
from ..models import LaunchedComputer
from ._format import ms, percentiles
from ._output import describe
from ._spawn import emulator_process
from ._target import DELETE_CONCURRENCY, delete_computers

log = logging.getLogger("orgo_async.bench")

Mode = Literal["sequential", "staggered", "burst"]
MODES: Final[tuple[Mode, ...]] = ("sequential", "staggered", "burst")
_HEADLINE: Final = "burst"
BootDist = Literal["fixed", "uniform", "long-tail"]
BOOT_DISTS: Final[tuple[BootDist, ...]] = ("fixed", "uniform", "long-tail")
# The spawned emulator's loop lag monitor samples every this many ms: fine enough to
# see a queue of a few ms, cheap enough (200 wakeups a second) not to make one.
MONITOR_LOOP_MS: Final = 5.0


# --------------------------------------------------------------------------- configuration


@attrs.frozen
class SweepPoint:
    """One point of a sweep: a burst launch of ``count`` computers, ``concurrency`` at once."""

    concurrency: int
    count: int


@attrs.frozen(kw_only=True)
class BenchConfig:
    """One benchmark's settings (validated by the command line that built it).

    Attributes:
        count: Computers per launch (per mode, per round, for each of SDK and baseline).
        concurrency: Launches in flight at once (staggered and burst).
        modes: The modes to run, in order.
        sweep: Burst launches at these points instead of ``modes`` (then
            ``count`` and ``concurrency`` do not apply).
        boot_ms, boot_jitter_ms: The spawned emulator's boot time (``boot_ms`` is
            the low end of ``uniform`` and the median of ``long-tail``).
        boot_dist, boot_sigma, boot_max_ms: The spawned emulator's boot time
            distribution (``--boot-dist``; ``--boot-sigma`` for ``long-tail``;
            ``--boot-max-ms``, the high end of ``uniform`` and the cap of
            ``long-tail``, ``None`` for none).
        tls: The spawned emulator serves HTTPS; both launchers trust its certificate.
        stagger_ms: Gap between creates in the staggered mode.
        baseline_poll_ms: The baseline's health polling interval.
        rounds: SDK/baseline pairs per mode (per point).
        seed: Where an emulator's boot time draws start over from (each round
            and point from its own offset of it); ``None`` for a random one.
        ready_timeout: Seconds per computer, from its create's answer.
        emulator: Start the emulator in a child process (else use ``base_url``).
        base_url: The API root when not using a spawned emulator.
        verbose: Let the spawned emulator log at ``info``.
    """

    count: int
    concurrency: int = 32
    modes: tuple[Mode, ...] = MODES
    sweep: tuple[SweepPoint, ...] = ()
    boot_ms: float = 300.0
    boot_jitter_ms: float = 20.0
    boot_dist: BootDist = "fixed"
    boot_sigma: float = 0.5
    boot_max_ms: float | None = None
    tls: bool = False
    stagger_ms: float = 20.0
    baseline_poll_ms: float = 10.0
    rounds: int = 1
    seed: int | None = None
    ready_timeout: float = 60.0
    emulator: bool = True
    base_url: str | None = None
    verbose: bool = False


# --------------------------------------------------------------------------- measurements


@attrs.frozen
class _Sample:
    """One computer's launch, as raw ``time.monotonic()`` instants."""

    computer_id: str
    sent: float
    answered: float
    ready: float
    probes: int
    retries: int = 0


@attrs.frozen(kw_only=True)
class _Records:
    """What the emulator saw during one run (its counters are reset before each run)."""

    probes: dict[str, int]
    healthy_at: dict[str, float] | None  # None: its clock is not this machine's
    inflight_max: dict[str, int]
    loop_lag: dict[str, Any] | None  # None: its loop lag monitor is off
    cpu: tuple[float, float] | None  # its CPU seconds and the wall seconds they took; None: unknown
    full_collections: int | None  # its process's; None: unknown
    live: int


@attrs.frozen(kw_only=True)
class _Run:
    """One launch of ``count`` computers by the SDK or the baseline."""

    samples: list[_Sample]
    errors: list[str]
    window: _Window
    """Its wall time, client CPU and full collections."""
    cleanup: float
    records: _Records | None = None
    speed_gauge_ms: float | None = None
    """The machine's :func:`speed_gauge` just before this run."""


@attrs.frozen(kw_only=True)
class _Target:
    base_url: str
    api_key: str = attrs.field(repr=False)
    workspace_id: str
    ssl: ssl.SSLContext | None = None


@attrs.frozen(kw_only=True)
class _Plan:
    """One launch's shape, run once per round by the SDK and once by the baseline."""

    mode: Mode
    count: int
    concurrency: int
    rate: float | None = None  # creates per second; None: as fast as the concurrency allows


def _plans(config: BenchConfig) -> list[_Plan]:
    if config.sweep:
        return [
            _Plan(mode="burst", count=point.count, concurrency=point.concurrency)
            for point in config.sweep
        ]
    plans = []
    for mode in config.modes:
        concurrency = 1 if mode == "sequential" else config.concurrency
        rate = 1000.0 / config.stagger_ms if mode == "staggered" else None
        plans.append(_Plan(mode=mode, count=config.count, concurrency=concurrency, rate=rate))
    return plans


class _Window:
    """A run's measured window: wall time, client CPU and full garbage collections.

    It opens after a full collection (a run does not pay for the garbage of
    the one before) and counts the generation-2 collections of this process
    until :meth:`close`.
    """

    def __init__(self) -> None:
        gc.collect()
        self.full_collections = 0
        self.wall = self.cpu = 0.0
        self._open = True
        gc.callbacks.append(self._on_gc)
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()

    def _on_gc(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            self.full_collections += 1

    def close(self) -> None:
        """End the window; only the first call counts."""
        if self._open:
            self.wall = time.perf_counter() - self._wall0
            self.cpu = time.process_time() - self._cpu0
            self._open = False
            gc.callbacks.remove(self._on_gc)

    def run(self, samples: list[_Sample], errors: list[str], *, cleanup: float) -> _Run:
        """The run this window measured (closed first, if it is not yet)."""
        self.close()
        return _Run(samples=samples, errors=errors, window=self, cleanup=cleanup)


async def _run_sdk(config: BenchConfig, target: _Target, plan: _Plan) -> _Run:
    launched: list[LaunchedComputer] = []
    window = _Window()
    async with Orgo(api_key=target.api_key, base_url=target.base_url, ssl=target.ssl) as orgo:
        try:
            async with orgo.fleet(
                target.workspace_id,
                plan.count,
                concurrency=plan.concurrency,
                rate=plan.rate,
                prefix=f"bench-sdk-{plan.mode}",
                ready_timeout=config.ready_timeout,
            ) as fleet:
                async for item in fleet:
                    launched.append(item)
        finally:
            window.close()
            # The received computers are ours to delete; the fleet deleted the rest.
            cleanup0 = time.perf_counter()
            await delete_computers(orgo, [item.computer for item in launched])
            cleanup = time.perf_counter() - cleanup0
    samples = [
        _Sample(
            item.computer.id,
            item.timing.request_sent,
            item.timing.create_answered,
            item.timing.ready_detected,
            item.timing.probes,
            item.timing.retries,
        )
        for item in launched
    ]
    errors = [f"{f.name}: {describe(f.error)}" for f in fleet.failures]
    return window.run(samples, errors, cleanup=cleanup)


async def _run_baseline(config: BenchConfig, target: _Target, plan: _Plan) -> _Run:
    """The hand-written loop a careful user would write with aiohttp: no SDK, no models."""
    interval = 0.0 if plan.rate is None else 1.0 / plan.rate
    poll = config.baseline_poll_ms / 1000
    base = target.base_url
    body = {"workspace_id": target.workspace_id, "os": "linux"}
    run_id = secrets.token_hex(3)
    names = [f"bench-raw-{plan.mode}-{run_id}-{n:04d}" for n in range(plan.count)]
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(plan.concurrency)
    created: list[str] = []
    next_slot = 0.0

    async def launch(session: aiohttp.ClientSession, name: str) -> _Sample:
        nonlocal next_slot
        async with gate:
            if interval:
                now = loop.time()
                slot = max(now, next_slot)
                next_slot = slot + interval
                if slot > now:
                    await asyncio.sleep(slot - now)
            sent = loop.time()
            async with session.post(f"{base}/computers", json={**body, "name": name}) as resp:
                data = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"create answered {resp.status}: {data.get('error')}")
            answered = loop.time()
            created.append(data["id"])
            health = f"{base}/desktops/{data['instance_id']}/proxy/health"
            deadline = answered + config.ready_timeout
            probes = 0
            while True:
                probes += 1
                async with session.get(health) as resp:
                    await resp.read()
                    if resp.status == 200:
                        break
                if loop.time() >= deadline:
                    raise TimeoutError(f"not ready after {config.ready_timeout:g} s")
                await asyncio.sleep(poll)
            return _Sample(data["id"], sent, answered, loop.time(), probes)

    async def delete(session: aiohttp.ClientSession, computer_id: str) -> None:
        async with delete_gate:
            async with session.delete(f"{base}/computers/{computer_id}") as resp:
                await resp.read()
                if resp.status not in (200, 204, 404):
                    log.warning("baseline: DELETE %s answered %d", computer_id, resp.status)

    delete_gate = asyncio.Semaphore(DELETE_CONCURRENCY)
    window = _Window()
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {target.api_key}"},
        connector=aiohttp.TCPConnector(limit=1000, ssl=_verify(target.ssl)),
    ) as session:
        try:
            results = await asyncio.gather(
                *(launch(session, name) for name in names), return_exceptions=True
            )
        finally:
            window.close()
            cleanup0 = time.perf_counter()
            outcomes = await asyncio.gather(
                *(delete(session, c) for c in created), return_exceptions=True
            )
            cleanup = time.perf_counter() - cleanup0
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            log.warning("baseline: a delete failed: %s", describe(outcome))
    samples = [r for r in results if isinstance(r, _Sample)]
    errors = [
        f"{name}: {describe(r)}"
        for name, r in zip(names, results, strict=True)
        if isinstance(r, BaseException)
    ]
    return window.run(samples, errors, cleanup=cleanup)


def _verify(context: ssl.SSLContext | None) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl=``: the given context, else the system's trust store."""
    return True if context is None else context


# --------------------------------------------------------------------------- the emulator's records


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


class _Books:
    """The target's ``/_emulator/counters``, if it is an emulator: read and reset per run.

    One session for the whole benchmark, outside every measured window.
    """

    def __init__(self, base_url: str, api_key: str, context: ssl.SSLContext | None) -> None:
        self._url = _origin(base_url) + "/_emulator/counters"
        self._config_url = _origin(base_url) + "/_emulator/config"
        self._warned = False
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=aiohttp.ClientTimeout(total=30),
            connector=aiohttp.TCPConnector(ssl=_verify(context)),
        )

    async def __aenter__(self) -> _Books:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._session.close()

    async def reset(self) -> None:
        """Zero the counters (and the emulator's loop lag samples) before a run."""
        await self._send("DELETE", self._url, None, "reset the emulator's counters")

    async def reseed(self, seed: int) -> None:
        """Start the emulator's boot times over from ``seed``: a round's two sides get the same."""
        await self._send(
            "PATCH", self._config_url, {"seed": seed}, "seed the emulator's boot times"
        )

    async def _send(self, method: str, url: str, body: object, what: str) -> None:
        """One admin request; a failure is logged (``could not <what>``), not raised."""
        try:
            async with self._session.request(method, url, json=body, allow_redirects=False) as resp:
                await resp.read()
                if resp.status != 200:
                    log.warning("could not %s: %d", what, resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not %s: %s", what, describe(exc))

    async def read(self) -> _Records | None:
        """The emulator's counters, or ``None`` if the target is not an emulator."""
        try:
            before = time.monotonic()
            async with self._session.get(self._url, allow_redirects=False) as resp:
                after = time.monotonic()
                if resp.status != 200:
                    return None
                data = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("no emulator records at the target: %s", describe(exc))
            return None
        if not isinstance(data, dict) or "live" not in data:
            return None
        clock = data.get("clock")
        # The clock is read while the request is handled: on one machine's CLOCK_MONOTONIC
        # it lies between our two readings. Otherwise the instants are not comparable.
        shared = isinstance(clock, int | float) and before - 0.001 <= clock <= after + 0.001
        if not shared and not self._warned:
            log.warning("the emulator's clock is not this machine's: no detection lag")
            self._warned = True
        loop_lag = data.get("loop_lag_ms")
        cpu, wall = data.get("process_cpu_seconds"), data.get("seconds_since_reset")
        full = data.get("gc_full_collections")
        return _Records(
            probes=_ints(data.get("health_probes")),
            healthy_at=(
                {str(k): float(v) for k, v in data.get("healthy_at", {}).items()}
                if shared
                else None
            ),
            inflight_max=_ints(data.get("health_inflight_max")),
            loop_lag=loop_lag if isinstance(loop_lag, dict) else None,
            cpu=(
                (float(cpu), float(wall))
                if isinstance(cpu, int | float) and isinstance(wall, int | float) and wall > 0
                else None
            ),
            full_collections=full if isinstance(full, int) else None,
            live=int(data["live"]),
        )


def _ints(value: object) -> dict[str, int]:
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- summaries


def _books(runs: Sequence[_Run]) -> Iterator[_Records]:
    return (r.records for r in runs if r.records is not None)


def _max_in_flight(runs: Sequence[_Run]) -> int | None:
    """The most probes one computer had in flight at once, over the runs (``None``: unknown)."""
    counts = [max(b.inflight_max.values(), default=0) for b in _books(runs)]
    return max(counts) if counts else None


def _emulator_cpu_load(runs: Sequence[_Run]) -> float | None:
    """The emulator's CPU seconds per second over the runs (``None``: unknown)."""
    books = [b.cpu for b in _books(runs) if b.cpu is not None]
    if not books:
        return None
    return round(sum(cpu for cpu, _ in books) / sum(wall for _, wall in books), 3)


def _emulator_full_collections(runs: Sequence[_Run]) -> int | None:
    """The emulator's full collections over the runs (``None``: unknown)."""
    counts = [b.full_collections for b in _books(runs)]
    if not counts or None in counts:
        return None
    return sum(c for c in counts if c is not None)


def _loop_lag(runs: Sequence[_Run]) -> dict[str, Any] | None:
    """The emulator's loop lag: the worst run's percentiles, and the samples of all."""
    lags = [b.loop_lag for b in _books(runs) if b.loop_lag is not None]
    if not lags:
        return None

    def worst(key: str) -> float | None:
        values = [lag[key] for lag in lags if isinstance(lag.get(key), int | float)]
        return max(values) if values else None

    return {
        "p50": worst("p50"),
        "p99": worst("p99"),
        "max": worst("max"),
        "samples": sum(int(lag.get("samples", 0)) for lag in lags),
    }


def _waves(runs: Sequence[_Run], first: int, *, counted: bool) -> dict[str, Any]:
    """Each run's first ``first`` creates (a fresh session's first wave) apart from the rest.

    The first wave is launched before any boot has been seen: the SDK probes it
    from its prior, the later waves from the boots it has learned. Probes are
    the emulator's count when ``counted``, else the client's.
    """
    parts: dict[str, tuple[list[float], list[int]]] = {"first": ([], []), "later": ([], [])}
    for r in runs:
        healthy = r.records.healthy_at if r.records is not None else None
        by_emulator = r.records.probes if counted and r.records is not None else None
        for i, s in enumerate(sorted(r.samples, key=lambda s: s.sent)):
            lag, probes = parts["first" if i < first else "later"]
            if healthy is not None and s.computer_id in healthy:
                lag.append((s.ready - healthy[s.computer_id]) * 1000)
            probes.append(s.probes if by_emulator is None else by_emulator.get(s.computer_id, 0))
    return {
        name: {
            "computers": len(probes),
            "detection_lag_ms": percentiles(round(x, 3) for x in lag),
            "probes_per_computer": percentiles(probes),
        }
        for name, (lag, probes) in parts.items()
    }


def _figures(runs: Sequence[_Run], count: int, concurrency: int) -> dict[str, Any]:
    samples = [s for r in runs for s in r.samples]
    errors = [e for r in runs for e in r.errors]
    launched = count * len(runs)
    wall = sum(r.window.wall for r in runs) / len(runs)
    cpu = sum(r.window.cpu for r in runs)
    lag: list[float] = []
    emulator_probes: list[int] = []
    for r in runs:
        if r.records is None:
            continue
        emulator_probes += [r.records.probes.get(s.computer_id, 0) for s in r.samples]
        healthy = r.records.healthy_at
        if healthy is not None:
            lag += [
                (s.ready - healthy[s.computer_id]) * 1000
                for s in r.samples
                if s.computer_id in healthy
            ]
    counted = all(r.records is not None for r in runs)
    client_probes = [s.probes for s in samples]
    return {
        "count": launched,
        "ready": len(samples),
        "failed": len(errors),
        "create_ms": percentiles(ms(s.answered - s.sent) for s in samples),
        "create_to_ready_ms": percentiles(ms(s.ready - s.answered) for s in samples),
        "detection_lag_ms": percentiles(round(x, 3) for x in lag),
        "probes_per_computer": percentiles(emulator_probes if counted else client_probes),
        "client_probes_per_computer": percentiles(client_probes),
        "retries": sum(s.retries for s in samples),
        "wall_ms": ms(wall),
        "client_cpu_ms": ms(cpu),
        "client_cpu_ms_per_computer": round(cpu * 1000 / launched, 4),
        # CPU seconds per wall second: the event loop is one thread, so near 1.0 the
        # client itself is what limits how fast it probes (and how late it sees a boot).
        "client_cpu_load": round(cpu / (wall * len(runs)), 3) if wall > 0 else None,
        "cleanup_ms": ms(sum(r.cleanup for r in runs) / len(runs)),
        "gc_full_collections": sum(r.window.full_collections for r in runs),
        "speed_gauge_ms": _median_gauge(runs),
        "max_probes_in_flight_per_computer": _max_in_flight(runs),
        "emulator_loop_lag_ms": _loop_lag(runs),
        "emulator_cpu_load": _emulator_cpu_load(runs),
        "emulator_gc_full_collections": _emulator_full_collections(runs),
        "waves": _waves(runs, concurrency, counted=counted),
        "failure_examples": errors[:5],
        # Per-computer values, for plots and for anyone re-analysing the JSON.
        "samples": {
            "create_to_ready_ms": [ms(s.ready - s.answered) for s in samples],
            "detection_lag_ms": [round(x, 3) for x in lag],
        },
    }


def _ratio(sdk: float, baseline: float) -> float | None:
    if baseline <= 0 or not math.isfinite(sdk / baseline):
        return None
    return round(sdk / baseline, 4)


def _median_gauge(runs: Sequence[_Run]) -> float | None:
    gauges = [r.speed_gauge_ms for r in runs if r.speed_gauge_ms is not None]
    return round(statistics.median(gauges), 2) if gauges else None


def _lag_p99(run: _Run) -> float | None:
    lag = _loop_lag([run])
    return None if lag is None else lag["p99"]


def _summarize(
    plan: _Plan, sdk_runs: Sequence[_Run], baseline_runs: Sequence[_Run]
) -> dict[str, Any]:
    summary = _figures(sdk_runs, plan.count, plan.concurrency)
    baseline = _figures(baseline_runs, plan.count, plan.concurrency)
    summary["baseline"] = baseline
    summary["ratio_vs_baseline"] = {
        "wall": _ratio(summary["wall_ms"], baseline["wall_ms"]),
        "cpu": _ratio(summary["client_cpu_ms"], baseline["client_cpu_ms"]),
    }
    summary["per_round"] = [
        {
            "round": n,
            "first": "sdk" if n % 2 == 0 else "baseline",
            "sdk_wall_ms": ms(s.window.wall),
            "baseline_wall_ms": ms(b.window.wall),
            "sdk_cpu_ms": ms(s.window.cpu),
            "baseline_cpu_ms": ms(b.window.cpu),
            "sdk_gc_full_collections": s.window.full_collections,
            "baseline_gc_full_collections": b.window.full_collections,
            "sdk_emulator_loop_lag_p99_ms": _lag_p99(s),
            "baseline_emulator_loop_lag_p99_ms": _lag_p99(b),
            "sdk_speed_gauge_ms": s.speed_gauge_ms,
            "baseline_speed_gauge_ms": b.speed_gauge_ms,
        }
        for n, (s, b) in enumerate(zip(sdk_runs, baseline_runs, strict=True))
    ]
    return summary


# The speed gauge's repeats before each run (about 15 ms each on the 2-core machine).
GAUGE_REPEATS: Final = 3


def speed_gauge(repeats: int = 5) -> float:
    """Milliseconds this machine takes for a fixed piece of pure Python (median of ``repeats``).

    Both launchers' figures move with how fast the machine runs Python, and on a
    shared host that moves by itself (the same benchmark has taken twice the CPU
    per probe on the same 2-core machine a day apart, with nothing else running
    on it). The work is the interpreter's own (dicts, ints, a little formatting),
    like a client's event loop, and its wall time is what counts: a host that
    gives this process less of a core shows as a larger figure. Read two runs'
    figures against each other only when their gauges are close.
    """
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        table: dict[int, int] = {}
        total = 0
        for i in range(40_000):
            key = i & 255
            table[key] = table.get(key, 0) + i
            total += len(str(i))
        timings.append(time.perf_counter() - start)
    return round(statistics.median(timings) * 1000, 2)


def _machine(load: tuple[float, float, float], gauge: tuple[float, float]) -> dict[str, Any]:
    return {
        "load_average_at_start": [round(x, 2) for x in load],
        "speed_gauge_ms": {"start": gauge[0], "end": gauge[1]},
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def _loop_name() -> str:
    """``asyncio`` or ``uvloop``: the package of the event loop this runs on."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


# --------------------------------------------------------------------------- the run


def _emulator_args(config: BenchConfig) -> list[str]:
    """The spawned emulator's options beyond its boot time: distribution, loop lag monitor."""
    args = ["--boot-dist", config.boot_dist, "--boot-sigma", f"{config.boot_sigma:g}"]
    if config.boot_max_ms is not None:
        args += ["--boot-max-ms", f"{config.boot_max_ms:g}"]
    return [*args, "--monitor-loop-ms", f"{MONITOR_LOOP_MS:g}"]


async def run(config: BenchConfig) -> dict[str, Any]:
    """Run the benchmark and return its results as a JSON-ready dict.

    With ``config.emulator`` the emulator runs in a child process for the
    duration (over TLS with ``config.tls``); otherwise the target is
    ``config.base_url`` (else ``ORGO_BASE_URL``) with ``ORGO_API_KEY``.
    Everything created is deleted, the benchmark's workspace included, even
    on errors and cancellation.

    Raises:
        MissingAPIKeyError: no ``ORGO_API_KEY`` for a target that is not spawned.
        OrgoError: the target refused the setup (auth, connection...).
        EmulatorStartError: the emulator child did not start.
    """
    if config.emulator:
        async with emulator_process(
            boot_ms=config.boot_ms,
            boot_jitter_ms=config.boot_jitter_ms,
            tls=config.tls,
            extra_args=_emulator_args(config),
            log_level="info" if config.verbose else "warning",
        ) as emu:
            result = await _run_on(
                config, emu.base_url, emu.api_key, spawned=True, context=emu.ssl_context()
            )
            result["target"] = "emulator in a child process"
            return result
    api_key = env_api_key()
    if api_key is None:
        raise MissingAPIKeyError("bench without --emulator needs ORGO_API_KEY in the environment")
    base_url = (config.base_url or env_base_url()).rstrip("/")
    result = await _run_on(config, base_url, api_key, spawned=False, context=None)
    result["target"] = base_url
    return result


async def _leftover(setup: Orgo, books: _Books, workspace_id: str, *, spawned: bool) -> int:
    """Computers still alive: the spawned emulator's ``live``, else the workspace's computers."""
    records = await books.read() if spawned else None
    if records is not None:
        return records.live
    return len(await setup.computers.list(workspace_id))


async def _run_on(
    config: BenchConfig,
    base_url: str,
    api_key: str,
    *,
    spawned: bool,
    context: ssl.SSLContext | None,
) -> dict[str, Any]:
    load = os.getloadavg()
    gauge_at_start = speed_gauge()
    plans = _plans(config)
    runs: list[tuple[_Plan, list[_Run], list[_Run], int]] = []
    async with (
        Orgo(api_key=api_key, base_url=base_url, ssl=context) as setup,
        _Books(base_url, api_key, context) as books,
    ):
        workspace = await setup.workspaces.create(f"bench-{secrets.token_hex(4)}")
        target = _Target(
            base_url=setup.base_url, api_key=api_key, workspace_id=workspace.id, ssl=context
        )
        # Each round's two sides face the same boot times (the emulator's draws start
        # over from the round's seed), so that neither side's p99 or wall time is
        # decided by a slower boot drawn for it alone.
        seed = secrets.randbits(31) if config.seed is None else config.seed
        try:
            emulator = await books.read() is not None
            for p, plan in enumerate(plans):
                sdk_runs: list[_Run] = []
                baseline_runs: list[_Run] = []
                for n in range(config.rounds):
                    for who in ("sdk", "baseline") if n % 2 == 0 else ("baseline", "sdk"):
                        log.info("bench: %s x%d, %s, round %d", plan.mode, plan.concurrency, who, n)
                        # Before the emulator's counters start: its CPU load and loop lag
                        # are the run's, not the gauge's idle milliseconds.
                        gauge = speed_gauge(GAUGE_REPEATS)
                        if emulator:
                            await books.reset()
                            await books.reseed(seed + 1000 * p + n)
                        launch = _run_sdk if who == "sdk" else _run_baseline
                        one = attrs.evolve(await launch(config, target, plan), speed_gauge_ms=gauge)
                        if emulator:
                            one = attrs.evolve(one, records=await books.read())
                        (sdk_runs if who == "sdk" else baseline_runs).append(one)
                left = await _leftover(setup, books, workspace.id, spawned=spawned)
                runs.append((plan, sdk_runs, baseline_runs, left))
        finally:
            # The safety net: deleting the workspace deletes whatever is left in it.
            try:
                await setup.workspaces.delete(workspace.id)
            except OrgoError as exc:
                log.warning("could not delete the bench workspace: %s", describe(exc))
    every = [one for _, s, b, _ in runs for one in (*s, *b)]
    about: dict[str, Any] = {
        "leftover": runs[-1][3],
        "rounds": config.rounds,
        "boot_ms": config.boot_ms if spawned else None,
        "boot_jitter_ms": config.boot_jitter_ms if spawned else None,
        "boot_dist": config.boot_dist if spawned else None,
        "boot_sigma": config.boot_sigma if spawned else None,
        "boot_max_ms": config.boot_max_ms if spawned else None,
        "baseline_poll_ms": config.baseline_poll_ms,
        "ready_timeout_s": config.ready_timeout,
        "emulator_records": emulator,
        "boot_seed": seed if emulator else None,
        "detection_lag_available": emulator
        and all(r.records is not None and r.records.healthy_at is not None for r in every),
        "percentile_method": "nearest-rank",
        "loop": _loop_name(),
        "tls": base_url.startswith("https:"),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "machine": _machine(load, (gauge_at_start, speed_gauge())),
        "versions": {"orgo_async": __version__, "aiohttp": aiohttp.__version__},
    }
    if config.sweep:
        points = [
            {
                "concurrency": plan.concurrency,
                "count_per_launch": plan.count,
                **_summarize(plan, s, b),
                "leftover": left,
            }
            for plan, s, b, left in runs
        ]
        return {
            "mode": "burst",
            "sweep": [p["concurrency"] for p in points],
            "points": points,
            **about,
        }
    modes = {plan.mode: _summarize(plan, s, b) for plan, s, b, _ in runs}
    headline = _HEADLINE if _HEADLINE in modes else config.modes[-1]
    return {
        "headline_mode": headline,
        **modes[headline],
        "modes": modes,
        "count_per_launch": config.count,
        "concurrency": config.concurrency,
        "stagger_ms": config.stagger_ms,
        **about,
    }
