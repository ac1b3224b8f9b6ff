"""The ``orgo-async`` command line (also ``python -m orgo_async``).

::

    orgo-async [--base-url URL] [--emulator] [--verbose] COMMAND [options]

Commands:

    bench   measure fleet launch latency against a raw-aiohttp baseline

The global options may also follow the command (``orgo-async bench --emulator``).
Without ``--emulator`` the target is ``--base-url`` (else ``ORGO_BASE_URL``)
with the key in ``ORGO_API_KEY``; the key is never taken from the command line,
printed or logged.

Errors come out as one line on stderr, without a traceback (``--verbose``
logs it at debug level), and with an exit code per kind of error:

    0    success
    1    an unexpected internal error (a bug; ``--verbose`` shows the traceback)
    2    usage: bad arguments or options
    3    authentication: no ``ORGO_API_KEY``, or the key was refused (401, 403)
    4    not found (404)
    5    any other API error (another error status, an answer that does not fit)
    6    connection or timeout: no answer, a timeout, a computer never ready
    7    fleet failures: some computers did not become ready, or were left behind
    8    the local emulator (``--emulator``) could not be started
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TextIO

import aiohttp

from . import _bench
from ._spawn import EmulatorStartError
from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    FleetError,
    MissingAPIKeyError,
    NotFoundError,
    OrgoError,
    PermissionDeniedError,
    ReadyTimeout,
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
    "EXIT_USAGE",
    "build_parser",
    "main",
]

PROG = "orgo-async"

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_API = 5
EXIT_CONNECTION = 6
EXIT_FLEET = 7
EXIT_EMULATOR = 8
EXIT_INTERRUPTED = 130

log = logging.getLogger("orgo_async.cli")

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad arguments: reported on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, not printed and exited)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# --------------------------------------------------------------------------- the parser


def _add_global_options(parser: argparse.ArgumentParser, *, repeated: bool) -> None:
    """The options every command takes, before or after the command's name.

    On a command's own parser (``repeated``) they default to "not given", so
    that they do not overwrite a value given before the command's name.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if repeated else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--base-url",
        default=default(None),
        metavar="URL",
        help="the API root (default: ORGO_BASE_URL); the key is read from ORGO_API_KEY",
    )
    group.add_argument(
        "--emulator",
        action="store_true",
        default=default(False),
        help="run against a local emulator started in a child process, stopped afterwards",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="debug logs on stderr (they cost client CPU: not for measurements)",
    )


def _add_bench(commands: Any) -> None:
    parser = commands.add_parser(
        "bench",
        help="measure fleet launch latency against a raw-aiohttp baseline",
        description="Launch computers with the SDK and with a hand-written raw-aiohttp loop, "
        "alternately, and report create latency, create->ready, ready-detection lag, probes "
        "per computer, client CPU and wall time, and the SDK/baseline ratios. Deletes every "
        "computer it creates.",
    )
    _add_global_options(parser, repeated=True)
    _bench.add_bench_arguments(parser)
    parser.set_defaults(handler=_run_bench)


# One entry per command; a new command adds its parser here.
_COMMANDS: tuple[Callable[[Any], None], ...] = (_add_bench,)


def build_parser() -> argparse.ArgumentParser:
    """The ``orgo-async`` parser, with one subparser per command."""
    parser = _Parser(
        prog=PROG,
        description="Command line of orgo_async, an asyncio SDK for Orgo's cloud computers.",
    )
    _add_global_options(parser, repeated=False)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for add in _COMMANDS:
        add(commands)
    return parser


# --------------------------------------------------------------------------- commands


def _run_bench(args: argparse.Namespace) -> int:
    try:
        config = _bench.config_from_args(
            args, emulator=args.emulator, base_url=args.base_url, verbose=args.verbose
        )
    except ValueError as exc:
        raise UsageError(f"{PROG} bench: error: {exc}") from None
    if args.out is not None:
        try:
            _bench.prepare_out(args.out)
        except OSError as exc:
            raise UsageError(f"{PROG} bench: error: --out {args.out}: {exc}") from None
    result = asyncio.run(_bench.run(config))
    _print(_bench.to_json(result) if args.json else _bench.format_table(result))
    if args.out is not None:
        _bench.write_json(result, args.out)
        print(f"{PROG} bench: wrote {args.out}", file=sys.stderr, flush=True)
    return _bench_status(result)


def _bench_status(result: dict[str, Any]) -> int:
    failed = sum(m["failed"] + m["baseline"]["failed"] for m in result["modes"].values())
    if failed or result["leftover"]:
        _error(
            f"{PROG} bench: {failed} launch(es) failed and {result['leftover']} computer(s) "
            "were left behind (figures above)"
        )
        return EXIT_FLEET
    return EXIT_OK


# --------------------------------------------------------------------------- main


def _print(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:
        pass


def _error(line: str) -> None:
    print(" ".join(line.split()), file=sys.stderr, flush=True)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The CLI's log handler, on stderr (stdout is kept for results)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s %(name)s: %(message)s"))


def _configure_logging(verbose: bool) -> None:
    package = logging.getLogger("orgo_async")
    for old in [h for h in package.handlers if isinstance(h, _StderrHandler)]:
        package.removeHandler(old)
    package.addHandler(_StderrHandler())
    package.setLevel(logging.DEBUG if verbose else logging.WARNING)
    package.propagate = False


def _leaf(exc: BaseException) -> BaseException:
    """The first plain exception of an exception group (FleetError is kept whole)."""
    while isinstance(exc, BaseExceptionGroup) and not isinstance(exc, FleetError):
        exc = exc.exceptions[0]
    return exc


def _classify(exc: BaseException) -> tuple[int, str]:
    """The exit code of an error, and what kind of error to call it."""
    if isinstance(exc, EmulatorStartError):
        return EXIT_EMULATOR, "emulator"
    if isinstance(exc, MissingAPIKeyError | AuthenticationError | PermissionDeniedError):
        return EXIT_AUTH, "authentication"
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND, "not found"
    if isinstance(exc, FleetError):
        return EXIT_FLEET, "fleet"
    if isinstance(
        exc, APIConnectionError | ReadyTimeout | aiohttp.ClientConnectionError | ConnectionError
    ):
        return EXIT_CONNECTION, "connection"
    if isinstance(exc, APIError | OrgoError):
        return EXIT_API, "API error"
    return EXIT_INTERNAL, "internal error"


def main(argv: list[str] | None = None) -> int:
    """Run ``orgo-async`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    _configure_logging(args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        _error(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        leaf = _leaf(exc)
        code, kind = _classify(leaf)
        log.debug("%s %s failed", PROG, args.command, exc_info=exc)
        hint = " (run with --verbose for the traceback)" if code == EXIT_INTERNAL else ""
        _error(f"{PROG} {args.command}: {kind}: {type(leaf).__name__}: {leaf}{hint}")
        return code
