"""``orgo-async bench``: fleet launch latency, the SDK against a raw-aiohttp loop, same run.

The command's options, its output (a table, or one JSON object, optionally
also written to ``--out``) and ``--plot``; the runs themselves are
:mod:`~orgo_async.cli._bench_run`'s and the picture
:mod:`~orgo_async.cli._bench_plot`'s. ``benchmarks/fleet_latency.py`` is
this command with other defaults; ``benchmarks/README.md`` says what each
figure means.

Without ``--sweep`` the result is one block (one JSON object) per mode; with
``--sweep C1,C2,...`` (``--count`` one number, or one per point) it is one
burst launch per concurrency, one table row each, and a JSON object whose
``points`` hold each concurrency's figures.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from . import _bench_plot
from ._bench_run import BOOT_DISTS, MODES, BenchConfig, BootDist, Mode, SweepPoint, run
from ._format import cell, percentile_cells, percentile_header, table, to_json
from ._options import add_json, int_at_least, non_negative_float, positive_float
from ._output import EXIT_FLEET, EXIT_OK, PROG, UsageError, error, import_extra, output
from ._runner import run_command

__all__ = ["add_bench", "config_from_args", "format_table", "write_json"]

# The numeric options: flag, type, default, help.
_NUMBERS: Final[tuple[tuple[str, Callable[[str], Any], float | None, str], ...]] = (
    (
        "--boot-ms",
        non_negative_float,
        None,
        "the spawned emulator's boot time in ms: fixed, the low end of uniform, the median of "
        "long-tail (with --emulator; default 300)",
    ),
    (
        "--boot-jitter-ms",
        non_negative_float,
        None,
        "+/- uniform jitter of the spawned emulator's fixed boot (with --emulator; default 20)",
    ),
    (
        "--boot-max-ms",
        non_negative_float,
        None,
        "the high end of a uniform boot, the cap of a long-tail one (with --emulator)",
    ),
    (
        "--boot-sigma",
        non_negative_float,
        None,
        "the log-space sigma of a long-tail boot (with --emulator; default 0.5)",
    ),
    ("--stagger-ms", positive_float, 20.0, "staggered mode: ms between creates (default 20)"),
    (
        "--baseline-poll-ms",
        positive_float,
        10.0,
        "the raw-aiohttp baseline's health polling interval in ms (default 10)",
    ),
    (
        "--rounds",
        int_at_least(1),
        1,
        "SDK/baseline pairs per mode or sweep point, alternating which goes first (default 1)",
    ),
    (
        "--ready-timeout",
        positive_float,
        60.0,
        "seconds per computer from its create's answer to ready (default 60)",
    ),
)

# Options that shape the spawned emulator: meaningless for another target.
_EMULATOR_ONLY: Final = (
    "boot_ms",
    "boot_jitter_ms",
    "boot_max_ms",
    "boot_sigma",
    "boot_dist",
    "tls",
)


def _int_list(text: str) -> tuple[int, ...]:
    """An argparse type: ``N`` or ``N,N,...``, whole numbers >= 1."""
    one = int_at_least(1)
    return tuple(one(part.strip()) for part in text.split(","))


def add_bench(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` command's options (not the target: ``--emulator``, ``--base-url``)."""
    parser.description = """
        Launch computers with the SDK and with a hand-written raw-aiohttp loop, alternately, and
        report create latency, create->ready, ready-detection lag, probes per computer, client
        CPU, wall time and full garbage collections, the emulator's probes in flight and loop
        lag, and the SDK/baseline ratios. --sweep runs burst launches at several concurrencies
        in one run, one table row each. Deletes every computer it creates.
    """
    parser.add_argument(
        "--count",
        type=_int_list,
        default=(200,),
        metavar="N[,N...]",
        help="computers per launch (default 200); with --sweep, one for every point or one "
        "per point (200,200,400)",
    )
    parser.add_argument(
        "--concurrency",
        type=int_at_least(1),
        default=None,
        help="launches in flight at once, staggered and burst (default 32; not with --sweep)",
    )
    parser.add_argument(
        "--sweep",
        type=_int_list,
        default=None,
        metavar="C[,C...]",
        help="burst launches at each of these concurrencies, SDK and baseline at each, in one "
        "run (16,32,64,128,256)",
    )
    parser.add_argument(
        "--mode",
        choices=[*MODES, "all"],
        default=None,
        help="sequential (one at a time), staggered (paced creates), burst (all at once, "
        "bounded by --concurrency), or all (default; --sweep: burst only)",
    )
    parser.add_argument(
        "--boot-dist",
        choices=BOOT_DISTS,
        default=None,
        help="the spawned emulator's boot time distribution: fixed (--boot-ms +/- "
        "--boot-jitter-ms), uniform (--boot-ms to --boot-max-ms), long-tail (lognormal, "
        "median --boot-ms, --boot-sigma, capped at --boot-max-ms) (with --emulator; "
        "default fixed)",
    )
    for flag, kind, default, help in _NUMBERS:
        parser.add_argument(flag, type=kind, default=default, help=help)
    parser.add_argument(
        "--seed",
        type=int_at_least(0, 2**31 - 1),
        default=None,
        metavar="N",
        help="start the emulator's boot time draws over from N: two runs (two versions of the "
        "SDK, two settings) with the same seed face the same boots, round by round (against an "
        "emulator; default a random seed, reported as boot_seed)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="the spawned emulator serves HTTPS; the SDK and the baseline trust its "
        "self-signed certificate (with --emulator; needs pip install 'orgo_async[tls]')",
    )
    add_json(parser, "print one JSON object on stdout instead of a table")
    for flag, help in (
        ("--out", "also write the JSON object to PATH (directories are created)"),
        (
            "--plot",
            "also draw into PATH (PNG) the CDFs of create->ready and detection lag, or with "
            "--sweep the lag and the ratios against concurrency; needs matplotlib: "
            "pip install 'orgo_async[plot]'",
        ),
    ):
        parser.add_argument(flag, type=Path, default=None, metavar="PATH", help=help)
    parser.set_defaults(handler=_run)


def _sweep(args: argparse.Namespace) -> tuple[SweepPoint, ...]:
    """The sweep's points (none without ``--sweep``).

    Raises:
        ValueError: ``--count``, ``--concurrency`` or ``--mode`` do not fit.
    """
    counts: tuple[int, ...] = args.count
    if args.sweep is None:
        if len(counts) != 1:
            raise ValueError("--count takes one number without --sweep")
        return ()
    if args.concurrency is not None:
        raise ValueError("--sweep sets the concurrency: leave out --concurrency")
    if args.mode not in (None, "burst"):
        raise ValueError("--sweep runs the burst mode only")
    if len(counts) not in (1, len(args.sweep)):
        raise ValueError(
            f"--count needs one number, or one per --sweep point ({len(args.sweep)}); "
            f"got {len(counts)}"
        )
    if len(counts) == 1:
        counts = counts * len(args.sweep)
    return tuple(
        SweepPoint(concurrency=c, count=n) for c, n in zip(args.sweep, counts, strict=True)
    )


def _boot_dist(args: argparse.Namespace) -> BootDist:
    """The boot time distribution, checked against its parameters.

    Raises:
        ValueError: a parameter that does not belong to it, or a missing one.
    """
    dist: BootDist = args.boot_dist or "fixed"
    if dist == "fixed" and args.boot_max_ms is not None:
        raise ValueError("--boot-max-ms needs --boot-dist uniform or long-tail")
    if dist != "long-tail" and args.boot_sigma is not None:
        raise ValueError("--boot-sigma needs --boot-dist long-tail")
    if dist == "uniform" and args.boot_max_ms is None:
        raise ValueError("--boot-dist uniform needs --boot-max-ms")
    low = 300.0 if args.boot_ms is None else args.boot_ms
    if args.boot_max_ms is not None and args.boot_max_ms < low:
        raise ValueError(f"--boot-max-ms must be >= --boot-ms ({low:g})")
    return dist


def config_from_args(
    args: argparse.Namespace, *, emulator: bool, base_url: str | None, verbose: bool = False
) -> BenchConfig:
    """A :class:`~orgo_async.cli._bench_run.BenchConfig` from parsed options.

    Raises:
        ValueError: a combination of options that cannot work (for the usage exit code).
    """
    if not emulator:
        given = [name for name in _EMULATOR_ONLY if getattr(args, name) is not None]
        if given:
            flags = " ".join("--" + name.replace("_", "-") for name in given)
            raise ValueError(f"{flags}: only with --emulator (they shape the spawned emulator)")
        if base_url is None and not os.environ.get("ORGO_BASE_URL"):
            # Never benchmark production by accident: hundreds of real computers.
            raise ValueError("bench needs --emulator, or a target: --base-url or ORGO_BASE_URL")
    sweep = _sweep(args)
    modes: tuple[Mode, ...] = MODES if args.mode in (None, "all") else (args.mode,)
    return BenchConfig(
        count=args.count[0],
        concurrency=32 if args.concurrency is None else args.concurrency,
        modes=modes,
        sweep=sweep,
        boot_ms=300.0 if args.boot_ms is None else args.boot_ms,
        boot_jitter_ms=20.0 if args.boot_jitter_ms is None else args.boot_jitter_ms,
        boot_dist=_boot_dist(args),
        boot_sigma=0.5 if args.boot_sigma is None else args.boot_sigma,
        boot_max_ms=args.boot_max_ms,
        tls=bool(args.tls),
        stagger_ms=args.stagger_ms,
        baseline_poll_ms=args.baseline_poll_ms,
        rounds=args.rounds,
        seed=args.seed,
        ready_timeout=args.ready_timeout,
        emulator=emulator,
        base_url=base_url,
        verbose=verbose,
    )


def _run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(
            args, emulator=args.emulator, base_url=args.base_url, verbose=args.verbose
        )
    except ValueError as exc:
        raise UsageError(f"{PROG} bench: error: {exc}") from None
    if config.tls:
        # Here, not in the child: a missing extra is a usage error, not an emulator failure.
        import_extra("cryptography", extra="tls", needed_by="bench --tls")
    if args.out is not None:
        _writable(args.out, "--out")
    pyplot = None
    if args.plot is not None:
        # Before the run: a missing extra or an unwritable path costs nothing.
        pyplot = _bench_plot.load_pyplot()
        _writable(args.plot, "--plot")
    result = run_command(run(config))
    output(to_json(result) if args.json else format_table(result))
    if args.out is not None:
        write_json(result, args.out)
        print(f"{PROG} bench: wrote {args.out}", file=sys.stderr, flush=True)
    if pyplot is not None:
        try:
            _bench_plot.draw(pyplot, result, args.plot)
        except OSError as exc:
            raise UsageError(f"{PROG} bench: error: --plot {args.plot}: {exc}") from None
        print(f"{PROG} bench: drew {args.plot}", file=sys.stderr, flush=True)
    return _status(result)


def _writable(path: Path, option: str) -> None:
    """Make sure ``path`` can be written before the run.

    Raises:
        UsageError: it cannot (its directory cannot be made, or it is a directory).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory")
    except OSError as exc:
        raise UsageError(f"{PROG} bench: error: {option} {path}: {exc}") from None


def _groups(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of each mode, or of each sweep point."""
    return list(result["points"] if "points" in result else result["modes"].values())


def _status(result: dict[str, Any]) -> int:
    failed = sum(g["failed"] + g["baseline"]["failed"] for g in _groups(result))
    if failed or result["leftover"]:
        error(
            f"{PROG} bench: {failed} launch(es) failed and {result['leftover']} computer(s) "
            "were left behind (figures above)"
        )
        return EXIT_FLEET
    return EXIT_OK


# --------------------------------------------------------------------------- output


def _ratio_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _boot(result: dict[str, Any]) -> str:
    boot = result["boot_ms"]
    if boot is None:
        return "boot: the target's"
    dist, high = result.get("boot_dist") or "fixed", result.get("boot_max_ms")
    if dist == "uniform":
        return f"boot uniform {boot:g}-{high:g} ms"
    if dist == "long-tail":
        cap = "no cap" if high is None else f"cap {high:g} ms"
        return f"boot long-tail, median {boot:g} ms, sigma {result['boot_sigma']:g}, {cap}"
    return f"boot {boot:g}\u00b1{result['boot_jitter_ms']:g} ms"


def _about(result: dict[str, Any]) -> str:
    py = result["python"]
    machine = result["machine"]
    tls = ", over TLS" if result.get("tls") else ""
    return (
        f"target: {result['target']}{tls}; Python {py['version']} ({py['implementation']}) on "
        f"{machine['platform']}, {machine['cpus']} CPUs, {result.get('loop', 'asyncio')} "
        f"event loop; speed gauge {_gauges(machine)}; percentiles: nearest rank"
    )


def _gauges(machine: dict[str, Any]) -> str:
    gauge = machine.get("speed_gauge_ms") or {}
    return f"{cell(gauge.get('start'))} ms at the start, {cell(gauge.get('end'))} at the end"


def _footer(result: dict[str, Any]) -> list[str]:
    if result["detection_lag_available"]:
        return []
    return ["detection lag needs the emulator on this machine (--emulator)"]


def _both(sdk: Any, baseline: Any) -> str:
    """One cell holding the SDK's figure and the baseline's: ``sdk/raw``."""
    return f"{cell(sdk)}/{cell(baseline)}"


def _lag_p99(figures: dict[str, Any]) -> float | None:
    lag = figures.get("emulator_loop_lag_ms")
    return None if lag is None else lag["p99"]


# A fresh session's first wave (probed before any boot is seen) and the later ones.
_WAVE_ROWS: Final = (
    ("first", "detection_lag_ms", "first wave: detection lag ms"),
    ("first", "probes_per_computer", "first wave: probes/computer"),
    ("later", "detection_lag_ms", "later waves: detection lag ms"),
    ("later", "probes_per_computer", "later waves: probes/computer"),
)


def format_table(result: dict[str, Any]) -> str:
    """The results as a plain-text table: one block per mode, or one row per sweep point."""
    if "points" in result:
        return _sweep_table(result)
    lines = [
        f"{PROG} bench: {result['count_per_launch']} computers per launch, "
        f"concurrency {result['concurrency']}, {_boot(result)}, rounds {result['rounds']}, "
        f"stagger {result['stagger_ms']:g} ms, baseline poll {result['baseline_poll_ms']:g} ms",
        _about(result),
    ]
    rows = (
        ("create ms", "create_ms"),
        ("create -> ready ms", "create_to_ready_ms"),
        ("detection lag ms", "detection_lag_ms"),
        ("probes/computer", "probes_per_computer"),
        ("probes/computer (client count)", "client_probes_per_computer"),
    )
    head = f"{'':31}" + percentile_header(9) + "  |" + percentile_header(9)
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
            lines.append(f"{label:31}{percentile_cells(m[key], 9)}  |{percentile_cells(b[key], 9)}")
        lines += [
            f"{'wall ms':31}{cell(m['wall_ms']):>36}  |{cell(b['wall_ms']):>36}"
            f"   SDK/baseline {_ratio_cell(ratio['wall'])}",
            f"{'client CPU ms per computer':31}"
            f"{cell(m['client_cpu_ms_per_computer']):>36}  |"
            f"{cell(b['client_cpu_ms_per_computer']):>36}"
            f"   SDK/baseline {_ratio_cell(ratio['cpu'])}",
            f"{'client CPU load (cores)':31}{cell(m['client_cpu_load']):>36}  |"
            f"{cell(b['client_cpu_load']):>36}",
            f"{'cleanup ms':31}{cell(m['cleanup_ms']):>36}  |{cell(b['cleanup_ms']):>36}",
        ]
        for wave, key, label in _WAVE_ROWS:
            lines.append(
                f"{label:31}{percentile_cells(m['waves'][wave][key], 9)}  |"
                f"{percentile_cells(b['waves'][wave][key], 9)}"
            )
        for label, value in (
            ("client full collections", lambda f: f["gc_full_collections"]),
            ("max probes in flight/computer", lambda f: f["max_probes_in_flight_per_computer"]),
            ("emulator loop lag p99 ms", _lag_p99),
            ("emulator CPU load", lambda f: f["emulator_cpu_load"]),
            ("emulator full collections", lambda f: f["emulator_gc_full_collections"]),
            ("speed gauge ms (median)", lambda f: f["speed_gauge_ms"]),
        ):
            lines.append(f"{label:31}{cell(value(m)):>36}  |{cell(value(b)):>36}")
        for example in m["failure_examples"] + b["failure_examples"]:
            lines.append(f"  failure: {example}")
    ratio = result["ratio_vs_baseline"]
    lines += [
        "",
        f"headline ({result['headline_mode']}): wall {_ratio_cell(ratio['wall'])}, "
        f"CPU {_ratio_cell(ratio['cpu'])} of the baseline; "
        f"leftover computers: {result['leftover']}",
        *_footer(result),
    ]
    return "\n".join(lines)


_SWEEP_HEADER: Final = (
    "concurrency",
    "count",
    "lag p50 ms",
    "lag p99 ms",
    "probes p50",
    "wall",
    "CPU",
    "CPU load",
    "full GCs",
    "in flight",
    "emu lag p99",
    "emu CPU load",
    "speed ms",
    "failed",
    "left",
)


def _sweep_row(point: dict[str, Any]) -> list[str]:
    b = point["baseline"]
    ratio = point["ratio_vs_baseline"]
    return [
        str(point["concurrency"]),
        str(point["count_per_launch"]),
        _both(point["detection_lag_ms"]["p50"], b["detection_lag_ms"]["p50"]),
        _both(point["detection_lag_ms"]["p99"], b["detection_lag_ms"]["p99"]),
        _both(point["probes_per_computer"]["p50"], b["probes_per_computer"]["p50"]),
        _ratio_cell(ratio["wall"]),
        _ratio_cell(ratio["cpu"]),
        _both(point["client_cpu_load"], b["client_cpu_load"]),
        _both(point["gc_full_collections"], b["gc_full_collections"]),
        _both(point["max_probes_in_flight_per_computer"], b["max_probes_in_flight_per_computer"]),
        _both(_lag_p99(point), _lag_p99(b)),
        _both(point["emulator_cpu_load"], b["emulator_cpu_load"]),
        _both(point["speed_gauge_ms"], b["speed_gauge_ms"]),
        _both(point["failed"], b["failed"]),
        str(point["leftover"]),
    ]


def _sweep_table(result: dict[str, Any]) -> str:
    """One row per concurrency: a/b cells are SDK/raw aiohttp baseline."""
    lines = [
        f"{PROG} bench: burst sweep over concurrency "
        f"{', '.join(str(c) for c in result['sweep'])}, {_boot(result)}, "
        f"rounds {result['rounds']}, baseline poll {result['baseline_poll_ms']:g} ms",
        _about(result),
        "a/b: SDK/raw aiohttp baseline; wall, CPU: SDK/baseline ratios; CPU load: the client's "
        "CPU seconds per second (1 = one core busy); full GCs: the client's "
        "generation-2 collections; in flight: the most probes one computer had at once; "
        "emu lag: the emulator's event-loop lag; emu CPU load: the emulator's CPU seconds per "
        "second; speed: the machine's speed gauge before each side's runs (median ms of a "
        "fixed piece of Python; lower is faster)",
        "",
        table(_SWEEP_HEADER, [_sweep_row(point) for point in result["points"]]),
    ]
    for point in result["points"]:
        for example in point["failure_examples"] + point["baseline"]["failure_examples"]:
            lines.append(f"  failure at concurrency {point['concurrency']}: {example}")
    lines += ["", f"leftover computers: {result['leftover']}", *_footer(result)]
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: Path) -> None:
    """Write the results to ``path`` as one JSON object, replacing it whole."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(to_json(result) + "\n", encoding="utf-8")
    partial.replace(path)
