"""The client end of RFB 3.8: handshake, input messages, and decoding what the server sends.

:class:`RFBClientProtocol` speaks to 3.3, 3.7 and 3.8 servers, authenticates
with security type None (1) or VNC Authentication (2), and decodes Raw,
CopyRect, Hextile, ZRLE and Tight (lossless) rectangles plus the DesktopSize,
ExtendedDesktopSize, LastRect and Cursor pseudo-encodings into RGB events::

    core = RFBClientProtocol(password="secret")
    core.receive_data(chunk)               # any split of the byte stream
    for event in core.events_received():   # ServerInit, Ready, RectPixels...
        ...
    core.send_update_request(incremental=False)
    for data in core.data_to_send():       # handshake answers included
        transport.write(data)

The handshake is pipelined, two round trips fewer than RFC 6143's turns:

* with a password, on a 3.7 or 3.8 server, the client chooses VNC
  Authentication with its version, before the server's list of security
  types arrives (``early_auth``); a server that does not offer it but offers
  None is then a :class:`ProtocolError` with :attr:`~RFBClientProtocol.early_auth_refused`
  set, and a new connection with ``early_auth=False`` chooses None;
* ClientInit, SetPixelFormat and SetEncodings go out with the last security
  message (the VNC password's answer, or the security type), before
  SecurityResult and ServerInit arrive.

Only the first FramebufferUpdateRequest waits for ServerInit's size.

Large rectangles arrive as several :class:`~.events.RectPixels` (bands of
rows), so memory stays bounded whatever the server sends. The desktop size
is bounded too (``max_pixels``, 4096x4096 by default): a viewer keeps 4 bytes
a pixel, and an 8192x8192 desktop would cost it about 270 MB.
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import ClassVar, Final

from ...errors import ProtocolError
from .._base import Role
from ._wire import (
    RECT,
    SERVER_INIT,
    U16,
    U32,
    ClientMessage,
    ServerMessage,
    check_s32,
    check_size,
    check_u16,
    decode_text,
    pack_screens,
    read_screens,
)
from .auth import vnc_auth_response
from .base import Handler, RFBProtocol, RFBState
from .constants import (
    DEFAULT_ENCODINGS,
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_HEXTILE,
    ENCODING_LAST_RECT,
    ENCODING_RAW,
    ENCODING_TIGHT,
    ENCODING_ZRLE,
    SECURITY_NONE,
    SECURITY_VNC_AUTH,
)
from .encodings import Rect, ZRLEDecoder, read_copy_rect, read_cursor, read_hextile, read_raw
from .events import (
    Bell,
    ColourMap,
    DesktopResized,
    FramebufferUpdateEnd,
    FramebufferUpdateStart,
    Ready,
    Screen,
    ServerCutText,
    ServerInit,
)
from .pixels import DEFAULT_PIXEL_FORMAT, PixelCodec, PixelFormat
from .tight import TightDecoder

__all__ = ["DEFAULT_MAX_PIXELS", "RFBClientProtocol"]

DEFAULT_MAX_PIXELS: Final = 4096 * 4096
"""The largest desktop a client accepts by default, in pixels: 4K (3840x2160) fits twice."""

# Names for the security types a server may offer, for error messages.
_SECURITY_NAMES: Final[Mapping[int, str]] = {
    1: "None",
    2: "VNC Authentication",
    5: "RA2",
    6: "RA2ne",
    16: "Tight",
    17: "Ultra",
    18: "TLS",
    19: "VeNCrypt",
    20: "SASL",
    21: "MD5 hash",
    22: "xvp",
    30: "Apple Remote Desktop",
    113: "MSLogonII",
    129: "Unix Logon",
}

# The encodings whose rectangles carry pixels, and so must lie inside the framebuffer.
_PIXEL_ENCODINGS: Final = (
    ENCODING_RAW,
    ENCODING_COPYRECT,
    ENCODING_HEXTILE,
    ENCODING_ZRLE,
    ENCODING_TIGHT,
)


class RFBClientProtocol(RFBProtocol):
    """The RFB protocol for one connection, as the client (the viewer).

    Args:
        password: The VNC password: VNC Authentication is used when the server
            offers it and a password is given, else None. Needs the optional
            ``cryptography`` dependency.
        early_auth: With a password and a 3.7 or 3.8 server, choose VNC
            Authentication with the version instead of after the server's
            list, a round trip sooner (TigerVNC and x11vnc take it, also
            behind websockify). A server that then turns out to offer None but not VNC
            Authentication fails the handshake (see :attr:`early_auth_refused`;
            a server may also just hang up, before its list: :attr:`chose_early`
            and the :attr:`state` still ``SECURITY`` tell).
        shared: Ask to share the desktop with other clients.
        pixel_format: The format to ask for after ServerInit (``None``: keep
            the server's, which must be true colour).
        encodings: The encodings to announce, most preferred first (empty:
            send no SetEncodings, so Raw only).
        max_width, max_height: The largest framebuffer side accepted.
        max_pixels: The largest framebuffer area accepted (width times
            height; default :data:`DEFAULT_MAX_PIXELS`). A bigger desktop, at
            ServerInit or on a resize, is a :class:`ProtocolError`.
        max_name: The longest desktop name or failure reason accepted.
        max_cut_text: The longest clipboard text accepted.
        max_cursor: The largest cursor side accepted.

    Raises:
        ValueError: a pixel format this core cannot decode, an encoding that
            is not a signed 32-bit int, or ``max_pixels`` not an int >= 1.
        ImportError: a password without the ``cryptography`` dependency.
    """

    role: ClassVar[Role] = Role.CLIENT
    _CUT_TEXT: ClassVar[int] = ClientMessage.CUT_TEXT

    def __init__(
        self,
        *,
        password: str | bytes | None = None,
        early_auth: bool = True,
        shared: bool = True,
        pixel_format: PixelFormat | None = DEFAULT_PIXEL_FORMAT,
        encodings: Sequence[int] = DEFAULT_ENCODINGS,
        max_width: int = 8192,
        max_height: int = 8192,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_name: int = 4096,
        max_cut_text: int = 1 << 20,
        max_cursor: int = 256,
    ) -> None:
        # The biggest single read: a band of raw pixels, a text, a name, a cursor,
        # a full colour map (65535 entries of 6 bytes).
        cursor_bytes = max_cursor * max_cursor * 4 + (max_cursor + 7) // 8 * max_cursor
        super().__init__(
            password=password,
            read_limit=self._read_limit(max_cut_text, max_name, cursor_bytes, 6 * 0xFFFF),
            max_width=max_width,
            max_height=max_height,
            max_cut_text=max_cut_text,
            max_cursor=max_cursor,
        )
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"max_pixels must be an int >= 1; got {max_pixels!r}")
        self.max_pixels = max_pixels
        self.shared = shared
        self.auth_failed = False
        """The server rejected the VNC password (as opposed to other failures)."""
        self.early_auth = early_auth
        self.chose_early = False
        """VNC Authentication went out with the version, before the server's list."""
        self.early_auth_refused = False
        """VNC Authentication was chosen early, but the server offers None instead:
        a new connection with ``early_auth=False`` would have worked."""
        self.max_name = max_name
        if pixel_format is not None:
            PixelCodec(pixel_format)  # reject an unusable format now
        self._requested_format = pixel_format
        self._requested_encodings = tuple(encodings)
        for encoding in self._requested_encodings:
            check_s32("encoding", encoding)
        self._zrle = ZRLEDecoder()
        self._tight = TightDecoder()
        self._start()

    @property
    def buffered_bytes(self) -> int:
        """Bytes held while waiting for the rest of a message (bounded by the limits)."""
        return super().buffered_bytes + len(self._zrle.buffer) + len(self._tight.buffer)

    # -- messages -------------------------------------------------------------------------

    def send_set_pixel_format(self, pixel_format: PixelFormat) -> None:
        """Ask for pixels in ``pixel_format`` from now on.

        Updates already on their way still use the old format (RFC 6143
        §7.5.1), so change it only when no update is pending.

        Raises:
            ValueError: a format this core cannot decode.
        """
        self._require_connected()
        self._set_format(pixel_format)

    def send_set_encodings(self, encodings: Sequence[int]) -> None:
        """Announce the encodings this client accepts, most preferred first."""
        self._require_connected()
        self._send_encodings(tuple(encodings))

    def send_update_request(
        self,
        *,
        incremental: bool = True,
        x: int = 0,
        y: int = 0,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        """Ask for a FramebufferUpdate of a region (default: the whole framebuffer).

        ``incremental=False`` asks for every pixel; ``True`` only for changes.
        """
        self._require_connected()
        w = self.width - x if width is None else width
        h = self.height - y if height is None else height
        for label, value in (("x", x), ("y", y), ("width", w), ("height", h)):
            check_u16(label, value)
        self._out.append(
            struct.pack(">BBHHHH", ClientMessage.UPDATE_REQUEST, int(incremental), x, y, w, h)
        )

    def send_key(self, keysym: int, down: bool) -> None:
        """Press (``down=True``) or release an X11 keysym (see :func:`~.keysyms.keysym`)."""
        self._require_connected()
        if not 0 <= keysym <= 0xFFFFFFFF:
            raise ValueError(f"a keysym is a u32; got {keysym!r}")
        self._out.append(bytes((ClientMessage.KEY_EVENT, int(down), 0, 0)) + U32.pack(keysym))

    def send_keys(self, keys: Iterable[tuple[int, bool]]) -> None:
        """Several key events, as made by :func:`~.keysyms.key_combo` or
        :func:`~.keysyms.text_to_keys`."""
        for value, down in keys:
            self.send_key(value, down)

    def send_pointer(self, x: int, y: int, buttons: int = 0) -> None:
        """Move the pointer, with ``buttons`` held (a mask of ``BUTTON_*`` and ``WHEEL_*``).

        A wheel click is a press and a release of its bit at the same position.
        """
        self._require_connected()
        if not 0 <= buttons <= 0xFF:
            raise ValueError(f"the button mask is a u8; got {buttons!r}")
        check_u16("x", x)
        check_u16("y", y)
        self._out.append(bytes((ClientMessage.POINTER_EVENT, buttons)) + U16.pack(x) + U16.pack(y))

    def send_set_desktop_size(
        self, width: int, height: int, screens: Sequence[Screen] | None = None
    ) -> None:
        """Ask the server to resize (SetDesktopSize; needs ExtendedDesktopSize).

        The answer is a :class:`~.events.DesktopResized` with ``reason`` 1.
        """
        self._require_connected()
        check_size(width, height, self.max_width, self.max_height)
        layout = tuple(screens) if screens else (Screen(0, 0, 0, width, height),)
        if len(layout) > 255:
            raise ValueError("at most 255 screens")
        self._out.append(
            bytes((ClientMessage.SET_DESKTOP_SIZE, 0))
            + U16.pack(width)
            + U16.pack(height)
            + bytes((len(layout), 0))
            + pack_screens(layout)
        )

    def _set_format(self, pixel_format: PixelFormat) -> None:
        self._codec = PixelCodec(pixel_format)
        self.pixel_format = pixel_format
        self._out.append(bytes((ClientMessage.SET_PIXEL_FORMAT, 0, 0, 0)) + pixel_format.pack())

    def _send_encodings(self, encodings: tuple[int, ...]) -> None:
        if len(encodings) > 0xFFFF:
            raise ValueError("at most 65535 encodings")
        for encoding in encodings:
            check_s32("encoding", encoding)
        self.encodings = encodings
        self._out.append(
            bytes((ClientMessage.SET_ENCODINGS, 0))
            + U16.pack(len(encodings))
            + struct.pack(f">{len(encodings)}i", *encodings)
        )

    def _fail(self, error: ProtocolError) -> None:
        super()._fail(error)
        self._zrle.buffer = bytearray()
        self._tight.buffer = bytearray()

    # -- the handshake --------------------------------------------------------------------

    def _parse(self) -> Generator[None, None, None]:
        read = self._reader.read_exact
        version = yield from self._read_version()
        self.version = version
        # The early choice: the server reads it once it has sent its list.
        early = self.early_auth and self._password is not None and version != (3, 3)
        self.chose_early = early
        choice = bytes((SECURITY_VNC_AUTH,)) if early else b""
        self._out.append(b"RFB %03d.%03d\n" % version + choice)
        self._set_state(RFBState.SECURITY)

        if version == (3, 3):
            (chosen,) = U32.unpack((yield from read(4)))
            if chosen == 0:
                reason = yield from self._read_reason()
                raise ProtocolError(f"the server refused the connection: {reason}")
            if chosen not in (SECURITY_NONE, SECURITY_VNC_AUTH):
                raise ProtocolError(
                    f"no supported security type: the server requires {_security_name(chosen)}"
                )
            if chosen == SECURITY_VNC_AUTH and self._password is None:
                raise ProtocolError(
                    "the server requires VNC authentication (2) but no password was given"
                )
        else:
            count = (yield from read(1))[0]
            if count == 0:
                reason = yield from self._read_reason()
                raise ProtocolError(f"the server refused the connection: {reason}")
            offered = list((yield from read(count)))
            if early and SECURITY_VNC_AUTH not in offered and SECURITY_NONE in offered:
                self.early_auth_refused = True
                raise ProtocolError(
                    "the server does not offer VNC Authentication (2), chosen with the "
                    f"version; it offers {_security_names(offered)}: connect again with "
                    "early_auth=False to use None"
                )
            chosen = self._choose_security(offered)
            if not early:
                self._out.append(bytes((chosen,)))

        if chosen == SECURITY_VNC_AUTH:
            self._set_state(RFBState.VNC_AUTH)
            challenge = yield from read(16)
            assert self._password is not None
            self._out.append(vnc_auth_response(challenge, self._password))
        # Pipelined: ClientInit, SetPixelFormat and SetEncodings go out now, without
        # waiting for SecurityResult and ServerInit. The server reads them in order
        # once it gets there (RFC 6143 has every message in its turn, and a refused
        # client is hung up on before ClientInit is read). This saves a round trip.
        self._send_client_init()
        if chosen == SECURITY_VNC_AUTH or version == (3, 8):
            self._set_state(RFBState.SECURITY_RESULT)

        if self.state is RFBState.SECURITY_RESULT:
            (result,) = U32.unpack((yield from read(4)))
            if result != 0:
                reason = "no reason given"
                if version == (3, 8):
                    reason = yield from self._read_reason()
                elif result == 2:
                    reason = "too many attempts"
                if chosen == SECURITY_VNC_AUTH:
                    self.auth_failed = True
                    raise ProtocolError(f"VNC authentication failed: {reason}")
                raise ProtocolError(f"the server refused the connection: {reason}")

        self._set_state(RFBState.INIT)

        width, height, raw_format, name_length = SERVER_INIT.unpack((yield from read(24)))
        server_format = PixelFormat.unpack(raw_format)
        if name_length > self.max_name:
            raise ProtocolError(f"desktop name of {name_length} bytes exceeds {self.max_name}")
        name = decode_text((yield from read(name_length)))
        self._check_desktop(width, height)
        self.width, self.height, self.name = width, height, name
        if self._requested_format is None:
            problem = server_format.problem()
            if problem is not None:
                raise ProtocolError(
                    f"the server's pixel format is {problem}; pass pixel_format= to ask for another"
                )
            self._codec = PixelCodec(server_format)
            self.pixel_format = server_format
        self._set_state(RFBState.CONNECTED)
        self._emit(ServerInit(width, height, name, server_format))
        self._emit(Ready())

        handlers: dict[int, Handler] = {
            ServerMessage.FRAMEBUFFER_UPDATE: self._framebuffer_update,
            ServerMessage.SET_COLOUR_MAP: self._colour_map,
            ServerMessage.BELL: self._bell,
            ServerMessage.CUT_TEXT: self._server_cut_text,
        }
        yield from self._dispatch(handlers, "server")

    def _send_client_init(self) -> None:
        """ClientInit, then the pixel format and encodings asked for, if any."""
        self._out.append(bytes((int(self.shared),)))
        if self._requested_format is not None:
            self._set_format(self._requested_format)
        if self._requested_encodings:
            self._send_encodings(self._requested_encodings)

    def _read_reason(self) -> Generator[None, None, str]:
        (length,) = U32.unpack((yield from self._reader.read_exact(4)))
        if length > self.max_name:
            raise ProtocolError(f"failure reason of {length} bytes exceeds {self.max_name}")
        return decode_text((yield from self._reader.read_exact(length)))

    def _choose_security(self, offered: list[int]) -> int:
        if self._password is not None and SECURITY_VNC_AUTH in offered:
            return SECURITY_VNC_AUTH
        if SECURITY_NONE in offered:
            return SECURITY_NONE
        if SECURITY_VNC_AUTH in offered:
            raise ProtocolError(
                "the server requires VNC authentication (2) but no password was given"
            )
        raise ProtocolError(
            f"no supported security type: the server offers only {_security_names(offered)}; "
            "this client supports None (1) and VNC Authentication (2)"
        )

    def _check_desktop(self, width: int, height: int) -> None:
        if width > self.max_width or height > self.max_height:
            raise ProtocolError(
                f"framebuffer of {width}x{height} exceeds {self.max_width}x{self.max_height}"
            )
        if width * height > self.max_pixels:
            raise ProtocolError(
                f"framebuffer of {width}x{height} ({width * height:,} pixels) exceeds "
                f"max_pixels={self.max_pixels:,}; pass a larger max_pixels= to accept it"
            )

    # -- server messages ------------------------------------------------------------------

    def _framebuffer_update(self) -> Generator[None, None, None]:
        reader, emit = self._reader, self._emit
        (count,) = U16.unpack((yield from reader.read_exact(3))[1:])
        emit(FramebufferUpdateStart(count))
        for _ in range(count):
            x, y, w, h, encoding = RECT.unpack((yield from reader.read_exact(12)))
            rect = Rect(x, y, w, h)
            codec = self._codec
            assert codec is not None
            if encoding == ENCODING_LAST_RECT:
                break
            if encoding in _PIXEL_ENCODINGS:
                if x + w > self.width or y + h > self.height:
                    raise ProtocolError(
                        f"rectangle {w}x{h}+{x}+{y} (encoding {encoding}) is outside "
                        f"the {self.width}x{self.height} framebuffer"
                    )
            if encoding == ENCODING_RAW:
                yield from read_raw(reader, codec, rect, emit)
            elif encoding == ENCODING_COPYRECT:
                emit((yield from read_copy_rect(reader, rect, self.width, self.height)))
            elif encoding == ENCODING_HEXTILE:
                yield from read_hextile(reader, codec, rect, emit)
            elif encoding == ENCODING_ZRLE:
                yield from self._zrle.read(reader, codec, rect, emit)
            elif encoding == ENCODING_TIGHT:
                yield from self._tight.read(reader, codec, rect, emit)
            elif encoding == ENCODING_DESKTOP_SIZE:
                self._check_desktop(w, h)
                self.width, self.height = w, h
                emit(DesktopResized(w, h))
            elif encoding == ENCODING_EXTENDED_DESKTOP_SIZE:
                header = yield from reader.read_exact(4)
                screens = yield from read_screens(reader, header[0])
                self._check_desktop(w, h)
                # x and y carry the reason and the status; a failed request changes nothing.
                if y == 0:
                    self.width, self.height = w, h
                emit(DesktopResized(w, h, x, y, screens))
            elif encoding == ENCODING_CURSOR:
                if w > self.max_cursor or h > self.max_cursor:
                    raise ProtocolError(
                        f"cursor of {w}x{h} exceeds {self.max_cursor}x{self.max_cursor}"
                    )
                yield from read_cursor(reader, codec, rect, emit)
            else:
                # Its length is unknown, so the stream can't be followed past it.
                raise ProtocolError(f"unsupported encoding {encoding} in a FramebufferUpdate")
        emit(FramebufferUpdateEnd())

    def _colour_map(self) -> Generator[None, None, None]:
        first, count = struct.unpack(">xHH", (yield from self._reader.read_exact(5)))
        data = yield from self._reader.read_exact(count * 6)
        values = struct.unpack(f">{count * 3}H", data)
        colours = tuple(zip(values[0::3], values[1::3], values[2::3], strict=True))
        self._emit(ColourMap(first, colours))

    def _bell(self) -> Generator[None, None, None]:
        self._emit(Bell())
        yield from ()  # a generator, like the other handlers

    def _server_cut_text(self) -> Generator[None, None, None]:
        text = yield from self._read_cut_text()
        self._emit(ServerCutText(text))


def _security_names(values: list[int]) -> str:
    return ", ".join(map(_security_name, values))


def _security_name(value: int) -> str:
    name = _SECURITY_NAMES.get(value)
    return f"{name} ({value})" if name else f"type {value}"
