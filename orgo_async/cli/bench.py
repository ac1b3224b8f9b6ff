"""``orgo-async bench``: fleet launch latency, the SDK against a raw-aiohttp loop, same run.

The command's options, its output (a table, or one JSON object, optionally
also written to ``--out``) and ``--plot``; the runs themselves are
:mod:`~orgo_async.cli._bench_run`'s and the picture
:mod:`~orgo_async.cli._bench_plot`'s. ``benchmarks/fleet_latency.py`` is
this command with other defaults; ``benchmarks/README.md`` says what each
figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from . import _bench_plot
from ._bench_run import MODES, BenchConfig, Mode, run
from ._format import cell, percentile_cells, percentile_header, to_json
from ._options import add_json, int_at_least, non_negative_float, positive_float
from ._output import EXIT_FLEET, EXIT_OK, PROG, UsageError, error, output

__all__ = ["add_bench", "config_from_args", "format_table", "write_json"]

# The numeric options: flag, type, default, help.
_NUMBERS: Final[tuple[tuple[str, Callable[[str], Any], float | None, str], ...]] = (
    ("--count", int_at_least(1), 200, "computers per launch (default 200)"),
    (
        "--concurrency",
        int_at_least(1),
        32,
        "launches in flight at once, staggered and burst (default 32)",
    ),
    (
        "--boot-ms",
        non_negative_float,
        None,
        "the spawned emulator's boot time in ms (with --emulator; default 300)",
    ),
    (
        "--boot-jitter-ms",
        non_negative_float,
        None,
        "+/- uniform jitter of the spawned emulator's boot (with --emulator; default 20)",
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
        "SDK/baseline pairs per mode, alternating which goes first (default 1)",
    ),
    (
        "--ready-timeout",
        positive_float,
        60.0,
        "seconds per computer from its create's answer to ready (default 60)",
    ),
)


def add_bench(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` command's options (not the target: ``--emulator``, ``--base-url``)."""
    parser.description = """
        Launch computers with the SDK and with a hand-written raw-aiohttp loop, alternately, and
        report create latency, create->ready, ready-detection lag, probes per computer, client
        CPU and wall time, and the SDK/baseline ratios. Deletes every computer it creates.
    """
    count, concurrency, *numbers = _NUMBERS
    for flag, kind, default, help in (count, concurrency):
        parser.add_argument(flag, type=kind, default=default, help=help)
    parser.add_argument(
        "--mode",
        choices=[*MODES, "all"],
        default="all",
        help="sequential (one at a time), staggered (paced creates), burst (all at once, "
        "bounded by --concurrency), or all (default)",
    )
    for flag, kind, default, help in numbers:
        parser.add_argument(flag, type=kind, default=default, help=help)
    add_json(parser, "print one JSON object on stdout instead of a table")
    for flag, help in (
        ("--out", "also write the JSON object to PATH (directories are created)"),
        (
            "--plot",
            "also draw the CDFs of create->ready and detection lag into PATH (PNG); "
            "needs matplotlib: pip install 'orgo_async[plot]'",
        ),
    ):
        parser.add_argument(flag, type=Path, default=None, metavar="PATH", help=help)
    parser.set_defaults(handler=_run)


def config_from_args(
    args: argparse.Namespace, *, emulator: bool, base_url: str | None, verbose: bool = False
) -> BenchConfig:
    """A :class:`~orgo_async.cli._bench_run.BenchConfig` from parsed options.

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


def _run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(
            args, emulator=args.emulator, base_url=args.base_url, verbose=args.verbose
        )
    except ValueError as exc:
        raise UsageError(f"{PROG} bench: error: {exc}") from None
    if args.out is not None:
        _writable(args.out, "--out")
    pyplot = None
    if args.plot is not None:
        # Before the run: a missing extra or an unwritable path costs nothing.
        pyplot = _bench_plot.load_pyplot()
        _writable(args.plot, "--plot")
    result = asyncio.run(run(config))
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


def _status(result: dict[str, Any]) -> int:
    failed = sum(m["failed"] + m["baseline"]["failed"] for m in result["modes"].values())
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
        f"{PROG} bench: {result['count_per_launch']} computers per launch, "
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
            f"{'cleanup ms':31}{cell(m['cleanup_ms']):>36}  |{cell(b['cleanup_ms']):>36}",
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


def write_json(result: dict[str, Any], path: Path) -> None:
    """Write the results to ``path`` as one JSON object, replacing it whole."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(to_json(result) + "\n", encoding="utf-8")
    partial.replace(path)
