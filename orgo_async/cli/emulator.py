"""``orgo-async emulator``: serve the local emulator in the foreground.

The options are ``python -m orgo_async.emulator``'s; the first stdout line is
its ``ORGO_BASE_URL=...``, followed on stderr by a hint for pointing the other
commands at it. This is the one command that imports the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import sys
from collections.abc import Callable
from typing import Final

from ..emulator import __main__ as _emulator_main
from ._output import EXIT_OK, PROG, UsageError, log_handler, remember_secret
from ._spawn import EmulatorStartError

__all__ = ["add_emulator"]

_DEFAULT_KEY: Final = "sk_emulator"


def add_emulator(parser: argparse.ArgumentParser) -> None:
    """The ``emulator`` command's options and handler."""
    parser.description = f"""
        Serve a local emulator of Orgo's API until Ctrl-C or SIGTERM. The first stdout line is
        ORGO_BASE_URL=http://HOST:PORT/api; point the other commands at it with --base-url and
        ORGO_API_KEY. The key is --api-key, else ORGO_API_KEY, else {_DEFAULT_KEY}.
    """
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logs on stderr",
    )
    _emulator_main.add_arguments(parser)
    parser.set_defaults(handler=_run, api_key=None)


def _run(args: argparse.Namespace) -> int:
    if args.emulator or args.base_url is not None:
        raise UsageError(f"{PROG} emulator: error: --emulator and --base-url do not apply here")
    from_env = os.environ.get("ORGO_API_KEY") or None
    args.api_key = args.api_key or from_env or _DEFAULT_KEY
    if args.api_key != _DEFAULT_KEY:
        remember_secret(args.api_key)
    level = logging.DEBUG if args.verbose else getattr(logging, args.log_level.upper())
    logging.getLogger("orgo_async").setLevel(level)
    if args.access_log:
        access = logging.getLogger("aiohttp.access")
        access.addHandler(log_handler())
        access.setLevel(logging.INFO)
        access.propagate = False
    try:
        config = _emulator_main.config_from_args(args)
        rules = _emulator_main.faults_from_args(args)
    except ValueError as exc:
        raise UsageError(f"{PROG} emulator: error: {exc}") from None
    announce = _Announcer(_hint(default_key=args.api_key == _DEFAULT_KEY))
    try:
        asyncio.run(_emulator_main.serve(config, rules, announce=announce))
    except KeyboardInterrupt:
        pass  # SIGINT before serve's own handler was installed: a requested stop
    except OSError as exc:
        raise EmulatorStartError(f"cannot serve on {args.host}:{args.port}: {exc}") from exc
    return EXIT_OK


def _hint(*, default_key: bool) -> Callable[[str], None]:
    def hint(base_url: str) -> None:
        # The built-in key is public; a key given by the user is never printed.
        key = (
            f" ORGO_API_KEY={_DEFAULT_KEY}"
            if default_key
            else "  # and ORGO_API_KEY: the key given with --api-key or ORGO_API_KEY"
        )
        print(
            f"{PROG} emulator: for the other commands: export ORGO_BASE_URL={base_url}{key}",
            file=sys.stderr,
            flush=True,
        )

    return hint


class _Announcer(io.StringIO):
    """Passes the emulator's ``ORGO_BASE_URL=...`` line to stdout, then hints on stderr."""

    def __init__(self, hint: Callable[[str], None]) -> None:
        super().__init__()
        self._hint: Callable[[str], None] | None = hint
        self._pending = ""

    def write(self, text: str) -> int:
        sys.stdout.write(text)
        self._pending += text
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()
        if self._hint is not None and "\n" in self._pending:
            line = self._pending.split("\n", 1)[0]
            self._hint(line.removeprefix("ORGO_BASE_URL="))
            self._hint = None
