"""Real VNC peers for the VNC connector's tests (docs/local-peers.md).

* **Xvnc** (TigerVNC): X server and RFB server in one process, on ``-displayfd``
  (no display clashes) and a unix socket (``-rfbport -1 -rfbunixpath``: no TCP
  port races), once with ``-SecurityTypes None`` and once with ``VncAuth`` and
  a ``-PasswordFile`` written by ``vncpasswd -f`` (Xvnc re-reads it on every
  connection, so rewriting it rotates the password).
* **Xvfb + x11vnc**: the second server implementation, on a unix socket too.
* **websockify** (PyPI, the bridge behind Orgo's ``/ws/websockify``) in front of
  each, on a free loopback port. It ignores the URL path and the token, so the
  connector is pointed straight at it: the edge's auth layer is a no-op here,
  and the RFB VNC authentication is what gets tested.

Each peer is waited for by protocol, never by sleeping: the ``-displayfd``
line, 12 bytes starting with ``RFB `` on the socket, then the same greeting
through a WebSocket handshake, all within a 10 s deadline. Every peer's output
goes to a log file, attached to the report of a failing test. Teardown goes by
the ``Popen`` object: terminate, wait 5 s, kill.

A missing binary skips the tests that need it, except under ``CI=true``, where
it fails them: a green CI must not hide a missing install.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

from orgo_async import Computer, Orgo, ReconnectPolicy
from orgo_async.connect import Connection
from orgo_async.emulator import BootTime, Emulator, EmulatorConfig

READY_WITHIN = 10.0
"""Seconds a peer gets to become ready."""

GEOMETRY = (1280, 720)

_APT = (
    "apt-get install --no-install-recommends tigervnc-standalone-server tigervnc-tools "
    "xvfb x11vnc xdotool xclip x11-utils x11-xserver-utils"
)


def require(*binaries: str) -> None:
    """Skip (locally) or fail (under ``CI=true``) when a binary is missing."""
    missing = [b for b in binaries if shutil.which(b) is None]
    if not missing:
        return
    message = f"missing {', '.join(missing)} ({_APT})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class PeerFailed(Exception):
    """A peer exited or did not become ready in time."""


class Peer:
    """One child process, its output in a log file, stopped by its ``Popen``."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_dir: Path,
        *,
        pass_fds: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=pass_fds,
                env=env,
            )

    def tail(self, limit: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"
        return text[-limit:]

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise PeerFailed(f"{self.name} exited with {code}; its log:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def until(what: str, predicate: Callable[[], bool], deadline: float, *peers: Peer) -> None:
    """Poll ``predicate`` (a protocol check) until it holds; fail at ``deadline``."""
    while True:
        for peer in peers:
            peer.check_alive()
        if predicate():
            return
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}:\n{p.tail()}" for p in peers)
            raise PeerFailed(f"{what}: not ready within {READY_WITHIN} s\n{logs}")
        time.sleep(0.005)  # between two probes of the condition, not instead of one


def read_displayfd(fd: int, peer: Peer, deadline: float) -> str:
    """The display number an X server writes on ``-displayfd`` once it accepts clients."""
    data = b""
    while not data.endswith(b"\n"):
        peer.check_alive()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PeerFailed(f"{peer.name}: no -displayfd line within {READY_WITHIN} s")
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.1))
        if readable:
            chunk = os.read(fd, 64)
            if not chunk:
                peer.check_alive()
                raise PeerFailed(f"{peer.name} closed -displayfd without a display number")
            data += chunk
    return ":" + data.decode().strip()


def rfb_greets(where: Path | int) -> bool:
    """Whether an RFB server sends its 12-byte ProtocolVersion (unix socket path or TCP port)."""
    family = socket.AF_UNIX if isinstance(where, Path) else socket.AF_INET
    address = str(where) if isinstance(where, Path) else ("127.0.0.1", where)
    with socket.socket(family) as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(address)
            data = b""
            while len(data) < 12:
                chunk = sock.recv(12 - len(data))
                if not chunk:
                    return False
                data += chunk
        except OSError:
            return False
    return data.startswith(b"RFB ")


def ws_greets(url: str) -> bool:
    """Whether a WebSocket handshake at ``url`` succeeds and brings the RFB greeting."""
    try:
        with ws_connect(url, open_timeout=2.0, close_timeout=1.0) as ws:
            first = ws.recv(timeout=2.0)
    except Exception:  # refused, reset, not HTTP yet...
        return False
    return isinstance(first, bytes) and first.startswith(b"RFB ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def vnc_password_file(path: Path, password: str) -> None:
    """Write ``password`` as ``vncpasswd -f`` does (8 obfuscated bytes), atomically."""
    done = subprocess.run(
        ["vncpasswd", "-f"], input=f"{password}\n".encode(), capture_output=True, check=True
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(done.stdout)
    tmp.chmod(0o600)
    os.replace(tmp, path)


@dataclass
class VncServer:
    """A running VNC server behind websockify, and the X display it serves."""

    label: str
    display: str
    rfb_target: Path | int
    """Where the RFB server listens: a unix socket, or a loopback TCP port."""
    ws_url: str
    """``http://127.0.0.1:PORT``: the computer's ``connection_url``."""
    password: str | None
    password_file: Path | None
    started_in: float
    peers: list[Peer] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def x(self, *argv: str, input: str | None = None, timeout: float = 10.0) -> str:
        """Run an X client (xdotool, xsetroot, xclip...) on this display; its stdout."""
        done = subprocess.run(
            argv,
            env=self.env,
            input=None if input is None else input.encode(),
            capture_output=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr.decode()}")
        return done.stdout.decode()

    def set_password(self, password: str) -> None:
        """Rotate the VNC password: rewrite the file Xvnc reads on each connection."""
        assert self.password_file is not None, f"{self.label} has no password file"
        vnc_password_file(self.password_file, password)
        self.password = password

    def computer(self, token: str | None = None) -> Computer:
        """A computer whose ``connection_url`` is this websockify and password ``token``."""
        return Computer(
            id=f"vnc-{self.label}",
            connection_url=self.ws_url,
            vnc_password=token if token is not None else (self.password or "no-password"),
        )

    def pointer(self) -> tuple[int, int]:
        """Where the X server says the pointer is (``xdotool getmouselocation``)."""
        fields = dict(part.split(":", 1) for part in self.x("xdotool", "getmouselocation").split())
        return int(fields["x"]), int(fields["y"])

    def stop(self) -> None:
        for peer in reversed(self.peers):
            peer.stop()


_RUNNING: list[VncServer] = []
_START_TIMES: list[tuple[str, float]] = []


def _start_websockify(server: VncServer, log_dir: Path, deadline: float) -> None:
    for attempt in range(2):
        port = free_port()
        peer = Peer(
            f"websockify-{server.label}-{attempt}",
            [
                sys.executable,
                "-m",
                "websockify",
                *(
                    ["--unix-target", str(server.rfb_target), f"127.0.0.1:{port}"]
                    if isinstance(server.rfb_target, Path)
                    else [f"127.0.0.1:{port}", f"127.0.0.1:{server.rfb_target}"]
                ),
            ],
            log_dir,
        )
        server.peers.append(peer)
        url = f"ws://127.0.0.1:{port}/ws/websockify"
        try:
            greets = functools.partial(ws_greets, url)
            until(f"websockify for {server.label}", greets, deadline, peer)
        except PeerFailed:
            if attempt == 0 and "Address already in use" in peer.tail():
                peer.stop()
                continue  # the free port was taken meanwhile: once more with another
            raise
        server.ws_url = f"http://127.0.0.1:{port}"
        return


def start_xvnc(
    label: str, log_dir: Path, *, password: str | None, blacklist_threshold: int = 1_000_000
) -> VncServer:
    """Xvnc on a free display and a unix socket, behind websockify."""
    require("Xvnc", "vncpasswd")
    begun = time.monotonic()
    deadline = begun + READY_WITHIN
    sock = log_dir / "rfb.sock"
    password_file = None
    security = ["-SecurityTypes", "None"]
    if password is not None:
        password_file = log_dir / "vnc.passwd"
        vnc_password_file(password_file, password)
        security = ["-SecurityTypes", "VncAuth", "-PasswordFile", str(password_file)]
    width, height = GEOMETRY
    read_fd, write_fd = os.pipe()
    try:
        peer = Peer(
            f"xvnc-{label}",
            [
                "Xvnc",
                "-displayfd",
                str(write_fd),
                "-geometry",
                f"{width}x{height}",
                "-depth",
                "24",
                "-rfbport",
                "-1",
                "-rfbunixpath",
                str(sock),
                "-nolisten",
                "tcp",
                "-BlacklistThreshold",
                str(blacklist_threshold),
                "-BlacklistTimeout",
                "60",
                *security,
            ],
            log_dir,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        server = VncServer(label, "", sock, "", password, password_file, 0.0, [peer])
        try:
            server.display = read_displayfd(read_fd, peer, deadline)
            until(f"Xvnc {label} on {sock}", lambda: rfb_greets(sock), deadline, peer)
            _start_websockify(server, log_dir, deadline)
        except BaseException:
            server.stop()
            raise
    finally:
        os.close(read_fd)
    server.started_in = time.monotonic() - begun
    _START_TIMES.append((f"Xvnc ({label}) + websockify", server.started_in))
    return server


def start_x11vnc(label: str, log_dir: Path, *, password: str) -> VncServer:
    """Xvfb on a free display, x11vnc on a free loopback port (VNC auth), behind websockify.

    x11vnc is on TCP, not a unix socket: with ``-localhost`` it denies unix
    socket clients ("localhost does not match 127.0.0.1"), and without it
    it also listens on ``[::]:5900``, whatever ``-rfbport`` says.
    """
    require("Xvfb", "x11vnc", "vncpasswd")
    begun = time.monotonic()
    deadline = begun + READY_WITHIN
    width, height = GEOMETRY
    read_fd, write_fd = os.pipe()
    try:
        xvfb = Peer(
            f"xvfb-{label}",
            [
                "Xvfb",
                "-displayfd",
                str(write_fd),
                "-screen",
                "0",
                f"{width}x{height}x24",
                "-nolisten",
                "tcp",
            ],
            log_dir,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        server = VncServer(label, "", 0, "", password, None, 0.0, [xvfb])
        try:
            server.display = read_displayfd(read_fd, xvfb, deadline)
            password_file = log_dir / "x11vnc.passwd"
            vnc_password_file(password_file, password)
            for attempt in range(2):
                port = free_port()
                x11vnc = Peer(
                    f"x11vnc-{label}-{attempt}",
                    [
                        "x11vnc",
                        "-display",
                        server.display,
                        "-rfbport",
                        str(port),
                        "-localhost",
                        "-forever",
                        "-shared",
                        "-rfbauth",
                        str(password_file),
                        "-nossl",
                        "-quiet",
                    ],
                    log_dir,
                )
                server.peers.append(x11vnc)
                try:
                    greets = functools.partial(rfb_greets, port)
                    until(f"x11vnc {label}", greets, deadline, x11vnc, xvfb)
                except PeerFailed:
                    if attempt == 0 and x11vnc.proc.poll() is not None:
                        continue  # most likely the free port was taken meanwhile
                    raise
                server.rfb_target = port
                break
            _start_websockify(server, log_dir, deadline)
        except BaseException:
            server.stop()
            raise
    finally:
        os.close(read_fd)
    server.started_in = time.monotonic() - begun
    _START_TIMES.append((f"Xvfb + x11vnc ({label}) + websockify", server.started_in))
    return server


@contextlib.contextmanager
def running(server: VncServer) -> Iterator[VncServer]:
    _RUNNING.append(server)
    try:
        yield server
    finally:
        _RUNNING.remove(server)
        server.stop()


def _started(factory: Callable[[], VncServer]) -> VncServer:
    try:
        return factory()
    except PeerFailed as exc:
        pytest.fail(str(exc))


# -- the peers -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def xvnc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VncServer]:
    """Xvnc with VNC authentication (a 16-hex-digit password, as Orgo's), behind websockify."""
    require("xdotool", "xsetroot", "xclip")
    log_dir = tmp_path_factory.mktemp("xvnc-auth")
    server = _started(lambda: start_xvnc("auth", log_dir, password=secrets.token_hex(8)))
    with running(server):
        yield server


@pytest.fixture(scope="session")
def xvnc_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VncServer]:
    """Xvnc with ``-SecurityTypes None``, behind websockify."""
    require("xsetroot")
    log_dir = tmp_path_factory.mktemp("xvnc-none")
    server = _started(lambda: start_xvnc("none", log_dir, password=None))
    with running(server):
        yield server


@pytest.fixture(scope="session")
def x11vnc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VncServer]:
    """Xvfb + x11vnc with VNC authentication, behind websockify."""
    require("xdotool", "xsetroot")
    log_dir = tmp_path_factory.mktemp("x11vnc")
    server = _started(lambda: start_x11vnc("x11vnc", log_dir, password=secrets.token_hex(8)))
    with running(server):
        yield server


@pytest.fixture
def xvnc_blacklisting(tmp_path: Path) -> Iterator[VncServer]:
    """Xvnc that blacklists the client at its first failed authentication.

    TigerVNC counts a connection closed before authenticating as a failure
    too, and the two readiness probes (on the socket, then through
    websockify) are two such: the threshold is 3 so the third failure, the
    test's first wrong password, is the one that blacklists.
    """
    server = _started(
        lambda: start_xvnc("blacklist", tmp_path, password="right-pw", blacklist_threshold=3)
    )
    with running(server):
        yield server


# -- the client side ---------------------------------------------------------------------------


class Tokens(Connection):
    """A connection whose token "re-read from the API" is ``fresh`` (or the same one again)."""

    def __init__(self, *args: Any, fresh: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fresh = fresh

    async def refresh_token(self) -> None:
        if self.fresh is not None:
            self._token = self.fresh
        self.refreshes += 1


@pytest.fixture
async def offline() -> AsyncIterator[Orgo]:
    """An Orgo session that never reaches an API: it only carries timeouts for the sockets."""
    async with Orgo(api_key="sk_test_offline", base_url="http://127.0.0.1:9") as orgo:
        yield orgo


def connection(
    orgo: Orgo,
    server: VncServer,
    *,
    token: str | None = None,
    fresh: str | None = None,
    reconnect: ReconnectPolicy | None = None,
    keepalive: float | None = None,
) -> Tokens:
    return Tokens(
        orgo,
        server.computer(token),
        fresh=fresh,
        reconnect=reconnect or ReconnectPolicy(max_attempts=3, backoff_base=0.01),
        keepalive=keepalive,
    )


# -- an X application as an input oracle ------------------------------------------------------

_TK_APP = Path(__file__).with_name("_tk_app.py")


class TkApp:
    """A small Tk window on the display that reports its input events as JSON lines.

    The window sits at (100, 100), 400x300: an entry (focused) on top, a canvas
    below that reports presses, releases, double clicks and drags in root
    coordinates, and every change of the entry's text.
    """

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict[str, Any]] = []

    async def expect(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """The next event (from now on) that ``match`` accepts."""
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        raise AssertionError(f"the Tk app exited; it reported {self.seen}")
                    event: dict[str, Any] = json.loads(line)
                    self.seen.append(event)
                    if match(event):
                        return event
        except TimeoutError:
            raise AssertionError(f"no such event within {timeout} s; saw {self.seen}") from None


@pytest.fixture
async def tk_app(xvnc: VncServer) -> AsyncIterator[TkApp]:
    if importlib.util.find_spec("_tkinter") is None:
        message = "this Python has no tkinter (the input oracle window)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(_TK_APP),
        env=xvnc.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    app = TkApp(proc)
    try:
        await app.expect(lambda e: e["event"] == "ready", timeout=READY_WITHIN)
        yield app
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


# -- reporting ---------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        for server in _RUNNING:
            for peer in server.peers:
                report.sections.append((f"peer log: {peer.name}", peer.tail()))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _START_TIMES:
        terminalreporter.write_sep("-", "VNC peers: start to WebSocket greeting")
        for label, seconds in _START_TIMES:
            terminalreporter.write_line(f"{label}: {seconds * 1000:.0f} ms")


# -- the emulator's xvnc backend: a real X server per computer --------------------------------


@pytest.fixture
async def xvnc_emulator() -> AsyncIterator[Emulator]:
    require("Xvnc", "vncpasswd", "xdotool", "xsetroot")
    # Unsandboxed: the tests run X clients of their own on the display.
    config = EmulatorConfig(
        api_key="sk_vnc_emulator_key",
        boot=BootTime.fixed(0.05),
        desktop_backend="xvnc",
        sandbox="off",
    )
    async with Emulator(config) as emu:
        yield emu


async def x11(env: dict[str, str], *args: str) -> str:
    """Run an X client on a computer's display (``env`` sets ``DISPLAY``); its stdout."""
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(10):
        out, err = await process.communicate()
    assert process.returncode == 0, err
    return out.decode()
