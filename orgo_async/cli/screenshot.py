"""``orgo-async screenshot ID [-o PATH]``: the computer's screen as an image file.

By default the image comes from the REST API (``--route`` picks the platform
route or the desktop proxy). With ``--vnc`` it is taken over the computer's
VNC socket (``/ws/websockify``) from the framebuffer, as a PNG; that needs
the ``vnc`` extra (``cryptography``, for VNC authentication). Either way the
bytes go to ``PATH`` (default ``screenshot-<computer id>.png`` in the current
directory; ``-``: stdout, refused when stdout is a terminal), and one line on
stderr says where they went, their size and the dimensions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..models import Computer, Screenshot
from ..protocol.png import png_size
from ..resources.desktop import Route
from ._options import add_id
from ._output import EXIT_OK, PROG, UsageError, import_extra, isatty, note
from ._runner import run_command
from ._target import Target, with_computer

__all__ = ["add_screenshot"]


def add_screenshot(parser: argparse.ArgumentParser) -> None:
    """The ``screenshot`` command's options and handler."""
    parser.description = """
        Take a screenshot over the REST API (or with --vnc over VNC) and write the image bytes
        to --output (default: screenshot-ID.png in the current directory, ID being the
        computer's id; '-': stdout, unless it is a terminal); then print on stderr where they
        went, their size and dimensions.
    """
    add_id(parser)
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PATH",
        help="the image file (default: screenshot-ID.png here; '-': stdout, not a terminal)",
    )
    parser.add_argument(
        "--route",
        choices=["platform", "proxy"],
        default=None,
        help="REST route: /computers/{id}/ (platform, default) or the desktop proxy",
    )
    parser.add_argument(
        "--vnc",
        action="store_true",
        help="capture a PNG over VNC (/ws/websockify) instead of the REST API; needs the "
        "vnc extra: pip install 'orgo_async[vnc]'",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.vnc and args.route is not None:
        raise UsageError(f"{PROG} screenshot: error: --route is for the REST API, not --vnc")
    to_stdout = args.output == "-"
    if to_stdout and isatty(sys.stdout):
        raise UsageError(
            f"{PROG} screenshot: error: -o - writes image bytes, and stdout is a terminal; "
            "redirect stdout, or give -o PATH"
        )
    out = None if args.output is None or to_stdout else Path(args.output)
    if out is not None and out.is_dir():
        raise UsageError(f"{PROG} screenshot: error: --output {out} is a directory")
    if args.vnc:
        # Before anything is launched: VNC authentication needs it.
        import_extra("cryptography", extra="vnc", needed_by="screenshot --vnc")
    route: Route = args.route or "platform"

    async def over_rest(target: Target, computer: Computer) -> Screenshot:
        return await target.orgo.desktop(computer, route=route).screenshot()

    take = _over_vnc if args.vnc else over_rest

    async def shoot(target: Target, computer: Computer) -> tuple[str, Screenshot]:
        return computer.id, await take(target, computer)

    computer_id, shot = run_command(with_computer(args, shoot))
    size = f"{shot.width}x{shot.height} " if shot.width and shot.height else ""
    if to_stdout:
        sys.stdout.buffer.write(shot.data)
        sys.stdout.buffer.flush()
        out_name = "-"
    else:
        out = out or Path(f"screenshot-{computer_id}.png")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(shot.data)
        except OSError as exc:
            raise UsageError(f"{PROG} screenshot: error: cannot write {out}: {exc}") from None
        out_name = str(out)
    note(f"{out_name}: {len(shot.data)} bytes, {size}{shot.mime_type}")
    return EXIT_OK


async def _over_vnc(target: Target, computer: Computer) -> Screenshot:
    async with target.orgo.connect(computer).vnc() as vnc:
        data = await vnc.screenshot()
    width, height = png_size(data)
    return Screenshot(data=data, width=width, height=height, mime_type="image/png")
