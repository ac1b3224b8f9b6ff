"""The ``orgo-async`` command line (also ``python -m orgo_async``).

::

    orgo-async [--base-url URL] [--emulator] [--verbose] COMMAND [options]

Commands:

    emulator    serve the local emulator in the foreground (same options as
                ``python -m orgo_async.emulator``; first stdout line ``ORGO_BASE_URL=...``)
    launch      start N computers with a progress line, report latencies, delete them
                (``--keep`` keeps them); ``--json`` prints one JSON object
    ls          the computers (of one ``--workspace``, or of all)
    status ID   one computer's fields (never its ``vnc_password``)
    rm ID...    delete computers; ``rm --prefix P`` reaps the leftovers of launches
    terminal ID the computer's shell, interactive (raw mode on a terminal)
    screenshot ID -o PATH   the screen as an image file (``--vnc``: not available yet)
    bash ID -- COMMAND...   run a shell command; exits with the command's exit code
    bench       measure fleet launch latency against a raw-aiohttp baseline
                (``--plot PATH`` draws the distributions; needs the ``plot`` extra)

The global options may also follow the command (``orgo-async bench --emulator``).
Without ``--emulator`` the target is ``--base-url`` (else ``ORGO_BASE_URL``)
with the key in ``ORGO_API_KEY``; the key is never taken from the command line,
printed or logged (``--verbose`` logs blank out keys and tokens).

``--emulator`` runs the command against an emulator started on the spot in a
child process and stopped afterwards, so every command works offline. Such an
emulator starts empty: the commands create their workspace there (``--workspace``,
default ``orgo-async``), and the computer id ``new`` launches one computer first
(``orgo-async --emulator bash new -- uname -a``). ``new`` works on any target: the
computer it launches is deleted when the command ends.

To reuse one emulator across commands, run ``orgo-async emulator --port 8000
--api-key K`` (the key defaults to ``ORGO_API_KEY``, else ``sk_emulator``) and
point the other commands at it: ``ORGO_API_KEY=K orgo-async --base-url
http://127.0.0.1:8000/api ls``.

Errors come out as one line on stderr, without a traceback (``--verbose``
logs it at debug level), and with an exit code per kind of error:

    0    success
    1    an unexpected internal error (a bug; ``--verbose`` shows the traceback)
    2    usage: bad arguments or options, input the SDK refused (``ValueError``),
         ``screenshot --vnc`` (not available yet), ``bench --plot`` without matplotlib
    3    authentication: no ``ORGO_API_KEY``, or the key was refused (401, 403)
    4    not found (404): no such computer or workspace
    5    any other API error (another error status, an answer that does not fit)
    6    connection or timeout: no answer, a timeout, a computer never ready, a
         terminal socket that failed or closed, a command that timed out
    7    fleet failures: some computers did not become ready, or were left behind
    8    the local emulator could not be started (``--emulator``, ``emulator``)
    130  interrupted (Ctrl-C)

``bash`` and ``terminal`` exit with the remote command's (shell's) exit code
when it ran; ``bash`` uses 1 when the API reports none. Those codes can
coincide with the ones above, as ``ssh``'s do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

import aiohttp

from . import _bench, _cli_launch, _cli_plot, _cli_terminal
from ._cli_target import NEW, Target, computer_fields, open_target, redact, remember_secret
from ._spawn import EmulatorStartError
from .emulator import __main__ as _emulator_main
from .errors import (
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
from .models import CPU_CHOICES, RAM_CHOICES, BashResult, Computer, ComputerSpec, Screenshot

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

_EMULATOR_DEFAULT_KEY = "sk_emulator"

log = logging.getLogger("orgo_async.cli")

Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")


class UsageError(Exception):
    """Bad arguments: reported on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, not printed and exited)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# --------------------------------------------------------------------------- option types


# One definition for every command: the benchmark's.
_int_at_least = _bench.int_at_least
_positive_float = _bench.float_above(0)
_non_negative_float = _bench.float_above(0, inclusive=True)


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
        help="debug logs on stderr, secrets blanked (they cost client CPU: not for measurements)",
    )


def _command(commands: Any, name: str, help: str, description: str, handler: Handler) -> Any:
    parser = commands.add_parser(name, help=help, description=description)
    _add_global_options(parser, repeated=True)
    parser.set_defaults(handler=handler)
    return parser


def _add_workspace_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--workspace", metavar="NAME_OR_ID", default=None, help=f"{what} (default: orgo-async)"
    )


def _add_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "id",
        metavar="ID",
        help="the computer's id; 'new' launches one first (in --workspace) and deletes it "
        "at the end",
    )
    _add_workspace_option(parser, "where 'new' launches its computer")


def _add_emulator(commands: Any) -> None:
    parser = commands.add_parser(
        "emulator",
        help="serve the local emulator in the foreground",
        description="Serve a local emulator of Orgo's API until Ctrl-C or SIGTERM. The first "
        "stdout line is ORGO_BASE_URL=http://HOST:PORT/api; point the other commands at it "
        "with --base-url and ORGO_API_KEY. The key is --api-key, else ORGO_API_KEY, else "
        f"{_EMULATOR_DEFAULT_KEY}.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logs on stderr",
    )
    _emulator_main.add_arguments(parser)
    parser.set_defaults(handler=_run_emulator, api_key=None)


def _add_launch(commands: Any) -> None:
    parser = _command(
        commands,
        "launch",
        "start N computers, report their launch latency, then delete them",
        "Launch --count computers named PREFIX-RUN-N into --workspace (created if missing), "
        "with a live progress line when stdout is a terminal, then print a table (or, with "
        "--json, one JSON object) of create latency, create->ready and health probes per "
        "computer, and the failures by type. The computers are deleted at the end, even after "
        "an error or Ctrl-C, unless --keep. Exit code 7 if any computer failed.",
        _run_launch,
    )
    parser.add_argument(
        "--count", type=_int_at_least(1), required=True, help="how many computers to launch"
    )
    parser.add_argument(
        "--concurrency",
        type=_int_at_least(1),
        default=16,
        help="launches in flight at once (default 16)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
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
        type=_positive_float,
        default=120.0,
        metavar="S",
        help="seconds per computer from its create's answer to ready (default 120)",
    )
    parser.add_argument(
        "--prefix",
        default="orgo-async",
        help="name prefix; 'rm --prefix' with it reaps leftovers (default orgo-async)",
    )
    _add_workspace_option(parser, "the workspace, by name (created if missing) or id")
    parser.add_argument(
        "--keep", action="store_true", help="keep the computers (their ids are printed)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout, nothing else"
    )
    parser.add_argument(
        "--boot-ms",
        type=_non_negative_float,
        default=None,
        help="with --emulator: the spawned emulator's boot time in ms (default 300)",
    )


def _add_ls(commands: Any) -> None:
    parser = _command(
        commands,
        "ls",
        "list computers",
        "List the computers of one workspace, or of every workspace: id, name, status, "
        "instance id, resolution, creation time.",
        _run_ls,
    )
    parser.add_argument(
        "--workspace", metavar="NAME_OR_ID", default=None, help="only this workspace"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON array")


def _add_status(commands: Any) -> None:
    parser = _command(
        commands,
        "status",
        "show one computer",
        "Show one computer's fields (never its vnc_password).",
        _run_status,
    )
    _add_id(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def _add_rm(commands: Any) -> None:
    parser = _command(
        commands,
        "rm",
        "delete computers, or reap the leftovers of launches by prefix",
        "Delete the computers given by id, or with --prefix P every computer named P-... "
        "(of --workspace, else of every workspace): the leftovers of crashed or --keep "
        "launches. Prints what was deleted.",
        _run_rm,
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help="computer ids")
    parser.add_argument("--prefix", default=None, help="delete every computer named PREFIX-...")
    parser.add_argument(
        "--workspace", metavar="NAME_OR_ID", default=None, help="with --prefix: only this one"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def _add_terminal(commands: Any) -> None:
    parser = _command(
        commands,
        "terminal",
        "open the computer's shell interactively",
        "Connect this terminal to the computer's shell: stdin in raw mode (every key goes to "
        "the remote shell; Ctrl-D at an empty prompt ends it), the window size follows this "
        "one, and the terminal is restored on exit. Piped stdin is sent as is, then a Ctrl-D. "
        "Exits with the shell's exit code.",
        _run_terminal,
    )
    _add_id(parser)


def _add_screenshot(commands: Any) -> None:
    parser = _command(
        commands,
        "screenshot",
        "save the computer's screen as an image",
        "Take a screenshot over the REST API and write the image bytes to --output ('-' for "
        "stdout); then print the path, size and dimensions (on stderr when the image went "
        "to stdout).",
        _run_screenshot,
    )
    _add_id(parser)
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


def _add_bash(commands: Any) -> None:
    parser = _command(
        commands,
        "bash",
        "run a shell command on the computer",
        "Run a shell command on the computer and print its output (stdout and stderr "
        "together); exit with its exit code. Put the command after '--'. Several words are "
        "quoted and joined (bash ID -- sh -c 'echo hi; exit 3'); one word is taken as shell "
        "code as it is (bash ID -- 'ls | wc -l').",
        _run_bash,
    )
    _add_id(parser)
    parser.add_argument(
        "--timeout",
        type=_int_at_least(1, 300),
        default=200,
        metavar="S",
        help="seconds the command may run, 1 to 300 (default 200)",
    )
    parser.add_argument("command", nargs="+", metavar="COMMAND", help="the command, after --")


def _add_bench(commands: Any) -> None:
    parser = _command(
        commands,
        "bench",
        "measure fleet launch latency against a raw-aiohttp baseline",
        "Launch computers with the SDK and with a hand-written raw-aiohttp loop, "
        "alternately, and report create latency, create->ready, ready-detection lag, probes "
        "per computer, client CPU and wall time, and the SDK/baseline ratios. Deletes every "
        "computer it creates.",
        _run_bench,
    )
    _bench.add_bench_arguments(parser)
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PATH",
        help="also draw the CDFs of create->ready and detection lag into PATH (PNG); "
        "needs matplotlib: pip install 'orgo_async[plot]'",
    )


_EPILOG = """\
target: --emulator (a fresh emulator, offline), else --base-url or ORGO_BASE_URL with
ORGO_API_KEY. The computer id 'new' launches one computer first and deletes it at the end.

exit codes: 0 ok, 1 internal error, 2 usage, 3 authentication, 4 not found, 5 API error,
6 connection or timeout, 7 fleet failures, 8 emulator did not start, 130 interrupted;
bash and terminal exit with the remote command's code."""

# One entry per command; a new command adds its parser here.
_COMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_emulator,
    _add_launch,
    _add_ls,
    _add_status,
    _add_rm,
    _add_terminal,
    _add_screenshot,
    _add_bash,
    _add_bench,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``orgo-async`` parser, with one subparser per command."""
    parser = _Parser(
        prog=PROG,
        description="Command line of orgo_async, an asyncio SDK for Orgo's cloud computers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_global_options(parser, repeated=False)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for add in _COMMANDS:
        add(commands)
    return parser


# --------------------------------------------------------------------------- commands


def _target(
    args: argparse.Namespace, **options: Any
) -> contextlib.AbstractAsyncContextManager[Target]:
    """The command's :class:`Target` (an async context manager)."""
    return open_target(
        emulator=args.emulator, base_url=args.base_url, verbose=args.verbose, **options
    )


def _run_emulator(args: argparse.Namespace) -> int:
    if args.emulator or args.base_url is not None:
        raise UsageError(f"{PROG} emulator: error: --emulator and --base-url do not apply here")
    from_env = os.environ.get("ORGO_API_KEY") or None
    args.api_key = args.api_key or from_env or _EMULATOR_DEFAULT_KEY
    if args.api_key != _EMULATOR_DEFAULT_KEY:
        remember_secret(args.api_key)
    level = logging.DEBUG if args.verbose else getattr(logging, args.log_level.upper())
    logging.getLogger("orgo_async").setLevel(level)
    if args.access_log:
        access = logging.getLogger("aiohttp.access")
        access.addHandler(_StderrHandler())
        access.setLevel(logging.INFO)
        access.propagate = False
    try:
        config = _emulator_main.config_from_args(args)
        rules = _emulator_main.faults_from_args(args)
    except ValueError as exc:
        raise UsageError(f"{PROG} emulator: error: {exc}") from None
    announce = _Announcer(_emulator_hint(default_key=args.api_key == _EMULATOR_DEFAULT_KEY))
    try:
        asyncio.run(_emulator_main.serve(config, rules, announce=announce))
    except KeyboardInterrupt:
        pass  # SIGINT before serve's own handler was installed: a requested stop
    except OSError as exc:
        raise EmulatorStartError(f"cannot serve on {args.host}:{args.port}: {exc}") from exc
    return EXIT_OK


def _emulator_hint(*, default_key: bool) -> Callable[[str], None]:
    def hint(base_url: str) -> None:
        # The built-in key is public; a key given by the user is never printed.
        key = (
            f" ORGO_API_KEY={_EMULATOR_DEFAULT_KEY}"
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


def _run_launch(args: argparse.Namespace) -> int:
    if args.boot_ms is not None and not args.emulator:
        raise UsageError(f"{PROG} launch: error: --boot-ms needs --emulator")
    # Check the fields before anything is started or created (ValueError: exit 2).
    ComputerSpec(
        name="check", workspace_id="check", ram=args.ram, cpu=args.cpu, resolution=args.resolution
    )
    options = _cli_launch.LaunchOptions(
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
        progress=not args.json and _isatty(sys.stdout),
    )

    async def run() -> dict[str, Any]:
        async with _target(args, boot_ms=args.boot_ms) as target:
            return await _cli_launch.launch(target, options)

    report = asyncio.run(run())
    _print(_cli_launch.to_json(report) if args.json else _cli_launch.format_table(report))
    if report["failed"] or report["left_behind"]:
        _error(
            f"{PROG} launch: {report['failed']} of {report['count']} computer(s) failed"
            + (
                f" and {len(report['left_behind'])} could not be deleted"
                if report["left_behind"]
                else ""
            )
        )
        return EXIT_FLEET
    return EXIT_OK


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _created(computer: Computer) -> str:
    if computer.created_at is None:
        return "-"
    return computer.created_at.isoformat(sep=" ", timespec="seconds")


def _run_ls(args: argparse.Namespace) -> int:
    async def run() -> list[Computer]:
        async with _target(args) as target:
            if target.spawned:
                await target.workspace(args.workspace, create=True)
            return await target.computers(args.workspace)

    computers = asyncio.run(run())
    if args.json:
        _print(json.dumps([computer_fields(c) for c in computers], indent=2))
        return EXIT_OK
    if not computers:
        _print("no computers")
        return EXIT_OK
    rows = [
        [c.id, _cell(c.name), str(c.status), _cell(c.instance_id), _cell(c.resolution), _created(c)]
        for c in computers
    ]
    _print(_table(["ID", "NAME", "STATUS", "INSTANCE", "RESOLUTION", "CREATED"], rows))
    return EXIT_OK


async def _with_computer(
    args: argparse.Namespace, action: Callable[[Target, Computer], Awaitable[T]]
) -> T:
    """Open the target, read (or launch, for ``new``) the computer, run ``action`` on it."""
    async with _target(args) as target:
        computer = await target.computer(args.id, workspace=args.workspace)
        return await action(target, computer)


def _run_status(args: argparse.Namespace) -> int:
    async def fields(target: Target, computer: Computer) -> dict[str, Any]:
        return computer_fields(computer)

    found = asyncio.run(_with_computer(args, fields))
    if args.json:
        _print(json.dumps(found, indent=2))
    else:
        width = max(len(k) for k in found)
        _print("\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in found.items()))
    return EXIT_OK


def _run_rm(args: argparse.Namespace) -> int:
    if bool(args.ids) == (args.prefix is not None):
        raise UsageError(f"{PROG} rm: error: give computer ids, or --prefix P (one of the two)")
    if args.workspace is not None and args.prefix is None:
        raise UsageError(f"{PROG} rm: error: --workspace goes with --prefix")

    async def run() -> list[dict[str, Any]]:
        async with _target(args) as target:
            if args.prefix is not None:
                workspace_id = None
                if args.workspace is not None:
                    workspace_id = (await target.workspace(args.workspace, create=False)).id
                reaped = await target.orgo.reap(args.prefix, workspace_id=workspace_id)
                return [{"id": c.id, "name": c.name} for c in reaped]
            ids = [await _resolve_new(target, i) for i in args.ids]
            results = await asyncio.gather(
                *(target.orgo.computers.delete(i) for i in ids), return_exceptions=True
            )
            deleted = [
                {"id": i, "name": None}
                for i, r in zip(ids, results, strict=True)
                if not isinstance(r, BaseException)
            ]
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                for entry in deleted:
                    _print(f"deleted {entry['id']}")
                raise failed[0]
            return deleted

    deleted = asyncio.run(run())
    if args.json:
        _print(json.dumps({"deleted": deleted}, indent=2))
    elif not deleted:
        _print("nothing to delete")
    else:
        for entry in deleted:
            _print(f"deleted {entry['id']}" + (f"  {entry['name']}" if entry["name"] else ""))
    return EXIT_OK


async def _resolve_new(target: Target, computer_id: str) -> str:
    if computer_id == NEW:
        return (await target.computer(NEW)).id
    return computer_id


def _run_terminal(args: argparse.Namespace) -> int:
    async def run(target: Target, computer: Computer) -> int:
        return await _cli_terminal.interact(
            target.orgo, computer, stdin_fd=sys.stdin.fileno(), stdout=sys.stdout.buffer
        )

    sys.stdout.flush()
    return asyncio.run(_with_computer(args, run))


def _run_screenshot(args: argparse.Namespace) -> int:
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

    shot = asyncio.run(_with_computer(args, run))
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
    _print(f"{out}: {len(shot.data)} bytes, {size}{shot.mime_type}")
    return EXIT_OK


def _shell_command(words: Sequence[str]) -> str:
    """One word is shell code as it is; several are quoted and joined."""
    return words[0] if len(words) == 1 else shlex.join(words)


def _run_bash(args: argparse.Namespace) -> int:
    command = _shell_command(args.command)

    async def run(target: Target, computer: Computer) -> BashResult:
        return await target.orgo.desktop(computer).bash(command, timeout=args.timeout)

    result = asyncio.run(_with_computer(args, run))
    output = result.output
    if output:
        try:
            sys.stdout.write(output if output.endswith("\n") else output + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            pass
    code = result.exit_code
    if code is None:
        return 1
    return code if 0 <= code <= 255 else code & 0xFF


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
    pyplot = None
    if args.plot is not None:
        # Before the run: a missing extra or an unwritable path costs nothing.
        try:
            pyplot = _cli_plot.load_pyplot()
            _bench.prepare_out(args.plot)
        except _cli_plot.PlotUnavailable as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"{PROG} bench: error: --plot {args.plot}: {exc}") from None
    result = asyncio.run(_bench.run(config))
    _print(_bench.to_json(result) if args.json else _bench.format_table(result))
    if args.out is not None:
        _bench.write_json(result, args.out)
        print(f"{PROG} bench: wrote {args.out}", file=sys.stderr, flush=True)
    if pyplot is not None:
        try:
            _cli_plot.draw(pyplot, result, args.plot)
        except OSError as exc:
            raise UsageError(f"{PROG} bench: error: --plot {args.plot}: {exc}") from None
        print(f"{PROG} bench: drew {args.plot}", file=sys.stderr, flush=True)
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


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _print(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:
        pass


def _error(line: str) -> None:
    print(redact(" ".join(line.split())), file=sys.stderr, flush=True)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The CLI's log handler, on stderr (stdout is kept for results); secrets are blanked."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s %(name)s: %(message)s"))

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


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
        if code == EXIT_USAGE:
            _error(f"{PROG} {args.command}: error: {leaf}")
            return code
        hint = " (run with --verbose for the traceback)" if code == EXIT_INTERNAL else ""
        _error(f"{PROG} {args.command}: {kind}: {type(leaf).__name__}: {leaf}{hint}")
        return code
