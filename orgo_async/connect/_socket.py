"""What every connector shares: one reader task, keepalive, reconnects, and a clean close."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..errors import (
    ConnectionClosedError,
    ConnectorError,
    ConnectorProtocolError,
    OrgoError,
    ProtocolError,
)
from ._connection import Connection
from ._link import AUTH_REJECTED, NOT_RUNNING, TRANSIENT, Frame, Link, close_code, close_reason

log = logging.getLogger("orgo_async.connect")


T = TypeVar("T")


class Inbox(Generic[T]):
    """What a connector received and its consumer has not taken yet, bounded.

    When full, the oldest item is dropped and counted in :attr:`dropped`: a slow
    consumer loses old data instead of stalling the socket or growing memory.
    Iteration ends when :meth:`end` is called or the socket is over; if the
    socket ended with an error, iteration raises it.
    """

    def __init__(self, socket: Socket[Any], maxlen: int) -> None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            raise ValueError(f"max_buffered must be an int >= 1; got {maxlen!r}")
        self._socket = socket
        self._items: collections.deque[T] = collections.deque(maxlen=maxlen)
        self._ready = asyncio.Event()
        self._ended = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    def end(self) -> None:
        """No more items will come (iteration stops once the buffer is drained)."""
        self._ended = True
        self._ready.set()

    def wake(self) -> None:
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            while not self._items:
                self._ready.clear()
                if self._ended:
                    return
                if self._socket.closed:
                    if self._socket._ended is not None:
                        raise self._socket._closed_error()
                    return
                await self._ready.wait()
            yield self._items.popleft()


class Core(Protocol):
    def data_to_send(self) -> list[str]: ...

    def send_ping(self) -> None: ...

    def receive_text(self, text: str | bytes) -> None: ...

    def events_received(self) -> Sequence[object]: ...


C = TypeVar("C", bound=Core)


class Socket(Generic[C]):
    """Base of the connectors: drives a protocol core over a :class:`Link`.

    Subclasses say how to make a core, how to make the server speak first
    (:meth:`_greet`), how to give it a frame if not as text (:meth:`_receive`),
    what to do with each event it makes (:meth:`_event`), and what to restore
    after a reconnect (:meth:`_reopened`).
    """

    name: ClassVar[str]

    def __init__(self, connection: Connection, *, params: dict[str, str] | None = None) -> None:
        self._conn = connection
        self._link = Link(connection, self.name, params=params, greeting=self._greet)
        self._ws: ClientConnection | None = None
        self._core: C | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._pong = asyncio.Event()
        self._closing = False
        self._ended: BaseException | None = None
        self._done = asyncio.Event()
        # While set, the reader takes no frame until it is done (a subclass reading
        # its state from another thread holds the frames that would change it).
        self._paused: asyncio.Future[None] | None = None
        self.reconnects = 0
        """How many times the socket was re-dialled after it dropped."""

    def __repr__(self) -> str:
        state = "closed" if self._done.is_set() else "open" if self._connected.is_set() else "new"
        return f"<{type(self).__name__} of computer {self._conn.computer.id} {state}>"

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Dial and authenticate (see :class:`~orgo_async.connect.Connection`).

        Raises:
            HandshakeError, ConnectionClosedError: it could not be opened.
        """
        if self._reader is not None:
            raise RuntimeError(f"this {self.name} socket was already opened")
        ws, frames = await self._link.open()
        try:
            self._attach(ws, frames)
        except BaseException:
            ws.transport.abort()
            raise
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read(), name=f"orgo-{self.name}-reader")
        if self._conn.keepalive is not None:
            self._keepalive = loop.create_task(self._ping(), name=f"orgo-{self.name}-ping")

    async def close(self) -> None:
        """Close the socket and stop its tasks. Idempotent and cancel-safe."""
        self._closing = True
        tasks = [t for t in (self._keepalive, self._reader) if t is not None]
        for task in tasks:
            task.cancel()
        ws = self._ws
        try:
            if ws is not None:
                await ws.close()
        finally:
            if ws is not None and ws.transport is not None:
                ws.transport.abort()  # no-op once closed; ends it if close() was cut short
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._finish(None)

    @property
    def closed(self) -> bool:
        return self._done.is_set()

    # -- for subclasses ------------------------------------------------------------

    def _new_core(self) -> C:
        raise NotImplementedError

    async def _greet(self, ws: ClientConnection) -> None:
        """Make the server send its first frame (default: a JSON ping)."""
        core = self._new_core()
        core.send_ping()
        for text in core.data_to_send():
            await ws.send(text)

    def _feed(self, frame: Frame) -> None:
        """A frame to the core (:meth:`_receive`), then each event it made to :meth:`_event`."""
        core = self._core
        assert core is not None
        self._receive(core, frame)
        for event in core.events_received():
            self._event(event)

    def _receive(self, core: C, frame: Frame) -> None:
        """Give ``frame`` to ``core``; by default as text (a binary frame too)."""
        core.receive_text(frame)

    def _event(self, event: object) -> None:
        """Act on one event of the core."""
        raise NotImplementedError

    async def _reopened(self) -> None:
        """Called by the reader after a reconnect, with the new socket in place.

        Restore per-connection state here. Do not wait for an answer: the
        reader, which would deliver it, is the caller.
        """

    def _ended_hook(self, error: BaseException | None) -> None:
        """Called once when the socket is over for good (wake consumers here)."""

    # -- sending -------------------------------------------------------------------

    async def _send(self, build: Callable[[C], None]) -> None:
        """Buffer a message with ``build(core)`` and send it, waiting out a reconnect.

        Raises:
            ConnectionClosedError: the socket is closed for good.
        """
        for attempt in range(2):
            await self._wait_connected()
            ws, core = self._ws, self._core
            assert ws is not None and core is not None
            build(core)
            try:
                for text in core.data_to_send():
                    await ws.send(text)
                return
            except ConnectionClosed as exc:
                if attempt or self._closing:
                    raise self._closed_by(exc, "the socket closed while sending") from exc
                # The reader re-dials; wait for it, then send on the new socket.
                self._connected.clear()

    async def _wait_connected(self) -> None:
        if self._done.is_set():
            raise self._closed_error()
        if self._connected.is_set():
            return
        waiter = asyncio.ensure_future(self._connected.wait())
        done = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait((waiter, done), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            done.cancel()
        if not self._connected.is_set():
            raise self._closed_error()

    def _closed_error(self) -> ConnectorError:
        if isinstance(self._ended, ConnectorError):
            return self._ended
        return ConnectionClosedError("the socket is closed", socket=self.name)

    def _closed_by(self, exc: ConnectionClosed, message: str) -> ConnectionClosedError:
        """``message`` as our error, with the close code and reason of websockets' ``exc``."""
        return ConnectionClosedError(
            message, socket=self.name, code=close_code(exc), reason=close_reason(exc)
        )

    # -- the reader ----------------------------------------------------------------

    def _attach(self, ws: ClientConnection, frames: list[Frame]) -> None:
        self._ws = ws
        self._core = self._new_core()
        for frame in frames:
            self._take(frame)
        self._connected.set()

    def _take(self, frame: Frame) -> None:
        # The core's ProtocolError says what was malformed; the socket's error says where.
        try:
            self._feed(frame)
        except ProtocolError as exc:
            if isinstance(exc, ConnectorError):
                raise
            raise ConnectorProtocolError(str(exc), socket=self.name) from exc

    async def _read(self) -> None:
        error: BaseException | None = None
        try:
            while True:
                ws = self._ws
                assert ws is not None
                try:
                    async for frame in ws:
                        if self._paused is not None:
                            await asyncio.shield(self._paused)
                        self._take(frame)
                    code, reason = ws.close_code or 1000, ws.close_reason or ""
                except ConnectionClosed as exc:
                    code, reason = close_code(exc), close_reason(exc)
                self._connected.clear()
                if self._closing:
                    return
                if not self._should_reopen(code):
                    if not self._normal_end(code):
                        error = ConnectionClosedError(
                            "the socket closed", socket=self.name, code=code, reason=reason
                        )
                    return
                log.debug("%s closed with %d; re-opening", self.name, code)
                new_ws, frames = await self._link.open(after=code)
                self.reconnects += 1
                self._attach(new_ws, frames)
                await self._reopened()
        except asyncio.CancelledError:
            raise
        except OrgoError as exc:
            error = exc
        except Exception as exc:  # a bug or a protocol violation: end, do not hang consumers
            error = exc
        finally:
            self._finish(error)

    def _should_reopen(self, code: int) -> bool:
        if code in (AUTH_REJECTED, NOT_RUNNING):
            return True
        return code in TRANSIENT and self._conn.reconnect.enabled

    def _normal_end(self, code: int) -> bool:
        """Whether a close with this code ends the socket without an error."""
        return code == 1000

    def _finish(self, error: BaseException | None) -> None:
        if self._done.is_set():
            return
        self._ended = error
        self._connected.clear()
        self._done.set()
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._ended_hook(error)

    # -- keepalive -----------------------------------------------------------------

    def _pong_received(self) -> None:
        self._pong.set()

    async def _ping(self) -> None:
        interval = self._conn.keepalive
        assert interval is not None
        while True:
            await asyncio.sleep(interval)
            if not self._connected.is_set():
                continue
            ws = self._ws
            self._pong.clear()
            try:
                await self._send(lambda core: core.send_ping())
                async with asyncio.timeout(self._conn.timeouts.ping):
                    await self._pong.wait()
            except TimeoutError:
                log.debug(
                    "%s: no pong within %s s; dropping the socket",
                    self.name,
                    self._conn.timeouts.ping,
                )
                if ws is not None:
                    ws.transport.abort()  # the reader sees 1006 and re-dials
            except ConnectorError:
                return
