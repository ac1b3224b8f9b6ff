"""The fleet latency benchmark behind ``orgo-async bench`` and ``benchmarks/fleet_latency.py``.

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

Percentiles use the **nearest-rank** method: the p-th percentile of ``n``
sorted values is the value of rank ``ceil(p / 100 * n)`` (1-based), so every
reported figure is one that was actually measured.

Only timestamps are taken inside the launch loops; every figure is computed
after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import os
import platform
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import aiohttp
import attrs

from ._client import Orgo
from ._config import env_api_key, env_base_url
from ._spawn import emulator_process
from ._version import __version__
from .errors import MissingAPIKeyError, OrgoError
from .models import Computer, LaunchedComputer

__all__ = [
    "MODES",
    "BenchConfig",
    "add_bench_arguments",
    "config_from_args",
    "format_table",
    "percentiles",
    "prepare_out",
    "run",
    "to_json",
    "write_json",
]

log = logging.getLogger("orgo_async.bench")

Mode = Literal["sequential", "staggered", "burst"]
MODES: Final[tuple[Mode, ...]] = ("sequential", "staggered", "burst")
_HEADLINE: Final = "burst"
_PERCENTILES: Final = (50, 95, 99)
_DELETE_CONCURRENCY: Final = 32


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


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (and <= ``high``)."""
    bound = f">= {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {bound}; got {text!r}")
        return value

    return parse


def float_above(low: float, *, inclusive: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number > ``low`` (>= with ``inclusive``)."""
    relation = ">=" if inclusive else ">"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = value >= low if inclusive else value > low
        if not (ok and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a number {relation} {low:g}; got {text!r}")
        return value

    return parse


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's own options (not the target: ``--emulator``, ``--base-url``)."""
    parser.add_argument(
        "--count", type=int_at_least(1), default=200, help="computers per launch (default 200)"
    )
    parser.add_argument(
        "--concurrency",
        type=int_at_least(1),
        default=32,
        help="launches in flight at once, staggered and burst (default 32)",
    )
    parser.add_argument(
        "--mode",
        choices=[*MODES, "all"],
        default="all",
        help="sequential (one at a time), staggered (paced creates), burst (all at once, "
        "bounded by --concurrency), or all (default)",
    )
    parser.add_argument(
        "--boot-ms",
        type=float_above(0, inclusive=True),
        default=None,
        help="the spawned emulator's boot time in ms (with --emulator; default 300)",
    )
    parser.add_argument(
        "--boot-jitter-ms",
        type=float_above(0, inclusive=True),
        default=None,
        help="+/- uniform jitter of the spawned emulator's boot (with --emulator; default 20)",
    )
    parser.add_argument(
        "--stagger-ms",
        type=float_above(0),
        default=20.0,
        help="staggered mode: ms between creates (default 20)",
    )
    parser.add_argument(
        "--baseline-poll-ms",
        type=float_above(0),
        default=10.0,
        help="the raw-aiohttp baseline's health polling interval in ms (default 10)",
    )
    parser.add_argument(
        "--rounds",
        type=int_at_least(1),
        default=1,
        help="SDK/baseline pairs per mode, alternating which goes first (default 1)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float_above(0),
        default=60.0,
        help="seconds per computer from its create's answer to ready (default 60)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout instead of a table"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the JSON object to PATH (directories are created)",
    )


def config_from_args(
    args: argparse.Namespace, *, emulator: bool, base_url: str | None, verbose: bool = False
) -> BenchConfig:
    """A :class:`BenchConfig` from parsed options.

    Raises:
        ValueError: a combination of options that cannot work (for the usage exit code).
    """
    if not emulator:
        if args.boot_ms is not None or args.boot_jitter_ms is not None:
            raise ValueError("--boot-ms and --boot-jitter-ms need --emulator")
        if base_url is None and not os.environ.get("ORGO_BASE_URL"):
            # Never benchmark production by accident: hundreds of real computers.
            raise ValueError("bench needs --emulator, or a target: --base-url or ORGO_BASE_URL")
    modes: tuple[Mode, ...] = MODES if args.mode == "all" else (args.mode,)
    return BenchConfig(
        count=args.count,
        concurrency=args.concurrency,
        modes=modes,
        boot_ms=300.0 if args.boot_ms is None else args.boot_ms,
        boot_jitter_ms=20.0 if args.boot_jitter_ms is None else args.boot_jitter_ms,
        stagger_ms=args.stagger_ms,
        baseline_poll_ms=args.baseline_poll_ms,
        rounds=args.rounds,
        ready_timeout=args.ready_timeout,
        emulator=emulator,
        base_url=base_url,
        verbose=verbose,
    )


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


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    """``p50``, ``p95``, ``p99``, ``max`` (nearest rank) and ``n``; ``None`` when empty."""
    data = sorted(values)
    n = len(data)
    out: dict[str, float | int | None] = {}
    for p in _PERCENTILES:
        out[f"p{p}"] = data[max(1, math.ceil(p / 100 * n)) - 1] if n else None
    out["max"] = data[-1] if n else None
    out["n"] = n
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


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
            await _sdk_delete(orgo, [item.computer for item in launched])
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
    errors = [f"{f.name}: {_describe(f.error)}" for f in fleet.failures]
    return _Run(samples=samples, errors=errors, wall=wall, cpu=cpu, cleanup=cleanup)


async def _sdk_delete(orgo: Orgo, computers: Sequence[Computer]) -> None:
    gate = asyncio.Semaphore(_DELETE_CONCURRENCY)

    async def delete(computer: Computer) -> None:
        async with gate:
            await orgo.computers.delete(computer, missing_ok=True)

    results = await asyncio.gather(*(delete(c) for c in computers), return_exceptions=True)
    for computer, result in zip(computers, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("could not delete computer %s: %s", computer.id, _describe(result))


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

    delete_gate = asyncio.Semaphore(_DELETE_CONCURRENCY)
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
            log.warning("baseline: a delete failed: %s", _describe(outcome))
    samples = [r for r in results if isinstance(r, _Sample)]
    errors = [
        f"{name}: {_describe(r)}"
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
        log.debug("no emulator records at the target: %s", _describe(exc))
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
        "create_ms": percentiles(_ms(s.answered - s.sent) for s in samples),
        "create_to_ready_ms": percentiles(_ms(s.ready - s.answered) for s in samples),
        "detection_lag_ms": percentiles(round(x, 3) for x in lag),
        "probes_per_computer": percentiles(
            emulator_probes if records is not None else client_probes
        ),
        "client_probes_per_computer": percentiles(client_probes),
        "retries": sum(s.retries for s in samples),
        "wall_ms": _ms(wall),
        "client_cpu_ms": _ms(cpu),
        "client_cpu_ms_per_computer": round(cpu * 1000 / launched, 4),
        "cleanup_ms": _ms(sum(r.cleanup for r in runs) / len(runs)),
        "failure_examples": errors[:5],
        # Per-computer values, for plots and for anyone re-analysing the JSON.
        "samples": {
            "create_to_ready_ms": [_ms(s.ready - s.answered) for s in samples],
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
            "sdk_wall_ms": _ms(s.wall),
            "baseline_wall_ms": _ms(b.wall),
            "sdk_cpu_ms": _ms(s.cpu),
            "baseline_cpu_ms": _ms(b.cpu),
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
                log.warning("could not delete the bench workspace: %s", _describe(exc))
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


# --------------------------------------------------------------------------- the table


def _cell(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"


def _ratio_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_table(result: dict[str, Any]) -> str:
    """The results as a plain-text table, one block per mode."""
    boot = (
        f"boot {result['boot_ms']:g}±{result['boot_jitter_ms']:g} ms"
        if result["boot_ms"] is not None
        else "boot: the target's"
    )
    py = result["python"]
    machine = result["machine"]
    lines = [
        f"orgo-async bench: {result['count_per_launch']} computers per launch, "
        f"concurrency {result['concurrency']}, {boot}, rounds {result['rounds']}, "
        f"stagger {result['stagger_ms']:g} ms, baseline poll {result['baseline_poll_ms']:g} ms",
        f"target: {result['target']}; Python {py['version']} ({py['implementation']}) on "
        f"{machine['platform']}, {machine['cpus']} CPUs; percentiles: nearest rank",
    ]
    rows = (
        ("create ms", "create_ms"),
        ("create -> ready ms", "create_to_ready_ms"),
        ("detection lag ms", "detection_lag_ms"),
        ("probes/computer", "probes_per_computer"),
        ("probes/computer (client count)", "client_probes_per_computer"),
    )
    head = f"{'':31}" + "".join(f"{h:>9}" for h in ("p50", "p95", "p99", "max"))
    head += "  |" + "".join(f"{h:>9}" for h in ("p50", "p95", "p99", "max"))
    for mode, m in result["modes"].items():
        b = m["baseline"]
        ratio = m["ratio_vs_baseline"]
        lines += [
            "",
            f"== {mode}: SDK ready {m['ready']}/{m['count']} (failed {m['failed']}, "
            f"retries {m['retries']}); baseline ready {b['ready']}/{b['count']} "
            f"(failed {b['failed']})",
            f"{'':31}{'SDK':>36}  |{'raw aiohttp baseline':>36}",
            head,
        ]
        for label, key in rows:
            cells = "".join(f"{_cell(m[key][p]):>9}" for p in ("p50", "p95", "p99", "max"))
            base = "".join(f"{_cell(b[key][p]):>9}" for p in ("p50", "p95", "p99", "max"))
            lines.append(f"{label:31}{cells}  |{base}")
        lines += [
            f"{'wall ms':31}{_cell(m['wall_ms']):>36}  |{_cell(b['wall_ms']):>36}"
            f"   SDK/baseline {_ratio_cell(ratio['wall'])}",
            f"{'client CPU ms per computer':31}"
            f"{_cell(m['client_cpu_ms_per_computer']):>36}  |"
            f"{_cell(b['client_cpu_ms_per_computer']):>36}"
            f"   SDK/baseline {_ratio_cell(ratio['cpu'])}",
            f"{'cleanup ms':31}{_cell(m['cleanup_ms']):>36}  |{_cell(b['cleanup_ms']):>36}",
        ]
        for example in m["failure_examples"] + b["failure_examples"]:
            lines.append(f"  failure: {example}")
    ratio = result["ratio_vs_baseline"]
    lines += [
        "",
        f"headline ({result['headline_mode']}): wall {_ratio_cell(ratio['wall'])}, "
        f"CPU {_ratio_cell(ratio['cpu'])} of the baseline; "
        f"leftover computers: {result['leftover']}",
    ]
    if not result["detection_lag_available"]:
        lines.append("detection lag needs the emulator on this machine (--emulator)")
    return "\n".join(lines)


def to_json(result: dict[str, Any]) -> str:
    """The results as one JSON object (every figure is finite; missing ones are ``null``)."""
    return json.dumps(result, indent=2, allow_nan=False, default=str)


def prepare_out(path: Path) -> None:
    """Make sure ``path`` can be written before the run (``OSError`` if not)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")


def write_json(result: dict[str, Any], path: Path) -> None:
    """Write the results to ``path`` as one JSON object, replacing it whole."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(to_json(result) + "\n", encoding="utf-8")
    partial.replace(path)
