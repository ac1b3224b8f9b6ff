"""``orgo-async launch``: start N computers, watch them come up, report, clean up.

The launch is :meth:`Orgo.fleet <orgo_async.Orgo.fleet>`. While it runs, a
progress line is redrawn in place on stderr (at most :data:`REDRAW_PER_SECOND`
times a second, cut to the terminal's width) when stderr is a terminal;
otherwise nothing is printed until the end. Then comes, on stdout, a table (or
one JSON object): create latency, create → ready and health probes per
computer (p50, p95, p99, max, nearest rank), and the failures by type. What
became ready is deleted afterwards (even after an error or Ctrl-C), unless
``keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, TextIO

import attrs

from .._aio import run_shielded
from ..fleet import Fleet, FleetFailure
from ..models import CPU_CHOICES, RAM_CHOICES, ComputerSpec, LaunchedComputer, Workspace
from ._format import ms, percentile_cells, percentile_header, percentiles, to_json
from ._options import add_json, add_workspace, int_at_least, non_negative_float, positive_float
from ._output import EXIT_FLEET, EXIT_OK, PROG, UsageError, columns, error, isatty, output
from ._runner import run_command
from ._target import Target, delete_computers, note_short_lived, target_of

__all__ = ["LaunchOptions", "add_launch", "format_table", "launch"]

REDRAW_PER_SECOND: Final = 10


def add_launch(parser: argparse.ArgumentParser) -> None:
    """The ``launch`` command's options and handler."""
    parser.description = """
        Launch --count computers named PREFIX-RUN-N into --workspace (created if missing), with
        a live progress line on stderr when stderr is a terminal, then print a table (or, with
        --json, one JSON object) of create latency, create->ready and health probes per
        computer, and the failures by type. The computers are deleted at the end, even after an
        error or Ctrl-C, unless --keep (with --emulator they go with the emulator all the same).
        Exit code 7 if any computer failed.
    """
    parser.add_argument(
        "--count", type=int_at_least(1), required=True, help="how many computers to launch"
    )
    parser.add_argument(
        "--concurrency",
        type=int_at_least(1),
        default=16,
        help="launches in flight at once (default 16)",
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=None,
        help="at most this many creates per second (default: as fast as allowed)",
    )
    parser.add_argument("--ram", type=int, choices=RAM_CHOICES, default=None, help="GB of RAM")
    parser.add_argument("--cpu", type=int, choices=CPU_CHOICES, default=None, help="CPU cores")
    parser.add_argument(
        "--resolution", default=None, metavar="WxHxD", help="screen, e.g. 1280x720x24"
    )
    parser.add_argument(
        "--ready-timeout",
        type=positive_float,
        default=120.0,
        metavar="S",
        help="seconds per computer from its create's answer to ready (default 120)",
    )
    parser.add_argument(
        "--prefix",
        default="orgo-async",
        help="name prefix; 'rm --prefix' with it reaps leftovers (default orgo-async)",
    )
    add_workspace(parser, "the workspace, by name (created if missing) or id (default: orgo-async)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the computers (their ids are printed)"
    )
    add_json(parser, "print one JSON object on stdout, nothing else")
    parser.add_argument(
        "--boot-ms",
        type=non_negative_float,
        default=None,
        help="with --emulator: the spawned emulator's boot time in ms (default 300)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.boot_ms is not None and not args.emulator:
        raise UsageError(f"{PROG} launch: error: --boot-ms needs --emulator")
    # Check the fields before anything is started or created (ValueError: exit 2).
    ComputerSpec(
        name="check", workspace_id="check", ram=args.ram, cpu=args.cpu, resolution=args.resolution
    )
    options = LaunchOptions(
        count=args.count,
        concurrency=args.concurrency,
        rate=args.rate,
        ram=args.ram,
        cpu=args.cpu,
        resolution=args.resolution,
        ready_timeout=args.ready_timeout,
        prefix=args.prefix,
        workspace=args.workspace,
        keep=args.keep,
        progress=isatty(sys.stderr),
    )

    async def run() -> dict[str, Any]:
        async with target_of(args, boot_ms=args.boot_ms) as target:
            return await launch(target, options)

    report = run_command(run())
    output(to_json(report) if args.json else format_table(report))
    if args.keep and args.emulator:
        note_short_lived(
            "launch",
            "the kept computers are gone with the emulator, which lived only for this command",
        )
    if report["failed"] or report["left_behind"]:
        error(
            f"{PROG} launch: {report['failed']} of {report['count']} computer(s) failed"
            + (
                f" and {len(report['left_behind'])} could not be deleted"
                if report["left_behind"]
                else ""
            )
        )
        return EXIT_FLEET
    return EXIT_OK


@attrs.frozen(kw_only=True)
class LaunchOptions:
    """What ``orgo-async launch`` was asked for (see its ``--help``)."""

    count: int
    concurrency: int = 16
    rate: float | None = None
    ram: int | None = None
    cpu: int | None = None
    resolution: str | None = None
    ready_timeout: float = 120.0
    prefix: str = "orgo-async"
    workspace: str | None = None
    keep: bool = False
    progress: bool = False


class _Progress:
    """The live ``created / ready / failed`` line, redrawn in place on a terminal.

    The line is cut to the terminal's width, read at each redraw: a line that
    wrapped would no longer be redrawn in place by ``\\r``.
    """

    def __init__(self, out: TextIO, total: int, fleet: Fleet) -> None:
        self._out = out
        self._total = total
        self._fleet = fleet
        self._started = time.monotonic()
        self._shown = ""
        self.ready = 0
        self.failures: Sequence[FleetFailure] = ()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        created = self._fleet.created
        return (
            f"created {created}/{self._total} ({created / elapsed:.1f}/s)  "
            f"ready {self.ready} ({self.ready / elapsed:.1f}/s)  "
            f"failed {len(self.failures)}  {elapsed:.1f} s"
        )

    def draw(self) -> None:
        # One column spare: some terminals wrap as soon as the last one is written.
        text = self.line()[: max(columns(self._out) - 1, 0)]
        if text != self._shown:
            self._write("\r" + text + "\x1b[K")
            self._shown = text

    def clear(self) -> None:
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = ""

    async def run(self) -> None:
        while True:
            self.draw()
            await asyncio.sleep(1 / REDRAW_PER_SECOND)

    def _write(self, text: str) -> None:
        try:
            self._out.write(text)
            self._out.flush()
        except (BrokenPipeError, ValueError):
            pass


async def launch(target: Target, options: LaunchOptions) -> dict[str, Any]:
    """Launch the computers, then delete them (unless ``keep``); return the report.

    Raises:
        ValueError: bad counts or fields (before any request).
        OrgoError: a fatal error ended the launch (a refused key, a plan limit...).
    """
    orgo = target.orgo
    workspace = await target.workspace(options.workspace, create=True)
    fleet = orgo.fleet(
        workspace.id,
        options.count,
        prefix=options.prefix,
        concurrency=options.concurrency,
        rate=options.rate,
        ready_timeout=options.ready_timeout,
        ram=options.ram,
        cpu=options.cpu,
        resolution=options.resolution,
    )
    progress = _Progress(sys.stderr, options.count, fleet)
    progress.failures = fleet.failures
    drawing = asyncio.create_task(progress.run()) if options.progress else None
    launched: list[LaunchedComputer] = []
    left_behind: list[str] = []
    started = time.perf_counter()
    wall = 0.0
    finished = False
    try:
        async with fleet:
            async for item in fleet:
                launched.append(item)
                progress.ready = len(launched)
        wall = time.perf_counter() - started
        finished = True
    finally:
        if drawing is not None:
            drawing.cancel()
            await asyncio.gather(drawing, return_exceptions=True)
            progress.draw()
            progress.clear()
        computers = [item.computer for item in launched]
        if not options.keep:
            left_behind = await run_shielded(delete_computers(orgo, computers))
        elif not finished and computers:
            # No report will list them: say which ones are still there.
            ids = " ".join(c.id for c in computers)
            print(f"{PROG} launch: kept {len(computers)} computer(s): {ids}", file=sys.stderr)
    return _report(workspace, options, launched, fleet.failures, wall=wall, left_behind=left_behind)


def _report(
    workspace: Workspace,
    options: LaunchOptions,
    launched: Sequence[LaunchedComputer],
    failures: Sequence[FleetFailure],
    *,
    wall: float,
    left_behind: Sequence[str],
) -> dict[str, Any]:
    by_type = collections.Counter(type(f.error).__name__ for f in failures)
    return {
        "workspace": {"id": workspace.id, "name": workspace.name},
        "prefix": options.prefix,
        "count": options.count,
        "ready": len(launched),
        "failed": len(failures),
        "wall_ms": ms(wall),
        "ready_per_second": round(len(launched) / wall, 3) if wall > 0 else None,
        "create_ms": percentiles(ms(i.timing.create_seconds) for i in launched),
        "create_to_ready_ms": percentiles(ms(i.timing.create_to_ready_seconds) for i in launched),
        "probes_per_computer": percentiles(i.timing.probes for i in launched),
        "retries": sum(i.timing.retries for i in launched),
        "failures_by_type": dict(sorted(by_type.items())),
        "failures": [
            {
                "name": f.name,
                "computer_id": f.computer_id,
                "error_type": type(f.error).__name__,
                "error": str(f.error)[:300],
            }
            for f in failures
        ],
        "computers": [
            {
                "id": i.computer.id,
                "name": i.computer.name,
                "create_ms": ms(i.timing.create_seconds),
                "create_to_ready_ms": ms(i.timing.create_to_ready_seconds),
                "probes": i.timing.probes,
                "retries": i.timing.retries,
            }
            for i in launched
        ],
        "kept": options.keep,
        "deleted": 0 if options.keep else len(launched) - len(left_behind),
        "left_behind": list(left_behind),
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as plain text: a summary, the percentile table, failures, cleanup."""
    ws = report["workspace"]
    rate = report["ready_per_second"]
    lines = [
        f"launched {report['count']} computer(s) in workspace {ws['name']} ({ws['id']}): "
        f"{report['ready']} ready, {report['failed']} failed in {report['wall_ms'] / 1000:.2f} s"
        + (f" ({rate:.1f} ready/s)" if rate else ""),
        "",
        f"{'':22}" + percentile_header(10),
    ]
    for label, key in (
        ("create ms", "create_ms"),
        ("create -> ready ms", "create_to_ready_ms"),
        ("probes per computer", "probes_per_computer"),
    ):
        lines.append(f"{label:22}" + percentile_cells(report[key], 10))
    if report["retries"]:
        lines.append(f"create retries: {report['retries']}")
    if report["failures_by_type"]:
        kinds = ", ".join(f"{k} {n}" for k, n in report["failures_by_type"].items())
        lines.append(f"failures: {kinds}")
        for failure in report["failures"][:5]:
            lines.append(f"  {failure['name']}: {failure['error_type']}: {failure['error']}")
    else:
        lines.append("failures: none")
    if report["kept"]:
        lines.append(
            f"kept {report['ready']} computer(s) (delete them with: "
            f"{PROG} rm --prefix {report['prefix']}):"
        )
        lines += [f"  {c['id']}  {c['name']}" for c in report["computers"]]
    else:
        cleanup = f"deleted {report['deleted']} computer(s)"
        if report["failed"]:
            cleanup += " (the failed ones were deleted as they failed)"
        lines.append(cleanup)
    if report["left_behind"]:
        lines.append(f"could not delete: {' '.join(report['left_behind'])}")
    return "\n".join(lines)
