"""The server end of RFB 3.8: handshake, client messages as events, encoded updates.

:class:`RFBServerProtocol` (used by the emulator) speaks 3.8 to 3.3, 3.7 and
3.8 clients, checks a VNC password, parses client messages into events, and
encodes rectangles as Raw, ZRLE or CopyRect into whatever pixel format the
client asked for::

    core = RFBServerProtocol(width=1280, height=720, password="secret")
    core.receive_data(chunk)               # any split of the byte stream
    for event in core.events_received():   # Ready, UpdateRequest, Key, Pointer...
        ...
    core.send_framebuffer_update([RectPixels(0, 0, 1280, 720, rgb)])
    for data in core.data_to_send():       # the greeting included
        transport.write(data)
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Generator, Sequence
from typing import ClassVar

from ...errors import ProtocolError
from .._base import Role
from ._wire import (
    SERVER_INIT,
    U16,
    U32,
    ClientMessage,
    ServerMessage,
    check_size,
    check_u16,
    pack_screens,
    read_screens,
)
from .auth import vnc_auth_response
from .base import Handler, RFBProtocol, RFBState
from .constants import (
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_RAW,
    ENCODING_ZRLE,
    SECURITY_NONE,
    SECURITY_VNC_AUTH,
)
from .encodings import ZRLEEncoder, copy_rect, cursor_rect, raw_rect, resize_rect
from .events import (
    AuthenticationFailed,
    ClientCutText,
    CursorShape,
    DesktopResized,
    Key,
    Pointer,
    Ready,
    RectCopy,
    RectFill,
    RectPixels,
    SetDesktopSize,
    SetEncodings,
    SetPixelFormat,
    UpdateRequest,
)
from .pixels import DEFAULT_PIXEL_FORMAT, PixelCodec, PixelFormat

__all__ = ["RFBServerProtocol", "ServerRect"]

ServerRect = RectPixels | RectFill | RectCopy | DesktopResized | CursorShape
"""What :meth:`RFBServerProtocol.send_framebuffer_update` accepts."""


class RFBServerProtocol(RFBProtocol):
    """The RFB protocol for one connection, as the server (the desktop).

    The greeting (``RFB 003.008``) is buffered at once: send
    :meth:`data_to_send` as soon as the connection opens.

    Args:
        width, height: The framebuffer's size.
        password: The VNC password: VNC Authentication is offered when there
            is one, else None. Needs the optional ``cryptography`` dependency.
        name: The desktop's name.
        pixel_format: The native format announced in ServerInit.
        security_types: The types to offer, from 1 (None) and 2 (VNC
            Authentication); default: 2 with a password, else 1.
        challenge: A fixed 16-byte challenge (default: random).
        zlib_level: The ZRLE compression level.
        max_width, max_height: The largest framebuffer a resize may make.
        max_cut_text: The longest clipboard text accepted.
        max_cursor: The largest cursor side sent.
        max_encodings: The most encodings a SetEncodings may list.

    Raises:
        ValueError: a size, pixel format, security type or challenge that
            cannot be used, or VNC Authentication without a password.
        ImportError: a password without the ``cryptography`` dependency.
    """

    role: ClassVar[Role] = Role.SERVER
    _CUT_TEXT: ClassVar[int] = ServerMessage.CUT_TEXT

    def __init__(
        self,
        *,
        width: int,
        height: int,
        password: str | bytes | None = None,
        name: str = "orgo_async",
        pixel_format: PixelFormat = DEFAULT_PIXEL_FORMAT,
        security_types: Sequence[int] | None = None,
        challenge: bytes | None = None,
        zlib_level: int = 1,
        max_width: int = 8192,
        max_height: int = 8192,
        max_cut_text: int = 1 << 20,
        max_cursor: int = 256,
        max_encodings: int = 1024,
    ) -> None:
        # The biggest single read: a clipboard text or a SetEncodings list.
        super().__init__(
            password=password,
            read_limit=self._read_limit(max_cut_text, 4 * max_encodings),
            max_width=max_width,
            max_height=max_height,
            max_cut_text=max_cut_text,
            max_cursor=max_cursor,
        )
        self.max_encodings = max_encodings
        check_size(width, height, max_width, max_height)
        self.width, self.height, self.name = width, height, name
        self._codec = PixelCodec(pixel_format)
        self.pixel_format = pixel_format
        if security_types is None:
            security_types = (SECURITY_VNC_AUTH,) if password is not None else (SECURITY_NONE,)
        types = tuple(security_types)
        if not types or any(t not in (SECURITY_NONE, SECURITY_VNC_AUTH) for t in types):
            raise ValueError(f"security_types must be from 1 and 2; got {types!r}")
        if SECURITY_VNC_AUTH in types and password is None:
            raise ValueError("offering VNC authentication (2) needs a password")
        if challenge is not None and len(challenge) != 16:
            raise ValueError(f"a challenge has 16 bytes, not {len(challenge)}")
        self._security_types = types
        self._challenge = challenge
        self._zrle = ZRLEEncoder(zlib_level)
        self._out.append(b"RFB 003.008\n")
        self._start()

    def supports(self, encoding: int) -> bool:
        """Whether the client announced ``encoding`` (Raw always counts)."""
        return encoding == ENCODING_RAW or encoding in self.encodings

    # -- messages -------------------------------------------------------------------------

    def send_framebuffer_update(
        self,
        rects: Sequence[ServerRect],
        *,
        encoding: int | None = None,
    ) -> None:
        """Send one FramebufferUpdate holding ``rects``, in the client's pixel format.

        Pixels go as ``encoding`` (Raw or ZRLE), by default the first of those the
        client announced. A :class:`~.events.RectCopy` needs CopyRect, a
        :class:`~.events.DesktopResized` needs DesktopSize or ExtendedDesktopSize
        (and changes :attr:`width` and :attr:`height` when its status is 0), a
        :class:`~.events.CursorShape` needs Cursor; check with :meth:`supports`.

        Raises:
            ValueError: a rectangle outside the framebuffer, pixels of the wrong
                length, or an encoding the client did not announce.
        """
        self._require_connected()
        pixel_encoding = self._pick_encoding(encoding)
        self._check_rects(rects)
        parts = [bytes((ServerMessage.FRAMEBUFFER_UPDATE, 0)) + U16.pack(len(rects))]
        for rect in rects:
            parts.append(self._encode_rect(rect, pixel_encoding))
        self._out.append(b"".join(parts))

    def send_bell(self) -> None:
        """Ring the client's bell."""
        self._require_connected()
        self._out.append(bytes((ServerMessage.BELL,)))

    # -- the handshake --------------------------------------------------------------------

    def _parse(self) -> Generator[None, None, None]:
        read = self._reader.read_exact
        version = yield from self._read_version()
        self.version = version
        self._set_state(RFBState.SECURITY)
        types = self._security_types
        if version == (3, 3):
            # The server chooses in 3.3; prefer the password when there is one.
            chosen = SECURITY_VNC_AUTH if SECURITY_VNC_AUTH in types else SECURITY_NONE
            self._out.append(U32.pack(chosen))
        else:
            self._out.append(bytes((len(types), *types)))
            chosen = (yield from read(1))[0]
            if chosen not in types:
                self._reject(f"security type {chosen} was not offered")
                raise ProtocolError(f"the client chose security type {chosen}, not offered")

        if chosen == SECURITY_VNC_AUTH:
            self._set_state(RFBState.VNC_AUTH)
            challenge = self._challenge if self._challenge is not None else os.urandom(16)
            self._out.append(challenge)
            answer = yield from read(16)
            assert self._password is not None
            if not hmac.compare_digest(answer, vnc_auth_response(challenge, self._password)):
                reason = "Authentication failure"
                self._reject(reason)
                self._events.append(AuthenticationFailed(reason))
                return
            self._set_state(RFBState.SECURITY_RESULT)
            self._out.append(U32.pack(0))
        elif version == (3, 8):
            self._set_state(RFBState.SECURITY_RESULT)
            self._out.append(U32.pack(0))
        self._set_state(RFBState.INIT)

        self.shared = (yield from read(1))[0] != 0
        assert self.pixel_format is not None
        name = self.name.encode()
        self._out.append(
            SERVER_INIT.pack(self.width, self.height, self.pixel_format.pack(), len(name)) + name
        )
        self._set_state(RFBState.CONNECTED)
        self._events.append(Ready())

        handlers: dict[int, Handler] = {
            ClientMessage.SET_PIXEL_FORMAT: self._set_pixel_format_message,
            ClientMessage.SET_ENCODINGS: self._set_encodings_message,
            ClientMessage.UPDATE_REQUEST: self._update_request_message,
            ClientMessage.KEY_EVENT: self._key_message,
            ClientMessage.POINTER_EVENT: self._pointer_message,
            ClientMessage.CUT_TEXT: self._client_cut_text_message,
            ClientMessage.SET_DESKTOP_SIZE: self._set_desktop_size_message,
        }
        yield from self._dispatch(handlers, "client")

    def _reject(self, reason: str) -> None:
        """Buffer a failed SecurityResult (with its reason on 3.8) and stop parsing."""
        failure = U32.pack(1)
        if self.version == (3, 8):
            text = reason.encode()
            failure += U32.pack(len(text)) + text
        self._out.append(failure)
        self._set_state(RFBState.CLOSED)

    # -- client messages ------------------------------------------------------------------

    def _set_pixel_format_message(self) -> Generator[None, None, None]:
        pixel_format = PixelFormat.unpack((yield from self._reader.read_exact(19))[3:])
        problem = pixel_format.problem()
        if problem is not None:
            raise ProtocolError(f"the client asked for {problem}")
        self._codec = PixelCodec(pixel_format)
        self.pixel_format = pixel_format
        self._events.append(SetPixelFormat(pixel_format))

    def _set_encodings_message(self) -> Generator[None, None, None]:
        (count,) = U16.unpack((yield from self._reader.read_exact(3))[1:])
        if count > self.max_encodings:
            raise ProtocolError(f"SetEncodings lists {count} encodings, over {self.max_encodings}")
        data = yield from self._reader.read_exact(4 * count)
        self.encodings = struct.unpack(f">{count}i", data)
        self._events.append(SetEncodings(self.encodings))

    def _update_request_message(self) -> Generator[None, None, None]:
        incremental, x, y, w, h = struct.unpack(">BHHHH", (yield from self._reader.read_exact(9)))
        self._events.append(UpdateRequest(incremental != 0, x, y, w, h))

    def _key_message(self) -> Generator[None, None, None]:
        down, value = struct.unpack(">B2xI", (yield from self._reader.read_exact(7)))
        self._events.append(Key(down != 0, value))

    def _pointer_message(self) -> Generator[None, None, None]:
        mask, x, y = struct.unpack(">BHH", (yield from self._reader.read_exact(5)))
        self._events.append(Pointer(mask, x, y))

    def _client_cut_text_message(self) -> Generator[None, None, None]:
        text = yield from self._read_cut_text()
        self._events.append(ClientCutText(text))

    def _set_desktop_size_message(self) -> Generator[None, None, None]:
        w, h, count = struct.unpack(">xHHBx", (yield from self._reader.read_exact(7)))
        screens = yield from read_screens(self._reader, count)
        self._events.append(SetDesktopSize(w, h, screens))

    # -- encoding updates -----------------------------------------------------------------

    def _pick_encoding(self, encoding: int | None) -> int:
        if encoding is None:
            for candidate in self.encodings:
                if candidate in (ENCODING_ZRLE, ENCODING_RAW):
                    return candidate
            return ENCODING_RAW
        if encoding not in (ENCODING_RAW, ENCODING_ZRLE):
            raise ValueError(f"pixels can be sent as Raw (0) or ZRLE (16), not {encoding}")
        if not self.supports(encoding):
            raise ValueError(f"the client did not announce encoding {encoding}")
        return encoding

    def _check_rects(self, rects: Sequence[ServerRect]) -> None:
        """Every ValueError of an update, raised before anything is encoded.

        ZRLE's compressor is shared by the whole connection: a rectangle
        compressed for an update that is then abandoned would put the client's
        decompressor out of step.
        """
        if len(rects) > 0xFFFF:
            raise ValueError("at most 65535 rectangles per update")
        width, height = self.width, self.height
        for rect in rects:
            if isinstance(rect, DesktopResized):
                check_size(rect.width, rect.height, self.max_width, self.max_height)
                check_u16("reason", rect.reason)
                check_u16("status", rect.status)
                if len(rect.screens) > 255:
                    raise ValueError("at most 255 screens")
                pack_screens(rect.screens)
                if self.supports(ENCODING_EXTENDED_DESKTOP_SIZE):
                    pass
                elif not self.supports(ENCODING_DESKTOP_SIZE):
                    raise ValueError("the client announced neither DesktopSize (-223) nor -308")
                elif rect.status:
                    raise ValueError("a failed resize needs ExtendedDesktopSize (-308)")
                if rect.status == 0:
                    width, height = rect.width, rect.height
                continue
            if isinstance(rect, CursorShape):
                if not self.supports(ENCODING_CURSOR):
                    raise ValueError("the client did not announce the Cursor pseudo-encoding")
                w, h = rect.width, rect.height
                for label, value in (("hotspot_x", rect.hotspot_x), ("hotspot_y", rect.hotspot_y)):
                    check_u16(label, value)
                if not (0 <= w <= self.max_cursor and 0 <= h <= self.max_cursor):
                    raise ValueError(f"a cursor of {w}x{h} is over {self.max_cursor} a side")
                if len(rect.rgb) != w * h * 3 or len(rect.mask) != (w + 7) // 8 * h:
                    raise ValueError("cursor pixels or mask of the wrong length")
                continue
            x, y, w, h = rect.x, rect.y, rect.width, rect.height
            if min(x, y, w, h) < 0 or x + w > width or y + h > height:
                raise ValueError(f"rectangle {w}x{h}+{x}+{y} is outside {width}x{height}")
            if isinstance(rect, RectCopy):
                if not self.supports(ENCODING_COPYRECT):
                    raise ValueError("the client did not announce CopyRect (1); send pixels")
                sx, sy = rect.src_x, rect.src_y
                if min(sx, sy) < 0 or sx + w > width or sy + h > height:
                    raise ValueError(f"CopyRect source {w}x{h}+{sx}+{sy} is outside")
            elif isinstance(rect, RectFill):
                if len(rect.rgb) != 3:
                    raise ValueError(f"a fill colour has 3 bytes, not {len(rect.rgb)}")
            elif len(rect.rgb) != w * h * 3:
                raise ValueError(f"{w}x{h} pixels need {w * h * 3} RGB bytes, not {len(rect.rgb)}")

    def _encode_rect(self, rect: ServerRect, encoding: int) -> bytes:
        """One rectangle, already checked by :meth:`_check_rects`."""
        codec = self._codec
        assert codec is not None
        if isinstance(rect, DesktopResized):
            return self._encode_resize(rect)
        if isinstance(rect, CursorShape):
            return cursor_rect(codec, rect)
        if isinstance(rect, RectCopy):
            return copy_rect(rect)
        if encoding == ENCODING_ZRLE:
            return self._zrle.rect(codec, rect)
        return raw_rect(codec, rect)

    def _encode_resize(self, rect: DesktopResized) -> bytes:
        w, h = rect.width, rect.height
        if rect.status == 0:
            self.width, self.height = w, h
        if self.supports(ENCODING_EXTENDED_DESKTOP_SIZE):
            return resize_rect(rect, ENCODING_EXTENDED_DESKTOP_SIZE)
        return resize_rect(rect, ENCODING_DESKTOP_SIZE)
