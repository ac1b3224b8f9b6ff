"""``orgo-async replay DIR [-o PATH]``: a recorded trajectory as one HTML page.

``DIR`` is a directory a :class:`~orgo_async.agents.trajectory.TrajectoryRecorder`
wrote (``trajectory.jsonl`` and ``frames/``). The page goes to ``PATH``
(default ``DIR/replay.html``; ``-``: stdout) and holds everything it shows: open
it in a browser, send it on, it loads nothing. One line on stderr says where it
went, how many steps and frames it holds and its size. Works offline and needs
no key: it reads files only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._output import EXIT_OK, PROG, UsageError, note

__all__ = ["add_replay"]


def add_replay(parser: argparse.ArgumentParser) -> None:
    """The ``replay`` command's options and handler."""
    parser.description = """
        Render the trajectory recorded in DIR (trajectory.jsonl and frames/) as one
        self-contained HTML page: every step's action, input, result, timings and screenshot,
        with a step list to click through. Written to --output (default: DIR/replay.html;
        '-': stdout).
    """
    parser.add_argument("directory", metavar="DIR", help="the trajectory's directory")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PATH",
        help="the HTML file (default: DIR/replay.html; '-': stdout)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ..agents.replay import render_replay
    from ..agents.trajectory import TrajectoryError, load_trajectory

    directory = Path(args.directory)
    if not directory.is_dir():
        raise UsageError(f"{PROG} replay: error: {directory} is not a directory")
    try:
        trajectory = load_trajectory(directory)
    except TrajectoryError as exc:
        raise UsageError(f"{PROG} replay: error: {exc}") from None
    page = render_replay(trajectory)
    frames = sum(1 for step in trajectory.steps if step.frame is not None)
    size = len(page.encode())
    if args.output == "-":
        sys.stdout.write(page)
        sys.stdout.flush()
        where = "-"
    else:
        out = Path(args.output) if args.output is not None else directory / "replay.html"
        if out.is_dir():
            raise UsageError(f"{PROG} replay: error: --output {out} is a directory")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{PROG} replay: error: cannot write {out}: {exc}") from None
        where = str(out)
    state = trajectory.outcome or "incomplete"
    note(f"{where}: {len(trajectory.steps)} steps, {frames} frames, {state}, {size} bytes")
    return EXIT_OK
