"""``orgo-async screenshot ID -o PATH``: the computer's screen as an image file.

The image comes from the REST API (``--route`` picks the platform route or the
desktop proxy). The bytes go to ``PATH`` (``-``: stdout) and one line says the
path, the size and the dimensions (on stderr when the image went to stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ..models import Computer, Screenshot
from ._options import add_id
from ._output import EXIT_OK, PROG, UsageError, output
from ._target import Target, with_computer

__all__ = ["add_screenshot"]


def add_screenshot(parser: argparse.ArgumentParser) -> None:
    """The ``screenshot`` command's options and handler."""
    parser.description = """
        Take a screenshot over the REST API and write the image bytes to --output ('-' for
        stdout); then print the path, size and dimensions (on stderr when the image went to
        stdout).
    """
    add_id(parser)
    parser.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="the image file ('-': stdout)"
    )
    parser.add_argument(
        "--route",
        choices=["platform", "proxy"],
        default="platform",
        help="REST route: /computers/{id}/ (platform, default) or the desktop proxy",
    )
    parser.add_argument(
        "--vnc", action="store_true", help="capture over VNC (not available yet: exit code 2)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.vnc:
        raise UsageError(
            f"{PROG} screenshot: error: --vnc is not available yet (VNC capture comes in a "
            "later release); drop --vnc to use the REST screenshot"
        )
    out = None if args.output == "-" else Path(args.output)
    if out is not None and out.is_dir():
        raise UsageError(f"{PROG} screenshot: error: --output {out} is a directory")

    async def run(target: Target, computer: Computer) -> Screenshot:
        return await target.orgo.desktop(computer, route=args.route).screenshot()

    shot = asyncio.run(with_computer(args, run))
    size = f"{shot.width}x{shot.height} " if shot.width and shot.height else ""
    if out is None:
        sys.stdout.buffer.write(shot.data)
        sys.stdout.buffer.flush()
        print(f"-: {len(shot.data)} bytes, {size}{shot.mime_type}", file=sys.stderr)
        return EXIT_OK
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(shot.data)
    except OSError as exc:
        raise UsageError(f"{PROG} screenshot: error: cannot write {out}: {exc}") from None
    output(f"{out}: {len(shot.data)} bytes, {size}{shot.mime_type}")
    return EXIT_OK
