"""Dialling a computer's WebSocket: auth, token rotation, waiting for a boot, reconnecting.

A :class:`Link` knows how to get an authenticated WebSocket to one of a
computer's sockets, whatever happened before:

* the token goes as ``Authorization: Bearer`` or as ``?token=``; the form that
  works is remembered per computer, and the other is tried when the server
  refuses one (HTTP 401/403, or a close 4401 right after the upgrade);
* when both forms are refused, the token is re-read once from the API (it
  rotates on every start and restart), then both are tried again; a second
  refusal is a :class:`~orgo_async.HandshakeError`;
* a close 4404 (not running) waits, within a deadline, for the computer to be
  healthy again;
* transient failures (refused connection, 1001, 1006, 5xx) are retried with
  bounded, jittered backoff, which can be switched off.

An upgrade only counts as open once the server has sent its first frame (the
connector makes it speak: a ping, or the protocol's greeting), so a server
that accepts and then closes 4401 is recognised as a refusal.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .._checks import check_count, check_seconds
from ..errors import (
    ComputerFailedError,
    ConnectionClosedError,
    HandshakeError,
    OrgoError,
    ReadyTimeout,
)
from ..models import Computer

if TYPE_CHECKING:
    from ._connection import Connection

log = logging.getLogger("orgo_async.connect")

BEARER: Final = "bearer"
QUERY: Final = "query"

# Close codes (docs/orgo-api.md §3): what each means for the link.
AUTH_REJECTED: Final = 4401
NOT_RUNNING: Final = 4404
TRANSIENT: Final = frozenset({1001, 1006, 1011, 1012, 1013, 1014})

Frame = str | bytes
Greeting = Callable[[ClientConnection], Awaitable[None]]


def _backoff_positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_seconds(f"ReconnectPolicy.{attribute.name}", value, inclusive=False)


def _attempts(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
        raise ValueError(
            f"ReconnectPolicy.max_attempts must be >= 1 (the dials tried before giving up); "
            f"got {value!r}; for no reconnection at all use ReconnectPolicy.off()"
        )
    check_count("ReconnectPolicy.max_attempts", value)


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """How a socket that dropped (1001, 1006...) is re-dialled.

    Waits are full-jitter exponential backoff between :attr:`backoff_base` and
    :attr:`backoff_max`; after :attr:`max_attempts` failed dials in a row the
    socket gives up with :class:`~orgo_async.ConnectionClosedError`.
    """

    enabled: bool = True
    max_attempts: int = attrs.field(default=8, validator=_attempts)
    """Failed dials in a row before the socket gives up (at least 1)."""
    backoff_base: float = attrs.field(default=0.1, validator=_backoff_positive)
    backoff_max: float = attrs.field(default=5.0, validator=_backoff_positive)
    sleep: Callable[[float], Awaitable[None]] = attrs.field(default=asyncio.sleep, repr=False)

    @classmethod
    def off(cls) -> ReconnectPolicy:
        """Never reconnect: a dropped socket ends the connector with an error."""
        return cls(enabled=False, max_attempts=1)

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.backoff_max, self.backoff_base * 2 ** min(attempt, 32)))


class _Refused(Exception):
    """The server refused our token (HTTP 401/403 or close 4401)."""


class _NotRunning(Exception):
    """Close 4404: the computer is not running (yet)."""


class _Transient(Exception):
    """A failure that another dial may not meet."""

    def __init__(self, message: str, code: int = 1006) -> None:
        super().__init__(message)
        self.code = code


class _Fatal(Exception):
    """A failure no retry will fix (wrong path, protocol violation...)."""


class _Redactor(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Passes websockets' wire log on with every secret it could carry removed.

    Tokens go from paths (``?token=``) and headers (``Authorization``); frame
    payloads go entirely, keeping their type and size: terminal input may be a
    password typed by an agent, and a VNC challenge with its DES answer would
    allow guessing the vnc_password offline.
    """

    _QUERY = re.compile(r"(token=)[^&\s]+")
    _AUTH = re.compile(r"(authorization: )\S.*", re.IGNORECASE)
    _PAYLOAD = re.compile(r"^([<>] (?:TEXT|BINARY|CONT|PING|PONG|CLOSE)) .*?(\[\d+ bytes\])$")

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        text = self._AUTH.sub(r"\1[redacted]", self._QUERY.sub(r"\1[redacted]", text))
        text = self._PAYLOAD.sub(r"\1 [payload not logged] \2", text)
        kwargs.pop("stacklevel", None)
        self.logger.log(level, "%s", text, **kwargs)


_wire_log = _Redactor(logging.getLogger("orgo_async.connect.wire"), {})


def ws_url(computer: Computer, name: str) -> str:
    """``{connection_url}/ws/{name}`` with ws/wss instead of http/https."""
    base = computer.connection_url
    if not base:
        raise ValueError(f"computer {computer.id} has no connection_url to open sockets on")
    parts = urlsplit(base.rstrip("/"))
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, f"{parts.path}/ws/{name}", "", ""))


class Link:
    """Opens one named socket of a computer, as often as needed."""

    def __init__(
        self,
        connection: Connection,
        name: str,
        *,
        params: dict[str, str] | None = None,
        greeting: Greeting | None = None,
        max_size: int | None = 4 * 1024 * 1024,
    ) -> None:
        self._connection = connection
        self.name = name
        self.url = ws_url(connection.computer, name)
        self.params = dict(params or {})
        self._greeting = greeting
        self._max_size = max_size
        self.dials = 0
        """Successful opens so far (the first included)."""

    def __repr__(self) -> str:
        return f"<Link {self.name} of {self._connection.computer.id}>"

    async def open(self, *, after: int | None = None) -> tuple[ClientConnection, list[Frame]]:
        """An authenticated socket and the frames it sent while proving it.

        Args:
            after: The close code that ended the previous socket, if any: after
                4401 the token is re-read first; after 4404 the boot is awaited.

        Raises:
            HandshakeError: the token was refused before and after a refresh, or
                the server refused the socket outright.
            ConnectionClosedError: it kept failing past the reconnect policy.
            ComputerFailedError, ReadyTimeout: waiting for the computer failed.
        """
        conn = self._connection
        policy = conn.reconnect
        refreshed = False
        if after == AUTH_REJECTED:
            await conn.refresh_token()
            refreshed = True
        waits = 0
        failures = 0
        last: Exception | None = None
        while True:
            try:
                opened = await self._open_any_mode()
            except _Refused as exc:
                if refreshed:
                    raise HandshakeError(
                        "the token was refused, also after re-reading it from the API",
                        socket=self.name,
                        status=401,
                    ) from exc
                await conn.refresh_token()
                refreshed = True
                continue
            except _NotRunning as exc:
                waits += 1
                if waits > 3:
                    raise ConnectionClosedError(
                        "the computer keeps answering 'not running'",
                        socket=self.name,
                        code=NOT_RUNNING,
                    ) from exc
                await self._wait_running(exc)
                continue
            except _Transient as exc:
                last = exc
                failures += 1
                if not policy.enabled or failures >= policy.max_attempts:
                    raise ConnectionClosedError(
                        f"could not open the socket after {failures} attempts ({exc})",
                        socket=self.name,
                        code=exc.code,
                    ) from exc
                await policy.sleep(policy.delay(failures - 1, conn.rng))
                continue
            except _Fatal as exc:
                raise HandshakeError(str(exc), socket=self.name) from exc
            self.dials += 1
            if last is not None or after is not None:
                log.debug("%s re-opened after %s", self.name, after or last)
            return opened

    async def _open_any_mode(self) -> tuple[ClientConnection, list[Frame]]:
        conn = self._connection
        modes = [conn.auth_mode] if conn.auth_mode else []
        modes += [m for m in (BEARER, QUERY) if m not in modes]
        refused: _Refused | None = None
        for mode in modes:
            try:
                opened = await self._open_once(mode, conn.token)
            except _Refused as exc:
                refused = exc
                continue
            conn.auth_mode = mode
            return opened
        assert refused is not None
        raise refused

    def _tls(self, url: str) -> dict[str, Any]:
        # websockets refuses an ssl argument for a ws:// URL: only wss:// gets one.
        ssl = self._connection.ssl
        return {"ssl": ssl} if ssl is not None and url.startswith("wss:") else {}

    async def _open_once(self, mode: str, token: str) -> tuple[ClientConnection, list[Frame]]:
        conn = self._connection
        params = dict(self.params)
        headers: dict[str, str] = {}
        if mode == QUERY:
            params["token"] = token
        else:
            headers["Authorization"] = f"Bearer {token}"
        url = self.url + ("?" + urlencode(params) if params else "")
        timeouts = conn.timeouts
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(timeouts.ws_open):
                ws = await connect(
                    url,
                    additional_headers=headers,
                    open_timeout=None,
                    ping_interval=None,  # keepalive is the protocol's JSON ping
                    close_timeout=timeouts.ws_close,
                    compression=None,
                    max_size=self._max_size,
                    proxy=None,
                    logger=_wire_log,
                    user_agent_header="orgo_async",
                    **self._tls(url),
                )
                if self._greeting is not None:
                    await self._greeting(ws)
                first = await ws.recv()
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise _Refused(f"HTTP {status}") from exc
            if status in (404, 400):
                raise _Fatal(f"the server refused the socket with HTTP {status}") from exc
            raise _Transient(f"HTTP {status}") from exc
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            if code == AUTH_REJECTED:
                raise _Refused(f"closed {code}") from exc
            if code == NOT_RUNNING:
                raise _NotRunning(f"closed {code}") from exc
            if code in TRANSIENT or code == 1000:
                raise _Transient(f"closed {code} while opening", code) from exc
            raise _Fatal(
                f"closed with code {code} while opening"
                + (f": {exc.rcvd.reason}" if exc.rcvd and exc.rcvd.reason else "")
            ) from exc
        except TimeoutError as exc:
            if ws is not None:
                ws.transport.abort()
            raise _Transient(f"no answer within {timeouts.ws_open} s", 1006) from exc
        except (OSError, InvalidHandshake) as exc:
            raise _Transient(f"{type(exc).__name__}", 1006) from exc
        except BaseException:
            if ws is not None:
                ws.transport.abort()  # cancelled mid-open: leave no socket behind
            raise
        return ws, [first]

    async def _wait_running(self, cause: Exception) -> None:
        conn = self._connection
        try:
            computer = await conn.client.computers.get(conn.computer)
            await conn.client.computers.wait_ready(computer, timeout=conn.ready_timeout)
        except (ComputerFailedError, ReadyTimeout) as exc:
            raise ConnectionClosedError(
                f"the computer is not running ({exc})", socket=self.name, code=NOT_RUNNING
            ) from exc
        except OrgoError as exc:
            raise ConnectionClosedError(
                f"could not check on the computer ({exc})", socket=self.name, code=NOT_RUNNING
            ) from cause


def close_code(exc: ConnectionClosed) -> int:
    """The close code the server sent, or 1006 when the connection just died."""
    return exc.rcvd.code if exc.rcvd is not None else 1006


def close_reason(exc: ConnectionClosed) -> str:
    return exc.rcvd.reason if exc.rcvd is not None else ""
