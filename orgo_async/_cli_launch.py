"""``orgo-async launch``: start N computers, watch them come up, report, clean up.

The launch is :meth:`Orgo.fleet <orgo_async.Orgo.fleet>`. While it runs, a
progress line is redrawn in place (at most :data:`REDRAW_PER_SECOND` times a
second) when stdout is a terminal and the output is not JSON; otherwise
nothing is printed until the end. Then comes a table (or one JSON object):
create latency, create → ready and health probes per computer (p50, p95, p99,
max, nearest rank), and the failures by type. What became ready is deleted
afterwards (even after an error or Ctrl-C), unless ``keep``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, TextIO

import attrs

from ._aio import run_shielded
from ._bench import percentiles
from ._cli_target import Target
from .fleet import Fleet, FleetFailure
from .models import Computer, LaunchedComputer
from .resources.computers import Computers

__all__ = ["LaunchOptions", "format_table", "launch", "to_json"]

log = logging.getLogger("orgo_async.cli")

REDRAW_PER_SECOND: Final = 10
_DELETE_CONCURRENCY: Final = 32
_PERCENTILES: Final = ("p50", "p95", "p99", "max")


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
    """The live ``created / ready / failed`` line, redrawn in place on a terminal."""

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
        text = self.line()
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
    progress = _Progress(sys.stdout, options.count, fleet)
    progress.failures = fleet.failures
    drawing = asyncio.create_task(progress.run()) if options.progress else None
    launched: list[LaunchedComputer] = []
    deleted = 0
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
            deleted, left_behind = await run_shielded(_delete(orgo.computers, computers))
        elif not finished and computers:
            # No report will list them: say which ones are still there.
            ids = " ".join(c.id for c in computers)
            print(f"orgo-async launch: kept {len(computers)} computer(s): {ids}", file=sys.stderr)
    failures = list(fleet.failures)
    return _report(
        workspace_id=workspace.id,
        workspace_name=workspace.name,
        options=options,
        launched=launched,
        failures=failures,
        wall=wall,
        deleted=deleted,
        left_behind=left_behind,
    )


async def _delete(computers: Computers, doomed: Sequence[Computer]) -> tuple[int, list[str]]:
    gate = asyncio.Semaphore(_DELETE_CONCURRENCY)

    async def delete(computer: Computer) -> None:
        async with gate:
            await computers.delete(computer, missing_ok=True)

    results = await asyncio.gather(*(delete(c) for c in doomed), return_exceptions=True)
    left: list[str] = []
    for computer, result in zip(doomed, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("could not delete computer %s: %s", computer.id, result)
            left.append(computer.id)
    return len(doomed) - len(left), left


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _report(
    *,
    workspace_id: str,
    workspace_name: str,
    options: LaunchOptions,
    launched: Sequence[LaunchedComputer],
    failures: Sequence[FleetFailure],
    wall: float,
    deleted: int,
    left_behind: Sequence[str],
) -> dict[str, Any]:
    by_type = collections.Counter(type(f.error).__name__ for f in failures)
    return {
        "workspace": {"id": workspace_id, "name": workspace_name},
        "prefix": options.prefix,
        "count": options.count,
        "ready": len(launched),
        "failed": len(failures),
        "wall_ms": _ms(wall),
        "ready_per_second": round(len(launched) / wall, 3) if wall > 0 else None,
        "create_ms": percentiles(_ms(i.timing.create_seconds) for i in launched),
        "create_to_ready_ms": percentiles(_ms(i.timing.create_to_ready_seconds) for i in launched),
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
                "create_ms": _ms(i.timing.create_seconds),
                "create_to_ready_ms": _ms(i.timing.create_to_ready_seconds),
                "probes": i.timing.probes,
                "retries": i.timing.retries,
            }
            for i in launched
        ],
        "kept": options.keep,
        "deleted": deleted,
        "left_behind": list(left_behind),
    }


def to_json(report: dict[str, Any]) -> str:
    """The report as one JSON object."""
    return json.dumps(report, indent=2, allow_nan=False)


def _cell(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"


def format_table(report: dict[str, Any]) -> str:
    """The report as plain text: a summary, the percentile table, failures, cleanup."""
    ws = report["workspace"]
    rate = report["ready_per_second"]
    lines = [
        f"launched {report['count']} computer(s) in workspace {ws['name']} ({ws['id']}): "
        f"{report['ready']} ready, {report['failed']} failed in {report['wall_ms'] / 1000:.2f} s"
        + (f" ({rate:.1f} ready/s)" if rate else ""),
        "",
        f"{'':22}" + "".join(f"{h:>10}" for h in _PERCENTILES),
    ]
    for label, key in (
        ("create ms", "create_ms"),
        ("create -> ready ms", "create_to_ready_ms"),
        ("probes per computer", "probes_per_computer"),
    ):
        figure = report[key]
        lines.append(f"{label:22}" + "".join(f"{_cell(figure[p]):>10}" for p in _PERCENTILES))
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
            f"orgo-async rm --prefix {report['prefix']}):"
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
