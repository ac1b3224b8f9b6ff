"""The RFB wire format both roles share: message types, structures, checks, text."""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Generator, Iterable
from typing import Final

from .._reader import StreamReader
from .events import Screen


class ClientMessage(enum.IntEnum):
    """The types of the messages a client sends (RFC 6143 §7.5, rfbproto for SetDesktopSize)."""

    SET_PIXEL_FORMAT = 0
    SET_ENCODINGS = 2
    UPDATE_REQUEST = 3
    KEY_EVENT = 4
    POINTER_EVENT = 5
    CUT_TEXT = 6
    SET_DESKTOP_SIZE = 251


class ServerMessage(enum.IntEnum):
    """The types of the messages a server sends (RFC 6143 §7.6)."""

    FRAMEBUFFER_UPDATE = 0
    SET_COLOUR_MAP = 1
    BELL = 2
    CUT_TEXT = 3


U16: Final = struct.Struct(">H")
U32: Final = struct.Struct(">I")
RECT: Final = struct.Struct(">HHHHi")
SERVER_INIT: Final = struct.Struct(">HH16sI")
SCREEN: Final = struct.Struct(">IHHHHI")

VERSION_RE: Final = re.compile(rb"RFB (\d{3})\.(\d{3})\n")

RAW_BAND_BYTES: Final = 1 << 20
"""Raw rectangles are read and converted in bands of about this many bytes, so a
huge rectangle neither needs a huge buffer nor delays every pixel until its end."""


def password_bytes(password: str | bytes) -> bytes:
    return password.encode() if isinstance(password, str) else bytes(password)


def decode_text(data: bytes) -> str:
    """Names and reasons: UTF-8 when valid (current servers), else Latin-1 (older ones)."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.decode("latin-1")


def cut_text(kind: int, text: str) -> bytes:
    """A ClientCutText or ServerCutText message.

    Raises:
        ValueError: ``text`` has characters outside Latin-1 (RFB can't carry them).
    """
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"RFB clipboard text must be Latin-1; {text[exc.start : exc.end]!r} is not"
        ) from None
    return bytes((kind, 0, 0, 0)) + U32.pack(len(data)) + data


def check_u16(label: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{label} must be from 0 to 65535; got {value!r}")


def check_s32(label: str, value: int) -> None:
    if not -(1 << 31) <= value < 1 << 31:
        raise ValueError(f"{label} must be a signed 32-bit integer; got {value!r}")


def check_size(width: int, height: int, max_width: int, max_height: int) -> None:
    if not (1 <= width <= max_width and 1 <= height <= max_height):
        raise ValueError(f"size {width}x{height} is outside 1x1..{max_width}x{max_height}")


def pack_screens(screens: Iterable[Screen]) -> bytes:
    try:
        return b"".join(SCREEN.pack(s.id, s.x, s.y, s.width, s.height, s.flags) for s in screens)
    except struct.error as exc:
        raise ValueError(f"a screen does not fit the wire format: {exc}") from None


def read_screens(reader: StreamReader, count: int) -> Generator[None, None, tuple[Screen, ...]]:
    """``count`` screens of a SetDesktopSize or an ExtendedDesktopSize rectangle."""
    data = yield from reader.read_exact(count * SCREEN.size)
    return tuple(Screen(*fields) for fields in SCREEN.iter_unpack(data))
