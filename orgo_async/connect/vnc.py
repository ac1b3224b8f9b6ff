"""The VNC connector: screen, pointer, keyboard and clipboard over ``/ws/websockify``.

``/ws/websockify`` is plain websockify: binary WebSocket frames carrying the
RFB byte stream, cut wherever the bridge's reads happened to end. This
connector feeds those chunks to the sans-I/O
:class:`~orgo_async.protocol.rfb.RFBClientProtocol` and keeps a
:class:`~orgo_async.protocol.rfb.Framebuffer` up to date from what it decodes::

    async with orgo.connect(computer).vnc() as vnc:
        png = await vnc.screenshot()
        await vnc.click(640, 360)
        await vnc.type("hello\\n")

Auth is two-layer, with the same token (the computer's ``vnc_password``) at
both: the edge checks it on the WebSocket upgrade (see
:class:`~orgo_async.connect._link.Link`), and the VNC server checks it again
with VNC Authentication (RFB security type 2; only its first 8 characters
count). Either refusal re-reads the token once from the API and re-dials.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Literal

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .._checks import check_id, optional
from ..errors import ConnectorError, HandshakeError, ProtocolError
from ..protocol.png import encode_png
from ..protocol.rfb import (
    BUTTON_LEFT,
    BUTTON_MIDDLE,
    BUTTON_RIGHT,
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
    ENCODING_HEXTILE,
    ENCODING_LAST_RECT,
    ENCODING_RAW,
    ENCODING_TIGHT,
    ENCODING_TIGHT_COMPRESS_0,
    ENCODING_ZRLE,
    WHEEL_DOWN,
    WHEEL_LEFT,
    WHEEL_RIGHT,
    WHEEL_UP,
    Bell,
    CursorShape,
    DesktopResized,
    Framebuffer,
    FramebufferUpdateEnd,
    FramebufferUpdateStart,
    RectCopy,
    RectFill,
    RectPixels,
    RFBClientProtocol,
    RFBEvent,
    RFBState,
    ServerCutText,
    ServerInit,
    key_combo,
    text_to_keys,
)
from ..protocol.rfb.client import DEFAULT_MAX_PIXELS
from ._connection import Connection
from ._link import AUTH_REJECTED, Frame, Link
from ._socket import Socket

__all__ = ["VNC_ENCODINGS", "VNC_LOCAL_ENCODINGS", "Vnc"]

log = logging.getLogger("orgo_async.connect")

Button = Literal["left", "right", "middle"]
Direction = Literal["up", "down", "left", "right"]

_BUTTONS: Final = {"left": BUTTON_LEFT, "middle": BUTTON_MIDDLE, "right": BUTTON_RIGHT}
_WHEEL: Final = {"up": WHEEL_UP, "down": WHEEL_DOWN, "left": WHEEL_LEFT, "right": WHEEL_RIGHT}
# ExtendedDesktopSize is left out: TigerVNC answers the first (non-incremental)
# request of a client that takes it with the desktop size alone, which costs
# the first frame a round trip; DesktopSize is enough to follow resizes.
VNC_ENCODINGS: Final[tuple[int, ...]] = (
    ENCODING_TIGHT,
    ENCODING_ZRLE,
    ENCODING_HEXTILE,
    ENCODING_COPYRECT,
    ENCODING_RAW,
    ENCODING_DESKTOP_SIZE,
    ENCODING_LAST_RECT,
    ENCODING_CURSOR,
)
"""The encodings :class:`Vnc` asks for by default, most preferred first.

Tight first, lossless (no JPEG quality level is listed), at the server's
default compression level: from TigerVNC a busy 1280x720 desktop takes about
a third more bytes than in ZRLE, and decodes four to six times faster, since
its work is zlib and slicing where ZRLE's tiles are decoded in Python. ZRLE
follows for servers without Tight.
"""

VNC_LOCAL_ENCODINGS: Final[tuple[int, ...]] = (
    ENCODING_TIGHT,
    ENCODING_COPYRECT,
    ENCODING_RAW,
    ENCODING_DESKTOP_SIZE,
    ENCODING_LAST_RECT,
    ENCODING_CURSOR,
    ENCODING_TIGHT_COMPRESS_0 + 1,
)
"""The encodings :class:`Vnc` asks for by default from a server on this machine.

Tight at compression level 1, and no other compressed encoding: a flat screen
is one fill rectangle where Raw moves 3.7 MB through websockify, and a busy
one is mostly palette rectangles and zlib data that decode in a few
milliseconds, where ZRLE's tiles cost tens in Python. Level 1 keeps the
server's zlib work small (TigerVNC's default, 2, cost a busy cold frame a few
milliseconds more); level 0 (stored) moves fourteen times the bytes for no
measurable gain. (Listing ZRLE after Tight would not change what TigerVNC
sends, but a server without Tight would then pick ZRLE over Raw, slower here
on a busy screen.)
"""

_MAX_STEPS: Final = 10_000
_MAX_SCROLL: Final = 1_000


class _PasswordRefused(Exception):
    """The VNC server refused the password (SecurityResult failure)."""


class _EarlyAuthRefused(Exception):
    """VNC Authentication was chosen with the version, but the server offers only None."""


class _RFBLink(Link):
    """A :class:`Link` whose sockets only count as open after the RFB handshake.

    The edge's token check happens in :meth:`Link.open`; the VNC server's own
    password check (the same token) happens here, with the same rule: one
    refusal re-reads the token from the API, a second is final.
    """

    def __init__(
        self,
        connection: Connection,
        name: str,
        *,
        handshake: Callable[[ClientConnection, list[Frame]], Awaitable[None]],
        greeting: Callable[[ClientConnection], Awaitable[None]],
        params: dict[str, str] | None = None,
    ) -> None:
        super().__init__(connection, name, params=params, greeting=greeting)
        self._handshake = handshake

    async def open(self, *, after: int | None = None) -> tuple[ClientConnection, list[Frame]]:
        """A socket whose RFB handshake is done (its frames are already consumed).

        Raises:
            HandshakeError: the token or the VNC password was refused twice (the
                second time after re-reading it), or the VNC server refused the
                connection (with its reason), or the handshake broke the protocol
                or did not finish within ``Timeouts.ws_open``.
            ConnectionClosedError: see :meth:`Link.open`; or the server hung up
                during the RFB handshake.
        """
        conn = self._connection
        refreshed = after == AUTH_REJECTED
        while True:
            before = conn.refreshes
            ws, frames = await super().open(after=after)
            after = None
            refreshed = refreshed or conn.refreshes != before  # the edge made us re-read it
            try:
                await self._handshake(ws, frames)
            except _EarlyAuthRefused:
                # The handshake turned early_auth off: the next dial chooses from the list.
                ws.transport.abort()
                log.debug("%s: no VNC authentication offered; dialling again", self.name)
                continue
            except _PasswordRefused as exc:
                ws.transport.abort()
                if refreshed:
                    raise HandshakeError(
                        f"the VNC server refused the password, also after re-reading it "
                        f"from the API ({exc})",
                        socket=self.name,
                    ) from None
                log.debug("%s: the VNC password was refused; re-reading it", self.name)
                await conn.refresh_token()
                refreshed = True
                continue
            except BaseException:
                ws.transport.abort()  # failed or cancelled mid-handshake: leave nothing open
                raise
            return ws, []


class Vnc(Socket[RFBClientProtocol]):  # type: ignore[type-var]  # RFB frames are bytes, not JSON
    """The computer's screen over VNC: screenshots, pointer, keyboard and clipboard.

    Get one with :meth:`Connection.vnc() <orgo_async.connect.Connection.vnc>`
    and use it as an async context manager. :meth:`open` returns once the RFB
    handshake is over (the VNC password checked, the desktop size known); the
    first full frame follows, and :meth:`screenshot` waits for it.

    The framebuffer is kept current: after the first (full) request, one
    incremental update request is always outstanding, renewed as each update
    ends, so a screenshot costs no round
    trip once the first frame is in. :attr:`version` counts the updates that
    changed something, and :meth:`wait_for_change` waits for the next one.

    After a dropped socket (1001, 1006...) the connector re-dials, redoes the
    handshake, asks for a full frame again, and screenshots wait for it.
    Input methods wait out a reconnect and then send.

    Keepalive is a WebSocket ping (RFB has no ping of its own), every
    ``keepalive`` seconds of the :class:`~orgo_async.connect.Connection`.

    Args:
        connection: The computer's connection.
        encodings: The RFB encodings to ask for, most preferred first. By
            default, chosen on each connection: :data:`VNC_LOCAL_ENCODINGS`
            (Tight at compression level 1, then Raw) when the socket's peer is
            a loopback address (a local emulator or websockify),
            :data:`VNC_ENCODINGS` (Tight, then ZRLE) otherwise.
            :attr:`encodings` says which list the open connection uses.
        max_pixels: The largest desktop accepted, in pixels (width times
            height; default 4096x4096, twice a 4K screen). The framebuffer
            takes 4 bytes a pixel: a server announcing more is refused with a
            :class:`~orgo_async.errors.HandshakeError` (or, on a later resize,
            a :class:`~orgo_async.errors.ConnectorProtocolError`) naming the
            size and the cap.

    Raises:
        ValueError: an encoding that is not a signed 32-bit int, or
            ``max_pixels`` not an int >= 1.
    """

    name = "websockify"

    def __init__(
        self,
        connection: Connection,
        *,
        encodings: Sequence[int] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        screen: str | None = None,
    ) -> None:
        # Checks them now, not at the first dial.
        RFBClientProtocol(encodings=encodings or (), max_pixels=max_pixels)
        optional(check_id)("screen", screen)
        super().__init__(connection)
        self._link = _RFBLink(
            connection,
            self.name,
            handshake=self._handshake,
            greeting=self._greet,
            params=None if screen is None else {"screen": screen},
        )
        self.screen = screen
        """The screen shown (an added screen's id, ``?screen=``); ``None``: the default one."""
        self._encodings = None if encodings is None else tuple(encodings)
        self.encodings: tuple[int, ...] = self._encodings or ()
        """The encodings asked for on the last connection, most preferred first."""
        self._max_pixels = max_pixels
        self._name = ""
        self._fb = Framebuffer()
        self._last_png: tuple[tuple[object, ...], bytes] | None = None  # screenshot()'s cache
        self._readers = 0  # encodes reading the framebuffer from worker threads
        self._in_update = False
        self._changed = False
        self._handshaken: tuple[RFBClientProtocol, list[RFBEvent]] | None = None
        # Choose VNC authentication with the version, a round trip sooner, until a
        # server that offers only None shows that this one does not take it.
        self._early_auth = True
        self._signal = asyncio.Event()  # replaced on each notify: waiters hold the old one
        self._wake = asyncio.Event()  # the writer has update requests to flush
        self._pointer: tuple[int, int] | None = None
        self._pong_waiter: Awaitable[float] | None = None
        self.version = 0
        """Counts the framebuffer updates that changed pixels or the size."""
        self.bells = 0
        """How many times the server rang the bell."""
        self.clipboard: str | None = None
        """The last clipboard text the server sent (ServerCutText), if any."""
        self.clipboard_version = 0
        """Counts the clipboard texts the server sent."""
        self.latency: float | None = None
        """The round trip of the last keepalive ping, in seconds, once one was answered."""
        self.cursor: CursorShape | None = None
        """The cursor's shape, as the server last described it (not drawn in screenshots)."""

    # -- the desktop ---------------------------------------------------------------------

    @property
    def width(self) -> int:
        """The framebuffer's width in pixels (0 before :meth:`open`)."""
        return self._fb.width

    @property
    def height(self) -> int:
        """The framebuffer's height in pixels (0 before :meth:`open`)."""
        return self._fb.height

    @property
    def desktop_name(self) -> str:
        """The desktop's name from ServerInit (``name`` is the socket's, ``websockify``)."""
        return self._name

    async def open(self) -> None:
        """Dial, authenticate at the edge and at the VNC server, and do the RFB handshake.

        Cancel-safe: cancelled at any point, it leaves no socket and no task.

        Raises:
            HandshakeError: the token or VNC password was refused before and
                after re-reading it (the message carries the server's reason),
                the server refused the connection (blacklisted, no security
                type in common...), or the handshake did not finish within
                ``Timeouts.ws_open``.
            ConnectionClosedError: it could not be opened.
            ImportError: the optional ``cryptography`` dependency (the ``vnc``
                extra) is missing.
        """
        RFBClientProtocol(password=b"")  # the install hint now, before any dial
        await super().open()
        if self._keepalive is None:  # no pings, but the writer still runs
            self._keepalive = asyncio.get_running_loop().create_task(
                self._ping(), name=f"orgo-{self.name}-writer"
            )

    async def screenshot(
        self,
        *,
        compress_level: int = 1,
        filter: Literal["none", "sub"] = "none",
        timeout: float | None = 30.0,
    ) -> bytes:
        """The screen as PNG bytes (8-bit RGB), from the framebuffer.

        Waits for the first full frame after (re)connecting, and for the end of
        an update in progress, so the image is one consistent frame. No round
        trip is needed once the first frame is in. The cursor is not drawn.
        The PNG is encoded in worker threads (on up to four cores), straight
        from the framebuffer: updates that arrive meanwhile wait until the
        encode is over, even if this call is cancelled. ``compress_level``
        (zlib's, 0-9) and ``filter`` are
        :func:`~orgo_async.protocol.png.encode_png`'s. The defaults favour
        speed: on two cores a 1280x720 frame at level 1 without a filter
        encodes in under 1 ms (a flat screen, whose equal rows are deflated
        once) to 3-5 ms (a busy desktop), where level 6 with "sub" takes about
        16 ms for a PNG about half the size. The last PNG is kept: while the
        screen has not changed (:attr:`version` is the same), asking again
        with the same ``compress_level`` and ``filter`` returns it without
        encoding anything.

        Raises:
            ValueError: an unknown ``filter`` or a ``compress_level`` outside 0-9.
            TimeoutError: no complete frame within ``timeout`` seconds.
            ConnectionClosedError: the socket is closed for good.
        """
        if filter not in ("none", "sub"):
            raise ValueError(f"filter must be 'none' or 'sub'; got {filter!r}")
        if isinstance(compress_level, bool) or compress_level not in range(10):
            raise ValueError(f"compress_level must be an int from 0 to 9; got {compress_level!r}")
        await self._wait_for(self._frame_ready, timeout, "complete frame")
        fb = self._fb
        # Every painted update bumps version before a frame is ready again (a
        # reconnect's full frame too), so an equal key means equal pixels.
        key = (self.version, fb.width, fb.height, compress_level, filter)
        cached = self._last_png
        if cached is not None and cached[0] == key:
            return cached[1]
        # The worker threads read the mirror itself, not a copy: the reader holds
        # the frames that would change it until the encode is over (a few ms at
        # the defaults), also when this call is cancelled meanwhile.
        encode = asyncio.get_running_loop().run_in_executor(
            None,
            functools.partial(
                encode_png,
                fb.width,
                fb.height,
                fb.pixels,
                compress_level=compress_level,
                filter=filter,
            ),
        )
        self._hold_frames(encode)
        png = await asyncio.shield(encode)
        self._last_png = (key, png)
        return png

    async def pixels(self, *, timeout: float | None = 30.0) -> tuple[int, int, bytes]:
        """``(width, height, rgb)``: a copy of one consistent frame, 3 bytes a pixel, row by row.

        Raises:
            TimeoutError: no complete frame within ``timeout`` seconds.
            ConnectionClosedError: the socket is closed for good.
        """
        await self._wait_for(self._frame_ready, timeout, "complete frame")
        fb = self._fb
        return fb.width, fb.height, bytes(fb.pixels)

    async def wait_for_change(
        self, timeout: float | None = None, *, since_version: int | None = None
    ) -> int:
        """Wait until the screen changes after :attr:`version` ``since_version``.

        ``since_version`` defaults to the version now. Returns the new version.

        Raises:
            TimeoutError: nothing changed within ``timeout`` seconds.
            ConnectionClosedError: the socket is closed for good.
        """
        since = self.version if since_version is None else since_version
        await self._wait_for(lambda: self.version > since, timeout, "screen change")
        return self.version

    async def wait_for_clipboard(
        self, timeout: float | None = None, *, since_version: int | None = None
    ) -> str:
        """Wait for clipboard text from the server, and return it.

        Waits for a text received after :attr:`clipboard_version`
        ``since_version`` (default: the count now, so only a new text counts).

        Raises:
            TimeoutError: none arrived within ``timeout`` seconds.
            ConnectionClosedError: the socket is closed for good.
        """
        since = self.clipboard_version if since_version is None else since_version
        await self._wait_for(lambda: self.clipboard_version > since, timeout, "clipboard text")
        assert self.clipboard is not None
        return self.clipboard

    # -- input ---------------------------------------------------------------------------

    async def move(self, x: int, y: int) -> None:
        """Move the pointer to ``(x, y)``, no button held.

        Raises:
            ValueError: a coordinate outside the screen.
            ConnectionClosedError: the socket is closed for good.
        """
        self._check_point(x, y)
        await self._send_rfb(lambda core: core.send_pointer(x, y, 0))
        self._pointer = (x, y)

    async def click(self, x: int, y: int, *, button: Button = "left", double: bool = False) -> None:
        """Click ``button`` at ``(x, y)`` (twice with ``double=True``).

        Raises:
            ValueError: a coordinate outside the screen or an unknown button.
            ConnectionClosedError: the socket is closed for good.
        """
        self._check_point(x, y)
        mask = self._button_mask(button)

        def build(core: RFBClientProtocol) -> None:
            core.send_pointer(x, y, 0)
            for _ in range(2 if double else 1):
                core.send_pointer(x, y, mask)
                core.send_pointer(x, y, 0)

        await self._send_rfb(build)
        self._pointer = (x, y)

    async def drag(
        self, x0: int, y0: int, x1: int, y1: int, *, button: Button = "left", steps: int = 10
    ) -> None:
        """Drag: press ``button`` at ``(x0, y0)``, move in ``steps`` steps, release at ``(x1, y1)``.

        Raises:
            ValueError: a coordinate outside the screen, an unknown button, or
                ``steps`` not an int from 1 to 10000.
            ConnectionClosedError: the socket is closed for good.
        """
        self._check_point(x0, y0, "x0", "y0")
        self._check_point(x1, y1, "x1", "y1")
        mask = self._button_mask(button)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= _MAX_STEPS:
            raise ValueError(f"steps must be an int from 1 to {_MAX_STEPS}; got {steps!r}")

        def build(core: RFBClientProtocol) -> None:
            core.send_pointer(x0, y0, 0)
            core.send_pointer(x0, y0, mask)
            for i in range(1, steps + 1):
                core.send_pointer(
                    x0 + round((x1 - x0) * i / steps), y0 + round((y1 - y0) * i / steps), mask
                )
            core.send_pointer(x1, y1, 0)

        await self._send_rfb(build)
        self._pointer = (x1, y1)

    async def scroll(
        self,
        direction: Direction = "up",
        amount: int = 1,
        *,
        x: int | None = None,
        y: int | None = None,
    ) -> None:
        """Turn the wheel ``amount`` clicks (X buttons 4/5, or 6/7 for left/right).

        At ``(x, y)`` if given (both or neither), else where the pointer was
        last put, else the centre of the screen.

        Raises:
            ValueError: an unknown direction, ``amount`` not an int from 1 to
                1000, only one of ``x``/``y``, or a point outside the screen.
            ConnectionClosedError: the socket is closed for good.
        """
        bit = _WHEEL.get(direction) if isinstance(direction, str) else None
        if bit is None:
            raise ValueError(
                f"direction must be one of {', '.join(map(repr, _WHEEL))}; got {direction!r}"
            )
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int)
            or not 1 <= amount <= _MAX_SCROLL
        ):
            raise ValueError(f"amount must be an int from 1 to {_MAX_SCROLL}; got {amount!r}")
        if (x is None) != (y is None):
            raise ValueError("give both x and y, or neither")
        if x is not None and y is not None:
            self._check_point(x, y)
            px, py = x, y
        else:
            self._require_size()
            px, py = self._pointer or (self.width // 2, self.height // 2)

        def build(core: RFBClientProtocol) -> None:
            core.send_pointer(px, py, 0)
            for _ in range(amount):
                core.send_pointer(px, py, bit)
                core.send_pointer(px, py, 0)

        await self._send_rfb(build)
        self._pointer = (px, py)

    async def type(self, text: str) -> None:
        """Type ``text``: each character's key down and up (``\\n`` is Return, ``\\t`` Tab).

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: a control character with no key.
            ConnectionClosedError: the socket is closed for good.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        keys = text_to_keys(text)
        if keys:
            await self._send_rfb(lambda core: core.send_keys(keys))

    async def key(self, combo: str) -> None:
        """Press a key or a combo such as ``"ctrl+c"``, ``"Return"``, ``"ctrl+shift+t"``.

        Modifiers go down in order, the key goes down and up, the modifiers
        come up in reverse. Names are X11 keysym names or aliases (``ctrl``,
        ``alt``, ``super``, ``enter``, ``esc``...), in any case.

        Raises:
            ValueError: an empty combo or an unknown key name.
            ConnectionClosedError: the socket is closed for good.
        """
        if not isinstance(combo, str):
            raise TypeError(f"combo must be a str; got {type(combo).__name__}")
        keys = key_combo(combo)
        await self._send_rfb(lambda core: core.send_keys(keys))

    async def set_clipboard(self, text: str) -> None:
        """Put ``text`` on the computer's clipboard (ClientCutText).

        Raises:
            ValueError: ``text`` has characters outside Latin-1, which RFB cannot carry.
            ConnectionClosedError: the socket is closed for good.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        try:
            text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"text must be Latin-1 (RFB's clipboard can't carry {text[exc.start : exc.end]!r})"
            ) from None
        await self._send_rfb(lambda core: core.send_cut_text(text))

    async def send_pointer(self, events: Sequence[tuple[int, int, int]]) -> None:
        """Send raw pointer events ``(x, y, buttons)`` in order, as one frame.

        ``buttons`` is the RFB mask of the buttons held (``BUTTON_*`` and
        ``WHEEL_*`` bits): a press is a mask with the bit, a release one
        without it. For holding a button across calls (mouse down, move, up).

        Raises:
            ValueError: a point outside the screen or a mask that is not a u8.
            ConnectionClosedError: the socket is closed for good.
        """
        checked = list(events)
        for x, y, buttons in checked:
            self._check_point(x, y)
            if isinstance(buttons, bool) or not isinstance(buttons, int) or buttons >> 8:
                raise ValueError(f"buttons must be an int from 0 to 255; got {buttons!r}")

        def build(core: RFBClientProtocol) -> None:
            for x, y, buttons in checked:
                core.send_pointer(x, y, buttons)

        if checked:
            await self._send_rfb(build)
            self._pointer = checked[-1][:2]

    async def send_keys(self, keys: Sequence[tuple[int, bool]]) -> None:
        """Send raw key events ``(keysym, down)`` in order, as one frame.

        For holding keys across calls; :func:`~orgo_async.protocol.rfb.key_combo`
        and :func:`~orgo_async.protocol.rfb.keysym` make them from names.

        Raises:
            ValueError: a keysym that is not a u32.
            ConnectionClosedError: the socket is closed for good.
        """
        checked = list(keys)
        for value, _ in checked:
            if isinstance(value, bool) or not isinstance(value, int) or value >> 32:
                raise ValueError(f"a keysym is an int from 0 to 0xFFFFFFFF; got {value!r}")
        if checked:
            await self._send_rfb(lambda core: core.send_keys(checked))

    # -- checks --------------------------------------------------------------------------

    def _require_size(self) -> None:
        if self._reader is None:
            raise RuntimeError("open() the VNC socket first: the screen size is not known yet")

    def _check_point(self, x: int, y: int, x_name: str = "x", y_name: str = "y") -> None:
        self._require_size()
        for label, value, size in ((x_name, x, self.width), (y_name, y, self.height)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
                raise ValueError(
                    f"{label} must be an int from 0 to {size - 1} on this "
                    f"{self.width}x{self.height} screen; got {value!r}"
                )

    @staticmethod
    def _button_mask(button: str) -> int:
        mask = _BUTTONS.get(button) if isinstance(button, str) else None
        if mask is None:
            raise ValueError(
                f"button must be one of {', '.join(map(repr, _BUTTONS))}; got {button!r}"
            )
        return mask

    # -- sending -------------------------------------------------------------------------

    async def _send_rfb(self, build: Callable[[RFBClientProtocol], None]) -> None:
        """Buffer messages with ``build(core)`` and send them as one frame.

        Waits out a reconnect; a send cut by one is redone on the new socket.

        Raises:
            ConnectionClosedError: the socket is closed for good.
        """
        self._require_size()
        await self._send(build)  # the core hands over all it buffered as one chunk

    async def _ping(self) -> None:
        """The writer: flushes the update requests the reader queued, and pings.

        The reader cannot send (it is synchronous per frame), so when an update
        ends it buffers the next request and wakes this task. Keepalive is a
        WebSocket ping every ``keepalive`` seconds; no pong within
        ``Timeouts.ping`` drops the socket, and the reader re-dials.
        """
        loop = asyncio.get_running_loop()
        interval = self._conn.keepalive
        next_ping = None if interval is None else loop.time() + interval
        pong_deadline: float | None = None
        while True:
            deadlines = [d for d in (next_ping, pong_deadline) if d is not None]
            delay = max(0.0, min(deadlines) - loop.time()) if deadlines else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._send_rfb(lambda core: None)
            except ConnectorError:
                return
            now = loop.time()
            if pong_deadline is not None:
                pong = self._pong_waiter
                if pong is None or (asyncio.isfuture(pong) and pong.done()):
                    pong_deadline = None
                elif now >= pong_deadline:
                    log.debug(
                        "%s: no pong within %s s; dropping the socket",
                        self.name,
                        self._conn.timeouts.ping,
                    )
                    pong_deadline = None
                    ws = self._ws
                    if ws is not None:
                        ws.transport.abort()  # the reader sees 1006 and re-dials
            if next_ping is not None and interval is not None and now >= next_ping:
                next_ping = now + interval
                # One ping at a time: a new one must not move the deadline of one
                # still unanswered (with keepalive < Timeouts.ping, it never came).
                if pong_deadline is None:
                    pong_deadline = await self._send_ping(now)

    async def _send_ping(self, now: float) -> float | None:
        ws = self._ws
        if ws is None or not self._connected.is_set():
            return None
        try:
            pong = await ws.ping()
        except ConnectionClosed:
            return None  # the reader handles it
        if asyncio.isfuture(pong):
            pong.add_done_callback(self._ponged)
        self._pong_waiter = pong
        timeout = self._conn.timeouts.ping
        return None if timeout is None else now + timeout

    def _ponged(self, pong: asyncio.Future[float]) -> None:
        # A closed socket fails the waiter; the reader reports that, so it is only read here.
        if not pong.cancelled() and pong.exception() is None:
            self.latency = pong.result()

    # -- the handshake -------------------------------------------------------------------

    async def _greet(self, ws: ClientConnection) -> None:
        """The RFB server speaks first (ProtocolVersion): nothing to send."""

    async def _handshake(self, ws: ClientConnection, frames: list[Frame]) -> None:
        """Run the RFB handshake on a freshly dialled socket, up to the first update request.

        Raises:
            _PasswordRefused: the VNC server refused the password.
            _EarlyAuthRefused: the server offers None but not VNC authentication,
                which was chosen early, or hung up before its list after that
                choice; it will not be made early again on this connection.
            HandshakeError: any other refusal or protocol violation, or no end
                within ``Timeouts.ws_open``.
            ConnectionClosedError: the server hung up meanwhile.
        """
        timeouts = self._conn.timeouts
        encodings = self._encodings
        if encodings is None:
            encodings = VNC_LOCAL_ENCODINGS if _is_loopback(ws) else VNC_ENCODINGS
        core = RFBClientProtocol(
            password=self._conn.token,
            early_auth=self._early_auth,
            encodings=encodings,
            max_pixels=self._max_pixels,
        )
        events: list[RFBEvent] = []
        pending = list(frames)
        try:
            async with asyncio.timeout(timeouts.ws_open):
                while True:
                    for frame in pending:
                        core.receive_data(_frame_bytes(frame))
                    pending.clear()
                    events.extend(core.events_received())
                    connected = core.state is RFBState.CONNECTED
                    if connected:
                        core.send_update_request(incremental=False)
                    out = core.data_to_send()
                    if out:
                        await ws.send(b"".join(out))
                    if connected:
                        break
                    pending.append(await ws.recv())
        except ProtocolError as exc:
            if core.auth_failed:
                raise _PasswordRefused(str(exc)) from exc
            if core.early_auth_refused:
                self._early_auth = False
                raise _EarlyAuthRefused(str(exc)) from exc
            raise HandshakeError(f"VNC handshake failed: {exc}", socket=self.name) from exc
        except ConnectionClosed as exc:
            if core.chose_early and core.state is RFBState.SECURITY:
                # Hung up on the early choice (or before its list, for another reason):
                # the next dial chooses from the list.
                self._early_auth = False
                raise _EarlyAuthRefused(f"closed {exc}") from exc
            message = "the server closed the socket during the VNC handshake"
            raise self._closed_by(exc, message) from exc
        except TimeoutError as exc:
            raise HandshakeError(
                f"the VNC handshake did not finish within {timeouts.ws_open} s "
                f"(Timeouts.ws_open; it was at {core.state.value})",
                socket=self.name,
            ) from exc
        self._handshaken = (core, events)
        self.encodings = encodings

    def _new_core(self) -> RFBClientProtocol:
        handshaken = self._handshaken
        if handshaken is None:
            raise RuntimeError("the RFB handshake has not run")  # pragma: no cover
        return handshaken[0]

    def _attach(self, ws: ClientConnection, frames: list[Frame]) -> None:
        handshaken = self._handshaken
        assert handshaken is not None
        super()._attach(ws, frames)  # installs the handshaken core through _new_core()
        self._handshaken = None
        self._in_update = False
        for event in handshaken[1]:
            self._event(event)
        self._notify()

    async def _reopened(self) -> None:
        log.debug("%s: re-opened; waiting for a full frame again", self.name)

    # -- the framebuffer -----------------------------------------------------------------

    def _hold_frames(self, reading: asyncio.Future[bytes]) -> None:
        """Keep the reader from changing the framebuffer until ``reading`` is done."""
        self._readers += 1
        if self._paused is None:
            self._paused = asyncio.get_running_loop().create_future()
        reading.add_done_callback(self._release_frames)

    def _release_frames(self, reading: asyncio.Future[bytes]) -> None:
        if not reading.cancelled():
            reading.exception()  # retrieved: screenshot() raises it, or nobody waits any more
        self._readers -= 1
        paused = self._paused
        if not self._readers and paused is not None:
            self._paused = None
            paused.set_result(None)

    def _receive(self, core: RFBClientProtocol, frame: Frame) -> None:
        core.receive_data(_frame_bytes(frame))

    def _event(self, event: object) -> None:
        fb = self._fb
        if isinstance(event, RectPixels | RectFill | RectCopy | DesktopResized):
            if fb.apply(event):
                self._changed = True
        elif isinstance(event, FramebufferUpdateStart):
            self._in_update = True
        elif isinstance(event, FramebufferUpdateEnd):
            fb.apply(event)
            self._update_ended()
        elif isinstance(event, ServerInit):
            self._name = event.name
            fb.apply(event)  # a new frame: screenshots wait until it is complete
        elif isinstance(event, CursorShape):
            self.cursor = event
        elif isinstance(event, Bell):
            self.bells += 1
            self._notify()
        elif isinstance(event, ServerCutText):
            self.clipboard = event.text
            self.clipboard_version += 1
            self._notify()

    def _update_ended(self) -> None:
        self._in_update = False
        if self._changed:
            self._changed = False
            self.version += 1
        core = self._core
        if core is not None and core.state is RFBState.CONNECTED:
            # The next request, incremental as noVNC's: servers (TigerVNC) may answer
            # the first, non-incremental one with the desktop size alone and send the
            # pixels on the next request.
            core.send_update_request(incremental=True)
            self._wake.set()
        self._notify()

    # -- waiting -------------------------------------------------------------------------

    def _frame_ready(self) -> bool:
        return self._connected.is_set() and self._fb.complete and not self._in_update

    def _notify(self) -> None:
        self._signal.set()
        self._signal = asyncio.Event()

    async def _wait_for(
        self, predicate: Callable[[], bool], timeout: float | None, what: str
    ) -> None:
        self._require_size()
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    if self.closed:
                        raise self._closed_error()
                    await self._signal.wait()
        except TimeoutError:
            raise TimeoutError(f"{self.name}: no {what} within {timeout} s") from None

    def _ended_hook(self, error: BaseException | None) -> None:
        self._notify()


def _is_loopback(ws: ClientConnection) -> bool:
    """Whether the socket's peer is on this machine (127.0.0.0/8, ::1)."""
    try:
        host = ws.remote_address[0]
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except (TypeError, IndexError, ValueError, AttributeError):  # a unix socket, or unknown
        return False


def _frame_bytes(frame: Frame) -> bytes:
    if isinstance(frame, str):
        raise ProtocolError("a text frame on the VNC socket (websockify sends binary frames)")
    return frame
