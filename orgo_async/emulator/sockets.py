"""The desktop WebSockets: ``GET /desktops/{instance_id}/ws/{websockify|terminal|audio|events}``.

These routes are outside ``/api``: the API key middleware and the fault rules
do not apply. Each socket is authenticated here, with the computer's current
``vnc_password``, and refused the way Orgo refuses it:

===========  ==================================================================
close code   when
===========  ==================================================================
4401         bad, missing or stale token (``ws_auth="close"``, the default);
             with ``reject`` / ``query_only`` / ``header_only`` the upgrade is
             refused with HTTP 401 instead
4404         unknown computer, or a computer that is not ``running``
1008         bad query parameters (``cols``, ``rows``, ``sample_rate``,
             ``channels``) or a malformed message; an ``error`` message first
4500         the terminal's shell could not be started
1001         the computer stops, restarts (also a vCPU/memory resize) or is
             deleted ("Computer stopping"), or the emulator closes
             ("Server shutting down")
1000         the terminal's shell exited (after an ``exit`` message), the
             audio client sent ``stop``, or (websockify, "Target closed") the
             VNC server hung up, as after a failed VNC authentication
1003         (websockify) a text frame: RFB travels in binary frames
1006         (seen by the client) :meth:`SocketHub.drop_sockets` cut the TCP
             connection without a close frame
===========  ==================================================================

The token is ``?token=<password>`` or ``Authorization: Bearer <password>``,
compared in constant time. The computer may be named by its instance id or
its UUID. Neither the token nor the query string is ever logged.

:class:`SocketHub` is the shared edge: the registry of open sockets per
computer (closed with 1001 on stop/restart/delete through a store
listener), the per-computer event subscribers, the event sources of
:mod:`.watch`, which it runs only while a subscriber needs them, and the
serve function of each socket name. The terminal, audio and events sockets
are served here, by the sans-I/O cores of :mod:`orgo_async.protocol` in
their server role. ``websockify`` (RFB over the computer's desktop) is
served by the desktop side, which the emulator registers with
:meth:`SocketHub.add_server`: this module never imports it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import logging
import math
import sys
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any, Final, Protocol

from aiohttp import WSMsgType, web

from ..errors import ProtocolError
from ..protocol._base import Role
from ..protocol.audio import (
    CHANNELS,
    SAMPLE_RATES,
    AudioProtocol,
    Pong as AudioPing,
    Stop as AudioStop,
)
from ..protocol.events import (
    EVENT_TYPES,
    EventsError,
    EventsProtocol,
    Pong as EventsPing,
    Subscribe,
    Unsubscribe,
)
from ..protocol.terminal import Input, Ping, Resize, TerminalProtocol, UnknownMessage
from .shell import DEFAULT_GRACE, Shell, ShellError
from .store import ApiError, Computer, Store, Transition, iso_now
from .watch import FileWatcher, IdleTracker, ProcessWatcher

__all__ = [
    "CLOSE_FAILED",
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "CLOSE_NOT_FOUND",
    "CLOSE_POLICY",
    "CLOSE_UNAUTHORIZED",
    "EVENT_BUFFER",
    "SOCKETS_KEY",
    "SOCKET_NAMES",
    "SOCKET_SERVERS",
    "DesktopSocket",
    "SocketHub",
    "SocketServer",
    "desktop_socket",
]

log = logging.getLogger("orgo_async.emulator")

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY: Final = 1008
CLOSE_INTERNAL: Final = 1011
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_NOT_FOUND: Final = 4404
CLOSE_FAILED: Final = 4500

EVENT_BUFFER: Final = 256
"""Events queued per ``/ws/events`` connection; beyond it the oldest is dropped (Orgo: 256)."""

# How long a server-initiated close waits for the client's close frame.
_CLOSE_TIMEOUT: Final = 2.0
_MAX_MESSAGE: Final = 4 * 1024 * 1024
_SUBPROTOCOLS: Final[Mapping[str, tuple[str, ...]]] = {"websockify": ("binary",)}
_FRAME_SECONDS: Final = 0.02
# An audio sender that fell this many frames behind (a stalled loop or client)
# skips ahead, as a real capture overruns, instead of bursting seconds of audio.
_MAX_AUDIO_BACKLOG: Final = 50
_PROCESS_TYPES: Final = frozenset({"process_start", "process_stop"})

SOCKETS_KEY: Final[web.AppKey[SocketHub]] = web.AppKey("orgo_emulator_sockets")
"""Where :func:`desktop_socket` finds the :class:`SocketHub`."""


def _reason(text: str) -> bytes:
    # A close frame's reason is at most 123 bytes.
    return text.encode()[:123]


# --------------------------------------------------------------------------- one socket


class DesktopSocket:
    """One accepted desktop socket, as the registry sees it.

    ``close``/``abort`` may be called from anywhere on the loop (a lifecycle
    change, an admin route, the socket's own tasks); the handler task notices
    and finishes. Sends report False instead of raising once the socket is
    closing, so the socket's tasks simply stop.
    """

    def __init__(
        self,
        name: str,
        computer: Computer,
        request: web.Request,
        ws: web.WebSocketResponse,
    ) -> None:
        self.name: Final = name
        self.computer_id: Final = computer.id
        self.instance_id: Final = computer.instance_id
        self.ws: Final = ws
        self._request = request
        self.shell: Shell | None = None
        self.subscriber: _Subscriber | None = None
        self.close_code: int | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._aborted = False
        self._send_lock = asyncio.Lock()
        self.done = asyncio.Event()
        """Set when the handler has finished with this socket (shell reaped, unregistered)."""

    @property
    def query(self) -> Mapping[str, str]:
        """The upgrade request's query parameters (they hold the token: never log them)."""
        return self._request.query

    @property
    def closing(self) -> bool:
        """True once a close or abort was requested (or the peer closed)."""
        return self._close_task is not None or self._aborted or self.ws.closed

    def close(self, code: int, reason: str = "", *, grace: float = DEFAULT_GRACE) -> bool:
        """Start closing with ``code``; kill the shell (``grace`` before SIGKILL).

        Returns False if the socket was already closing.
        """
        if self.closing:
            return False
        self.close_code = code
        self._close_task = asyncio.get_running_loop().create_task(
            self._close(code, reason), name=f"orgo-emulator-close-{self.name}"
        )
        if self.shell is not None:
            self.shell.terminate(grace)
        return True

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await self.ws.close(code=code, message=_reason(reason))

    def abort(self) -> bool:
        """Cut the TCP connection without a close frame (the client sees 1006)."""
        transport = self._request.transport
        if self._aborted or transport is None or transport.is_closing():
            return False
        self._aborted = True
        transport.abort()
        if self.shell is not None:
            self.shell.terminate()
        return True

    async def receive(self) -> str | bytes | None:
        """The next text or binary message; None once the socket is closing or closed."""
        while True:
            msg = await self.ws.receive()
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                data: str | bytes = msg.data
                return data
            if msg.type in (WSMsgType.PING, WSMsgType.PONG):
                continue  # answered by aiohttp (autoping)
            return None

    async def send_frames(self, frames: list[str]) -> bool:
        """Send text frames in order; False if the socket is closing."""
        for frame in frames:
            if not await self._send(self.ws.send_str, frame):
                return False
        return True

    async def send_bytes(self, data: bytes) -> bool:
        """Send one binary frame; False if the socket is closing."""
        return await self._send(self.ws.send_bytes, data)

    async def _send(self, send: Callable[[Any], Awaitable[None]], data: Any) -> bool:
        # One sender at a time: tasks of one socket (pump, receive loop) share it.
        async with self._send_lock:
            if self.closing:
                return False
            try:
                await send(data)
            except (ConnectionError, RuntimeError):
                return False
            return True

    async def finish(self) -> None:
        """Complete the close (a requested one, or a normal close if none was)."""
        if self._close_task is not None:
            await asyncio.shield(self._close_task)
        elif not self.ws.closed and not self._aborted:
            with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                await self.ws.close()


class _Subscriber:
    """One ``/ws/events`` connection's subscription and its bounded send queue."""

    def __init__(self, socket: DesktopSocket) -> None:
        self.socket = socket
        self.types: frozenset[str] = frozenset()
        self.queue: collections.deque[tuple[str, str, dict[str, Any]]] = collections.deque(
            maxlen=EVENT_BUFFER
        )
        self.wake = asyncio.Event()
        self.dropped = 0


class _ComputerSockets:
    """What the hub holds for one computer."""

    def __init__(self) -> None:
        self.sockets: set[DesktopSocket] = set()
        self.shells: set[Shell] = set()
        self.subscribers: set[_Subscriber] = set()

    @property
    def empty(self) -> bool:
        return not (self.sockets or self.shells or self.subscribers)


# --------------------------------------------------------------------------- the hub


class SocketHub:
    """The open desktop sockets of one emulator, their shells and their event feeds.

    Created by the :class:`~orgo_async.emulator.Emulator`; it registers a
    lifecycle listener on ``store`` so that a stop, restart or delete closes
    that computer's sockets with 1001 and kills its shells. It serves the
    terminal, audio and events sockets; :meth:`add_server` adds another name's
    server (the emulator adds ``websockify``). ``desktops`` is what
    ``/ws/websockify`` serves: the hub only carries it for that server, so the
    socket edge does not depend on the desktop backends. All methods run on
    the event loop.
    """

    def __init__(self, store: Store, *, desktops: Any = None) -> None:
        self.store = store
        self.desktops = desktops
        self.screens: Callable[[Computer, str], Any] | None = None
        """Finds an added screen's desktop for ``&screen=`` (``None``: the default one)."""
        self._servers: dict[str, SocketServer] = dict(SOCKET_SERVERS)
        self._computers: dict[str, _ComputerSockets] = {}
        self._closed = False
        self.files = FileWatcher(self._publish_key)
        self.processes = ProcessWatcher(self._publish_key)
        self.idle = IdleTracker(self._publish_key, lambda: self.store.config.idle_seconds)
        store.add_listener(self._on_transition)

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has begun: new sockets are refused with 1001."""
        return self._closed

    def add_server(self, name: str, serve: SocketServer) -> None:
        """Serve ``/ws/{name}`` with ``serve`` (one of :data:`SOCKET_NAMES`)."""
        if name not in SOCKET_NAMES:
            raise ValueError(f"name must be one of {', '.join(SOCKET_NAMES)}, got {name!r}")
        self._servers[name] = serve

    def server(self, name: str) -> SocketServer | None:
        """The serve function of ``/ws/{name}``, or None (the route answers 404)."""
        return self._servers.get(name)

    def _entry(self, computer_id: str) -> _ComputerSockets:
        entry = self._computers.get(computer_id)
        if entry is None:
            entry = self._computers[computer_id] = _ComputerSockets()
        return entry

    def _prune(self, computer_id: str) -> None:
        entry = self._computers.get(computer_id)
        if entry is not None and entry.empty:
            del self._computers[computer_id]

    def sockets(self, computer_id: str | None = None) -> list[DesktopSocket]:
        """Open sockets, of one computer (by UUID) or of all."""
        if computer_id is not None:
            entry = self._computers.get(computer_id)
            return list(entry.sockets) if entry is not None else []
        return [s for entry in self._computers.values() for s in entry.sockets]

    def shells(self, computer_id: str | None = None) -> list[Shell]:
        """Running terminal shells, of one computer (by UUID) or of all."""
        if computer_id is not None:
            entry = self._computers.get(computer_id)
            return list(entry.shells) if entry is not None else []
        return [s for entry in self._computers.values() for s in entry.shells]

    # ----------------------------------------------------------------- registry

    def register(self, socket: DesktopSocket) -> None:
        """Add an accepted socket to its computer's registry."""
        self._entry(socket.computer_id).sockets.add(socket)
        log.debug("opened %s socket of computer %s", socket.name, socket.instance_id)

    async def release(self, socket: DesktopSocket) -> None:
        """Unregister a socket whose handler ends: unsubscribe, reap its shell. Cancel-safe."""
        entry = self._computers.get(socket.computer_id)
        if socket.subscriber is not None:
            self._unsubscribe(socket.subscriber)
        shell = socket.shell
        try:
            if shell is not None:
                await shell.close()
        finally:
            if entry is not None:
                entry.sockets.discard(socket)
                # A shell whose kill was interrupted stays listed: shutdown() reaps it.
                if shell is not None and shell.closed:
                    entry.shells.discard(shell)
                    self._refresh_watch(socket.computer_id)
            self._prune(socket.computer_id)
            socket.done.set()
            log.debug("closed %s socket of computer %s", socket.name, socket.instance_id)

    def close_sockets(
        self, computer_id: str, code: int, reason: str = "", *, grace: float = DEFAULT_GRACE
    ) -> int:
        """Close every open socket of the computer (UUID); how many began closing."""
        return sum(s.close(code, reason, grace=grace) for s in self.sockets(computer_id))

    def drop_sockets(self, computer_id: str) -> int:
        """Abort every socket of the computer (UUID) without a close frame; how many."""
        return sum(s.abort() for s in self.sockets(computer_id))

    def _on_transition(self, computer: Computer, transition: Transition) -> None:
        if transition == "delete":
            self.idle.forget(computer.id)
        if transition == "start" or computer.id not in self._computers:
            return
        # A deleted computer's processes get no grace: its directory goes next.
        grace = 0.0 if transition == "delete" else DEFAULT_GRACE
        self.close_sockets(computer.id, CLOSE_GOING_AWAY, "Computer stopping", grace=grace)

    async def shutdown(self) -> None:
        """Close every socket with 1001, kill every shell, stop the pollers.

        Waits for the handlers to finish (bounded by the close timeout);
        sockets whose clients do not answer the close are aborted.
        """
        self._closed = True
        sockets = self.sockets()
        for socket in sockets:
            socket.close(CLOSE_GOING_AWAY, "Server shutting down")
        waits = [asyncio.ensure_future(s.done.wait()) for s in sockets]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=_CLOSE_TIMEOUT + DEFAULT_GRACE + 1)
            for future in pending:
                future.cancel()
            for socket in sockets:
                if not socket.done.is_set():
                    socket.abort()
        # Shells whose handler is gone or stuck are still ours to reap.
        kills = [shell.terminate() for shell in self.shells()]
        if kills:
            await asyncio.gather(*kills, return_exceptions=True)
        await self.files.aclose()
        await self.processes.aclose()
        self.idle.close()

    # ----------------------------------------------------------------- shells

    def add_shell(self, socket: DesktopSocket, shell: Shell) -> None:
        """Attach a terminal's shell: process events, process watching, cleanup on close."""
        socket.shell = shell
        computer_id = socket.computer_id
        self._entry(computer_id).shells.add(shell)
        self._publish_key(computer_id, "process_start", {"pid": shell.pid, "name": shell.name})

        def exited(_code: int) -> None:
            self._publish_key(computer_id, "process_stop", {"pid": shell.pid, "name": shell.name})
            self._refresh_watch(computer_id)  # its pid no longer roots the process watch

        shell.add_exit_callback(exited)
        self._refresh_watch(computer_id)

    def screen_desktop(self, computer: Computer, screen_id: str) -> Any:
        """The desktop ``&screen=`` names (``None``: the default one); ``LookupError`` if none."""
        if screen_id == "default" or self.screens is None:
            return None
        return self.screens(computer, screen_id)

    def accepted(self, socket: DesktopSocket) -> None:
        """Count ``socket`` as accepted (``counters.ws_connections``), once its query is valid."""
        _count(self.store.counters.ws_connections, socket.name)

    def note_input(self, computer_id: str) -> None:
        """Terminal input arrived (drives ``idle`` / ``active``)."""
        self.idle.note_input(computer_id)

    # ----------------------------------------------------------------- events

    def publish(self, computer_id: str, event_type: str, data: Mapping[str, Any]) -> int:
        """Queue an event for the computer's subscribers of ``event_type``; how many.

        The timestamp is now (ISO 8601 UTC, milliseconds, ``Z``). A full
        queue drops its oldest event (counted in ``ws_events_dropped``).
        """
        return self._publish_key(computer_id, event_type, dict(data))

    def _publish_key(self, computer_id: str, event_type: str, data: dict[str, Any]) -> int:
        entry = self._computers.get(computer_id)
        if entry is None or not entry.subscribers:
            return 0
        event = (event_type, iso_now(), data)
        delivered = 0
        for sub in entry.subscribers:
            if event_type not in sub.types:
                continue
            if len(sub.queue) == EVENT_BUFFER:
                sub.dropped += 1
                self.store.counters.ws_events_dropped += 1
            sub.queue.append(event)  # a full deque drops its oldest
            sub.wake.set()
            delivered += 1
        return delivered

    def subscribe(self, socket: DesktopSocket) -> _Subscriber:
        """Register an events connection (subscribed to nothing yet)."""
        sub = _Subscriber(socket)
        socket.subscriber = sub
        self._entry(socket.computer_id).subscribers.add(sub)
        return sub

    def set_types(self, sub: _Subscriber, types: frozenset[str]) -> None:
        """Change what ``sub`` receives; starts or stops the sources accordingly.

        Sources already running for the computer scan once before the new
        types take effect, so the new subscriber sees only later changes.
        """
        computer_id = sub.socket.computer_id
        added = types - sub.types
        if "file_change" in added:
            self.files.poll(computer_id)
        if added & _PROCESS_TYPES:
            self.processes.poll(computer_id)
        sub.types = types
        self._refresh_watch(computer_id)

    def _unsubscribe(self, sub: _Subscriber) -> None:
        entry = self._computers.get(sub.socket.computer_id)
        if entry is not None:
            entry.subscribers.discard(sub)
        sub.types = frozenset()
        self._refresh_watch(sub.socket.computer_id)

    def _refresh_watch(self, computer_id: str) -> None:
        # Each source runs exactly while someone wants what it produces.
        entry = self._computers.get(computer_id)
        wanted: set[str] = set()
        if entry is not None:
            for sub in entry.subscribers:
                wanted.update(sub.types)
        computer = self.store.computers.get(computer_id)
        if "file_change" in wanted and computer is not None:
            try:
                self.files.watch(computer_id, self.store.workdir(computer))
            except OSError as exc:
                log.warning("cannot watch files of computer %s: %s", computer.instance_id, exc)
        else:
            self.files.unwatch(computer_id)
        # Shells listed only when wanted: this runs as each of a thousand shells closes.
        shells: list[int] = []
        if entry is not None and wanted & _PROCESS_TYPES:
            shells = [s.pid for s in entry.shells if s.returncode is None]
        if shells:
            self.processes.watch(computer_id, shells)
        else:
            self.processes.unwatch(computer_id)
        if computer is not None:
            self.idle.watch(computer_id, idle="idle" in wanted, active="active" in wanted)


# --------------------------------------------------------------------------- the route


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _matches(candidate: str | None, password: str) -> bool:
    # compare_digest on bytes: constant time for equal lengths, no TypeError on non-ASCII.
    return candidate is not None and hmac.compare_digest(candidate.encode(), password.encode())


def _authorized(request: web.Request, computer: Computer, mode: str) -> bool:
    query = request.query.get("token")
    header = _bearer(request)
    password = computer.vnc_password
    if mode == "query_only":
        return _matches(query, password)
    if mode == "header_only":
        return _matches(header, password)
    return _matches(query, password) or _matches(header, password)


def _count(counter: dict[Any, int], key: Any) -> None:
    counter[key] = counter.get(key, 0) + 1


async def _refuse(hub: SocketHub, ws: web.WebSocketResponse, code: int, reason: str) -> None:
    _count(hub.store.counters.ws_rejections, code)
    with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
        await ws.close(code=code, message=_reason(reason))


SocketServer = Callable[["SocketHub", DesktopSocket], Awaitable[None]]
"""Serves one accepted socket until it closes. Called after auth and the running
check, with the socket registered (so stop/restart/delete close it with 1001).
It validates its query, calls :meth:`SocketHub.accepted` (or closes with a
refusal code), then loops on :meth:`DesktopSocket.receive` until None."""


async def desktop_socket(request: web.Request) -> web.StreamResponse:
    """``GET /desktops/{instance_id}/ws/{name}``: authenticate, then serve the socket."""
    hub = request.app[SOCKETS_KEY]
    name = request.match_info["name"]
    serve = hub.server(name)
    if serve is None:
        raise web.HTTPNotFound()
    store = hub.store
    key = request.match_info["instance_id"]
    computer = store.find_computer(key)
    mode = store.config.ws_auth
    if (
        computer is not None
        and mode != "close"
        and not hub.closed
        and not _authorized(request, computer, mode)
    ):
        _count(store.counters.ws_rejections, 401)
        log.debug("refused %s socket of %s: bad token (HTTP 401)", name, request.path)
        raise ApiError(401, "invalid_token", "Invalid or missing token")

    ws = web.WebSocketResponse(
        timeout=_CLOSE_TIMEOUT,
        compress=False,
        max_msg_size=_MAX_MESSAGE,
        heartbeat=None,
        # websockify picks "binary" when the client offers it, and works without it.
        protocols=_SUBPROTOCOLS.get(name, ()),
    )
    await ws.prepare(request)
    # Looked up again after the handshake's await: the computer may have changed.
    computer = store.find_computer(key)
    if hub.closed:
        await _refuse(hub, ws, CLOSE_GOING_AWAY, "Server shutting down")
    elif computer is None:
        await _refuse(hub, ws, CLOSE_NOT_FOUND, "Computer not found or not running")
    elif not _authorized(request, computer, store.config.ws_auth):
        log.debug("refused %s: bad token (4401)", request.path)
        await _refuse(hub, ws, CLOSE_UNAUTHORIZED, "Invalid or missing token")
    elif not computer.is_running(store.now()):
        await _refuse(hub, ws, CLOSE_NOT_FOUND, "Computer not found or not running")
    else:
        socket = DesktopSocket(name, computer, request, ws)
        hub.register(socket)  # no await since the checks: a stop cannot slip in between
        try:
            await serve(hub, socket)
        except Exception:
            log.exception("%s socket of computer %s failed", name, computer.instance_id)
            socket.close(CLOSE_INTERNAL, "Internal error")
        finally:
            try:
                await socket.finish()
            finally:
                await hub.release(socket)
    return ws


def _query_int(query: Mapping[str, str], name: str, default: int, allowed: str) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be {allowed}, got {raw!r}") from None


@contextlib.asynccontextmanager
async def _alongside(sender: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run ``sender`` (a socket's outgoing pump) while the block runs; cancel it after."""
    task = asyncio.get_running_loop().create_task(sender)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --------------------------------------------------------------------------- terminal


class _JsonCore(Protocol):
    def receive_text(self, text: str | bytes) -> None: ...

    def events_received(self) -> Sequence[Any]: ...

    def data_to_send(self) -> list[str]: ...

    def send_error(self, message: str) -> None: ...


async def _refuse_query(
    hub: SocketHub, socket: DesktopSocket, proto: _JsonCore, message: str
) -> None:
    """Refuse bad query parameters: an ``error`` message naming them, then close 1008."""
    proto.send_error(message)
    await socket.send_frames(proto.data_to_send())
    _count(hub.store.counters.ws_rejections, CLOSE_POLICY)
    socket.close(CLOSE_POLICY, message)


async def _client_events(socket: DesktopSocket, proto: _JsonCore) -> AsyncIterator[Sequence[Any]]:
    """The events of each text frame the client sends, until the socket closes.

    Binary frames are ignored (no JSON socket takes any). The core is unusable
    after a protocol error: the client is told why, and the socket closed 1008.
    """
    while (message := await socket.receive()) is not None:
        if isinstance(message, bytes):
            continue
        try:
            proto.receive_text(message)
        except ProtocolError as exc:
            proto.send_error(f"Protocol error: {exc}")
            await socket.send_frames(proto.data_to_send())
            socket.close(CLOSE_POLICY, "Protocol error")
            continue
        yield proto.events_received()


async def _serve_terminal(hub: SocketHub, socket: DesktopSocket) -> None:
    proto = TerminalProtocol(Role.SERVER)
    query = socket.query
    try:
        cols = _query_int(query, "cols", 80, "an integer from 1 to 10000")
        rows = _query_int(query, "rows", 24, "an integer from 1 to 10000")
        for label, value in (("cols", cols), ("rows", rows)):
            if not 1 <= value <= 10000:
                raise ValueError(f"{label} must be an integer from 1 to 10000, got {value}")
    except ValueError as exc:
        await _refuse_query(hub, socket, proto, str(exc))
        return
    computer = hub.store.computers.get(socket.computer_id)
    try:
        if computer is None:
            raise ShellError("the computer is gone")
        place = None if hub.desktops is None else await hub.desktops.place(computer)
        shell = Shell.spawn(hub.store.workdir(computer), cols=cols, rows=rows, place=place)
    except (ShellError, OSError) as exc:
        log.warning("shell for computer %s failed to start: %s", socket.instance_id, exc)
        _count(hub.store.counters.ws_rejections, CLOSE_FAILED)
        socket.close(CLOSE_FAILED, "Failed to start shell")
        return
    hub.accepted(socket)
    hub.add_shell(socket, shell)
    async with _alongside(_pump_terminal(socket, shell, proto)):
        async for events in _client_events(socket, proto):
            for event in events:
                if isinstance(event, Input):
                    hub.note_input(socket.computer_id)
                    shell.write(event.data)
                    await shell.drain()
                elif isinstance(event, Resize):
                    shell.resize(event.cols, event.rows)
                elif isinstance(event, Ping):
                    proto.send_pong()
                elif isinstance(event, UnknownMessage):
                    proto.send_error(f"Unknown message type: {event.type}")
            await socket.send_frames(proto.data_to_send())


async def _pump_terminal(socket: DesktopSocket, shell: Shell, proto: TerminalProtocol) -> None:
    """Shell output to ``output`` messages; at the shell's exit, ``exit`` and close 1000."""
    while (text := await shell.read()) is not None:
        proto.send_output(text)
        if not await socket.send_frames(proto.data_to_send()):
            return
    code = await shell.wait()
    proto.send_exit(code)
    if await socket.send_frames(proto.data_to_send()):
        socket.close(CLOSE_NORMAL, "Shell exited")


# --------------------------------------------------------------------------- audio


class _Tone:
    """A sine tone as s16le PCM, precomputed over a whole number of periods.

    The ring holds the shortest sample count after which the waveform repeats
    exactly (600 samples for 440 Hz at 24 kHz), plus one frame of wrap-around,
    so every 20 ms frame is one slice of it: no arithmetic per sample.
    """

    def __init__(self, hz: float, sample_rate: int, channels: int) -> None:
        # With hz = p/q, the waveform repeats after rate*q/gcd(rate*q, p) samples.
        ratio = Fraction(hz).limit_denominator(1000)
        length = (
            sample_rate
            * ratio.denominator
            // math.gcd(sample_rate * ratio.denominator, ratio.numerator)
        )
        cycles = ratio * length / sample_rate
        if length > sample_rate:
            # No exact period within a second: round the tone to 1 Hz over a 1 s ring.
            length = sample_rate
            cycles = Fraction(round(hz))
        self.frame_samples = sample_rate // 50
        self.length = length
        self.channels = channels
        step = 2 * math.pi * float(cycles) / length
        amplitude = 16383  # half of full scale
        samples = array("h")
        for n in range(length + self.frame_samples):
            value = round(amplitude * math.sin(step * (n % length)))
            samples.extend([value] * channels)
        if sys.byteorder == "big":
            samples.byteswap()
        self._pcm = samples.tobytes()
        self._frame_bytes = self.frame_samples * channels * 2

    def frames(self, position: int, count: int) -> tuple[bytes, int]:
        """``count`` 20 ms frames from sample ``position``; returns (PCM, next position)."""
        chunks = []
        per_sample = self.channels * 2
        for _ in range(count):
            start = position * per_sample
            chunks.append(self._pcm[start : start + self._frame_bytes])
            position = (position + self.frame_samples) % self.length
        return b"".join(chunks), position


@lru_cache(maxsize=8)
def _tone(hz: float, sample_rate: int, channels: int) -> _Tone:
    return _Tone(hz, sample_rate, channels)


async def _serve_audio(hub: SocketHub, socket: DesktopSocket) -> None:
    proto = AudioProtocol(Role.SERVER)
    query = socket.query
    try:
        rate = _query_int(query, "sample_rate", 24000, "24000 or 48000")
        if rate not in SAMPLE_RATES:
            raise ValueError(f"sample_rate must be 24000 or 48000, got {rate}")
        channels = _query_int(query, "channels", 1, "1 or 2")
        if channels not in CHANNELS:
            raise ValueError(f"channels must be 1 or 2, got {channels}")
    except ValueError as exc:
        await _refuse_query(hub, socket, proto, str(exc))
        return
    hub.accepted(socket)
    proto.send_started(rate, channels)
    if not await socket.send_frames(proto.data_to_send()):
        return
    tone = _tone(float(hub.store.config.audio_tone_hz), rate, channels)
    hub.publish(socket.computer_id, "audio_stream_start", {})
    try:
        async with _alongside(_stream_tone(socket, tone)):
            async for events in _client_events(socket, proto):
                for event in events:
                    if isinstance(event, AudioStop):
                        socket.close(CLOSE_NORMAL, "Stopped")
                    elif isinstance(event, AudioPing):
                        proto.send_pong()
                await socket.send_frames(proto.data_to_send())
    finally:
        hub.publish(socket.computer_id, "audio_stream_stop", {})


async def _stream_tone(socket: DesktopSocket, tone: _Tone) -> None:
    """Send 20 ms frames paced by the loop clock: frame k leaves at ``start + k * 20 ms``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    position = 0
    while True:
        # Due counts derive from the start time, never from summed sleeps: no drift.
        due = int((loop.time() - start) / _FRAME_SECONDS) + 1
        if due - sent > _MAX_AUDIO_BACKLOG:
            skipped = due - sent - 1
            position = (position + skipped * tone.frame_samples) % tone.length
            sent += skipped
        pcm, position = tone.frames(position, due - sent)
        if not await socket.send_bytes(pcm):
            return
        sent = due
        await asyncio.sleep(max(0.0, start + sent * _FRAME_SECONDS - loop.time()))


# --------------------------------------------------------------------------- events


async def _serve_events(hub: SocketHub, socket: DesktopSocket) -> None:
    hub.accepted(socket)
    proto = EventsProtocol(Role.SERVER)
    sub = hub.subscribe(socket)
    async with _alongside(_pump_events(socket, sub, proto)):
        async for events in _client_events(socket, proto):
            for event in events:
                if isinstance(event, Subscribe | Unsubscribe):
                    unknown = [t for t in event.event_types if t not in EVENT_TYPES]
                    known = frozenset(event.event_types) & EVENT_TYPES
                    for name in unknown:
                        proto.send_error(f"Unknown event type: {name}")
                    if isinstance(event, Subscribe):
                        proto.send_subscribed()
                    else:
                        proto.send_unsubscribed()
                    # Acknowledge first, then subscribe: no event precedes its ack.
                    if not await socket.send_frames(proto.data_to_send()):
                        break
                    if isinstance(event, Subscribe):
                        hub.set_types(sub, sub.types | known)
                    else:
                        hub.set_types(sub, sub.types - known)
                elif isinstance(event, EventsPing):
                    proto.send_pong()
                elif isinstance(event, EventsError):
                    proto.send_error(event.message)
            await socket.send_frames(proto.data_to_send())


async def _pump_events(socket: DesktopSocket, sub: _Subscriber, proto: EventsProtocol) -> None:
    """Send queued events in order; sleeps on an event while the queue is empty."""
    while True:
        await sub.wake.wait()
        sub.wake.clear()
        while sub.queue:
            event_type, timestamp, data = sub.queue.popleft()
            proto.send_event(event_type, timestamp, data)
            if not await socket.send_frames(proto.data_to_send()):
                return


SOCKET_NAMES: Final = ("websockify", "terminal", "audio", "events")
"""The socket names Orgo documents under ``/desktops/{instance_id}/ws/``."""

SOCKET_SERVERS: Final[Mapping[str, SocketServer]] = {
    "terminal": _serve_terminal,
    "audio": _serve_audio,
    "events": _serve_events,
}
"""The serve functions of this module, by socket name. A hub starts with these; a name
without a server (``websockify`` until the emulator adds it) answers HTTP 404."""
