"""An RGB framebuffer, kept current from RFB events: a client's mirror of the remote screen.

:class:`Framebuffer` stores ``width`` x ``height`` pixels as packed RGB
(3 bytes a pixel, row by row), paints the rectangle events a client core
reports (:meth:`Framebuffer.apply`), crops, and encodes PNG through
:mod:`orgo_async.protocol.png`. It also knows whether every pixel has been
painted since it was sized (:attr:`Framebuffer.complete`), which is when a
freshly connected mirror holds a whole frame. No I/O::

    fb = Framebuffer()
    for event in core.events_received():
        fb.apply(event)
    if fb.complete:
        png = fb.to_png()

Every rectangle is painted with one slice assignment per row (one in all when
it spans whole rows), never a loop over pixels.
"""

from __future__ import annotations

from typing import Literal

from ...errors import ProtocolError
from ..png import encode_png
from .events import (
    DesktopResized,
    FramebufferUpdateEnd,
    RectCopy,
    RectFill,
    RectPixels,
    RFBEvent,
    ServerInit,
)
from .pixels import copy_rect, crop_rect, fill_rect, put_rect

__all__ = ["Framebuffer"]


class Framebuffer:
    """``width`` x ``height`` RGB pixels (black at first), painted by rectangles.

    ``pixels`` is the picture: read it, and change it through the methods
    (:meth:`resize` replaces it with a new ``bytearray``). Painting methods
    take rectangles that lie inside the framebuffer; check first, or use
    :meth:`apply`, which checks.
    """

    def __init__(self, width: int = 0, height: int = 0) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(width * height * 3)
        # One byte a pixel, 1 once painted since the last resize; None once every
        # pixel was: the frame is complete (and painting stops tracking).
        self._coverage: bytearray | None = bytearray(width * height)

    @property
    def complete(self) -> bool:
        """Every pixel was painted since the last :meth:`resize`, as of the last
        :class:`~.events.FramebufferUpdateEnd` applied (or :meth:`settle`)."""
        return self._coverage is None

    def settle(self) -> bool:
        """Check whether every pixel has been painted; :attr:`complete` after the check."""
        if self._coverage is not None and self._coverage.find(0) == -1:
            self._coverage = None
        return self._coverage is None

    # -- events ---------------------------------------------------------------------------

    def apply(self, event: RFBEvent) -> bool:
        """Paint one event from a client core; whether pixels or the size changed.

        :class:`~.events.RectPixels`, :class:`~.events.RectFill` and
        :class:`~.events.RectCopy` paint; a :class:`~.events.ServerInit`
        sizes the framebuffer (and starts a new frame); a successful
        :class:`~.events.DesktopResized` to another size resizes it;
        :class:`~.events.FramebufferUpdateEnd` checks whether the frame is
        :attr:`complete`. Other events change nothing.

        Raises:
            ProtocolError: a rectangle outside the framebuffer.
        """
        if isinstance(event, RectPixels):
            self._check(event.x, event.y, event.width, event.height)
            self.paint(event.x, event.y, event.width, event.height, event.rgb)
        elif isinstance(event, RectFill):
            self._check(event.x, event.y, event.width, event.height)
            self.fill(event.x, event.y, event.width, event.height, event.rgb)
        elif isinstance(event, RectCopy):
            self._check(event.src_x, event.src_y, event.width, event.height)
            self._check(event.x, event.y, event.width, event.height)
            self.copy(event.src_x, event.src_y, event.x, event.y, event.width, event.height)
        elif isinstance(event, FramebufferUpdateEnd):
            self.settle()
            return False
        elif isinstance(event, ServerInit):
            self.resize(event.width, event.height)
        elif isinstance(event, DesktopResized):
            if event.status != 0 or (event.width, event.height) == (self.width, self.height):
                return False
            self.resize(event.width, event.height)
        else:
            return False
        return True

    def _check(self, x: int, y: int, w: int, h: int) -> None:
        # A client core checks rectangles against its own size, which this follows;
        # a mismatch would silently grow the bytearray, so it is checked again.
        if x + w > self.width or y + h > self.height:
            raise ProtocolError(
                f"rectangle {w}x{h}+{x}+{y} is outside the {self.width}x{self.height} screen"
            )

    # -- painting -------------------------------------------------------------------------

    def resize(self, width: int, height: int) -> None:
        """A new size: the overlap is kept, the rest is black; a new frame begins."""
        old, old_width = self.pixels, self.width
        pixels = bytearray(width * height * 3)
        if old:
            row = min(width, old_width) * 3
            for y in range(min(height, self.height)):
                src = y * old_width * 3
                pixels[y * width * 3 : y * width * 3 + row] = old[src : src + row]
        self.pixels, self.width, self.height = pixels, width, height
        self._coverage = bytearray(width * height)

    def paint(self, x: int, y: int, w: int, h: int, rgb: bytes | bytearray) -> None:
        """Put ``h`` rows of ``w`` RGB pixels at ``(x, y)``."""
        put_rect(self.pixels, 3, self.width, x, y, w, h, rgb)
        if self._coverage is not None:
            fill_rect(self._coverage, 1, self.width, x, y, w, h, b"\x01")

    def fill(self, x: int, y: int, w: int, h: int, rgb: bytes) -> None:
        """Fill a rectangle with one colour (3 bytes)."""
        fill_rect(self.pixels, 3, self.width, x, y, w, h, rgb)
        if self._coverage is not None:
            fill_rect(self._coverage, 1, self.width, x, y, w, h, b"\x01")

    def copy(self, src_x: int, src_y: int, x: int, y: int, w: int, h: int) -> None:
        """Copy a rectangle from ``(src_x, src_y)`` to ``(x, y)``; the two may overlap."""
        copy_rect(self.pixels, 3, self.width, src_x, src_y, x, y, w, h)
        if self._coverage is not None:
            copy_rect(self._coverage, 1, self.width, src_x, src_y, x, y, w, h)

    # -- reading --------------------------------------------------------------------------

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """The ``(r, g, b)`` of one pixel (inside the framebuffer)."""
        at = (y * self.width + x) * 3
        r, g, b = self.pixels[at : at + 3]
        return r, g, b

    def crop(self, x: int, y: int, w: int, h: int) -> bytes:
        """The RGB bytes of a rectangle (inside the framebuffer), ``h`` rows of ``w`` pixels."""
        return crop_rect(self.pixels, 3, self.width, x, y, w, h)

    def to_png(self, *, compress_level: int = 6, filter: Literal["sub", "none"] = "sub") -> bytes:
        """The picture as an RGB PNG (see :func:`~orgo_async.protocol.png.encode_png`).

        Raises:
            ValueError: an empty framebuffer, or a bad level or filter.
        """
        return encode_png(
            self.width, self.height, self.pixels, compress_level=compress_level, filter=filter
        )
