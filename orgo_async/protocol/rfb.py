"""RFB 3.8 (VNC), sans I/O, for both ends of the connection.

:class:`RFBProtocol` is the whole protocol for one connection: feed it the
bytes that arrive and it returns events; call its ``send_*`` methods and it
buffers the bytes to write. It never touches a socket or a clock::

    core = RFBProtocol(Role.CLIENT, password="secret")
    core.receive_data(chunk)               # any split of the byte stream
    for event in core.events_received():   # ServerInit, Ready, RectPixels...
        ...
    core.send_update_request(incremental=False)
    for data in core.data_to_send():       # handshake answers included
        transport.write(data)

The client speaks to 3.3, 3.7 and 3.8 servers, authenticates with security
type None (1) or VNC Authentication (2), and decodes Raw, CopyRect, Hextile
and ZRLE rectangles plus the DesktopSize, ExtendedDesktopSize, LastRect and
Cursor pseudo-encodings into RGB events. The server role (used by the
emulator) speaks 3.8 to 3.3/3.7/3.8 clients, checks a VNC password, parses
client messages into events, and encodes rectangles as Raw, ZRLE or CopyRect
into whatever pixel format the client asked for.

Pixels in events are always packed RGB, 3 bytes a pixel, row by row. Large
rectangles arrive as several :class:`RectPixels` (bands of rows), so memory
stays bounded whatever the server sends.

Also here: :func:`vnc_auth_response` (the DES challenge answer, which needs
the optional ``cryptography`` dependency: ``pip install 'orgo_async[vnc]'``),
and X11 keysyms for keys, combos and text (:func:`keysym`, :func:`key_combo`,
:func:`text_to_keys`).

References: RFC 6143 (with erratum 4951 for the DES key's bit order), and the
community RFB specification (rfbproto) for ZRLE's CPIXEL, LastRect,
ExtendedDesktopSize and SetDesktopSize.
"""

from __future__ import annotations

import enum
import hmac
import os
import re
import struct
import zlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final, Literal

import attrs

from ..errors import ProtocolError
from ._base import Role
from ._reader import StreamReader

__all__ = [
    "BUTTON_LEFT",
    "BUTTON_MIDDLE",
    "BUTTON_RIGHT",
    "DEFAULT_ENCODINGS",
    "DEFAULT_PIXEL_FORMAT",
    "ENCODING_COPYRECT",
    "ENCODING_CURSOR",
    "ENCODING_DESKTOP_SIZE",
    "ENCODING_EXTENDED_DESKTOP_SIZE",
    "ENCODING_HEXTILE",
    "ENCODING_LAST_RECT",
    "ENCODING_RAW",
    "ENCODING_ZRLE",
    "SECURITY_NONE",
    "SECURITY_VNC_AUTH",
    "WHEEL_DOWN",
    "WHEEL_LEFT",
    "WHEEL_RIGHT",
    "WHEEL_UP",
    "AuthenticationFailed",
    "Bell",
    "ClientCutText",
    "ColourMap",
    "CursorShape",
    "DesktopResized",
    "FramebufferUpdateEnd",
    "FramebufferUpdateStart",
    "Key",
    "PixelFormat",
    "Pointer",
    "RFBEvent",
    "RFBProtocol",
    "RFBState",
    "Ready",
    "RectCopy",
    "RectFill",
    "RectPixels",
    "Screen",
    "ServerCutText",
    "ServerInit",
    "SetDesktopSize",
    "SetEncodings",
    "SetPixelFormat",
    "UpdateRequest",
    "key_combo",
    "keysym",
    "text_to_keys",
    "vnc_auth_response",
]

# -- wire constants ---------------------------------------------------------------------------

SECURITY_NONE: Final = 1
SECURITY_VNC_AUTH: Final = 2

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

ENCODING_RAW: Final = 0
ENCODING_COPYRECT: Final = 1
ENCODING_HEXTILE: Final = 5
ENCODING_ZRLE: Final = 16
ENCODING_DESKTOP_SIZE: Final = -223
ENCODING_LAST_RECT: Final = -224
ENCODING_CURSOR: Final = -239
ENCODING_EXTENDED_DESKTOP_SIZE: Final = -308

DEFAULT_ENCODINGS: Final[tuple[int, ...]] = (
    ENCODING_ZRLE,
    ENCODING_HEXTILE,
    ENCODING_COPYRECT,
    ENCODING_RAW,
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_LAST_RECT,
    ENCODING_CURSOR,
)
"""What the client asks for after ServerInit, most preferred first."""

# Pointer button mask bits (RFC 6143 §7.5.5; X11 buttons 1-7).
BUTTON_LEFT: Final = 1
BUTTON_MIDDLE: Final = 2
BUTTON_RIGHT: Final = 4
WHEEL_UP: Final = 8
WHEEL_DOWN: Final = 16
WHEEL_LEFT: Final = 32
WHEEL_RIGHT: Final = 64

# Client -> server message types.
_SET_PIXEL_FORMAT: Final = 0
_SET_ENCODINGS: Final = 2
_UPDATE_REQUEST: Final = 3
_KEY_EVENT: Final = 4
_POINTER_EVENT: Final = 5
_CLIENT_CUT_TEXT: Final = 6
_SET_DESKTOP_SIZE: Final = 251
# Server -> client message types.
_FRAMEBUFFER_UPDATE: Final = 0
_SET_COLOUR_MAP: Final = 1
_BELL: Final = 2
_SERVER_CUT_TEXT: Final = 3

_U8: Final = struct.Struct(">B")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_RECT: Final = struct.Struct(">HHHHi")
_PIXEL_FORMAT: Final = struct.Struct(">BBBBHHHBBB3x")
_SERVER_INIT: Final = struct.Struct(">HH16sI")
_SCREEN: Final = struct.Struct(">IHHHHI")

_VERSION_RE: Final = re.compile(rb"RFB (\d{3})\.(\d{3})\n")

# Raw rectangles are read and converted in bands of about this many bytes, so a
# huge rectangle neither needs a huge buffer nor delays every pixel until its end.
_RAW_BAND_BYTES: Final = 1 << 20
# ZRLE: compressed bytes are read, and inflated, this much at a time.
_ZLIB_CHUNK: Final = 1 << 16

# -- pixel formats ----------------------------------------------------------------------------


@attrs.frozen
class PixelFormat:
    """How a pixel is laid out on the wire (RFC 6143 §7.4).

    Only true-colour formats of 8, 16 or 32 bits per pixel are decoded or
    encoded here; colour-map formats are refused.
    """

    bits_per_pixel: int
    depth: int
    big_endian: bool
    true_colour: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8

    def pack(self) -> bytes:
        """The 16-byte PIXEL_FORMAT structure."""
        return _PIXEL_FORMAT.pack(
            self.bits_per_pixel,
            self.depth,
            int(self.big_endian),
            int(self.true_colour),
            self.red_max,
            self.green_max,
            self.blue_max,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
        )

    @classmethod
    def unpack(cls, data: bytes) -> PixelFormat:
        """Parse a 16-byte PIXEL_FORMAT (any non-zero flag counts as true: x11vnc sends 0xff)."""
        bpp, depth, big, true, rmax, gmax, bmax, rs, gs, bs = _PIXEL_FORMAT.unpack(data)
        return cls(bpp, depth, big != 0, true != 0, rmax, gmax, bmax, rs, gs, bs)

    def problem(self) -> str | None:
        """Why this format can't be used here, or ``None`` when it can."""
        if self.bits_per_pixel not in (8, 16, 32):
            return f"{self.bits_per_pixel} bits per pixel (need 8, 16 or 32)"
        if not self.true_colour:
            return "a colour-map format (need true colour)"
        for name, top, shift in (
            ("red", self.red_max, self.red_shift),
            ("green", self.green_max, self.green_shift),
            ("blue", self.blue_max, self.blue_shift),
        ):
            if top < 1 or top.bit_length() + shift > self.bits_per_pixel:
                return f"{name} max {top} << {shift} does not fit {self.bits_per_pixel} bits"
        return None


DEFAULT_PIXEL_FORMAT: Final = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)
"""32 bits, depth 24, little endian, shifts 16/8/0: B, G, R, X in memory (Xvnc's own)."""


def _scale_up(top: int) -> list[int]:
    """Channel value 0..top -> 0..255, rounded."""
    return [(v * 255 + top // 2) // top for v in range(top + 1)]


def _scale_down(top: int) -> list[int]:
    """0..255 -> channel value 0..top, rounded."""
    return [(v * top + 127) // 255 for v in range(256)]


class _PixelCodec:
    """Converts between a pixel format and packed RGB, for whole runs of pixels.

    Nothing here loops over pixels in Python. Formats whose channels are whole
    bytes (every 32-bit format servers and clients actually use) convert with
    three strided slice copies. Any other format works a byte plane at a time:
    each byte of a pixel contributes some bits to each channel, which a
    256-entry ``translate`` table extracts, and the contributions are OR-ed
    together as one big integer per plane. Only channels wider than 8 bits
    (10-bit colour) fall back to a per-pixel loop when decoding.
    """

    def __init__(self, pf: PixelFormat) -> None:
        problem = pf.problem()
        if problem is not None:
            raise ValueError(f"unsupported pixel format: {problem}")
        self.pf = pf
        self.bpp = bpp = pf.bytes_per_pixel
        self._channels = (
            (pf.red_max, pf.red_shift),
            (pf.green_max, pf.green_shift),
            (pf.blue_max, pf.blue_shift),
        )
        # Which byte of the pixel value (0 = least significant) sits at each memory offset.
        self._value_byte = [bpp - 1 - k if pf.big_endian else k for k in range(bpp)]
        # ZRLE's CPIXEL drops the unused byte of a 32-bit pixel whose colour fits
        # in 3 bytes (the low 3 when both would do, by convention).
        self.cpp = bpp
        self._dropped: int | None = None
        if bpp == 4 and pf.depth <= 24:
            used = 0
            for top, shift in self._channels:
                used |= top << shift
            unused = 3 if used < 1 << 24 else 0 if not used & 0xFF else None
            if unused is not None:
                self.cpp = 3
                self._dropped = self._value_byte.index(unused)
        # Memory offset of each channel's byte, when every channel is one whole byte.
        self._offsets: list[int] | None = None
        if all(top == 255 and shift % 8 == 0 for top, shift in self._channels):
            self._offsets = [self._value_byte.index(shift // 8) for _, shift in self._channels]
        self._tables: tuple[list[list[bytes | None]], list[list[bytes | None]]] | None = None

    def _layout(self, cpixel: bool) -> tuple[int, list[int | None]]:
        """The step between pixels and, per memory byte of a pixel, its offset in that step."""
        if not cpixel or self._dropped is None:
            return self.bpp, list(range(self.bpp))
        dropped = self._dropped
        return 3, [None if k == dropped else k - (k > dropped) for k in range(4)]

    def _plane_tables(self) -> tuple[list[list[bytes | None]], list[list[bytes | None]]]:
        """Per channel and memory byte: byte -> its bits of the channel (decoding), and
        per memory byte and channel: 0..255 intensity -> its bits of that byte (encoding)."""
        if self._tables is None:
            decode: list[list[bytes | None]] = []
            encode: list[list[bytes | None]] = [[] for _ in range(self.bpp)]
            for top, shift in self._channels:
                down = _scale_down(top)
                row: list[bytes | None] = []
                for k, value_byte in enumerate(self._value_byte):
                    at = 8 * value_byte
                    part = bytes(((b << at) >> shift) & top & 0xFF for b in range(256))
                    row.append(part if any(part) else None)
                    bits = bytes(((down[v] << shift) >> at) & 0xFF for v in range(256))
                    encode[k].append(bits if any(bits) else None)
                decode.append(row)
            self._tables = (decode, encode)
        return self._tables

    # -- to RGB ---------------------------------------------------------------------------

    def to_rgb(self, data: bytes | bytearray, *, cpixel: bool = False) -> bytes:
        """Pixels (or CPIXELs) -> packed RGB."""
        step, positions = self._layout(cpixel)
        n = len(data) // step
        out = bytearray(n * 3)
        if self._offsets is not None:
            for c, offset in enumerate(self._offsets):
                position = positions[offset]
                assert position is not None
                out[c::3] = data[position::step]
            return bytes(out)
        planes = [None if p is None else data[p::step] for p in positions]
        decode, _ = self._plane_tables()
        for c, (top, shift) in enumerate(self._channels):
            if top > 255:
                out[c::3] = self._wide_channel(planes, n, top, shift)
                continue
            value = 0
            for plane, table in zip(planes, decode[c], strict=True):
                if plane is not None and table is not None:
                    value |= int.from_bytes(plane.translate(table), "little")
            out[c::3] = value.to_bytes(n, "little").translate(_SCALE_UP[top])
        return bytes(out)

    def _wide_channel(
        self, planes: list[bytes | bytearray | None], n: int, top: int, shift: int
    ) -> bytes:
        """A channel of more than 8 bits, one pixel at a time (rare: 10-bit colour)."""
        bpp = self.bpp
        full = bytearray(n * bpp)
        for k, plane in enumerate(planes):
            if plane is not None:
                full[k::bpp] = plane
        order: Literal["big", "little"] = "big" if self.pf.big_endian else "little"
        up = _scale_up(top)
        return bytes(
            up[(int.from_bytes(full[i : i + bpp], order) >> shift) & top]
            for i in range(0, n * bpp, bpp)
        )

    # -- from RGB -------------------------------------------------------------------------

    def from_rgb(self, rgb: bytes | bytearray, *, cpixel: bool = False) -> bytes:
        """Packed RGB -> pixels (or CPIXELs)."""
        step, positions = self._layout(cpixel)
        n = len(rgb) // 3
        out = bytearray(n * step)
        channels = (rgb[0::3], rgb[1::3], rgb[2::3])
        if self._offsets is not None:
            for channel, offset in zip(channels, self._offsets, strict=True):
                out[positions[offset] :: step] = channel
            return bytes(out)
        _, encode = self._plane_tables()
        for position, tables in zip(positions, encode, strict=True):
            if position is None:
                continue
            value = 0
            for channel, table in zip(channels, tables, strict=True):
                if table is not None:
                    value |= int.from_bytes(channel.translate(table), "little")
            out[position::step] = value.to_bytes(n, "little")
        return bytes(out)


# Channel value 0..top -> 0..255 as translate tables, for the tops that fit a byte.
_SCALE_UP: Final = {top: bytes(_scale_up(top)).ljust(256, b"\0") for top in range(1, 256)}


# -- events -----------------------------------------------------------------------------------


def _short_bytes(data: bytes) -> str:
    return f"<{len(data)} bytes>"


@attrs.frozen
class RFBEvent:
    """Base class of everything :class:`RFBProtocol` reports."""


@attrs.frozen
class ServerInit(RFBEvent):
    """(Client) the server's framebuffer size, native pixel format and desktop name."""

    width: int
    height: int
    name: str
    pixel_format: PixelFormat


@attrs.frozen
class Ready(RFBEvent):
    """The handshake is over; normal messages may flow.

    For a client, the SetPixelFormat and SetEncodings it chose are already
    buffered; request the first update with
    :meth:`RFBProtocol.send_update_request`.
    """


@attrs.frozen
class FramebufferUpdateStart(RFBEvent):
    """(Client) a FramebufferUpdate begins; ``rects`` is the count it announced.

    65535 means "until LastRect" when the server uses that pseudo-encoding.
    """

    rects: int


@attrs.frozen
class RectPixels(RFBEvent):
    """Pixels for a rectangle of the framebuffer, packed RGB row by row.

    A client receives these; a server passes them to
    :meth:`RFBProtocol.send_framebuffer_update`.
    """

    x: int
    y: int
    width: int
    height: int
    rgb: bytes = attrs.field(repr=_short_bytes)


@attrs.frozen
class RectFill(RFBEvent):
    """A rectangle of one colour; ``rgb`` is that colour's 3 bytes."""

    x: int
    y: int
    width: int
    height: int
    rgb: bytes


@attrs.frozen
class RectCopy(RFBEvent):
    """Copy a rectangle within the framebuffer (CopyRect): from ``src_*`` to ``x, y``.

    Copy as if through a temporary buffer: source and destination may overlap.
    """

    src_x: int
    src_y: int
    x: int
    y: int
    width: int
    height: int


@attrs.frozen
class Screen:
    """One screen of an ExtendedDesktopSize layout."""

    id: int
    x: int
    y: int
    width: int
    height: int
    flags: int = 0


@attrs.frozen
class DesktopResized(RFBEvent):
    """The framebuffer has a new size (DesktopSize or ExtendedDesktopSize).

    ``reason`` and ``status`` come from ExtendedDesktopSize (reason 0: the
    server, 1: this client's request, 2: another client's; status 0: success,
    1: prohibited, 2: out of resources, 3: invalid layout). When ``status`` is
    not 0 a SetDesktopSize request failed and the size did not change.
    """

    width: int
    height: int
    reason: int = 0
    status: int = 0
    screens: tuple[Screen, ...] = ()


@attrs.frozen
class CursorShape(RFBEvent):
    """The cursor's new shape (the Cursor pseudo-encoding); an empty size hides it.

    ``mask`` is 1 bit a pixel, rows padded to whole bytes, most significant bit
    first; a set bit means the pixel is part of the cursor.
    """

    hotspot_x: int
    hotspot_y: int
    width: int
    height: int
    rgb: bytes = attrs.field(repr=_short_bytes)
    mask: bytes = attrs.field(repr=_short_bytes)

    @property
    def rgba(self) -> bytes:
        """The cursor as packed RGBA (alpha 255 inside the mask, 0 outside)."""
        w, h = self.width, self.height
        row = (w + 7) // 8
        alpha = bytearray(w * h)
        table = _UNPACK[1]
        for y in range(h):
            bits = b"".join(map(table.__getitem__, self.mask[y * row : (y + 1) * row]))
            alpha[y * w : (y + 1) * w] = bits[:w]
        out = bytearray(w * h * 4)
        out[0::4] = self.rgb[0::3]
        out[1::4] = self.rgb[1::3]
        out[2::4] = self.rgb[2::3]
        out[3::4] = alpha.translate(_ALPHA)
        return bytes(out)


@attrs.frozen
class FramebufferUpdateEnd(RFBEvent):
    """(Client) the FramebufferUpdate is complete."""


@attrs.frozen
class Bell(RFBEvent):
    """(Client) the server rang the bell."""


@attrs.frozen
class ServerCutText(RFBEvent):
    """(Client) the server's clipboard text."""

    text: str


@attrs.frozen
class ColourMap(RFBEvent):
    """(Client) SetColourMapEntries: 16-bit RGB entries from ``first``.

    This client always asks for true colour, so these do not change pixels.
    """

    first: int
    colours: tuple[tuple[int, int, int], ...]


@attrs.frozen
class SetPixelFormat(RFBEvent):
    """(Server) the client's pixel format from now on (already applied by the core)."""

    pixel_format: PixelFormat


@attrs.frozen
class SetEncodings(RFBEvent):
    """(Server) the encodings the client accepts, most preferred first."""

    encodings: tuple[int, ...]


@attrs.frozen
class UpdateRequest(RFBEvent):
    """(Server) FramebufferUpdateRequest; the region is as sent, not clipped."""

    incremental: bool
    x: int
    y: int
    width: int
    height: int


@attrs.frozen
class Key(RFBEvent):
    """(Server) a key went down or up (an X11 keysym)."""

    down: bool
    keysym: int


@attrs.frozen
class Pointer(RFBEvent):
    """(Server) the pointer's position and button mask (see ``BUTTON_*``, ``WHEEL_*``)."""

    mask: int
    x: int
    y: int


@attrs.frozen
class ClientCutText(RFBEvent):
    """(Server) the client's clipboard text."""

    text: str


@attrs.frozen
class SetDesktopSize(RFBEvent):
    """(Server) the client asks for a new framebuffer size.

    Answer with a :class:`DesktopResized` (reason 1) through
    :meth:`RFBProtocol.send_framebuffer_update`.
    """

    width: int
    height: int
    screens: tuple[Screen, ...]


@attrs.frozen
class AuthenticationFailed(RFBEvent):
    """(Server) the client failed VNC authentication.

    The failing SecurityResult is buffered: send :meth:`RFBProtocol.data_to_send`,
    then close the connection.
    """

    reason: str


# -- states ------------------------------------------------------------------------------------


class RFBState(enum.Enum):
    """Where a connection is in the RFB handshake."""

    PROTOCOL_VERSION = "protocol-version"
    SECURITY = "security"
    VNC_AUTH = "vnc-auth"
    SECURITY_RESULT = "security-result"
    INIT = "init"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


# The handshake, for both roles (RFC 6143 §7.1-7.3). `<` is what a state waits for
# (states are named after it), `>` what is sent on the way, `->` the next state.
#
# state              client                                 server
# -----------------  -------------------------------------  -------------------------------------
# PROTOCOL_VERSION   < "RFB 003.00x\n"                      (> "RFB 003.008\n" at construction)
#                    > min(server's, 3.8)                   < the client's version
#                    -> SECURITY                            > types (3.7+) or the type (3.3)
#                                                           -> SECURITY
# SECURITY           < types (3.7+) or the u32 type (3.3)   < the client's choice (3.7+ only)
#                    > our choice (3.7+)                    -> VNC_AUTH (> challenge) for type 2
#                    -> VNC_AUTH for type 2                 -> SECURITY_RESULT (> OK) for None, 3.8
#                    -> SECURITY_RESULT for None on 3.8     -> INIT for None on 3.3 and 3.7
#                    -> INIT for None on 3.3 and 3.7        -> CLOSED (> failure) if not offered
# VNC_AUTH           < challenge; > DES answer              < the DES answer
#                    -> SECURITY_RESULT                     -> SECURITY_RESULT (> OK) if right,
#                                                           -> CLOSED (> failure) if wrong
# SECURITY_RESULT    < u32, and a reason on a 3.8 failure   (nothing to wait for)
#                    > ClientInit -> INIT                   -> INIT
# INIT               < ServerInit                           < ClientInit
#                    > SetPixelFormat, SetEncodings         > ServerInit
#                    -> CONNECTED                           -> CONNECTED
# CONNECTED          normal messages until the stream ends at a message boundary -> CLOSED
#
# A protocol error moves any state to FAILED, for good; the end of the stream anywhere
# but at a CONNECTED message boundary is one. `_TRANSITIONS` is this table as data, and
# `_set_state` enforces it.
_TRANSITIONS: Final[Mapping[RFBState, frozenset[RFBState]]] = {
    RFBState.PROTOCOL_VERSION: frozenset({RFBState.SECURITY}),
    RFBState.SECURITY: frozenset(
        {RFBState.VNC_AUTH, RFBState.SECURITY_RESULT, RFBState.INIT, RFBState.CLOSED}
    ),
    RFBState.VNC_AUTH: frozenset({RFBState.SECURITY_RESULT, RFBState.CLOSED}),
    RFBState.SECURITY_RESULT: frozenset({RFBState.INIT}),
    RFBState.INIT: frozenset({RFBState.CONNECTED}),
    RFBState.CONNECTED: frozenset({RFBState.CLOSED}),
    RFBState.CLOSED: frozenset(),
    RFBState.FAILED: frozenset(),
}

# -- VNC authentication -------------------------------------------------------------------------

_EXTRA_HINT: Final = "VNC authentication needs the 'vnc' extra: pip install 'orgo_async[vnc]'"

# Each byte with its bits in reverse order: VNC's DES takes key bits least
# significant first (RFC 6143 erratum 4951).
_REVERSED_BITS: Final = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _des_ecb() -> Callable[[bytes, bytes], bytes]:
    """A single-DES ECB encryptor ``(key8, data) -> ciphertext`` from ``cryptography``.

    Single DES is TripleDES with the same 8-byte key three times. Imported on
    first use because ``cryptography`` is an optional extra.

    Raises:
        ImportError: ``cryptography`` is not installed (the message says how to get it).
    """
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, modes

        try:
            from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
        except ImportError:  # cryptography < 43
            from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[attr-defined,no-redef,unused-ignore]
                TripleDES,
            )
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc

    def encrypt(key: bytes, data: bytes) -> bytes:
        encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
        return encryptor.update(data) + encryptor.finalize()

    return encrypt


def _password_bytes(password: str | bytes) -> bytes:
    return password.encode() if isinstance(password, str) else bytes(password)


def vnc_auth_response(challenge: bytes, password: str | bytes) -> bytes:
    """The answer to a VNC Authentication challenge (RFC 6143 §7.2.2).

    The challenge is DES-encrypted (ECB) with the password as the key: its
    first 8 bytes (a ``str`` is UTF-8 encoded), padded with zeros, each byte
    bit-reversed. Only those 8 bytes of a password count.

    Raises:
        ValueError: the challenge is not 16 bytes.
        ImportError: the optional ``cryptography`` dependency is missing.
    """
    if len(challenge) != 16:
        raise ValueError(f"a VNC challenge has 16 bytes, not {len(challenge)}")
    key = _password_bytes(password)[:8].ljust(8, b"\0").translate(_REVERSED_BITS)
    return _des_ecb()(key, bytes(challenge))


# -- keysyms ------------------------------------------------------------------------------------

_X11_KEYSYMS: Final[dict[str, int]] = {
    "BackSpace": 0xFF08,
    "Tab": 0xFF09,
    "Linefeed": 0xFF0A,
    "Clear": 0xFF0B,
    "Return": 0xFF0D,
    "Pause": 0xFF13,
    "Scroll_Lock": 0xFF14,
    "Sys_Req": 0xFF15,
    "Escape": 0xFF1B,
    "Delete": 0xFFFF,
    "Home": 0xFF50,
    "Left": 0xFF51,
    "Up": 0xFF52,
    "Right": 0xFF53,
    "Down": 0xFF54,
    "Page_Up": 0xFF55,
    "Page_Down": 0xFF56,
    "End": 0xFF57,
    "Begin": 0xFF58,
    "Select": 0xFF60,
    "Print": 0xFF61,
    "Execute": 0xFF62,
    "Insert": 0xFF63,
    "Undo": 0xFF65,
    "Redo": 0xFF66,
    "Menu": 0xFF67,
    "Find": 0xFF68,
    "Cancel": 0xFF69,
    "Help": 0xFF6A,
    "Break": 0xFF6B,
    "Num_Lock": 0xFF7F,
    "KP_Enter": 0xFF8D,
    "Shift_L": 0xFFE1,
    "Shift_R": 0xFFE2,
    "Control_L": 0xFFE3,
    "Control_R": 0xFFE4,
    "Caps_Lock": 0xFFE5,
    "Meta_L": 0xFFE7,
    "Meta_R": 0xFFE8,
    "Alt_L": 0xFFE9,
    "Alt_R": 0xFFEA,
    "Super_L": 0xFFEB,
    "Super_R": 0xFFEC,
    **{f"F{n}": 0xFFBE + n - 1 for n in range(1, 25)},
    # Latin-1 punctuation by its X11 name (the keysym is the code point).
    **{
        name: ord(char)
        for char, name in zip(
            " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
            "space exclam quotedbl numbersign dollar percent ampersand apostrophe parenleft "
            "parenright asterisk plus comma minus period slash colon semicolon less equal "
            "greater question at bracketleft backslash bracketright asciicircum underscore "
            "grave braceleft bar braceright asciitilde".split(),
            strict=True,
        )
    },
}

# Friendly names; looked up case-insensitively, like the X11 names.
_ALIASES: Final[dict[str, str]] = {
    "ctrl": "Control_L",
    "control": "Control_L",
    "shift": "Shift_L",
    "alt": "Alt_L",
    "option": "Alt_L",
    "super": "Super_L",
    "win": "Super_L",
    "cmd": "Super_L",
    "command": "Super_L",
    "meta": "Meta_L",
    "enter": "Return",
    "esc": "Escape",
    "del": "Delete",
    "ins": "Insert",
    "pgup": "Page_Up",
    "pageup": "Page_Up",
    "pgdn": "Page_Down",
    "pagedown": "Page_Down",
    "arrowleft": "Left",
    "arrowright": "Right",
    "arrowup": "Up",
    "arrowdown": "Down",
}

_KEYSYMS_FOLDED: Final[dict[str, int]] = {
    **{name.lower(): value for name, value in _X11_KEYSYMS.items()},
    **{alias: _X11_KEYSYMS[name] for alias, name in _ALIASES.items()},
}

_CONTROL_CHARS: Final[Mapping[str, str]] = {
    "\n": "Return",
    "\r": "Return",
    "\t": "Tab",
    "\b": "BackSpace",
    "\x1b": "Escape",
}


def _char_keysym(char: str) -> int:
    if char in _CONTROL_CHARS:
        return _X11_KEYSYMS[_CONTROL_CHARS[char]]
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code  # Latin-1 keysyms are the code points
    if code > 0xFF:
        return 0x01000000 + code  # X11's Unicode keysyms
    raise ValueError(f"no keysym for the control character {char!r}")


def keysym(name: str) -> int:
    """The X11 keysym for a key name or a single character.

    A single character maps to itself (``"a"``, ``"A"``, ``"é"``, ``"€"``;
    ``"\\n"`` is Return). Longer names are X11 names (``Return``, ``Page_Up``,
    ``F5``, ``Control_L``, ``minus``) or friendly aliases (``ctrl``, ``shift``,
    ``alt``, ``super``, ``meta``, ``enter``, ``esc``, ``pgup``...), in any case.

    Raises:
        ValueError: an unknown name.
    """
    if len(name) == 1:
        return _char_keysym(name)
    value = _X11_KEYSYMS.get(name)
    if value is None:
        value = _KEYSYMS_FOLDED.get(name.lower())
    if value is None:
        raise ValueError(f"unknown key name {name!r}")
    return value


def key_combo(combo: str) -> list[tuple[int, bool]]:
    """The ``(keysym, down)`` sequence that types a combo such as ``"ctrl+shift+t"``.

    Modifiers go down in order, the last key goes down and up, then the
    modifiers come up in reverse order. ``"ctrl++"`` is Control and plus.

    Raises:
        ValueError: an empty combo or an unknown key name.
    """
    text = combo.strip()
    if text == "+" or text.endswith("++"):
        head, last = text[:-1], "+"
        head = head.removesuffix("+")
        names = head.split("+") if head else []
    else:
        *names, last = text.split("+")
    parts = [name.strip() for name in (*names, last)]
    if not all(parts):
        raise ValueError(f"malformed key combo {combo!r}")
    keys = [keysym(part) for part in parts]
    *modifiers, key = keys
    return [
        *((m, True) for m in modifiers),
        (key, True),
        (key, False),
        *((m, False) for m in reversed(modifiers)),
    ]


def text_to_keys(text: str) -> list[tuple[int, bool]]:
    """The ``(keysym, down)`` presses and releases that type ``text``.

    Newlines (``\\n``, ``\\r\\n`` or ``\\r``) become Return and tabs Tab;
    capitals are sent as their own keysyms (VNC servers add Shift as needed).

    Raises:
        ValueError: a control character with no key.
    """
    keys: list[tuple[int, bool]] = []
    for char in text.replace("\r\n", "\n"):
        value = _char_keysym(char)
        keys.append((value, True))
        keys.append((value, False))
    return keys


# -- decoding tables ----------------------------------------------------------------------------

# Byte -> its packed palette indices (most significant bits first), for 1, 2 and 4 bits each.
_UNPACK: Final[Mapping[int, list[bytes]]] = {
    bits: [
        bytes((byte >> (8 - bits * (i + 1))) & ((1 << bits) - 1) for i in range(8 // bits))
        for byte in range(256)
    ]
    for bits in (1, 2, 4)
}
_ALPHA: Final = bytes([0]) + bytes([255]) * 255
_BYTE: Final = [bytes((i,)) for i in range(256)]
_INDICES: Final = [bytes(range(size)) for size in range(17)]


def _zrle_tile_bound(pixels: int, cpp: int) -> int:
    """The most bytes any valid encoding of a ZRLE tile of ``pixels`` pixels can take.

    Raw takes 1 + n*cpp; a palette takes at most 127 CPIXELs; every RLE run
    costs at most a CPIXEL or an index plus one length byte per 255 pixels.
    """
    return 1 + 127 * cpp + pixels * (cpp + 2)


def _apply_palette(indices: bytes | bytearray, palette: bytes | bytearray, cpp: int) -> bytearray:
    """Palette indices -> CPIXELs, one channel byte at a time (no per-pixel loop)."""
    out = bytearray(len(indices) * cpp)
    size = len(palette) // cpp
    for k in range(cpp):
        table = bytearray(256)
        table[:size] = palette[k::cpp]
        out[k::cpp] = indices.translate(table)
    return out


class _Short(Exception):
    """A ZRLE tile's data ends early (internal)."""


def _decode_zrle_tile(
    buf: bytearray, cpp: int, tw: int, th: int, band: bytearray, start: int, stride: int
) -> tuple[int, bytes | None]:
    """Decode the ZRLE tile at the start of ``buf`` into ``band``.

    The tile's rows go to ``band[start + row * stride:]``. Returns the bytes
    used and, for a solid tile, its CPIXEL.

    Raises:
        _Short: the data ends inside the tile.
        ProtocolError: an invalid tile.
    """
    n = tw * th
    row_bytes = tw * cpp
    kind = buf[0]
    off = 1
    solid: bytes | None = None
    if kind == 0:  # raw CPIXELs
        end = off + n * cpp
        if end > len(buf):
            raise _Short
        pixels: bytes | bytearray = buf[off:end]
        off = end
    elif kind == 1:  # solid
        end = off + cpp
        if end > len(buf):
            raise _Short
        solid = bytes(buf[off:end])
        row = solid * tw
        for y in range(th):
            at = start + y * stride
            band[at : at + row_bytes] = row
        return end, solid
    elif kind <= 16:  # packed palette
        end = off + kind * cpp
        palette = buf[off:end]
        bits = 1 if kind == 2 else 2 if kind <= 4 else 4
        per_row = (tw * bits + 7) // 8
        off, end = end, end + per_row * th
        if end > len(buf):
            raise _Short
        table = _UNPACK[bits]
        if (tw * bits) % 8 == 0:
            indices = b"".join(map(table.__getitem__, buf[off:end]))
        else:
            indices = b"".join(
                b"".join(map(table.__getitem__, buf[at : at + per_row]))[:tw]
                for at in range(off, end, per_row)
            )
        off = end
        if indices.translate(None, _INDICES[kind]):  # anything left is out of range
            raise ProtocolError(f"ZRLE palette index beyond a palette of {kind}")
        pixels = _apply_palette(indices, palette, cpp)
    elif kind == 128:  # plain RLE
        out = bytearray()
        left = n
        # Runs are ZRLE's hot loop: the length (1 + the sum of bytes up to the first
        # that is not 255) is decoded inline.
        try:
            while left > 0:
                pixel = buf[off : off + cpp]
                off += cpp
                run = 1
                while True:
                    byte = buf[off]
                    off += 1
                    run += byte
                    if byte != 255:
                        break
                if run > left:
                    raise ProtocolError("ZRLE run goes past the end of its tile")
                out += pixel * run
                left -= run
        except IndexError:
            raise _Short from None
        pixels = out
    elif kind >= 130:  # palette RLE
        size = kind - 128
        end = off + size * cpp
        palette = buf[off:end]
        off = end
        idx = bytearray()
        left = n
        try:
            while left > 0:
                index = buf[off]
                off += 1
                if index & 128:
                    index &= 127
                    run = 1
                    while True:
                        byte = buf[off]
                        off += 1
                        run += byte
                        if byte != 255:
                            break
                    if run > left:
                        raise ProtocolError("ZRLE run goes past the end of its tile")
                    idx += _BYTE[index] * run
                    left -= run
                else:
                    idx.append(index)
                    left -= 1
                if index >= size:
                    raise ProtocolError(f"ZRLE palette index beyond a palette of {size}")
        except IndexError:
            raise _Short from None
        pixels = _apply_palette(idx, palette, cpp)
    else:
        raise ProtocolError(f"unused ZRLE tile subencoding {kind}")
    if off > len(buf):
        raise _Short
    for y in range(th):
        at = start + y * stride
        band[at : at + row_bytes] = pixels[y * row_bytes : (y + 1) * row_bytes]
    return off, solid


# -- the protocol -------------------------------------------------------------------------------


class RFBProtocol:
    """The RFB protocol for one connection, as a client or as a server.

    Args:
        role: Which end this core plays.
        password: The VNC password. A client uses VNC Authentication when the
            server offers it and a password is given, else None. A server
            offers VNC Authentication when it has a password, else None.
            Needs the optional ``cryptography`` dependency.
        shared: (Client) ask to share the desktop with other clients.
        pixel_format: (Client) the format to ask for after ServerInit
            (``None``: keep the server's, which must be true colour).
            (Server) the native format announced in ServerInit.
        encodings: (Client) the encodings to announce, most preferred first
            (empty: send no SetEncodings, so Raw only).
        width, height, name: (Server) the framebuffer size and desktop name.
        security_types: (Server) the types to offer, from 1 (None) and 2 (VNC
            Authentication); default: 2 with a password, else 1.
        challenge: (Server) a fixed 16-byte challenge (default: random).
        zlib_level: (Server) the ZRLE compression level.
        max_width, max_height: The largest framebuffer accepted.
        max_name: The longest desktop name or failure reason accepted.
        max_cut_text: The longest clipboard text accepted.
        max_cursor: The largest cursor side accepted.
        max_encodings: (Server) the most encodings a SetEncodings may list.

    Every length read from the wire is checked against these limits before
    anything is buffered for it, so :attr:`buffered_bytes` stays bounded.

    Raises:
        ValueError: an argument that does not fit the role.
        ImportError: a password without the ``cryptography`` dependency.
    """

    def __init__(
        self,
        role: Role = Role.CLIENT,
        *,
        password: str | bytes | None = None,
        shared: bool = True,
        pixel_format: PixelFormat | None = DEFAULT_PIXEL_FORMAT,
        encodings: Sequence[int] = DEFAULT_ENCODINGS,
        width: int | None = None,
        height: int | None = None,
        name: str = "orgo_async",
        security_types: Sequence[int] | None = None,
        challenge: bytes | None = None,
        zlib_level: int = 1,
        max_width: int = 8192,
        max_height: int = 8192,
        max_name: int = 4096,
        max_cut_text: int = 1 << 20,
        max_cursor: int = 256,
        max_encodings: int = 1024,
    ) -> None:
        self.role = role
        self.state = RFBState.PROTOCOL_VERSION
        self.version: tuple[int, int] | None = None
        """The protocol version agreed on, such as ``(3, 8)``."""
        self.width = 0
        self.height = 0
        self.name = ""
        self.pixel_format: PixelFormat | None = None
        """The pixel format rectangles travel in (the client's, once it set one)."""
        self.encodings: tuple[int, ...] = ()
        """The encodings the client announced (``SetEncodings``)."""
        self.shared = shared
        self.auth_failed = False
        """(Client) the server rejected the VNC password (as opposed to other failures)."""

        self.max_width = max_width
        self.max_height = max_height
        self.max_name = max_name
        self.max_cut_text = max_cut_text
        self.max_cursor = max_cursor
        self.max_encodings = max_encodings

        self._password = None if password is None else _password_bytes(password)
        if self._password is not None:
            _des_ecb()  # fail now, with the install hint, rather than mid-handshake
        self._out: list[bytes] = []
        self._events: list[RFBEvent] = []
        self._failed: ProtocolError | None = None
        self._eof = False
        self._codec: _PixelCodec | None = None
        self._inflate: Any = None  # zlib.Decompress, created by the first ZRLE rectangle
        self._zbuf = bytearray()
        # The biggest single read: a band of raw pixels, a text, a name, a cursor,
        # a full colour map (65535 entries of 6 bytes).
        cursor_bytes = max_cursor * max_cursor * 4 + (max_cursor + 7) // 8 * max_cursor
        limit = max(_RAW_BAND_BYTES, max_cut_text, max_name, cursor_bytes, 6 * 0xFFFF)
        self._reader = StreamReader(limit=limit)

        if role is Role.CLIENT:
            if width is not None or height is not None or security_types is not None:
                raise ValueError("width, height and security_types are for the server role")
            if challenge is not None:
                raise ValueError("challenge is for the server role")
            if pixel_format is not None:
                _PixelCodec(pixel_format)  # reject an unusable format now
            self._requested_format = pixel_format
            self._requested_encodings = tuple(encodings)
            for encoding in self._requested_encodings:
                _check_s32("encoding", encoding)
            self._parser = self._client()
        else:
            if width is None or height is None:
                raise ValueError("the server role needs width and height")
            _check_size(width, height, max_width, max_height)
            self.width, self.height, self.name = width, height, name
            if pixel_format is None:
                pixel_format = DEFAULT_PIXEL_FORMAT
            self._codec = _PixelCodec(pixel_format)
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
            self._deflate = zlib.compressobj(zlib_level)
            self._parser = self._server()
            self._out.append(b"RFB 003.008\n")
        # Run the parser to its first read (a server has already buffered its greeting).
        next(self._parser)

    # -- the four verbs -------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer, however they were split.

        Raises:
            ProtocolError: the peer broke the protocol (or failed the handshake:
                no common security type, a rejected password, a refusal with the
                server's reason). The core is then failed for good; every later
                call raises the same error.
            RuntimeError: data after :meth:`receive_eof`.
        """
        if self._failed is not None:
            raise self._failed
        if self._eof:
            raise RuntimeError("receive_data() after receive_eof()")
        if self.state is RFBState.CLOSED:
            return  # a refused peer's leftovers: nothing more is parsed
        self._reader.feed_data(data)
        self._run()

    def receive_eof(self) -> None:
        """Tell the core the peer closed the stream.

        Raises:
            ProtocolError: the stream ended inside a message or the handshake.
        """
        if self._eof or self._failed is not None:
            return
        self._eof = True
        if self.state is RFBState.CLOSED:
            return
        self._reader.feed_eof()
        self._run()

    def events_received(self) -> list[RFBEvent]:
        """The events parsed since the last call, in order."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """The bytes to write to the peer, in order; the buffer is emptied."""
        out, self._out = self._out, []
        return out

    @property
    def buffered_bytes(self) -> int:
        """Bytes held while waiting for the rest of a message (bounded by the limits)."""
        return len(self._reader.buffer) + len(self._zbuf)

    def supports(self, encoding: int) -> bool:
        """(Server) whether the client announced ``encoding`` (Raw always counts)."""
        return encoding == ENCODING_RAW or encoding in self.encodings

    # -- client messages ------------------------------------------------------------------

    def send_set_pixel_format(self, pixel_format: PixelFormat) -> None:
        """Ask for pixels in ``pixel_format`` from now on.

        Updates already on their way still use the old format (RFC 6143
        §7.5.1), so change it only when no update is pending.

        Raises:
            ValueError: a format this core cannot decode.
        """
        self._require(Role.CLIENT, connected=True)
        self._set_format(pixel_format)

    def send_set_encodings(self, encodings: Sequence[int]) -> None:
        """Announce the encodings this client accepts, most preferred first."""
        self._require(Role.CLIENT, connected=True)
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
        self._require(Role.CLIENT, connected=True)
        w = self.width - x if width is None else width
        h = self.height - y if height is None else height
        for label, value in (("x", x), ("y", y), ("width", w), ("height", h)):
            _check_u16(label, value)
        self._out.append(struct.pack(">BBHHHH", _UPDATE_REQUEST, int(incremental), x, y, w, h))

    def send_key(self, keysym: int, down: bool) -> None:
        """Press (``down=True``) or release an X11 keysym (see :func:`keysym`)."""
        self._require(Role.CLIENT, connected=True)
        if not 0 <= keysym <= 0xFFFFFFFF:
            raise ValueError(f"a keysym is a u32; got {keysym!r}")
        self._out.append(bytes((_KEY_EVENT, int(down), 0, 0)) + _U32.pack(keysym))

    def send_keys(self, keys: Iterable[tuple[int, bool]]) -> None:
        """Several key events, as made by :func:`key_combo` or :func:`text_to_keys`."""
        for value, down in keys:
            self.send_key(value, down)

    def send_pointer(self, x: int, y: int, buttons: int = 0) -> None:
        """Move the pointer, with ``buttons`` held (a mask of ``BUTTON_*`` and ``WHEEL_*``).

        A wheel click is a press and a release of its bit at the same position.
        """
        self._require(Role.CLIENT, connected=True)
        if not 0 <= buttons <= 0xFF:
            raise ValueError(f"the button mask is a u8; got {buttons!r}")
        _check_u16("x", x)
        _check_u16("y", y)
        self._out.append(bytes((_POINTER_EVENT, buttons)) + _U16.pack(x) + _U16.pack(y))

    def send_cut_text(self, text: str) -> None:
        """Send clipboard text to the peer (ClientCutText, or ServerCutText from a server).

        Raises:
            ValueError: ``text`` has characters outside Latin-1 (RFB can't carry them).
        """
        if self.role is Role.SERVER:
            self._require(Role.SERVER, connected=True)
            self._out.append(bytes((_SERVER_CUT_TEXT, 0, 0, 0)) + _latin1(text))
            return
        self._require(Role.CLIENT, connected=True)
        self._out.append(bytes((_CLIENT_CUT_TEXT, 0, 0, 0)) + _latin1(text))

    def send_set_desktop_size(
        self, width: int, height: int, screens: Sequence[Screen] | None = None
    ) -> None:
        """Ask the server to resize (SetDesktopSize; needs ExtendedDesktopSize).

        The answer is a :class:`DesktopResized` with ``reason`` 1.
        """
        self._require(Role.CLIENT, connected=True)
        _check_size(width, height, self.max_width, self.max_height)
        layout = tuple(screens) if screens else (Screen(0, 0, 0, width, height),)
        if len(layout) > 255:
            raise ValueError("at most 255 screens")
        self._out.append(
            bytes((_SET_DESKTOP_SIZE, 0))
            + _U16.pack(width)
            + _U16.pack(height)
            + bytes((len(layout), 0))
            + _pack_screens(layout)
        )

    # -- server messages ------------------------------------------------------------------

    def send_framebuffer_update(
        self,
        rects: Sequence[_ServerRect],
        *,
        encoding: int | None = None,
    ) -> None:
        """Send one FramebufferUpdate holding ``rects``, in the client's pixel format.

        Pixels go as ``encoding`` (Raw or ZRLE), by default the first of those the
        client announced. A :class:`RectCopy` needs CopyRect, a
        :class:`DesktopResized` needs DesktopSize or ExtendedDesktopSize (and
        changes :attr:`width` and :attr:`height` when its status is 0), a
        :class:`CursorShape` needs Cursor; check with :meth:`supports`.

        Raises:
            ValueError: a rectangle outside the framebuffer, pixels of the wrong
                length, or an encoding the client did not announce.
        """
        self._require(Role.SERVER, connected=True)
        pixel_encoding = self._pick_encoding(encoding)
        self._check_rects(rects)
        parts = [bytes((_FRAMEBUFFER_UPDATE, 0)) + _U16.pack(len(rects))]
        for rect in rects:
            parts.append(self._encode_rect(rect, pixel_encoding))
        self._out.append(b"".join(parts))

    def send_bell(self) -> None:
        """Ring the client's bell."""
        self._require(Role.SERVER, connected=True)
        self._out.append(bytes((_BELL,)))

    # -- internals: state and sending -----------------------------------------------------

    def _set_state(self, state: RFBState) -> None:
        if state not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"no RFB transition from {self.state.name} to {state.name}")
        self.state = state

    def _require(self, role: Role, *, connected: bool) -> None:
        if self.role is not role:
            raise RuntimeError(f"only the {role.value} sends this message")
        if connected and self.state is not RFBState.CONNECTED:
            raise RuntimeError(f"the RFB connection is not ready (state {self.state.name})")

    def _run(self) -> None:
        """Resume the parser; turn whatever it raises into one recorded ProtocolError."""
        try:
            next(self._parser)
        except StopIteration:
            return
        except ProtocolError as exc:
            self._fail(exc)
            raise
        except EOFError as exc:
            where = self.state.name
            during = "a message" if self.state is RFBState.CONNECTED else "the handshake"
            error = ProtocolError(f"the connection closed in the middle of {during} ({where})")
            self._fail(error)
            raise error from exc
        except (ValueError, struct.error, zlib.error) as exc:
            error = ProtocolError(f"malformed RFB data ({self.state.name}): {exc}")
            self._fail(error)
            raise error from exc

    def _fail(self, error: ProtocolError) -> None:
        self._failed = error
        self.state = RFBState.FAILED
        # Nothing more will be parsed: drop what was waiting.
        self._reader.buffer = bytearray()
        self._zbuf = bytearray()

    def _set_format(self, pixel_format: PixelFormat) -> None:
        self._codec = _PixelCodec(pixel_format)
        self.pixel_format = pixel_format
        self._out.append(bytes((_SET_PIXEL_FORMAT, 0, 0, 0)) + pixel_format.pack())

    def _send_encodings(self, encodings: tuple[int, ...]) -> None:
        if len(encodings) > 0xFFFF:
            raise ValueError("at most 65535 encodings")
        for encoding in encodings:
            _check_s32("encoding", encoding)
        self.encodings = encodings
        self._out.append(
            bytes((_SET_ENCODINGS, 0))
            + _U16.pack(len(encodings))
            + struct.pack(f">{len(encodings)}i", *encodings)
        )

    # -- internals: the client parser -----------------------------------------------------

    def _client(self) -> Generator[None, None, None]:
        read = self._reader.read_exact
        version = yield from self._read_version()
        self.version = version = min(version, (3, 8))
        self._out.append(b"RFB %03d.%03d\n" % version)
        self._set_state(RFBState.SECURITY)

        if version == (3, 3):
            (chosen,) = _U32.unpack((yield from read(4)))
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
            chosen = self._choose_security(offered)
            self._out.append(bytes((chosen,)))

        if chosen == SECURITY_VNC_AUTH:
            self._set_state(RFBState.VNC_AUTH)
            challenge = yield from read(16)
            assert self._password is not None
            self._out.append(vnc_auth_response(challenge, self._password))
            self._set_state(RFBState.SECURITY_RESULT)
        elif version == (3, 8):
            self._set_state(RFBState.SECURITY_RESULT)

        if self.state is RFBState.SECURITY_RESULT:
            (result,) = _U32.unpack((yield from read(4)))
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

        self._out.append(bytes((int(self.shared),)))
        self._set_state(RFBState.INIT)

        width, height, raw_format, name_length = _SERVER_INIT.unpack((yield from read(24)))
        server_format = PixelFormat.unpack(raw_format)
        if name_length > self.max_name:
            raise ProtocolError(f"desktop name of {name_length} bytes exceeds {self.max_name}")
        name = _decode_text((yield from read(name_length)))
        self._check_desktop(width, height)
        self.width, self.height, self.name = width, height, name
        if self._requested_format is not None:
            self._set_format(self._requested_format)
        else:
            problem = server_format.problem()
            if problem is not None:
                raise ProtocolError(
                    f"the server's pixel format is {problem}; pass pixel_format= to ask for another"
                )
            self._codec = _PixelCodec(server_format)
            self.pixel_format = server_format
        if self._requested_encodings:
            self._send_encodings(self._requested_encodings)
        self._set_state(RFBState.CONNECTED)
        self._events.append(ServerInit(width, height, name, server_format))
        self._events.append(Ready())

        handlers = {
            _FRAMEBUFFER_UPDATE: self._framebuffer_update,
            _SET_COLOUR_MAP: self._colour_map,
            _BELL: self._bell,
            _SERVER_CUT_TEXT: self._server_cut_text,
        }
        yield from self._dispatch(handlers, "server")

    def _dispatch(
        self, handlers: dict[int, Callable[[], Generator[None, None, None]]], peer: str
    ) -> Generator[None, None, None]:
        """Read message types until EOF, handing each message to its parser."""
        read = self._reader.read_exact
        while True:
            if (yield from self._reader.at_eof()):
                self._set_state(RFBState.CLOSED)
                return
            kind = (yield from read(1))[0]
            handler = handlers.get(kind)
            if handler is None:
                raise ProtocolError(f"unknown {peer} message type {kind}")
            yield from handler()

    def _read_version(self) -> Generator[None, None, tuple[int, int]]:
        greeting = yield from self._reader.read_exact(12)
        match = _VERSION_RE.fullmatch(greeting)
        if match is None:
            raise ProtocolError(f"not an RFB ProtocolVersion: {greeting!r}")
        major, minor = int(match[1]), int(match[2])
        if (major, minor) < (3, 3):
            raise ProtocolError(f"unsupported RFB version {major}.{minor}")
        if major == 3 and minor < 7:
            return (3, 3)  # 3.5 and friends speak 3.3 (RFC 6143 §7.1.1)
        if major == 3 and minor < 8:
            return (3, 7)
        return (3, 8)  # 3.8, Apple's 3.889, RealVNC's 4.x and 5.0 all speak 3.8

    def _read_reason(self) -> Generator[None, None, str]:
        (length,) = _U32.unpack((yield from self._reader.read_exact(4)))
        if length > self.max_name:
            raise ProtocolError(f"failure reason of {length} bytes exceeds {self.max_name}")
        return _decode_text((yield from self._reader.read_exact(length)))

    def _choose_security(self, offered: list[int]) -> int:
        if self._password is not None and SECURITY_VNC_AUTH in offered:
            return SECURITY_VNC_AUTH
        if SECURITY_NONE in offered:
            return SECURITY_NONE
        if SECURITY_VNC_AUTH in offered:
            raise ProtocolError(
                "the server requires VNC authentication (2) but no password was given"
            )
        names = ", ".join(_security_name(t) for t in offered)
        raise ProtocolError(
            f"no supported security type: the server offers only {names}; "
            "this client supports None (1) and VNC Authentication (2)"
        )

    def _check_desktop(self, width: int, height: int) -> None:
        if width > self.max_width or height > self.max_height:
            raise ProtocolError(
                f"framebuffer of {width}x{height} exceeds {self.max_width}x{self.max_height}"
            )

    def _framebuffer_update(self) -> Generator[None, None, None]:
        read = self._reader.read_exact
        (count,) = _U16.unpack((yield from read(3))[1:])
        self._events.append(FramebufferUpdateStart(count))
        for _ in range(count):
            x, y, w, h, encoding = _RECT.unpack((yield from read(12)))
            if encoding == ENCODING_LAST_RECT:
                break
            if encoding in (ENCODING_RAW, ENCODING_COPYRECT, ENCODING_HEXTILE, ENCODING_ZRLE):
                if x + w > self.width or y + h > self.height:
                    raise ProtocolError(
                        f"rectangle {w}x{h}+{x}+{y} (encoding {encoding}) is outside "
                        f"the {self.width}x{self.height} framebuffer"
                    )
            if encoding == ENCODING_RAW:
                yield from self._raw(x, y, w, h)
            elif encoding == ENCODING_COPYRECT:
                src_x, src_y = struct.unpack(">HH", (yield from read(4)))
                if src_x + w > self.width or src_y + h > self.height:
                    raise ProtocolError(f"CopyRect source {w}x{h}+{src_x}+{src_y} is outside")
                self._events.append(RectCopy(src_x, src_y, x, y, w, h))
            elif encoding == ENCODING_HEXTILE:
                yield from self._hextile(x, y, w, h)
            elif encoding == ENCODING_ZRLE:
                yield from self._zrle(x, y, w, h)
            elif encoding == ENCODING_DESKTOP_SIZE:
                self._check_desktop(w, h)
                self.width, self.height = w, h
                self._events.append(DesktopResized(w, h))
            elif encoding == ENCODING_EXTENDED_DESKTOP_SIZE:
                header = yield from read(4)
                screens = _unpack_screens((yield from read(header[0] * _SCREEN.size)))
                self._check_desktop(w, h)
                # x and y carry the reason and the status; a failed request changes nothing.
                if y == 0:
                    self.width, self.height = w, h
                self._events.append(DesktopResized(w, h, x, y, screens))
            elif encoding == ENCODING_CURSOR:
                yield from self._cursor(x, y, w, h)
            else:
                # Its length is unknown, so the stream can't be followed past it.
                raise ProtocolError(f"unsupported encoding {encoding} in a FramebufferUpdate")
        self._events.append(FramebufferUpdateEnd())

    def _raw(self, x: int, y: int, w: int, h: int) -> Generator[None, None, None]:
        codec = self._codec
        assert codec is not None
        row_bytes = w * codec.bpp
        if not row_bytes or not h:
            return
        rows = max(1, _RAW_BAND_BYTES // row_bytes)
        for top in range(0, h, rows):
            band = min(rows, h - top)
            data = yield from self._reader.read_exact(band * row_bytes)
            self._events.append(RectPixels(x, y + top, w, band, codec.to_rgb(data)))

    def _hextile(self, x: int, y: int, w: int, h: int) -> Generator[None, None, None]:
        codec = self._codec
        assert codec is not None
        read = self._reader.read_exact
        bpp = codec.bpp
        stride = w * bpp
        # Background and foreground carry over from tile to tile within the rectangle.
        bg: bytes | None = None
        fg: bytes | None = None
        for top in range(0, h, 16):
            th = min(16, h - top)
            band = bytearray(stride * th)
            fill: bytes | None = None  # the band's colour while every tile is plain
            plain = True
            for left in range(0, w, 16):
                tw = min(16, w - left)
                tile_row = tw * bpp
                base = left * bpp
                mask = (yield from read(1))[0]
                if mask & 1:  # raw: the other bits don't matter
                    data = yield from read(tile_row * th)
                    for row in range(th):
                        at = base + row * stride
                        band[at : at + tile_row] = data[row * tile_row : (row + 1) * tile_row]
                    plain = False
                    continue
                if mask > 0x1F:
                    raise ProtocolError(f"unknown Hextile subencoding bits {mask:#04x}")
                need = (bpp if mask & 2 else 0) + (bpp if mask & 4 else 0) + (1 if mask & 8 else 0)
                head = (yield from read(need)) if need else b""
                at = 0
                if mask & 2:
                    bg, at = head[:bpp], bpp
                if mask & 4:
                    fg, at = head[at : at + bpp], at + bpp
                if bg is None:
                    raise ProtocolError("Hextile tile without a background colour")
                row_fill = bg * tw
                for row in range(th):
                    band[base + row * stride : base + row * stride + tile_row] = row_fill
                if plain:
                    if fill is None:
                        fill = bg
                    elif fill != bg:
                        plain = False
                if not mask & 8:
                    continue
                count = head[at]
                coloured = bool(mask & 16)
                if not count:
                    continue
                plain = False
                if not coloured and fg is None:
                    raise ProtocolError("Hextile subrectangles without a foreground colour")
                size = bpp + 2 if coloured else 2
                data = yield from read(count * size)
                if coloured:
                    subrects: Iterable[tuple[bytes, int, int]] = [
                        (data[at : at + bpp], data[at + bpp], data[at + bpp + 1])
                        for at in range(0, count * size, size)
                    ]
                else:
                    assert fg is not None
                    subrects = zip(repeat(fg), data[0::2], data[1::2], strict=False)
                # The hot loop of Hextile: keep it to slice assignments.
                for colour, xy, wh in subrects:
                    sx, sy, sw, sh = xy >> 4, xy & 15, (wh >> 4) + 1, (wh & 15) + 1
                    if sx + sw > tw or sy + sh > th:
                        raise ProtocolError(
                            f"Hextile subrectangle {sw}x{sh}+{sx}+{sy} outside its {tw}x{th} tile"
                        )
                    span = colour * sw
                    start = base + sx * bpp + sy * stride
                    end = start + len(span)
                    if sh == 1:
                        band[start:end] = span
                        continue
                    for _ in range(sh):
                        band[start:end] = span
                        start += stride
                        end += stride
            if plain and fill is not None:
                self._events.append(RectFill(x, y + top, w, th, codec.to_rgb(fill)))
            elif w:
                self._events.append(RectPixels(x, y + top, w, th, codec.to_rgb(band)))

    def _zrle(self, x: int, y: int, w: int, h: int) -> Generator[None, None, None]:
        codec = self._codec
        assert codec is not None
        reader = self._reader
        (length,) = _U32.unpack((yield from reader.read_exact(4)))
        cpp = codec.cpp
        tiles_across = (w + 63) // 64
        bound = sum(
            _zrle_tile_bound(min(64, w - left) * min(64, h - top), cpp)
            for top in range(0, h, 64)
            for left in range(0, w, 64)
        )
        # Deflate's worst case is a little over its input; anything longer is not ZRLE.
        if length > bound + (bound >> 10) + 1024:
            raise ProtocolError(f"ZRLE data of {length} bytes is too long for a {w}x{h} rectangle")
        if self._inflate is None:
            # One zlib stream for the whole connection: it is never reset (RFC 6143 §7.7.6).
            self._inflate = zlib.decompressobj()
        inflate = self._inflate
        zbuf = self._zbuf
        remaining = length
        produced = 0
        pending = False  # the last inflate filled its output: more may be waiting inside zlib

        def more_left() -> bool:
            return bool(remaining or inflate.unconsumed_tail or pending)

        def inflate_some() -> Generator[None, None, bytes]:
            """Up to _ZLIB_CHUNK more bytes of this rectangle's data, reading if need be."""
            nonlocal remaining, pending
            if inflate.unconsumed_tail:
                chunk = inflate.unconsumed_tail
            elif remaining:
                chunk = yield from reader.read_some(min(remaining, _ZLIB_CHUNK))
                remaining -= len(chunk)
            else:
                chunk = b""
            out: bytes = inflate.decompress(chunk, _ZLIB_CHUNK)
            pending = len(out) == _ZLIB_CHUNK
            return out

        stride = w * cpp
        for top in range(0, h if w else 0, 64):
            th = min(64, h - top)
            band = bytearray(stride * th)
            fill: bytes | None = None
            plain = True
            for column in range(tiles_across):
                left = column * 64
                tw = min(64, w - left)
                need = _zrle_tile_bound(tw * th, cpp)
                # Inflate until the buffer holds the longest this tile could be (or all
                # there is), so the tile decoder never has to stop half-way.
                while len(zbuf) < need and more_left():
                    out = yield from inflate_some()
                    produced += len(out)
                    if produced > bound:
                        raise ProtocolError(f"ZRLE data inflates past {bound} bytes")
                    zbuf += out
                if not zbuf:
                    raise ProtocolError("ZRLE data ends before its last tile")
                try:
                    used, solid = _decode_zrle_tile(zbuf, cpp, tw, th, band, left * cpp, stride)
                except _Short:
                    raise ProtocolError("ZRLE data ends inside a tile") from None
                del zbuf[:used]
                if plain:
                    if solid is None or (fill is not None and fill != solid):
                        plain = False
                    fill = solid
            if plain and fill is not None:
                self._events.append(RectFill(x, y + top, w, th, codec.to_rgb(fill, cpixel=True)))
            else:
                self._events.append(RectPixels(x, y + top, w, th, codec.to_rgb(band, cpixel=True)))
        # The rest of the rectangle's bytes (a flush marker, typically) must still go
        # through zlib to keep the stream in step, and must not hold more pixels.
        while not zbuf and more_left():
            zbuf += yield from inflate_some()
        if zbuf:
            raise ProtocolError("ZRLE rectangle holds more data than its tiles")

    def _cursor(self, x: int, y: int, w: int, h: int) -> Generator[None, None, None]:
        codec = self._codec
        assert codec is not None
        if w > self.max_cursor or h > self.max_cursor:
            raise ProtocolError(f"cursor of {w}x{h} exceeds {self.max_cursor}x{self.max_cursor}")
        pixels = yield from self._reader.read_exact(w * h * codec.bpp)
        mask = yield from self._reader.read_exact((w + 7) // 8 * h)
        self._events.append(CursorShape(x, y, w, h, codec.to_rgb(pixels), mask))

    def _colour_map(self) -> Generator[None, None, None]:
        first, count = struct.unpack(">xHH", (yield from self._reader.read_exact(5)))
        data = yield from self._reader.read_exact(count * 6)
        values = struct.unpack(f">{count * 3}H", data)
        colours = tuple(zip(values[0::3], values[1::3], values[2::3], strict=True))
        self._events.append(ColourMap(first, colours))

    def _bell(self) -> Generator[None, None, None]:
        self._events.append(Bell())
        yield from ()  # a generator, like the other handlers

    def _server_cut_text(self) -> Generator[None, None, None]:
        text = yield from self._read_cut_text()
        self._events.append(ServerCutText(text))

    def _read_cut_text(self) -> Generator[None, None, str]:
        (length,) = _U32.unpack((yield from self._reader.read_exact(7))[3:])
        if length > self.max_cut_text:
            raise ProtocolError(f"clipboard text of {length} bytes exceeds {self.max_cut_text}")
        return (yield from self._reader.read_exact(length)).decode("latin-1")

    # -- internals: the server parser -----------------------------------------------------

    def _server(self) -> Generator[None, None, None]:
        read = self._reader.read_exact
        version = yield from self._read_version()
        self.version = version = min(version, (3, 8))
        self._set_state(RFBState.SECURITY)
        types = self._security_types
        if version == (3, 3):
            # The server chooses in 3.3; prefer the password when there is one.
            chosen = SECURITY_VNC_AUTH if SECURITY_VNC_AUTH in types else SECURITY_NONE
            self._out.append(_U32.pack(chosen))
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
            self._out.append(_U32.pack(0))
        elif version == (3, 8):
            self._set_state(RFBState.SECURITY_RESULT)
            self._out.append(_U32.pack(0))
        self._set_state(RFBState.INIT)

        self.shared = (yield from read(1))[0] != 0
        assert self.pixel_format is not None
        name = self.name.encode()
        self._out.append(
            _SERVER_INIT.pack(self.width, self.height, self.pixel_format.pack(), len(name)) + name
        )
        self._set_state(RFBState.CONNECTED)
        self._events.append(Ready())

        handlers = {
            _SET_PIXEL_FORMAT: self._set_pixel_format_message,
            _SET_ENCODINGS: self._set_encodings_message,
            _UPDATE_REQUEST: self._update_request_message,
            _KEY_EVENT: self._key_message,
            _POINTER_EVENT: self._pointer_message,
            _CLIENT_CUT_TEXT: self._client_cut_text_message,
            _SET_DESKTOP_SIZE: self._set_desktop_size_message,
        }
        yield from self._dispatch(handlers, "client")

    def _reject(self, reason: str) -> None:
        """Buffer a failed SecurityResult (with its reason on 3.8) and stop parsing."""
        failure = _U32.pack(1)
        if self.version == (3, 8):
            text = reason.encode()
            failure += _U32.pack(len(text)) + text
        self._out.append(failure)
        self._set_state(RFBState.CLOSED)

    def _set_pixel_format_message(self) -> Generator[None, None, None]:
        pixel_format = PixelFormat.unpack((yield from self._reader.read_exact(19))[3:])
        problem = pixel_format.problem()
        if problem is not None:
            raise ProtocolError(f"the client asked for {problem}")
        self._codec = _PixelCodec(pixel_format)
        self.pixel_format = pixel_format
        self._events.append(SetPixelFormat(pixel_format))

    def _set_encodings_message(self) -> Generator[None, None, None]:
        (count,) = _U16.unpack((yield from self._reader.read_exact(3))[1:])
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
        screens = _unpack_screens((yield from self._reader.read_exact(count * _SCREEN.size)))
        self._events.append(SetDesktopSize(w, h, screens))

    # -- internals: server encoders -------------------------------------------------------

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

    def _check_rects(self, rects: Sequence[_ServerRect]) -> None:
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
                _check_size(rect.width, rect.height, self.max_width, self.max_height)
                _check_u16("reason", rect.reason)
                _check_u16("status", rect.status)
                if len(rect.screens) > 255:
                    raise ValueError("at most 255 screens")
                _pack_screens(rect.screens)
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
                    _check_u16(label, value)
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

    def _encode_rect(self, rect: _ServerRect, encoding: int) -> bytes:
        """One rectangle, already checked by :meth:`_check_rects`."""
        codec = self._codec
        assert codec is not None
        if isinstance(rect, DesktopResized):
            return self._encode_resize(rect)
        if isinstance(rect, CursorShape):
            header = _RECT.pack(rect.hotspot_x, rect.hotspot_y, rect.width, rect.height, -239)
            return header + codec.from_rgb(rect.rgb) + rect.mask
        x, y, w, h = rect.x, rect.y, rect.width, rect.height
        if isinstance(rect, RectCopy):
            return _RECT.pack(x, y, w, h, ENCODING_COPYRECT) + struct.pack(
                ">HH", rect.src_x, rect.src_y
            )
        if isinstance(rect, RectFill):
            if encoding == ENCODING_ZRLE:
                tile = b"\x01" + codec.from_rgb(rect.rgb, cpixel=True)
                return self._zrle_rect(x, y, w, h, tile * (((w + 63) // 64) * ((h + 63) // 64)))
            return _RECT.pack(x, y, w, h, ENCODING_RAW) + codec.from_rgb(rect.rgb) * (w * h)
        if encoding == ENCODING_ZRLE:
            return self._zrle_rect(x, y, w, h, self._zrle_tiles(w, h, rect.rgb))
        return _RECT.pack(x, y, w, h, ENCODING_RAW) + codec.from_rgb(rect.rgb)

    def _zrle_tiles(self, w: int, h: int, rgb: bytes) -> bytes:
        """ZRLE tiles: solid ones as subencoding 1, the rest raw."""
        codec = self._codec
        assert codec is not None
        cpp = codec.cpp
        pixels = codec.from_rgb(rgb, cpixel=True)
        stride = w * cpp
        out = bytearray()
        for top in range(0, h, 64):
            th = min(64, h - top)
            for left in range(0, w, 64):
                tw = min(64, w - left)
                begin = top * stride + left * cpp
                rows = [
                    pixels[at : at + tw * cpp] for at in range(begin, begin + th * stride, stride)
                ]
                first = rows[0][:cpp]
                solid_row = first * tw
                if all(row == solid_row for row in rows):
                    out += b"\x01" + first
                else:
                    out += b"\x00"
                    out += b"".join(rows)
        return bytes(out)

    def _zrle_rect(self, x: int, y: int, w: int, h: int, tiles: bytes) -> bytes:
        # A sync flush per rectangle: the client can inflate it without the next one.
        data = self._deflate.compress(tiles) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return _RECT.pack(x, y, w, h, ENCODING_ZRLE) + _U32.pack(len(data)) + data

    def _encode_resize(self, rect: DesktopResized) -> bytes:
        w, h = rect.width, rect.height
        if rect.status == 0:
            self.width, self.height = w, h
        if self.supports(ENCODING_EXTENDED_DESKTOP_SIZE):
            screens = rect.screens or (Screen(0, 0, 0, w, h),)
            # ExtendedDesktopSize reuses x and y for the reason and the status.
            header = _RECT.pack(rect.reason, rect.status, w, h, ENCODING_EXTENDED_DESKTOP_SIZE)
            return header + bytes((len(screens), 0, 0, 0)) + _pack_screens(screens)
        return _RECT.pack(0, 0, w, h, ENCODING_DESKTOP_SIZE)


_ServerRect = RectPixels | RectFill | RectCopy | DesktopResized | CursorShape
"""What :meth:`RFBProtocol.send_framebuffer_update` accepts."""


# -- helpers ------------------------------------------------------------------------------------


def _security_name(value: int) -> str:
    name = _SECURITY_NAMES.get(value)
    return f"{name} ({value})" if name else f"type {value}"


def _decode_text(data: bytes) -> str:
    """Names and reasons: UTF-8 when valid (current servers), else Latin-1 (older ones)."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _latin1(text: str) -> bytes:
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"RFB clipboard text must be Latin-1; {text[exc.start : exc.end]!r} is not"
        ) from None
    return _U32.pack(len(data)) + data


def _check_u16(label: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{label} must be from 0 to 65535; got {value!r}")


def _check_s32(label: str, value: int) -> None:
    if not -(1 << 31) <= value < 1 << 31:
        raise ValueError(f"{label} must be a signed 32-bit integer; got {value!r}")


def _check_size(width: int, height: int, max_width: int, max_height: int) -> None:
    if not (1 <= width <= max_width and 1 <= height <= max_height):
        raise ValueError(f"size {width}x{height} is outside 1x1..{max_width}x{max_height}")


def _pack_screens(screens: Iterable[Screen]) -> bytes:
    try:
        return b"".join(_SCREEN.pack(s.id, s.x, s.y, s.width, s.height, s.flags) for s in screens)
    except struct.error as exc:
        raise ValueError(f"a screen does not fit the wire format: {exc}") from None


def _unpack_screens(data: bytes) -> tuple[Screen, ...]:
    return tuple(Screen(*fields) for fields in _SCREEN.iter_unpack(data))
