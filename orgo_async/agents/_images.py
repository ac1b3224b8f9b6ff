"""Screens as a model sees them: sizes that fit its image limits, crops, and scaling.

Pure Python on packed RGB rows (3 bytes a pixel, as
:meth:`~orgo_async.connect.Vnc.pixels` and :func:`~orgo_async.protocol.png.decode_png`
give them). Scaling is nearest-neighbour: each output row is one C-level
gather of its source row, about 40 ms for a 1920x1080 screen, and nothing at
all when the screen already fits.
"""

from __future__ import annotations

import math
import operator
from typing import Final

__all__ = ["MAX_LONG_EDGE", "MAX_PIXELS", "crop_rgb", "fit", "resize_rgb"]

MAX_LONG_EDGE: Final = 1568
"""The longest edge, in pixels, of an image the model takes without scaling it down."""
MAX_PIXELS: Final = 1_150_000
"""The most pixels (width times height) in an image the model takes without scaling it down."""


def fit(width: int, height: int, *, grow: bool = False) -> tuple[int, int]:
    """The size ``width`` x ``height`` takes to fit the model's image limits, aspect kept.

    Never larger than the original unless ``grow`` (then as large as the limits allow).
    """
    if width < 1 or height < 1:
        raise ValueError(f"an image needs at least one pixel; got {width}x{height}")
    scale = min(MAX_LONG_EDGE / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))
    if not grow:
        scale = min(scale, 1.0)
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def crop_rgb(rgb: bytes, width: int, x0: int, y0: int, x1: int, y1: int) -> bytes:
    """The rectangle ``[x0, x1) x [y0, y1)`` of a packed RGB image ``width`` pixels wide."""
    stride = 3 * width
    return b"".join(rgb[y * stride + 3 * x0 : y * stride + 3 * x1] for y in range(y0, y1))


def resize_rgb(rgb: bytes, width: int, height: int, to_width: int, to_height: int) -> bytes:
    """A packed RGB image scaled to ``to_width`` x ``to_height`` (nearest pixel centre)."""
    if (width, height) == (to_width, to_height):
        return rgb
    if len(rgb) != 3 * width * height:
        raise ValueError(f"{len(rgb)} bytes is not a {width}x{height} RGB image")
    columns = [min(width - 1, (2 * i + 1) * width // (2 * to_width)) for i in range(to_width)]
    gather = operator.itemgetter(*(3 * x + c for x in columns for c in range(3)))
    stride = 3 * width
    out = bytearray()
    last_y, last_row = -1, b""
    for j in range(to_height):
        y = min(height - 1, (2 * j + 1) * height // (2 * to_height))
        if y != last_y:
            last_y, last_row = y, bytes(gather(rgb[y * stride : (y + 1) * stride]))
        out += last_row
    return bytes(out)
