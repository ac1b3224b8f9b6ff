"""What the commands print and how they end: exit codes, output and error lines, logs.

Results go to stdout; errors are one line on stderr, with every secret the
command line met (:func:`remember_secret`) blanked out, and end with an exit
code per kind of error (:func:`classify`). A missing optional extra is a
usage error whose line says what to install (:func:`import_extra`). This
module is on the path of ``orgo-async --help``, so it imports nothing heavy
at the top.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
import signal
import sys
from types import ModuleType
from typing import Final, TextIO

from ..errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConnectorError,
    FleetError,
    MissingAPIKeyError,
    NotFoundError,
    OrgoError,
    PermissionDeniedError,
    ReadyTimeout,
)

PROG: Final = "orgo-async"

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
"""Ctrl-C (SIGINT); any signal that stops a command exits with 128 + its number."""
EXIT_OWN_FAILURE = 255
"""``bash`` and ``terminal``: any failure of the CLI's own (they pass the remote code on)."""

log = logging.getLogger("orgo_async.cli")


class UsageError(Exception):
    """Bad arguments, or a missing optional extra: reported on one line, exit code 2."""


class Stopped(BaseException):
    """A signal stopped the command, after its cleanup ran: exit code 128 + the signal.

    A ``BaseException``, like ``KeyboardInterrupt``: no ``except Exception``
    on the way out may take it for the command's own failure.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def import_extra(module: str, *, extra: str, needed_by: str) -> ModuleType:
    """Import ``module``, which comes with the optional ``extra``.

    Raises:
        UsageError: it is not installed; the message names the extra to install.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"{needed_by} needs {module}: pip install 'orgo_async[{extra}]'") from exc


# --------------------------------------------------------------------------- secrets

_SECRETS: set[str] = set()
_TOKEN_PATTERNS: Final = (
    re.compile(r"(token=)[^&\s'\"]+"),
    re.compile(r"((?:authorization:\s*)?bearer\s+)\S+", re.IGNORECASE),
)


def remember_secret(value: str | None) -> None:
    """Record a secret so that :func:`redact` removes it (short values are ignored)."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with every remembered secret, ``token=...`` and bearer token blanked."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "[redacted]")
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(r"\1[redacted]", text)
    return text


# --------------------------------------------------------------------------- output


def isatty(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (``False`` for anything that cannot say)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def columns(stream: TextIO) -> int:
    """How many columns the terminal behind ``stream`` has.

    ``$COLUMNS`` when set, else stdout's terminal (both as
    :func:`shutil.get_terminal_size` reads them), else ``stream``'s own, else 80.
    """
    try:
        own = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        own = os.terminal_size((80, 24))
    return shutil.get_terminal_size(own).columns


def output(text: str) -> None:
    """Print a result on stdout (a reader that went away is not an error)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        pass


def describe(exc: BaseException) -> str:
    """``Type: message`` of an error, cut at 300 characters."""
    return f"{type(exc).__name__}: {exc}"[:300]


def error(line: str) -> None:
    """Print an error on stderr as one line, secrets blanked."""
    try:
        print(redact(" ".join(line.split())), file=sys.stderr, flush=True)
    except OSError:
        pass  # a terminal that hung up (SIGHUP): the exit code still says what happened


def note(line: str) -> None:
    """Tell the user something that is not a result (stdout is kept for those): as :func:`error`."""
    error(line)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The CLI's log handler, on stderr (stdout is kept for results); secrets are blanked."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s %(name)s: %(message)s"))

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def log_handler() -> logging.Handler:
    """A handler that logs on stderr with secrets blanked."""
    return _StderrHandler()


def configure_logging(verbose: bool) -> None:
    """Send the package's logs to stderr: debug with ``verbose``, else warnings."""
    package = logging.getLogger("orgo_async")
    for old in [h for h in package.handlers if isinstance(h, _StderrHandler)]:
        package.removeHandler(old)
    package.addHandler(_StderrHandler())
    package.setLevel(logging.DEBUG if verbose else logging.WARNING)
    package.propagate = False


# --------------------------------------------------------------------------- exit codes


def remote_exit_code(code: int | None, *, command: str) -> int:
    """The exit code that passes a remote command's on: ``code`` modulo 256.

    When the remote side reported none, that is said on stderr and the code is
    :data:`EXIT_OWN_FAILURE`, as ``ssh`` does.
    """
    if code is None:
        error(f"{PROG} {command}: no exit code came back")
        return EXIT_OWN_FAILURE
    return code & 0xFF


def leaf(exc: BaseException) -> BaseException:
    """The first plain exception of an exception group (FleetError is kept whole)."""
    while isinstance(exc, BaseExceptionGroup) and not isinstance(exc, FleetError):
        exc = exc.exceptions[0]
    return exc


def stopped_by(exc: BaseException) -> int | None:
    """The signal that ``exc`` says stopped the command, if it says one did.

    :class:`Stopped` names it; Ctrl-C, or the cancellation ``asyncio.run``
    turned it into, is SIGINT.
    """
    import asyncio  # every command that runs has loaded it; --help does not need it

    if isinstance(exc, Stopped):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return int(signal.SIGINT)
    return None


def stopped_line(signum: int) -> str:
    """The line that says a signal stopped the command."""
    if signum == signal.SIGINT:
        return f"{PROG}: interrupted"
    return f"{PROG}: stopped by {signal.Signals(signum).name}"


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code of an error, and what kind of error to call it."""
    # Imported here: a command that failed has loaded them already, and --help never needs them.
    import aiohttp

    from ._spawn import EmulatorStartError

    if isinstance(exc, EmulatorStartError):
        return EXIT_EMULATOR, "emulator"
    if isinstance(exc, MissingAPIKeyError | AuthenticationError | PermissionDeniedError):
        return EXIT_AUTH, "authentication"
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND, "not found"
    if isinstance(exc, FleetError):
        return EXIT_FLEET, "fleet"
    if isinstance(
        exc,
        APIConnectionError
        | ReadyTimeout
        | ConnectorError
        | aiohttp.ClientConnectionError
        | ConnectionError
        | TimeoutError,
    ):
        return EXIT_CONNECTION, "connection"
    if isinstance(exc, APIError | OrgoError):
        return EXIT_API, "API error"
    if isinstance(exc, ValueError):
        return EXIT_USAGE, "error"
    return EXIT_INTERNAL, "internal error"
