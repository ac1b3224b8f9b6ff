"""Pixel formats, the codec between a pixel format and packed RGB, and packed rectangles.

Events always carry packed RGB (3 bytes a pixel, row by row); on the wire,
pixels are in the format the client chose (RFC 6143 §7.4). :class:`PixelCodec`
converts whole runs of pixels between the two, both ways, including ZRLE's
compressed CPIXELs. :func:`put_rect`, :func:`fill_rect`, :func:`copy_rect` and
:func:`crop_rect` work on rectangles of any packed buffer, whatever its bytes
a pixel: the framebuffer's RGB, a decoder's band of wire pixels.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Final, Literal

import attrs

__all__ = [
    "DEFAULT_PIXEL_FORMAT",
    "PixelCodec",
    "PixelFormat",
    "copy_rect",
    "crop_rect",
    "fill_rect",
    "put_rect",
]

_STRUCT: Final = struct.Struct(">BBBBHHHBBB3x")


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
        return _STRUCT.pack(
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
        bpp, depth, big, true, rmax, gmax, bmax, rs, gs, bs = _STRUCT.unpack(data)
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


class PixelCodec:
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


# Byte -> its packed palette indices (most significant bits first), for 1, 2 and 4 bits each.
BIT_UNPACK: Final[Mapping[int, list[bytes]]] = {
    bits: [
        bytes((byte >> (8 - bits * (i + 1))) & ((1 << bits) - 1) for i in range(8 // bits))
        for byte in range(256)
    ]
    for bits in (1, 2, 4)
}


# -- rectangles in packed buffers ----------------------------------------------------------
#
# A buffer of ``bpp`` bytes a pixel and ``width`` pixels a row, rows one after the
# other: a framebuffer's RGB picture (3) and its coverage map (1), a decoder's band of
# pixels in the wire format, a server's CPIXELs. Rectangles must lie inside the buffer.


def put_rect(
    buf: bytearray, bpp: int, width: int, x: int, y: int, w: int, h: int, data: bytes | bytearray
) -> None:
    """Put ``data``, ``h`` rows of ``w`` pixels, at ``(x, y)``."""
    stride, row = width * bpp, w * bpp
    start = y * stride + x * bpp
    if w == width:
        buf[start : start + row * h] = data
        return
    # Slicing a long row out of a memoryview saves copying it; a short row (a
    # decoder's tile) is cheaper to copy than to wrap.
    src = memoryview(data) if row >= 2048 else data
    for r in range(h):
        buf[start : start + row] = src[r * row : (r + 1) * row]
        start += stride


def fill_rect(
    buf: bytearray, bpp: int, width: int, x: int, y: int, w: int, h: int, pixel: bytes
) -> None:
    """Fill a rectangle with one pixel value (``bpp`` bytes)."""
    stride = width * bpp
    start = y * stride + x * bpp
    if w == width and h > 1:
        # Whole rows are one run: paint the first, then double what is painted.
        # (One `pixel * (w * h)` would build a screen-sized temporary: a fresh
        # allocation, and its page faults, for every full-screen fill.)
        end = start + stride * h
        buf[start : start + stride] = pixel * w
        view = memoryview(buf)
        done = start + stride
        while done < end:
            n = min(done - start, end - done)
            view[done : done + n] = view[start : start + n]
            done += n
        view.release()
        return
    line = pixel * w
    row = len(line)
    for _ in range(h):
        buf[start : start + row] = line
        start += stride


def copy_rect(
    buf: bytearray, bpp: int, width: int, sx: int, sy: int, dx: int, dy: int, w: int, h: int
) -> None:
    """Copy a rectangle from ``(sx, sy)`` to ``(dx, dy)``; the two may overlap."""
    stride, row = width * bpp, w * bpp
    # Through a temporary copy of the source: the two rectangles may overlap.
    rows = [
        bytes(buf[(sy + r) * stride + sx * bpp : (sy + r) * stride + sx * bpp + row])
        for r in range(h)
    ]
    start = dy * stride + dx * bpp
    for line in rows:
        buf[start : start + row] = line
        start += stride


def crop_rect(
    buf: bytes | bytearray, bpp: int, width: int, x: int, y: int, w: int, h: int
) -> bytes:
    """The bytes of a rectangle, ``h`` rows of ``w`` pixels."""
    stride, row = width * bpp, w * bpp
    start = y * stride + x * bpp
    if w == width:
        return bytes(buf[start : start + row * h])
    view = memoryview(buf)
    return b"".join(view[at : at + row] for at in range(start, start + h * stride, stride))
