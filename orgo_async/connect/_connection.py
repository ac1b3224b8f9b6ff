"""The connection object of one computer: where its sockets come from."""

from __future__ import annotations

import asyncio
import random
import ssl as ssl_module
from typing import TYPE_CHECKING

from .._checks import check_seconds, optional
from .._config import Timeouts
from ..models import Computer
from ._link import ReconnectPolicy

if TYPE_CHECKING:
    from .._client import Orgo
    from .audio import AudioStream
    from .events import EventStream
    from .terminal import Terminal
    from .vnc import Vnc


class Connection:
    """Opens a computer's WebSockets, sharing its token and what was learned about auth.

    Get one with :meth:`Orgo.connect <orgo_async.Orgo.connect>`. Each socket is
    an async context manager::

        conn = orgo.connect(computer)
        async with conn.terminal() as term:
            result = await term.run("uname -a")

    The token is the computer's ``vnc_password``; when the server refuses it
    (it rotates on every restart) it is re-read from the API once and the
    socket re-dialled, without the caller noticing.

    Args:
        reconnect: How dropped sockets are re-dialled (``ReconnectPolicy.off()``
            to never reconnect).
        keepalive: Seconds between JSON pings; ``None`` sends none.
        ready_timeout: How long a socket waits for the computer to be running
            again when the server says it is not (close 4404).
    """

    def __init__(
        self,
        client: Orgo,
        computer: Computer,
        *,
        reconnect: ReconnectPolicy | None = None,
        keepalive: float | None = 20.0,
        ready_timeout: float = 60.0,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        optional(check_seconds)("keepalive", keepalive, inclusive=False)
        check_seconds("ready_timeout", ready_timeout, inclusive=False)
        if not computer.connection_url:
            raise ValueError(f"computer {computer.id} has no connection_url to open sockets on")
        self.client = client
        self.computer = computer
        self.reconnect = reconnect or ReconnectPolicy()
        self.keepalive = keepalive
        self.ready_timeout = ready_timeout
        self.ssl = ssl
        """The TLS context for ``wss://`` sockets (``None``: the system's trust store)."""
        self.auth_mode: str | None = None
        self.rng = random.Random()
        self._token = computer.vnc_password
        self._refresh_lock = asyncio.Lock()
        self.refreshes = 0
        """How many times the token was re-read."""

    def __repr__(self) -> str:
        return f"<Connection to computer {self.computer.id}>"

    @property
    def timeouts(self) -> Timeouts:
        return self.client.timeouts


    @property
    def token(self) -> str:
        """The current token (never shown in a repr or a log)."""
        if not self._token:
            raise ValueError(
                f"computer {self.computer.id} carries no vnc_password; "
                f"get it with orgo.computers.get() first"
            )
        return self._token

    async def refresh_token(self) -> None:
        """Re-read the token from the API (shared by all of this computer's sockets)."""
        seen = self._token
        async with self._refresh_lock:
            if self._token != seen:
                return  # another socket refreshed it while we waited
            creds = await self.client.computers.vnc_password(self.computer)
            self._token = creds.password
            self.refreshes += 1

    # -- the sockets ---------------------------------------------------------------

    def terminal(self, *, cols: int = 80, rows: int = 24) -> Terminal:
        """The computer's terminal (a PTY shell), as an async context manager."""
        from .terminal import Terminal

        return Terminal(self, cols=cols, rows=rows)

    def audio(
        self, *, sample_rate: int = 24000, channels: int = 1, max_buffered: int = 500
    ) -> AudioStream:
        """The computer's audio (PCM s16le), as an async context manager and iterator.

        ``max_buffered`` chunks wait for a slow consumer; beyond that the oldest
        are dropped (and counted in ``dropped``).
        """
        from .audio import AudioStream

        return AudioStream(
            self, sample_rate=sample_rate, channels=channels, max_buffered=max_buffered
        )

    def events(self, *event_types: str, max_buffered: int = 1024) -> EventStream:
        """The computer's desktop events, subscribed to ``event_types`` once open."""
        from .events import EventStream

        return EventStream(self, event_types, max_buffered=max_buffered)

    def vnc(self, *, max_pixels: int | None = None, screen: str | None = None) -> Vnc:
        """The computer's screen over VNC (``/ws/websockify``), as an async context manager.

        Screenshots, pointer, keyboard and clipboard; the token doubles as the
        VNC password. ``max_pixels`` caps the desktop's size, width times
        height (None: :class:`~orgo_async.connect.Vnc`'s default, 4096x4096).
        ``screen`` shows one of the computer's added screens (an id from
        ``orgo.screens.list``; ``?screen=`` on the socket) instead of the
        default one. See :class:`~orgo_async.connect.Vnc`.
        """
        from .vnc import Vnc

        if max_pixels is None:
            return Vnc(self, screen=screen)
        return Vnc(self, max_pixels=max_pixels, screen=screen)
