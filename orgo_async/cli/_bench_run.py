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

Figures (see ``benchmarks/README.md``), per computer: create latency, create →
ready, ready-detection lag (the emulator's record of when the computer became
healthy → the launcher saw the 200; needs the emulator on this machine, whose
``CLOCK_MONOTONIC`` is the client's), health probes per computer (counted by
the emulator, and by the client itself). Per run: wall time and client CPU
(``time.process_time()`` of this process; an emulator child is not counted)
from the first request to the last computer ready, cleanup excluded.

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
import sys
import time
from collections.abc import Sequence
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


# --------------------------------------------------------------------------- configuration


@attrs.frozen(kw_only=True)
class BenchConfig:
    """One benchmark's settings (validated by the command line that built it).

    Attributes:
        count: Computers per launch (per mode, per round, for each of SDK and baseline).
        concurrency: Launches in flight at once (staggered and burst).
        modes: The modes to run, in order.
        boot_ms, boot_jitter_ms: The spawned emulator's boot time.
        stagger_ms: Gap between creates in the staggered mode.
        baseline_poll_ms: The baseline's health polling interval.
        rounds: SDK/baseline pairs per mode.
        ready_timeout: Seconds per computer, from its create's answer.
        emulator: Start the emulator in a child process (else use ``base_url``).
        base_url: The API root when not using a spawned emulator.
        verbose: Let the spawned emulator log at ``info``.
    """

    count: int
    concurrency: int = 32
    modes: tuple[Mode, ...] = MODES
    boot_ms: float = 300.0
    boot_jitter_ms: float = 20.0
    stagger_ms: float = 20.0
    baseline_poll_ms: float = 10.0
    rounds: int = 1
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
class _Run:
    """One launch of ``count`` computers by the SDK or the baseline."""

    samples: list[_Sample]
    errors: list[str]
    wall: float
    cpu: float
    cleanup: float


@attrs.frozen(kw_only=True)
class _Target:
    base_url: str
    api_key: str = attrs.field(repr=False)
    workspace_id: str


def _plan(config: BenchConfig, mode: Mode) -> tuple[int, float | None]:
    """``(concurrency, creates per second)`` of a mode."""
    if mode == "sequential":
        return 1, None
    if mode == "staggered":
        return config.concurrency, 1000.0 / config.stagger_ms
    return config.concurrency, None


async def _run_sdk(config: BenchConfig, target: _Target, mode: Mode) -> _Run:
    concurrency, rate = _plan(config, mode)
    launched: list[LaunchedComputer] = []
    gc.collect()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    async with Orgo(api_key=target.api_key, base_url=target.base_url) as orgo:
        try:
            async with orgo.fleet(
                target.workspace_id,
                config.count,
                concurrency=concurrency,
                rate=rate,
                prefix=f"bench-sdk-{mode}",
                ready_timeout=config.ready_timeout,
            ) as fleet:
                async for item in fleet:
                    launched.append(item)
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
        finally:
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
    return _Run(samples=samples, errors=errors, wall=wall, cpu=cpu, cleanup=cleanup)


async def _run_baseline(config: BenchConfig, target: _Target, mode: Mode) -> _Run:
    """The hand-written loop a careful user would write with aiohttp: no SDK, no models."""
    concurrency, rate = _plan(config, mode)
    interval = 0.0 if rate is None else 1.0 / rate
    poll = config.baseline_poll_ms / 1000
    base = target.base_url
    body = {"workspace_id": target.workspace_id, "os": "linux"}
    run_id = secrets.token_hex(3)
    names = [f"bench-raw-{mode}-{run_id}-{n:04d}" for n in range(config.count)]
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
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
    gc.collect()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {target.api_key}"},
        connector=aiohttp.TCPConnector(limit=1000),
    ) as session:
        try:
            results = await asyncio.gather(
                *(launch(session, name) for name in names), return_exceptions=True
            )
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
        finally:
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
    return _Run(samples=samples, errors=errors, wall=wall, cpu=cpu, cleanup=cleanup)


# --------------------------------------------------------------------------- the emulator's records


@attrs.frozen(kw_only=True)
class _Records:
    """What the emulator saw: probes per computer, and when each became healthy."""

    probes: dict[str, int]
    healthy_at: dict[str, float] | None  # None: its clock is not this machine's
    live: int


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


async def _read_records(base_url: str, api_key: str) -> _Records | None:
    """The emulator's counters, or ``None`` if the target is not an emulator."""
    url = _origin(base_url) + "/_emulator/counters"
    try:
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as session:
            before = time.monotonic()
            async with session.get(url, allow_redirects=False) as resp:
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
    if not shared:
        log.warning("the emulator's clock is not this machine's: no detection lag")
    return _Records(
        probes={str(k): int(v) for k, v in data.get("health_probes", {}).items()},
        healthy_at=(
            {str(k): float(v) for k, v in data.get("healthy_at", {}).items()} if shared else None
        ),
        live=int(data["live"]),
    )


# --------------------------------------------------------------------------- summaries


def _figures(runs: Sequence[_Run], count: int, records: _Records | None) -> dict[str, Any]:
    samples = [s for r in runs for s in r.samples]
    errors = [e for r in runs for e in r.errors]
    launched = count * len(runs)
    wall = sum(r.wall for r in runs) / len(runs)
    cpu = sum(r.cpu for r in runs)
    lag: list[float] = []
    emulator_probes: list[int] = []
    if records is not None:
        emulator_probes = [records.probes.get(s.computer_id, 0) for s in samples]
        if records.healthy_at is not None:
            healthy = records.healthy_at
            lag = [
                (s.ready - healthy[s.computer_id]) * 1000
                for s in samples
                if s.computer_id in healthy
            ]
    client_probes = [s.probes for s in samples]
    return {
        "count": launched,
        "ready": len(samples),
        "failed": len(errors),
        "create_ms": percentiles(ms(s.answered - s.sent) for s in samples),
        "create_to_ready_ms": percentiles(ms(s.ready - s.answered) for s in samples),
        "detection_lag_ms": percentiles(round(x, 3) for x in lag),
        "probes_per_computer": percentiles(
            emulator_probes if records is not None else client_probes
        ),
        "client_probes_per_computer": percentiles(client_probes),
        "retries": sum(s.retries for s in samples),
        "wall_ms": ms(wall),
        "client_cpu_ms": ms(cpu),
        "client_cpu_ms_per_computer": round(cpu * 1000 / launched, 4),
        "cleanup_ms": ms(sum(r.cleanup for r in runs) / len(runs)),
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


def _summarize(
    config: BenchConfig,
    sdk_runs: Sequence[_Run],
    baseline_runs: Sequence[_Run],
    records: _Records | None,
) -> dict[str, Any]:
    summary = _figures(sdk_runs, config.count, records)
    baseline = _figures(baseline_runs, config.count, records)
    summary["baseline"] = baseline
    summary["ratio_vs_baseline"] = {
        "wall": _ratio(summary["wall_ms"], baseline["wall_ms"]),
        "cpu": _ratio(summary["client_cpu_ms"], baseline["client_cpu_ms"]),
    }
    summary["per_round"] = [
        {
            "round": n,
            "first": "sdk" if n % 2 == 0 else "baseline",
            "sdk_wall_ms": ms(s.wall),
            "baseline_wall_ms": ms(b.wall),
            "sdk_cpu_ms": ms(s.cpu),
            "baseline_cpu_ms": ms(b.cpu),
        }
        for n, (s, b) in enumerate(zip(sdk_runs, baseline_runs, strict=True))
    ]
    return summary


def _machine(load: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "load_average_at_start": [round(x, 2) for x in load],
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------- the run


async def run(config: BenchConfig) -> dict[str, Any]:
    """Run the benchmark and return its results as a JSON-ready dict.

    With ``config.emulator`` the emulator runs in a child process for the
    duration; otherwise the target is ``config.base_url`` (else ``ORGO_BASE_URL``)
    with ``ORGO_API_KEY``. Everything created is deleted, the benchmark's
    workspace included, even on errors and cancellation.

    Raises:
        MissingAPIKeyError: no ``ORGO_API_KEY`` for a target that is not spawned.
        OrgoError: the target refused the setup (auth, connection...).
        EmulatorStartError: the emulator child did not start.
    """
    if config.emulator:
        async with emulator_process(
            boot_ms=config.boot_ms,
            boot_jitter_ms=config.boot_jitter_ms,
            log_level="info" if config.verbose else "warning",
        ) as emu:
            result = await _run_on(config, emu.base_url, emu.api_key, spawned=True)
            result["target"] = "emulator in a child process"
            return result
    api_key = env_api_key()
    if api_key is None:
        raise MissingAPIKeyError("bench without --emulator needs ORGO_API_KEY in the environment")
    base_url = (config.base_url or env_base_url()).rstrip("/")
    result = await _run_on(config, base_url, api_key, spawned=False)
    result["target"] = base_url
    return result


async def _run_on(
    config: BenchConfig, base_url: str, api_key: str, *, spawned: bool
) -> dict[str, Any]:
    load = os.getloadavg()
    async with Orgo(api_key=api_key, base_url=base_url) as setup:
        workspace = await setup.workspaces.create(f"bench-{secrets.token_hex(4)}")
        target = _Target(base_url=setup.base_url, api_key=api_key, workspace_id=workspace.id)
        try:
            runs: dict[Mode, tuple[list[_Run], list[_Run]]] = {}
            for mode in config.modes:
                sdk_runs: list[_Run] = []
                baseline_runs: list[_Run] = []
                for n in range(config.rounds):
                    for who in ("sdk", "baseline") if n % 2 == 0 else ("baseline", "sdk"):
                        log.info("bench: %s, %s, round %d", mode, who, n)
                        if who == "sdk":
                            sdk_runs.append(await _run_sdk(config, target, mode))
                        else:
                            baseline_runs.append(await _run_baseline(config, target, mode))
                runs[mode] = (sdk_runs, baseline_runs)
            records = await _read_records(target.base_url, api_key)
            if spawned and records is not None:
                leftover = records.live
            else:
                leftover = len(await setup.computers.list(workspace.id))
        finally:
            # The safety net: deleting the workspace deletes whatever is left in it.
            try:
                await setup.workspaces.delete(workspace.id)
            except OrgoError as exc:
                log.warning("could not delete the bench workspace: %s", describe(exc))
    modes = {mode: _summarize(config, s, b, records) for mode, (s, b) in runs.items()}
    headline = _HEADLINE if _HEADLINE in modes else config.modes[-1]
    result: dict[str, Any] = {"headline_mode": headline, **modes[headline]}
    result.update(
        {
            "modes": modes,
            "leftover": leftover,
            "count_per_launch": config.count,
            "concurrency": config.concurrency,
            "rounds": config.rounds,
            "boot_ms": config.boot_ms if spawned else None,
            "boot_jitter_ms": config.boot_jitter_ms if spawned else None,
            "stagger_ms": config.stagger_ms,
            "baseline_poll_ms": config.baseline_poll_ms,
            "ready_timeout_s": config.ready_timeout,
            "emulator_records": records is not None,
            "detection_lag_available": records is not None and records.healthy_at is not None,
            "percentile_method": "nearest-rank",
            "python": {
                "version": platform.python_version(),
                "implementation": platform.python_implementation(),
                "executable": sys.executable,
            },
            "machine": _machine(load),
            "versions": {"orgo_async": __version__, "aiohttp": aiohttp.__version__},
        }
    )
    return result
