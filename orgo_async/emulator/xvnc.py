"""Real desktops for the emulator's ``xvnc`` backend: one TigerVNC ``Xvnc`` per computer.

``Xvnc`` is an X server and an RFB (VNC) server in one process. Each boot of
an ``xvnc`` computer (create, start, restart) starts a new one, in the
background, as the leader of its own session::

    Xvnc -displayfd FD -rfbport -1 -rfbunixpath DIR/rfb.sock
         -SecurityTypes VncAuth -PasswordFile DIR/passwd -BlacklistThreshold 1000000
         -geometry WxH -depth 24 -nolisten tcp -AlwaysShared

- **Display.** ``-displayfd`` lets Xvnc pick a free display number and write it
  to a pipe once it accepts connections. That line is the readiness signal:
  nothing here sleeps or polls.
- **Access.** RFB listens only on a unix socket in a private directory (0700),
  never on TCP. VNC authentication uses the computer's ``vnc_password``, of
  which, as with every VNC server, only the first 8 characters count.
- **Password file.** ``DIR/passwd`` is written by ``vncpasswd -f``. Xvnc re-reads
  it for every new connection, so :meth:`XvncServer.set_password` rotates the
  password of a running server.
- **Logging.** Xvnc's output goes to ``DIR/Xvnc.log``. A failed start or an
  unexpected exit logs its last lines.
- **Lifecycle.** The Xvnc starts when the boot begins (about 50 ms here, so it
  is ready well before a default 300 ms boot completes; actions and sockets
  that arrive earlier wait for it). A stop, delete or restart (which boots a
  new Xvnc) ends the server: SIGTERM to its session, a grace period, then
  SIGKILL to whatever is left, and the process is always reaped (about 12 ms).
  The emulator's close waits for all of them, so no ``Xvnc`` outlives it. An
  Xvnc that cannot start, or exits on its own, fails the boot: the computer
  goes to ``error``.

:class:`XvncManager` ties servers to the store's lifecycle. If ``Xvnc`` (or
``vncpasswd``) is not installed, the boot fails with a log line and the
computer ends in ``error``. :func:`run_x` runs an X client (``xdotool``...) on a
display. :func:`capture_screen` reads the screen with an RFB connection of the
emulator's own, decoded by the protocol core in its client role.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs

from .._aio import signal_child
from ..errors import ProtocolError
from ..protocol.rfb import ENCODING_RAW, Framebuffer, FramebufferUpdateEnd, Ready, RFBClientProtocol
from .sandbox import (
    SANDBOX_RUN,
    SANDBOX_RUN_AUTH,
    Sandbox,
    SandboxError,
    Sandboxes,
    communicate,
    read_until,
    sandbox_env,
)
from .shell import wait_gone
from .store import BootKind, Computer, Store, Transition
from .watch import session_members

__all__ = [
    "CAPTURE_TIMEOUT",
    "DESKTOP_BACKGROUND",
    "SESSION_TIMEOUT",
    "TERMINAL_TITLE",
    "START_TIMEOUT",
    "STOP_GRACE",
    "X_TOOL_TIMEOUT",
    "XvncError",
    "XvncManager",
    "XvncServer",
    "capture_screen",
    "run_x",
    "start_session",
]

log = logging.getLogger("orgo_async.emulator")

START_TIMEOUT: Final = 20.0
"""Seconds an Xvnc may take to report its display. A cold first start took 1.9 s
here (fonts and keymaps read from disk); later ones take about 50 ms."""

STOP_GRACE: Final = 2.0
"""Seconds between SIGTERM and SIGKILL when an Xvnc is stopped (it needs about 15 ms)."""

X_TOOL_TIMEOUT: Final = 10.0
"""Seconds an X client such as ``xdotool`` may run before it is killed."""

CAPTURE_TIMEOUT: Final = 10.0
"""Seconds a screen capture over RFB may take."""

_LOG_TAIL: Final = 2000
_READ_SIZE: Final = 1 << 20


class XvncError(Exception):
    """An Xvnc could not be started, has failed, or an X client failed.

    Messages never contain a password.
    """


def _x_env(home: Path, display: str | None = None) -> dict[str, str]:
    # Built from scratch: nothing of the emulator's environment (an API key) leaks.
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LANG": "C.UTF-8"}
    if display is not None:
        env["DISPLAY"] = display
    return env


def _signal_session(process: asyncio.subprocess.Process, signum: int) -> int:
    """Send ``signum`` to every live process of the process's session; how many."""
    targets = set(session_members(process.pid))
    if process.returncode is None:
        targets.add(process.pid)  # until setsid() has run, it is not yet a session leader
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
    return len(targets)


async def _end_session(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the session, wait ``grace``, SIGKILL what is left, reap the leader."""
    if process.returncode is None and grace > 0:
        _signal_session(process, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), grace)
    # Whatever is left of the session (the leader, or a child such as xkbcomp).
    for _ in range(5):
        if not _signal_session(process, signal.SIGKILL):
            break
        await wait_gone(session_members(process.pid), 0.5)
        if process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), 0.5)
    await process.wait()


def _link_socket(source: Path, link: Path) -> None:
    """Hard-link the socket ``source`` at ``link``, refusing anything but a socket."""
    try:
        os.link(source, link, follow_symlinks=False)
        if not stat.S_ISSOCK(os.lstat(link).st_mode):
            os.unlink(link)
            raise XvncError("the desktop's RFB socket is not a socket")
    except OSError as exc:
        raise XvncError(f"cannot reach the desktop's RFB socket: {exc}") from exc


async def _read_line(fd: int) -> bytes:
    """The first line written to a pipe (without its newline); b"" at EOF. Closes ``fd``."""
    try:
        data = await read_until(fd, b"\n", limit=64)
    finally:
        os.close(fd)
    return data.split(b"\n", 1)[0] if b"\n" in data else b""


async def run_x(
    display: str,
    argv: list[str],
    *,
    home: Path,
    sandbox: Sandbox | None = None,
    timeout: float = X_TOOL_TIMEOUT,
) -> str:
    """Run an X client on ``display`` (``":N"``) in its own session; its stdout.

    In ``sandbox`` when given (where that display is), else on the host in
    ``home``. Cancelling the caller, or the timeout, kills it (it is always
    reaped).

    Raises:
        XvncError: it could not start, timed out or exited non-zero (with the
            tail of its stderr).
    """
    env = _x_env(home, display) if sandbox is None else sandbox_env(display)
    try:
        process = await asyncio.create_subprocess_exec(
            *(argv if sandbox is None else sandbox.enter(argv)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=home,
            start_new_session=True,
        )
    except (OSError, SandboxError) as exc:
        raise XvncError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await communicate(process, timeout)
    except TimeoutError:
        raise XvncError(f"{argv[0]} {argv[1]} took longer than {timeout:g} s") from None
    if process.returncode != 0:
        detail = err.decode(errors="replace").strip()[-500:]
        raise XvncError(f"{argv[0]} {argv[1]} exited with {process.returncode}: {detail}")
    return out.decode(errors="replace")


# --------------------------------------------------------------------------- one server


class XvncServer:
    """One ``Xvnc``: an X display plus an RFB server on a unix socket in ``directory``.

    :meth:`start` it once, :meth:`stop` it once (idempotent, cancel-safe: the
    stop runs on in its own task). ``directory`` is created by :meth:`start`
    and removed by :meth:`stop`.

    With a ``sandbox`` the Xvnc runs inside it: it reads its password file
    from the sandbox's read-only ``/run/orgo-auth`` and makes its socket in
    ``/run/orgo``, which the emulator hard-links into ``directory`` as soon as
    the display is up. The emulator connects to that link only: whatever the
    computer's own processes later put at ``/run/orgo/rfb.sock`` (a link to a
    socket of the host, say), the emulator never follows it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        width: int,
        height: int,
        name: str = "orgo",
        xvnc: str = "Xvnc",
        vncpasswd: str = "vncpasswd",
    ) -> None:
        self.directory: Final = directory
        self.width: Final = width
        self.height: Final = height
        self.name: Final = name
        self.socket_path: Final = directory / "rfb.sock"
        """The RFB server's unix socket (VNC authentication with the password)."""
        self.sandbox: Sandbox | None = None
        """Where the Xvnc runs (set by :meth:`start`)."""
        self.log_path: Final = directory / "Xvnc.log"
        self.display: str | None = None
        """``":N"`` once started."""
        self.process: asyncio.subprocess.Process | None = None
        self._xvnc = xvnc
        self._vncpasswd = vncpasswd
        self._stop_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The Xvnc's pid (also its session id), once spawned."""
        return None if self.process is None else self.process.pid

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop_task is not None

    @property
    def password_file(self) -> Path:
        """The password file, as the emulator sees it."""
        return self.directory / "passwd" if self.sandbox is None else self.sandbox.auth / "passwd"

    @property
    def alive(self) -> bool:
        """True while the Xvnc runs (and its sandbox, if any)."""
        return (
            self.process is not None
            and self.process.returncode is None
            and not self.stopping
            and (self.sandbox is None or self.sandbox.alive)
        )

    def log_tail(self) -> str:
        """The last lines Xvnc wrote (for error messages)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _LOG_TAIL))
                return f.read().decode(errors="replace").strip()
        except OSError:
            return ""

    async def set_password(self, password: str) -> None:
        """(Re)write the password file with ``vncpasswd -f``, atomically.

        Xvnc reads the file for each new connection: connections made from now
        on need ``password`` (its first 8 characters); open ones stay open.

        Raises:
            XvncError: ``vncpasswd`` failed.
        """
        try:
            process = await asyncio.create_subprocess_exec(
                self._vncpasswd,
                "-f",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=_x_env(self.directory),
                start_new_session=True,
            )
        except OSError as exc:
            raise XvncError(f"cannot run {self._vncpasswd}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(
                process.communicate(password.encode() + b"\n"), X_TOOL_TIMEOUT
            )
        except BaseException:
            signal_child(process, signal.SIGKILL)
            await asyncio.shield(process.wait())
            raise
        if process.returncode != 0 or not out:
            detail = err.decode(errors="replace").strip()[-300:]
            raise XvncError(f"vncpasswd -f failed ({process.returncode}): {detail}")
        temporary = self.password_file.with_suffix(".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, out)
        finally:
            os.close(fd)
        # Atomic: a connection arriving now reads the old file or the new one, never half.
        os.replace(temporary, self.password_file)

    async def start(
        self, password: str, *, sandbox: Sandbox | None = None, timeout: float = START_TIMEOUT
    ) -> str:
        """Write the password file, spawn Xvnc and wait until it reports its display.

        Inside ``sandbox`` when given (running). Returns the display
        (``":N"``). On failure the process is left for :meth:`stop` to end
        (call it in any case).

        Raises:
            XvncError: Xvnc could not be started or did not become ready in
                ``timeout`` seconds (the message ends with its log's tail).
        """
        if self.process is not None or self.stopping:
            raise RuntimeError("an XvncServer is started once")
        self.directory.mkdir(mode=0o700, parents=True)
        self.sandbox = sandbox
        await self.set_password(password)
        if sandbox is None:
            socket_arg, password_arg = str(self.socket_path), str(self.password_file)
        else:
            socket_arg, password_arg = f"{SANDBOX_RUN}/rfb.sock", f"{SANDBOX_RUN_AUTH}/passwd"
        argv = [
            self._xvnc,
            "-displayfd",
            "",  # the pipe, below
            "-rfbport",
            "-1",
            "-rfbunixpath",
            socket_arg,
            "-SecurityTypes",
            "VncAuth",
            "-PasswordFile",
            password_arg,
            "-BlacklistThreshold",
            "1000000",
            "-geometry",
            f"{self.width}x{self.height}",
            "-depth",
            "24",
            "-desktop",
            self.name,
            "-nolisten",
            "tcp",
            "-AlwaysShared",
        ]
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        read_fd, write_fd = os.pipe()
        argv[2] = str(write_fd)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *(argv if sandbox is None else sandbox.enter(argv)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=(write_fd,),
                env=_x_env(self.directory) if sandbox is None else sandbox_env(),
                cwd=self.directory,
                start_new_session=True,
            )
        except BaseException as exc:
            os.close(read_fd)
            if isinstance(exc, OSError | SandboxError):
                raise XvncError(f"cannot start {self._xvnc}: {exc}") from exc
            raise
        finally:
            # Only Xvnc holds the write end now: its exit shows up as EOF.
            os.close(write_fd)
            os.close(log_fd)
        try:
            line = await asyncio.wait_for(_read_line(read_fd), timeout)
        except TimeoutError:
            raise XvncError(
                f"Xvnc did not report its display within {timeout:g} s\n{self.log_tail()}"
            ) from None
        number = line.strip()
        if not number.isdigit():
            raise XvncError(f"Xvnc exited before reporting its display\n{self.log_tail()}")
        if sandbox is not None:
            _link_socket(sandbox.shared / "rfb.sock", self.socket_path)
        self.display = f":{int(number)}"
        return self.display

    async def wait(self) -> int:
        """Wait for the Xvnc to exit; its return code (-N after signal N)."""
        if self.process is None:
            raise RuntimeError("the XvncServer was not started")
        return await self.process.wait()

    def stop(self, grace: float = STOP_GRACE) -> asyncio.Task[None]:
        """End the Xvnc's session (SIGTERM, ``grace``, SIGKILL), reap it, remove its files.

        Idempotent: returns the task doing it (the same on every call).
        """
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(
                self._stop(grace), name=f"orgo-emulator-stop-xvnc-{self.directory.name}"
            )
        return self._stop_task

    async def _stop(self, grace: float) -> None:
        try:
            if self.process is not None:
                await _end_session(self.process, grace)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


# --------------------------------------------------------------------------- screenshots


async def capture_screen(
    socket_path: Path, password: str, *, timeout: float = CAPTURE_TIMEOUT
) -> tuple[int, int, bytes]:
    """Read the whole screen of an RFB server on a unix socket: ``(width, height, rgb)``.

    One connection of its own (shared, so other viewers stay connected),
    VNC authentication with ``password``, one non-incremental update in Raw
    (cheapest over a unix socket), decoded by the RFB core.

    Raises:
        XvncError: the server could not be reached, refused the password,
            broke the protocol or took longer than ``timeout``.
    """
    try:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
    except OSError as exc:
        raise XvncError(f"cannot connect to the desktop's RFB socket: {exc}") from exc
    core = RFBClientProtocol(password=password, encodings=(ENCODING_RAW,))
    screen = Framebuffer()
    try:
        async with asyncio.timeout(timeout):
            while True:
                data = await reader.read(_READ_SIZE)
                if data:
                    core.receive_data(data)
                else:
                    core.receive_eof()
                for event in core.events_received():
                    screen.apply(event)  # ServerInit sizes it; the rectangles paint it
                    if isinstance(event, Ready):
                        core.send_update_request(incremental=False)
                    elif isinstance(event, FramebufferUpdateEnd):
                        if screen.complete:
                            return screen.width, screen.height, bytes(screen.pixels)
                        core.send_update_request(incremental=False)
                if not data:
                    raise XvncError("the desktop's RFB server closed the connection")
                for chunk in core.data_to_send():
                    writer.write(chunk)
                await writer.drain()
    except ProtocolError as exc:
        raise XvncError(f"screen capture failed: {exc}") from exc
    except TimeoutError:
        raise XvncError(f"screen capture took longer than {timeout:g} s") from None
    except OSError as exc:
        raise XvncError(f"screen capture failed: {exc}") from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# --------------------------------------------------------------------------- the desktop session

DESKTOP_BACKGROUND: Final = "#3b4a5a"
"""The root window's colour on a sandboxed desktop (Xvnc's own is black)."""

TERMINAL_TITLE: Final = "Terminal"
"""The title of the terminal window a sandboxed desktop starts with."""

SESSION_TIMEOUT: Final = 15.0
"""Seconds the window manager and the terminal may take to appear."""

# Each step runs in the sandbox with DISPLAY set, in the background where it
# starts a program: the programs live until the sandbox is killed (its init
# adopts them). Each waits for the check after it: a window mapped while the
# window manager is still starting may be lost, unmapped, between the two.
_SESSION_STEPS: Final = (
    (
        f"""
command -v xsetroot >/dev/null && xsetroot -solid '{DESKTOP_BACKGROUND}'
if command -v openbox >/dev/null; then openbox --sm-disable >/tmp/.openbox.log 2>&1 & fi
exit 0
""",
        """
command -v openbox >/dev/null && command -v xprop >/dev/null || exit 0
xprop -root _NET_SUPPORTING_WM_CHECK 2>/dev/null | grep -q 'window id' && exit 0
echo 'the window manager is not up'; exit 1
""",
    ),
    (
        f"""
if command -v xterm >/dev/null; then
  xterm -title {TERMINAL_TITLE} -geometry 100x30+40+40 >/dev/null 2>&1 &
fi
exit 0
""",
        f"""
command -v xterm >/dev/null || exit 0
xdotool search --onlyvisible --name '^{TERMINAL_TITLE}$' >/dev/null 2>&1 && exit 0
echo 'the terminal is not on screen'; exit 1
""",
    ),
)

_SESSION_POLL: Final = 0.02


async def start_session(sandbox: Sandbox, display: str) -> None:
    """Start the desktop session on a sandboxed display and wait until it is on screen:
    the root painted, a window manager (openbox), a terminal (xterm), each when
    installed (the terminal only when the emulator runs as root).

    Raises:
        XvncError: it did not come up in :data:`SESSION_TIMEOUT` seconds.
    """
    env = sandbox_env(display)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SESSION_TIMEOUT
    # In a user namespace root cannot change groups, and xterm, started as root,
    # insists: no terminal window there (the emulator must run as root for one).
    steps = _SESSION_STEPS[:1] if sandbox.user_namespace else _SESSION_STEPS
    try:
        for start, check in steps:
            code, output = await sandbox.run(["/bin/sh", "-c", start], env=env)
            while code == 0:
                code, output = await sandbox.run(["/bin/sh", "-c", check], env=env)
                if code == 0:
                    break
                if loop.time() >= deadline:
                    raise XvncError(
                        f"the desktop session did not come up in {SESSION_TIMEOUT:g} s:"
                        f" {output.strip()[-300:]}"
                    )
                await asyncio.sleep(_SESSION_POLL)
                code = 0
            else:
                raise XvncError(f"the desktop session failed: {output.strip()[-300:]}")
    except SandboxError as exc:
        raise XvncError(f"the desktop session failed: {exc}") from None


# --------------------------------------------------------------------------- the manager


def _resolution_size(resolution: str) -> tuple[int, int]:
    width, height, *_ = (int(part) for part in resolution.split("x"))
    return width, height


class _Entry:
    """One computer's current Xvnc: the server, its readiness and its watch task."""

    def __init__(self, server: XvncServer, generation: int) -> None:
        self.server = server
        self.generation = generation
        self.ready: asyncio.Future[XvncServer] = asyncio.get_running_loop().create_future()
        # A failure nobody awaited must not be reported as "never retrieved".
        self.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.task: asyncio.Task[None] | None = None


class _Spare:
    """A desktop booted ahead for the pool: its sandbox, its Xvnc (session up), its disk."""

    def __init__(self, sandbox: Sandbox, server: XvncServer, home: Path) -> None:
        self.sandbox = sandbox
        self.server = server
        self.home = home

    @property
    def alive(self) -> bool:
        return self.server.alive and self.sandbox.alive


@attrs.define(eq=False, repr=False)
class XvncManager:
    """The Xvnc of every ``xvnc`` computer of one store.

    A boot listener starts a new Xvnc for each boot of a computer whose
    ``desktop_backend`` is ``xvnc`` (and retires the previous one); a
    lifecycle listener retires it on stop and delete. :meth:`shutdown` stops
    them all. ``xvnc`` and ``vncpasswd`` name the programs (looked up on
    ``PATH`` at each boot); ``size`` turns a computer's resolution into the
    screen size.

    With ``sandboxes`` enabled, each Xvnc runs in its computer's sandbox with
    a desktop session (:func:`start_session`: a window manager and a
    terminal), and the computer is not running until that session is on
    screen (``Computer.desktop_pending``). The pool (:meth:`fill_pool`,
    ``EmulatorConfig.desktop_pool``) keeps such desktops booted ahead: a
    create takes one whose screen size matches, and its disk becomes the
    computer's, so the create reaches healthy in the configured boot time.
    """

    store: Store
    _size: Callable[[str], tuple[int, int]] = attrs.field(
        kw_only=True, default=_resolution_size, alias="size"
    )
    sandboxes: Sandboxes | None = attrs.field(kw_only=True, default=None)
    xvnc: str = attrs.field(kw_only=True, default="Xvnc")
    vncpasswd: str = attrs.field(kw_only=True, default="vncpasswd")
    _entries: dict[str, _Entry] = attrs.field(init=False, factory=dict)
    _stops: set[asyncio.Task[None]] = attrs.field(init=False, factory=set)
    _root: Path | None = attrs.field(init=False, default=None)
    _seq: int = attrs.field(init=False, default=0)
    _closed: bool = attrs.field(init=False, default=False)
    _spares: list[_Spare] = attrs.field(init=False, factory=list)
    _pool_task: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    pool_claims: int = attrs.field(init=False, default=0)
    """How many creates took a desktop from the pool."""

    def __attrs_post_init__(self) -> None:
        self.store.add_boot_listener(self._on_boot)
        self.store.add_listener(self._on_transition)

    @property
    def sandboxed(self) -> bool:
        """True when desktops run in sandboxes, with a session."""
        return self.sandboxes is not None and self.sandboxes.enabled

    def server(self, computer_id: str) -> XvncServer | None:
        """The computer's (UUID) current Xvnc, started or starting; None if it has none."""
        entry = self._entries.get(computer_id)
        return None if entry is None else entry.server

    def servers(self) -> list[XvncServer]:
        """Every current Xvnc."""
        return [entry.server for entry in self._entries.values()]

    @property
    def spares(self) -> int:
        """How many booted desktops wait in the pool."""
        return len(self._spares)

    async def ready(self, computer: Computer, *, timeout: float = START_TIMEOUT) -> XvncServer:
        """The computer's Xvnc once it accepts connections.

        Raises:
            XvncError: the computer's current boot has no Xvnc (another backend,
                a failed boot), or it failed to start, or ``timeout`` passed.
        """
        entry = self._entries.get(computer.id)
        if entry is None or entry.generation != computer.generation:
            raise XvncError("the computer has no running Xvnc")
        try:
            return await asyncio.wait_for(asyncio.shield(entry.ready), timeout)
        except TimeoutError:
            raise XvncError(f"the computer's Xvnc was not ready within {timeout:g} s") from None

    def missing(self) -> str | None:
        """Why an Xvnc cannot start here (a program not installed), or None."""
        for program, package in (
            (self.xvnc, "tigervnc-standalone-server"),
            (self.vncpasswd, "tigervnc-tools"),
        ):
            if shutil.which(program) is None:
                return f"{program} is not installed (Debian: apt-get install {package})"
        return None

    def _directory(self, name: str) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="orgo-xvnc-"))
        self._seq += 1
        return self._root / f"{name}-{self._seq}"

    def _on_boot(self, computer: Computer, kind: BootKind) -> str | None:
        self._retire(computer.id)  # a restart's new Xvnc replaces the old one
        if computer.desktop_backend != "xvnc" or computer.boot_fails:
            return None
        if self._closed:
            return "the emulator is closing"
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return "the xvnc desktop backend needs a running event loop"
        missing = self.missing()
        if missing is not None:
            log.warning(
                "computer %s cannot boot with the xvnc desktop backend: %s",
                computer.instance_id,
                missing,
            )
            return missing
        width, height = self._size(computer.resolution)
        spare = self._claim(computer, width, height) if kind == "create" else None
        if spare is not None:
            server = spare.server
        else:
            server = XvncServer(
                self._directory(computer.instance_id),
                width=width,
                height=height,
                name=computer.name,
                xvnc=self.xvnc,
                vncpasswd=self.vncpasswd,
            )
        entry = _Entry(server, computer.generation)
        self._entries[computer.id] = entry
        computer.desktop_pending = True
        entry.task = loop.create_task(
            self._run(computer, entry, computer.vnc_password, claimed=spare is not None),
            name=f"orgo-emulator-xvnc-{computer.instance_id}",
        )
        return None

    def _claim(self, computer: Computer, width: int, height: int) -> _Spare | None:
        """Take a booted desktop of this size from the pool for a new computer, if any."""
        if not self._spares or self.sandboxes is None:
            return None
        home = self.store.workdir_root / computer.instance_id
        for spare in list(self._spares):
            if not spare.alive:
                self._spares.remove(spare)
                self._discard(spare)
                continue
            if (spare.server.width, spare.server.height) != (width, height):
                continue
            try:
                # The spare's disk becomes the computer's: its sandbox has it at /root.
                os.rename(spare.home, home)
            except OSError as exc:  # the computer's directory exists already
                log.debug("cannot hand a pooled desktop to %s: %s", computer.instance_id, exc)
                return None
            self._spares.remove(spare)
            self.sandboxes.adopt(computer, spare.sandbox)
            self.pool_claims += 1
            self.fill_pool()  # boot the next one
            return spare
        return None

    async def _run(
        self, computer: Computer, entry: _Entry, password: str, *, claimed: bool
    ) -> None:
        """Start the Xvnc (and its session), then watch it: an unasked exit fails the boot."""
        server = entry.server
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            if claimed:
                await server.set_password(password)
            else:
                sandbox = None if self.sandboxes is None else await self.sandboxes.get(computer)
                display = await server.start(password, sandbox=sandbox)
                if sandbox is not None:
                    await start_session(sandbox, display)
        except Exception as exc:
            log.warning("Xvnc of computer %s failed: %s", computer.instance_id, exc)
            self.store.fail_boot(computer, entry.generation, f"Xvnc failed to start: {exc}")
            entry.ready.set_exception(XvncError(f"Xvnc failed to start: {exc}"))
            await server.stop()
            return
        log.info(
            "computer %s: Xvnc %s ready in %.0f ms (pid %s%s)",
            computer.instance_id,
            server.display,
            (loop.time() - started) * 1000,
            server.pid,
            ", from the pool" if claimed else "",
        )
        self.store.desktop_ready(computer, entry.generation)
        entry.ready.set_result(server)
        code = await server.wait()
        if not server.stopping:
            log.warning(
                "Xvnc %s of computer %s exited on its own (%s)\n%s",
                server.display,
                computer.instance_id,
                code,
                server.log_tail(),
            )
            self.store.fail_boot(computer, entry.generation, f"Xvnc exited ({code})")

    # ----------------------------------------------------------------- the pool

    def fill_pool(self) -> None:
        """Boot desktops ahead until ``EmulatorConfig.desktop_pool`` wait in the pool.

        One at a time, in the background; a no-op without sandboxes or Xvnc.
        Desktops are booted at the default resolution (1280x720).
        """
        if self._pool_task is not None and not self._pool_task.done():
            return
        if self._closed or not self.sandboxed or self.missing() is not None:
            return
        self._pool_task = asyncio.get_running_loop().create_task(
            self._fill(), name="orgo-emulator-desktop-pool"
        )

    async def pool_filled(self) -> int:
        """Wait until the pool's current filling (if any) ends; how many desktops wait in it."""
        task = self._pool_task
        if task is not None and not task.done():
            await asyncio.shield(task)
        return len(self._spares)

    async def _fill(self) -> None:
        assert self.sandboxes is not None
        failures = 0
        while (
            not self._closed and len(self._spares) < self.store.config.desktop_pool and failures < 3
        ):
            self._seq += 1
            name = f"spare-{self._seq}"
            home = self.store.workdir_root / f".{name}"
            for sub in ("Desktop", "Downloads"):
                (home / sub).mkdir(parents=True, exist_ok=True)
            sandbox = self.sandboxes.new(home, name=name)
            width, height = self._size("1280x720x24")
            server = XvncServer(
                self._directory(name),
                width=width,
                height=height,
                name="orgo",
                xvnc=self.xvnc,
                vncpasswd=self.vncpasswd,
            )
            spare = _Spare(sandbox, server, home)
            try:
                await sandbox.start()
                # A placeholder password: a claim sets the computer's before anyone connects.
                display = await server.start(secrets.token_hex(8), sandbox=sandbox)
                await start_session(sandbox, display)
            except (SandboxError, XvncError) as exc:
                failures += 1
                log.warning("booting a desktop for the pool failed: %s", exc)
                self._discard(spare)
                continue
            except BaseException:
                self._discard(spare)
                raise
            if self._closed:
                self._discard(spare)
                return
            self._spares.append(spare)

    def _discard(self, spare: _Spare) -> None:
        async def discard() -> None:
            spare.sandbox.stop()
            await spare.server.stop()
            await spare.sandbox.stop()
            await asyncio.to_thread(shutil.rmtree, spare.home, True)

        task = asyncio.get_running_loop().create_task(discard())
        self._stops.add(task)
        task.add_done_callback(self._stopped)

    # ----------------------------------------------------------------- retiring

    def _retire(self, computer_id: str) -> None:
        entry = self._entries.pop(computer_id, None)
        if entry is None:
            return
        task = self._stop_entry(entry)
        self._stops.add(task)
        task.add_done_callback(self._stopped)

    def _stop_entry(self, entry: _Entry) -> asyncio.Task[None]:
        async def stop() -> None:
            run = entry.task
            if run is not None and not entry.ready.done():
                # Still starting: interrupt the start first, so that the process is
                # either spawned (and ended below) or never will be. (asyncio itself
                # kills and reaps a process whose spawn was interrupted.)
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
            await entry.server.stop()
            if run is not None:
                # Past the start the run only watches the exit, which the stop caused.
                with contextlib.suppress(asyncio.CancelledError):
                    await run
            if not entry.ready.done():
                entry.ready.set_exception(XvncError("the computer's Xvnc was stopped"))

        return asyncio.get_running_loop().create_task(
            stop(), name=f"orgo-emulator-retire-xvnc-{entry.server.directory.name}"
        )

    def _stopped(self, task: asyncio.Task[None]) -> None:
        self._stops.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("stopping an Xvnc failed: %s", task.exception())

    def _on_transition(self, computer: Computer, transition: Transition) -> None:
        # start/restart boot a new Xvnc through _on_boot, which already retired the old one.
        if transition in ("stop", "delete"):
            self._retire(computer.id)

    async def shutdown(self) -> None:
        """Stop every Xvnc (the pool's too) and wait until each is reaped; later boots fail."""
        self._closed = True
        if self._pool_task is not None:
            self._pool_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pool_task
        for spare in self._spares:
            self._discard(spare)
        self._spares.clear()
        for computer_id in list(self._entries):
            self._retire(computer_id)
        while self._stops:
            await asyncio.gather(*self._stops, return_exceptions=True)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
