"""A lean HTTP/1.1 transport for health probes: a pre-built GET, its status, nothing else.

The readiness race sends many ``GET .../proxy/health`` probes, and only their
status matters. Through aiohttp each costs a client session's whole request
machinery; here it is one pre-built request written on a kept-alive
connection and an answer parsed in the protocol's ``data_received`` (the
status line, the few headers that frame the body, the body discarded). At
fleet scale the client's event loop is the limit, so this is what probes use.

* A pool of at most ``max_connections`` connections, idle ones reused last in
  first out, callers beyond the limit queued first in first out; one request
  per connection at a time.
* Bodies framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the
  end of the connection (which is then not reused); ``Connection: close``
  honoured; 1xx interim answers skipped; headers capped at 64 KiB, bodies at
  1 MiB.
* One deadline per probe: on expiry its connection is closed (never reused
  mid-answer) and :class:`~orgo_async.APITimeoutError` is raised.
* A kept-alive connection that the server closed while it sat idle is
  retried once on a fresh connection (a GET is idempotent).
* The API key is in the pre-built requests only: never in a repr, a log line
  or an exception message.
"""

from __future__ import annotations

import asyncio
import collections
import ssl as ssl_module
from typing import Final, cast
from urllib.parse import quote, urlsplit

from ._http import tls_failure
from .errors import APIConnectionError, APITimeoutError, ClientClosedError

__all__ = ["PROBE_CONNECTIONS", "ProbeTransport"]

PROBE_CONNECTIONS: Final = 64
"""The most connections a session's probes use (fewer if ``max_connections`` is lower).

A probe holds its connection for one round trip (about a millisecond), so a
few dozen carry thousands of probes a second; each connection more is a TCP
(and, over HTTPS, a TLS) handshake for the client and the server.
"""
HEAD_LIMIT: Final = 64 * 1024
"""The most bytes of status line and headers (and of trailers) an answer may have."""
BODY_LIMIT: Final = 1024 * 1024
"""The most body bytes an answer may have; they are read and discarded."""
_LINE_LIMIT: Final = 4096  # a chunk-size line
_CACHE_SIZE: Final = 4096  # pre-built requests kept (one per computer probed)
# A path may carry these as they are; anything else is percent-encoded.
_SAFE: Final = "/%:@!$&'()*+,;=-._~"

# Where an answer's parse stands.
_IDLE, _HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE = range(8)


class _BadAnswer(Exception):
    """The answer does not parse as HTTP/1.x (or is over a limit)."""


class _Lost(Exception):
    """The connection ended before a complete answer."""

    def __init__(self, cause: Exception | None, *, answered: bool) -> None:
        super().__init__()
        self.cause = cause
        self.answered = answered
        """Whether any byte of the answer had arrived."""


class _Expired(Exception):
    """The probe's deadline passed while the answer was awaited."""


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) in the lowercased ``head``, or ``None``."""
    at = head.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class _Connection(asyncio.Protocol):
    """One kept-alive connection and the parse of the answer it is awaiting."""

    __slots__ = (
        "_answered",
        "_buf",
        "_chunk",
        "_keep",
        "_pool",
        "_remaining",
        "_seen",
        "_state",
        "_status",
        "counted",
        "future",
        "idle",
        "_loop",
        "reused",
        "transport",
        "written",
    )

    def __init__(self, pool: ProbeTransport) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.future: asyncio.Future[int] | None = None
        self.counted = True
        """Whether this connection holds one of the pool's slots."""
        self.idle = False
        """Whether it waits in the pool's idle list."""
        self.reused = False
        """Whether it has carried a complete answer already."""
        self.written = False
        """Whether a request was written on it."""
        self._buf = bytearray()
        self._state = _IDLE
        self._status = 0
        self._keep = True
        self._remaining = 0
        self._seen = 0  # body bytes (or head bytes, for trailers) so far
        self._chunk = False
        self._answered = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an asyncio.Transport subclass
        # (uvloop's is not): it writes, aborts and says whether it is closing.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        future = self.future
        if future is not None and not future.done():
            if self._state == _UNTIL_CLOSE:
                self._keep = False
                self._finish()
            else:
                future.set_exception(_Lost(exc, answered=self._answered))
        self.future = None
        self._pool._lost(self)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def data_received(self, data: bytes) -> None:
        if self.future is None:  # bytes nobody asked for: the connection is not HTTP we know
            self._keep = False
            self.close()
            return
        self._answered = True
        self._buf += data
        try:
            self._parse()
        except _BadAnswer as exc:
            if not self.future.done():
                self.future.set_exception(exc)
            self.close()

    # The pool's side

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write ``request``; the future of its status."""
        assert self.transport is not None
        future: asyncio.Future[int] = self._loop.create_future()
        self.future = future
        self._state = _HEAD
        self._answered = False
        self._keep = True
        self._buf.clear()
        if self.transport.is_closing():  # already gone: nothing written
            future.set_exception(_Lost(None, answered=False))
        else:
            self.transport.write(request)
            self.written = True
        return future

    def expire(self) -> None:
        """The deadline passed: fail the awaited answer and close the connection."""
        future = self.future
        if future is not None and not future.done():
            future.set_exception(_Expired())
        self.close()

    @property
    def reusable(self) -> bool:
        transport = self.transport
        return (
            self._keep
            and self._state == _IDLE
            and transport is not None
            and not transport.is_closing()
        )

    def close(self) -> None:
        """Close at once (an answer may be half read, so no graceful shutdown)."""
        self._keep = False
        if self.transport is not None:
            self.transport.abort()

    # The parse

    def _parse(self) -> None:
        buf = self._buf
        while True:
            state = self._state
            if state == _LENGTH or state == _CHUNK_DATA:
                take = min(len(buf), self._remaining)
                del buf[:take]
                self._remaining -= take
                if self._remaining:
                    return
                if state == _LENGTH:
                    self._finish()
                else:
                    self._state = _CHUNK_END
            elif state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    self._incomplete(HEAD_LIMIT, "headers over 64 KiB")
                    return
                if end > HEAD_LIMIT:
                    raise _BadAnswer("headers over 64 KiB")
                head = bytes(buf[: end + 2])
                del buf[: end + 4]
                self._on_head(head)
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    self._incomplete(_LINE_LIMIT, "chunk size line too long")
                    return
                line = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    raise _BadAnswer("bad chunk size") from None
                if size < 0:
                    raise _BadAnswer("bad chunk size")
                if size == 0:
                    self._state = _TRAILERS
                    self._seen = 0
                else:
                    self._body(size)
                    self._remaining = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise _BadAnswer("chunk not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                end = buf.find(b"\r\n")
                if end < 0:
                    self._incomplete(HEAD_LIMIT - self._seen, "trailers over 64 KiB")
                    return
                del buf[: end + 2]
                if end == 0:
                    self._finish()
                else:
                    self._seen += end + 2
                    if self._seen > HEAD_LIMIT:
                        raise _BadAnswer("trailers over 64 KiB")
            elif state == _UNTIL_CLOSE:
                self._body(len(buf))
                buf.clear()
                return
            else:  # _IDLE: bytes past the end of the answer
                if buf:
                    self._keep = False
                return

    def _incomplete(self, limit: int, too_long: str) -> None:
        """The head, chunk-size line or trailer being parsed has not all come: more may
        follow while the buffer is within ``limit`` bytes.

        Raises:
            _BadAnswer: ``too_long``, past ``limit`` bytes.
        """
        if len(self._buf) > limit:
            raise _BadAnswer(too_long)

    def _on_head(self, head: bytes) -> None:
        """The status line and headers (``head`` ends with one CRLF)."""
        line_end = head.find(b"\r\n")
        parts = head[:line_end].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise _BadAnswer("not an HTTP/1.x status line")
        try:
            status = int(parts[1])
        except ValueError:
            raise _BadAnswer("bad status code") from None
        if not 100 <= status <= 999 or status == 101:
            raise _BadAnswer(f"unexpected status {status}")
        if status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        self._status = status
        self._seen = 0
        lower = head.lower()
        connection = _header(lower, b"connection")
        if parts[0] == b"HTTP/1.0":
            self._keep = connection is not None and b"keep-alive" in connection
        else:
            self._keep = connection is None or b"close" not in connection
        if status in (204, 304):
            self._finish()
            return
        coding = _header(lower, b"transfer-encoding")
        if coding is not None:
            if coding.rsplit(b",", 1)[-1].strip() == b"chunked":
                self._state = _CHUNK_SIZE
            else:  # another final coding: the body ends with the connection
                self._keep = False
                self._state = _UNTIL_CLOSE
            return
        length = _header(lower, b"content-length")
        if length is None:
            self._keep = False
            self._state = _UNTIL_CLOSE
            return
        try:
            size = int(length)
        except ValueError:
            raise _BadAnswer("bad Content-Length") from None
        if size < 0:
            raise _BadAnswer("bad Content-Length")
        self._body(size)
        if size == 0:
            self._finish()
        else:
            self._remaining = size
            self._state = _LENGTH

    def _body(self, size: int) -> None:
        self._seen += size
        if self._seen > BODY_LIMIT:
            raise _BadAnswer("body over 1 MiB")

    def _finish(self) -> None:
        self._state = _IDLE
        future = self.future
        self.future = None
        if self._buf:  # more than one answer: we never pipeline, so this is no HTTP we trust
            self._keep = False
        if future is not None and not future.done():
            future.set_result(self._status)


class ProbeTransport:
    """GETs whose status alone matters, over a small pool of raw kept-alive connections.

    Args:
        base_url: The API root (``https://www.orgo.ai/api``); paths are relative to it.
        api_key: Sent as ``Authorization: Bearer ...``; never shown.
        user_agent: The ``User-Agent`` header.
        ssl: The TLS context for ``https`` (``None``: the system's trust store).
        max_connections: The most connections open at once.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        user_agent: str,
        *,
        ssl: ssl_module.SSLContext | None,
        max_connections: int,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._tls = parts.scheme.lower() == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._base_path = parts.path
        host = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None and parts.port != (443 if self._tls else 80):
            host = f"{host}:{parts.port}"
        # Everything after the request line, the same for every probe.
        self._headers = (
            f"Host: {host}\r\nAuthorization: Bearer {api_key}\r\n"
            f"User-Agent: {user_agent}\r\nAccept: application/json\r\n\r\n"
        ).encode("latin-1")
        self._ssl_context = ssl
        self._max = max_connections
        self._count = 0  # connections open or opening: the slots taken
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._requests: dict[str, tuple[bytes, str]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"ProbeTransport(base_url={self.base_url!r})"

    @property
    def open_connections(self) -> int:
        """The connections open or being opened (at most ``max_connections``)."""
        return self._count

    async def status(self, path: str, *, timeout: float) -> int:
        """``GET`` the API path ``path`` (``/desktops/x/proxy/health``); the answer's status.

        The body is read and discarded. A 3xx is a status like any other.

        Raises:
            APITimeoutError: no answer within ``timeout`` seconds (``phase`` ``connect``
                when no connection was had, else ``request``).
            APIConnectionError: the connection was refused, reset or closed before a
                complete answer (``sent`` ``False`` when the request was never written),
                the answer was not HTTP, or TLS failed (``retryable`` ``False``).
            ClientClosedError: :meth:`close` was called.
        """
        built = self._requests.get(path)
        if built is None:
            built = self._build(path)
        request, shown = built
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        idle = self._idle
        conn = idle.pop() if idle else None
        if conn is None:
            conn = await self._connection(deadline, timeout, shown)
        else:
            conn.idle = False
        try:
            return await self._exchange(conn, request, loop, deadline)
        except _Lost as lost:
            if not conn.reused or lost.answered:
                raise self._failure(lost, timeout, shown, conn) from lost.cause
        except (_Expired, _BadAnswer) as exc:
            raise self._failure(exc, timeout, shown, conn) from None
        except BaseException:  # cancelled: the connection may be mid-answer
            self._drop(conn)
            raise
        # A kept-alive connection the server had closed: once more, on a fresh one,
        # in the same slot.
        conn.counted = False
        conn.close()
        conn = await self._fresh(deadline, timeout, shown)
        try:
            return await self._exchange(conn, request, loop, deadline)
        except (_Lost, _Expired, _BadAnswer) as exc:
            raise self._failure(exc, timeout, shown, conn) from None
        except BaseException:
            self._drop(conn)
            raise

    async def close(self) -> None:
        """Close every connection; later probes raise :class:`ClientClosedError`."""
        self._closed = True
        for conn in list(self._idle):
            self._drop(conn)
        for conn in list(self._all):
            conn.close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ClientClosedError("this Orgo session is closed"))
        await asyncio.sleep(0)  # let the transports report their end

    # One exchange

    async def _exchange(
        self,
        conn: _Connection,
        request: bytes,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
    ) -> int:
        future = conn.send(request)
        timer = loop.call_at(deadline, conn.expire)
        try:
            status = await future
        finally:
            timer.cancel()
        conn.reused = True
        if conn.reusable and not self._closed:
            self._give(conn)
        else:
            self._drop(conn)
        return status

    def _failure(
        self, exc: Exception, timeout: float, shown: str, conn: _Connection
    ) -> APIConnectionError:
        """Drop ``conn`` (it may be mid-answer) and map ``exc`` to what the caller sees."""
        self._drop(conn)
        if isinstance(exc, _Expired):
            return APITimeoutError(phase="request", seconds=timeout, method="GET", path=shown)
        if isinstance(exc, _Lost):
            cause = exc.cause
            if isinstance(cause, OSError):
                message = f"connection failed ({cause.strerror or type(cause).__name__})"
            else:
                message = "the server closed the connection without an answer"
            return APIConnectionError(message, method="GET", path=shown, sent=conn.written)
        return APIConnectionError(f"bad answer ({exc})", method="GET", path=shown)

    # The pool

    async def _connection(self, deadline: float, timeout: float, shown: str) -> _Connection:
        """A connection: an idle one handed over, or a new one in a free slot."""
        if self._closed:
            raise ClientClosedError("this Orgo session is closed; open a new one")
        if self._count < self._max:
            self._count += 1
            return await self._fresh(deadline, timeout, shown)
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                conn = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_back(waiter.result())
            waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise APITimeoutError(
                    phase="connect", seconds=timeout, method="GET", path=shown, sent=False
                ) from None
            raise
        if conn is None:  # a slot was freed for us
            return await self._fresh(deadline, timeout, shown)
        return conn

    async def _fresh(self, deadline: float, timeout: float, shown: str) -> _Connection:
        """Open a connection in a slot already taken (given back if this fails)."""
        loop = asyncio.get_running_loop()
        conn = _Connection(self)
        try:
            async with asyncio.timeout_at(deadline):
                if self._tls:
                    context = self._ssl_context
                    if context is None:
                        context = self._ssl_context = ssl_module.create_default_context()
                    await loop.create_connection(
                        lambda: conn,
                        self._host,
                        self._port,
                        ssl=context,
                        server_hostname=self._host,
                    )
                else:
                    await loop.create_connection(lambda: conn, self._host, self._port)
        except BaseException as exc:
            conn.counted = False
            conn.close()
            self._free_slot()
            if isinstance(exc, TimeoutError):
                raise APITimeoutError(
                    phase="connect", seconds=timeout, method="GET", path=shown, sent=False
                ) from None
            if isinstance(exc, ssl_module.SSLError):
                raise tls_failure(type(exc).__name__, "GET", shown) from None
            if isinstance(exc, OSError):
                reason = exc.strerror or type(exc).__name__
                raise APIConnectionError(
                    f"could not connect ({reason})", method="GET", path=shown, sent=False
                ) from None
            raise
        if self._closed:
            conn.counted = False
            conn.close()
            self._free_slot()
            raise ClientClosedError("this Orgo session is closed; open a new one")
        self._all.add(conn)
        return conn

    def _give(self, conn: _Connection) -> None:
        """A connection is free: to the first waiter, else to the idle list."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle = True
        self._idle.append(conn)

    def _give_back(self, got: _Connection | None) -> None:
        """A waiter that was handed ``got`` (``None``: a slot) gave up before using it."""
        if got is None:
            self._free_slot()
        else:
            self._give(got)

    def _drop(self, conn: _Connection) -> None:
        """Close ``conn`` and free its slot (idempotent)."""
        conn.close()
        if conn.idle:
            conn.idle = False
            self._idle.remove(conn)
        if conn.counted:
            conn.counted = False
            self._free_slot()

    def _free_slot(self) -> None:
        """One slot fewer taken: hand it to the first waiter, if any."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to it: the count stays
                return
        self._count -= 1

    def _lost(self, conn: _Connection) -> None:
        """``conn``'s transport ended (a probe in flight on it has been told)."""
        self._all.discard(conn)
        if conn.idle:  # closed by the server while idle: nobody is using it
            self._drop(conn)

    def _build(self, path: str) -> tuple[bytes, str]:
        """The request bytes for ``path``, and the path shown in errors; cached."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/'; got {path!r}")
        shown = self._base_path + quote(path, safe=_SAFE)
        request = b"GET " + shown.encode("ascii") + b" HTTP/1.1\r\n" + self._headers
        if len(self._requests) >= _CACHE_SIZE:
            del self._requests[next(iter(self._requests))]
        self._requests[path] = (request, shown)
        return request, shown
