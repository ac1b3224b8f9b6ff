"""RFB numbers callers use: security types, encodings, pointer button bits.

References: RFC 6143 §7.2 (security types), §7.5.5 (the button mask) and
§7.7 (encodings), and the community RFB specification (rfbproto) for the
pseudo-encodings RFC 6143 does not list.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BUTTON_LEFT",
    "BUTTON_MIDDLE",
    "BUTTON_RIGHT",
    "DEFAULT_ENCODINGS",
    "ENCODING_COPYRECT",
    "ENCODING_CURSOR",
    "ENCODING_DESKTOP_SIZE",
    "ENCODING_EXTENDED_DESKTOP_SIZE",
    "ENCODING_HEXTILE",
    "ENCODING_LAST_RECT",
    "ENCODING_RAW",
    "ENCODING_TIGHT",
    "ENCODING_TIGHT_COMPRESS_0",
    "ENCODING_ZRLE",
    "SECURITY_NONE",
    "SECURITY_VNC_AUTH",
    "WHEEL_DOWN",
    "WHEEL_LEFT",
    "WHEEL_RIGHT",
    "WHEEL_UP",
]

SECURITY_NONE: Final = 1
SECURITY_VNC_AUTH: Final = 2

ENCODING_RAW: Final = 0
ENCODING_COPYRECT: Final = 1
ENCODING_HEXTILE: Final = 5
ENCODING_TIGHT: Final = 7
ENCODING_ZRLE: Final = 16
ENCODING_TIGHT_COMPRESS_0: Final = -256
"""The compression-level pseudo-encodings are -256 (level 0) to -247 (level 9):
``ENCODING_TIGHT_COMPRESS_0 + level``. Level 0 asks for the least work (TigerVNC
then sends Tight's zlib data stored, uncompressed), 9 for the smallest data."""
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
