"""``orgo-async bash ID -- COMMAND...``: run a shell command, exit with its exit code.

The CLI's own failures (a bad option, a computer not found, a dropped
connection...) exit with 255 instead, as ``ssh``'s do.

The output (stdout and stderr together, as the API returns them) goes to
stdout. Several words are quoted and joined; one word is shell code as it is.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from ..models import BashResult, Computer
from ._options import add_id, int_at_least
from ._output import remote_exit_code
from ._runner import run_command
from ._target import Target, with_computer

__all__ = ["add_bash"]


def add_bash(parser: argparse.ArgumentParser) -> None:
    """The ``bash`` command's options and handler."""
    parser.description = """
        Run a shell command on the computer and print its output (stdout and stderr together);
        exit with its exit code, or with 255 when the command line itself failed (as ssh does).
        Put the command after '--'. Several words are quoted and joined (bash ID -- sh -c 'echo
        hi; exit 3'); one word is taken as shell code as it is (bash ID -- 'ls | wc -l').
    """
    add_id(parser)
    parser.add_argument(
        "--timeout",
        type=int_at_least(1, 300),
        default=200,
        metavar="S",
        help="seconds the command may run, 1 to 300 (default 200)",
    )
    # Not dest="command": that is where the subparsers put the command's name.
    parser.add_argument("words", nargs="+", metavar="COMMAND", help="the command, after --")
    parser.set_defaults(handler=_run)


def _shell_command(words: Sequence[str]) -> str:
    """One word is shell code as it is; several are quoted and joined."""
    return words[0] if len(words) == 1 else shlex.join(words)


def _run(args: argparse.Namespace) -> int:
    command = _shell_command(args.words)

    async def run(target: Target, computer: Computer) -> BashResult:
        return await target.orgo.desktop(computer).bash(command, timeout=args.timeout)

    result = run_command(with_computer(args, run))
    output = result.output
    if output:
        try:
            sys.stdout.write(output if output.endswith("\n") else output + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            pass
    return remote_exit_code(result.exit_code, command="bash")
