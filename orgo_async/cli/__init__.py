"""The ``orgo-async`` command line (also ``python -m orgo_async``).

::

    orgo-async [--base-url URL] [--emulator] [--verbose] [--loop LOOP] COMMAND [options]
    orgo-async --version

Commands:

    emulator    serve the local emulator in the foreground (same options as
                ``python -m orgo_async.emulator``; first stdout line ``ORGO_BASE_URL=...``)
    launch      start N computers with a progress line, report latencies, delete them
                (``--keep`` keeps them); ``--json`` prints one JSON object
    ls          the computers (of one ``--workspace``, or of all)
    status ID   one computer's fields (never its ``vnc_password``)
    rm ID...    delete computers; ``rm --prefix P`` reaps the leftovers of launches
    terminal ID the computer's shell, interactive (raw mode on a terminal)
    screenshot ID -o PATH   the screen as an image file (``--vnc``: a PNG taken over VNC)
    bash ID -- COMMAND...   run a shell command; exits with the command's exit code
    template    ``publish FILE [--build] [--follow]``, ``ls``, ``status REF``: templates
    replay DIR [-o PATH]    a recorded agent trajectory as one self-contained HTML page
    bench       measure fleet launch latency against a raw-aiohttp baseline
                (``--plot PATH`` draws the distributions; needs the ``plot`` extra)

The global options may also follow the command (``orgo-async bench --emulator``).
``--loop uvloop`` runs the command's event loop on uvloop (the ``speed`` extra:
``pip install 'orgo_async[speed]'``) instead of asyncio's own.
Without ``--emulator`` the target is ``--base-url`` (else ``ORGO_BASE_URL``)
with the key in ``ORGO_API_KEY``; the key is never taken from the command line,
printed or logged (``--verbose`` logs blank out keys and tokens).

``--emulator`` runs the command against an emulator started on the spot in a
child process and stopped afterwards, so every command works offline. Such an
emulator starts empty: the commands create their workspace there (``--workspace``,
default ``orgo-async``), and the computer id ``new`` launches one computer first
(``orgo-async --emulator bash new -- uname -a``). ``new`` works on any target: the
computer it launches is deleted when the command ends.

Its computers go with it, so ``--emulator ls``, ``status`` and ``rm`` (and
``launch --keep``) say so on stderr. To keep one emulator across commands,
serve it in another terminal and point the commands at it::

    orgo-async emulator --port 8000        # prints the export line below
    export ORGO_BASE_URL=http://127.0.0.1:8000/api ORGO_API_KEY=sk_emulator
    orgo-async launch --count 3 --keep && orgo-async ls

(the emulator's key is ``--api-key``, else ``ORGO_API_KEY``, else ``sk_emulator``).

Errors come out as one line on stderr, without a traceback (``--verbose``
logs it at debug level), and with an exit code per kind of error:

    0    success
    1    an unexpected internal error (a bug; ``--verbose`` shows the traceback)
    2    usage: bad arguments or options, input the SDK refused (``ValueError``),
         a missing optional extra (``bench --plot`` without matplotlib,
         ``screenshot --vnc`` without cryptography, ``--loop uvloop`` without
         uvloop: the message names the extra)
    3    authentication: no ``ORGO_API_KEY``, or the key was refused (401, 403)
    4    not found (404): no such computer or workspace
    5    any other API error (another error status, an answer that does not fit)
    6    connection or timeout: no answer, a timeout, a computer never ready, a
         terminal socket that failed or closed, a command that timed out
    7    fleet failures: some computers did not become ready, or were left behind
    8    the local emulator could not be started (``--emulator``, ``emulator``)
    130  interrupted (Ctrl-C, SIGINT); 143 SIGTERM, 129 SIGHUP

A signal stops a command as Ctrl-C does: what it was doing is cancelled and
its cleanup runs (a launch deletes its computers, ``new`` deletes its
computer, ``--emulator`` stops its emulator), then it exits with 128 + the
signal's number. A second signal does not cut the cleanup short; a third
abandons it.

``bash`` and ``terminal`` pass on the remote command's (shell's) exit code,
and exit with 255 for every failure of their own (the codes 1 to 8 above,
and a remote side that reported no exit code), as ``ssh`` does: a script can
tell a remote ``exit 4`` from a computer that was not found. An interrupt
still exits with 128 + the signal's number.

Each command lives in its own module of this package and is imported only
when it runs (or its ``--help`` is asked for): ``orgo-async --help`` loads
neither the SDK's network stack nor the emulator, and the emulator is loaded
only by the ``emulator`` command (``--emulator`` runs it in a child process).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from .._version import __version__
from ._options import Parser, add_global_options
from ._output import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_CONNECTION,
    EXIT_EMULATOR,
    EXIT_FLEET,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_OWN_FAILURE,
    EXIT_USAGE,
    PROG,
    UsageError,
    classify,
    configure_logging,
    error,
    import_extra,
    leaf,
    log,
    stopped_by,
    stopped_line,
)

__all__ = [
    "EXIT_API",
    "EXIT_AUTH",
    "EXIT_CONNECTION",
    "EXIT_EMULATOR",
    "EXIT_FLEET",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_OWN_FAILURE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

Handler = Callable[[argparse.Namespace], int]

# The commands, in --help order: name, "module:function" that adds the command's
# options and handler to its parser, and the one-line help --help lists.
_COMMANDS: Final = (
    ("emulator", "emulator:add_emulator", "serve the local emulator in the foreground"),
    (
        "launch",
        "launch:add_launch",
        "start N computers, report their launch latency, then delete them",
    ),
    ("ls", "computers:add_ls", "list computers"),
    ("status", "computers:add_status", "show one computer"),
    ("rm", "computers:add_rm", "delete computers, or reap the leftovers of launches by prefix"),
    ("terminal", "terminal:add_terminal", "open the computer's shell interactively"),
    ("screenshot", "screenshot:add_screenshot", "save the computer's screen as an image"),
    ("bash", "bash:add_bash", "run a shell command on the computer"),
    ("bench", "bench:add_bench", "measure fleet launch latency against a raw-aiohttp baseline"),
    ("template", "template:add_template", "publish templates, follow their builds, list them"),
    ("replay", "replay:add_replay", "render a recorded agent trajectory as one HTML page"),
)

# The commands that exit with the remote command's exit code: their own failures
# exit 255 rather than 1..8, so that a caller can tell the two apart (as with ssh).
_PASS_THROUGH: Final = frozenset({"bash", "terminal"})

# `emulator` has options of its own: it serves, it does not act on a target;
# `replay` reads files only.
_WITHOUT_GLOBAL_OPTIONS: Final = frozenset({"emulator", "replay"})

_LOOPS: Final = ("asyncio", "uvloop")

_EPILOG: Final = """\
target: --emulator (a fresh emulator, offline), else --base-url or ORGO_BASE_URL with
ORGO_API_KEY. The computer id 'new' launches one computer first and deletes it at the end.
One emulator for several commands: 'orgo-async emulator --port 8000' in another terminal,
then 'export ORGO_BASE_URL=http://127.0.0.1:8000/api ORGO_API_KEY=sk_emulator'.

exit codes: 0 ok, 1 internal error, 2 usage, 3 authentication, 4 not found, 5 API error,
6 connection or timeout, 7 fleet failures, 8 emulator did not start, 130 interrupted
(128 + the signal: 143 SIGTERM, 129 SIGHUP; a third signal abandons the cleanup);
bash and terminal pass the remote command's code on and exit 255 for their own failures
(like ssh)."""


def _configure(name: str, where: str) -> Callable[[Parser], None]:
    """A parser's ``configure``: import the command's module and let it add its options."""
    module_name, _, function = where.partition(":")

    def configure(parser: Parser) -> None:
        if name not in _WITHOUT_GLOBAL_OPTIONS:
            add_global_options(parser, repeated=True)
        _add_loop_option(parser, repeated=True)
        module = importlib.import_module(f".{module_name}", __name__)
        getattr(module, function)(parser)

    return configure


def _add_loop_option(parser: argparse.ArgumentParser, *, repeated: bool) -> None:
    """``--loop``, before or after the command's name (see :func:`add_global_options`)."""
    parser.add_argument_group("event loop").add_argument(
        "--loop",
        choices=_LOOPS,
        default=argparse.SUPPRESS if repeated else "asyncio",
        help="the event loop the command runs on (default asyncio); uvloop needs "
        "pip install 'orgo_async[speed]'",
    )


@contextlib.contextmanager
def _event_loop(name: str) -> Iterator[None]:
    """Let the command's ``asyncio.run`` run on the event loop ``name`` names.

    Raises:
        UsageError: ``uvloop`` is asked for and not installed.
    """
    if name == "asyncio":
        yield
        return
    uvloop = import_extra("uvloop", extra="speed", needed_by="--loop uvloop")
    import asyncio  # only here: --help must not load it

    # Every command calls asyncio.run itself, so the policy is what reaches them all;
    # it is put back afterwards for whoever calls main() next in this process.
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


def build_parser() -> argparse.ArgumentParser:
    """The ``orgo-async`` parser, with one subparser per command.

    A command's own options are added when that command is parsed or its help
    is formatted, by the module that implements it.
    """
    parser = Parser(
        prog=PROG,
        description="Command line of orgo_async, an asyncio SDK for Orgo's cloud computers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(parser, repeated=False)
    _add_loop_option(parser, repeated=False)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )
    for name, where, help in _COMMANDS:
        commands.add_parser(name, help=help, configure=_configure(name, where))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``orgo-async`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        args = parser.parse_args(words)
    except UsageError as exc:
        error(str(exc))
        return _own_failure(EXIT_USAGE, _command_in(words))
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    configure_logging(args.verbose)
    handler: Handler = args.handler
    try:
        with _event_loop(args.loop):
            return handler(args)
    except UsageError as exc:
        error(str(exc))
        return _own_failure(EXIT_USAGE, args.command)
    except Exception as exc:
        failure = leaf(exc)
        code, kind = classify(failure)
        log.debug("%s %s failed", PROG, args.command, exc_info=exc)
        if code == EXIT_USAGE:
            error(f"{PROG} {args.command}: error: {failure}")
        else:
            hint = " (run with --verbose for the traceback)" if code == EXIT_INTERNAL else ""
            error(f"{PROG} {args.command}: {kind}: {type(failure).__name__}: {failure}{hint}")
        return _own_failure(code, args.command)
    except BaseException as exc:
        signum = stopped_by(exc)
        if signum is None:
            raise
        error(stopped_line(signum))
        return 128 + signum


def _own_failure(code: int, command: str | None) -> int:
    """The exit code of the CLI's own failure: 255 for the commands that pass a remote code on."""
    return EXIT_OWN_FAILURE if command in _PASS_THROUGH else code


def _command_in(words: Sequence[str]) -> str | None:
    """The command named in ``words``, for a failure before argparse could say which it was."""
    rest = iter(words)
    for word in rest:
        if word == "--base-url":
            next(rest, None)
        elif not word.startswith("-"):
            return word
    return None
