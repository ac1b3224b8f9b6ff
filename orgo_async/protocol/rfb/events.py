"""The events of an RFB connection: what the cores report, and what a server sends.

A client core reports :class:`ServerInit`, :class:`Ready`, then for each
FramebufferUpdate a :class:`FramebufferUpdateStart`, rectangles
(:class:`RectPixels`, :class:`RectFill`, :class:`RectCopy`,
:class:`DesktopResized`, :class:`CursorShape`) and a
:class:`FramebufferUpdateEnd`, besides :class:`Bell`, :class:`ServerCutText`
and :class:`ColourMap`. A server core reports :class:`Ready` and the client's
messages; it sends the rectangle events back through
:meth:`~.server.RFBServerProtocol.send_framebuffer_update`.

Pixels are always packed RGB, 3 bytes a pixel, row by row.
"""

from __future__ import annotations

from typing import Final

import attrs

from .pixels import BIT_UNPACK, PixelFormat

__all__ = [
    "AuthenticationFailed",
    "Bell",
    "ClientCutText",
    "ColourMap",
    "CursorShape",
    "DesktopResized",
    "FramebufferUpdateEnd",
    "FramebufferUpdateStart",
    "Key",
    "Pointer",
    "RFBEvent",
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
]

# A cursor mask bit -> its alpha.
_ALPHA: Final = bytes([0]) + bytes([255]) * 255


def _short_bytes(data: bytes) -> str:
    return f"<{len(data)} bytes>"


@attrs.frozen
class RFBEvent:
    """Base class of everything an RFB core reports."""


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
    :meth:`~.client.RFBClientProtocol.send_update_request`.
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
    :meth:`~.server.RFBServerProtocol.send_framebuffer_update`.
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
        table = BIT_UNPACK[1]
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
    :meth:`~.server.RFBServerProtocol.send_framebuffer_update`.
    """

    width: int
    height: int
    screens: tuple[Screen, ...]


@attrs.frozen
class AuthenticationFailed(RFBEvent):
    """(Server) the client failed VNC authentication.

    The failing SecurityResult is buffered: send :meth:`~.base.RFBProtocol.data_to_send`,
    then close the connection.
    """

    reason: str
