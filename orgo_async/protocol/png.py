"""A small PNG codec in pure Python (zlib, struct and binascii only).

It exists so that screenshots can travel as PNG without Pillow: the VNC
client turns a framebuffer into PNG bytes, the emulator serves its synthetic
desktop as PNG, and tests read both back.

* :func:`encode_png` writes 8-bit RGB or RGBA, non-interlaced.
* :func:`decode_png` reads 8-bit grey, grey+alpha, RGB and RGBA (colour types
  0, 4, 2 and 6), non-interlaced, every filter type, any number of IDAT
  chunks; grey comes back as RGB and grey+alpha as RGBA. Everything else
  (palette, 16-bit or sub-byte depths, interlacing, damaged or truncated
  files, too many pixels) raises :class:`~orgo_async.errors.ProtocolError`.
* :func:`png_size` reads the size from the header alone.

Memory is bounded: the decoder checks the header's size against
``max_pixels`` before it inflates anything, and never inflates more than the
header says the image holds.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from typing import Final, Literal

import attrs

from ..errors import ProtocolError
from . import _deflate

__all__ = [
    "MAX_ENCODE_SIZE",
    "DecodedPNG",
    "decode_png",
    "encode_png",
    "png_size",
]

SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"

MAX_ENCODE_SIZE: Final = 16384
"""The largest width or height :func:`encode_png` accepts."""

# The spec's limit for a chunk length and for the image's width and height.
_MAX_UINT31: Final = 2**31 - 1

_CHANNELS: Final = {"RGB": 3, "RGBA": 4}
_COLOUR_TYPE: Final = {"RGB": 2, "RGBA": 6}
# Colour type -> (bytes per pixel at 8 bits, mode it decodes to).
_DECODABLE: Final[dict[int, tuple[int, Literal["RGB", "RGBA"]]]] = {
    0: (1, "RGB"),
    2: (3, "RGB"),
    4: (2, "RGBA"),
    6: (4, "RGBA"),
}
_COLOUR_NAMES: Final = {
    0: "grey",
    2: "RGB",
    3: "palette",
    4: "grey+alpha",
    6: "RGBA",
}

_IHDR: Final = struct.Struct(">IIBBBBB")
_CHUNK_HEAD: Final = struct.Struct(">I4s")
_CRC: Final = struct.Struct(">I")

Buffer = bytes | bytearray | memoryview


@attrs.frozen
class DecodedPNG:
    """A decoded image: ``pixels`` holds ``height`` rows of ``width`` pixels.

    Each pixel is 3 bytes (R, G, B) in mode ``"RGB"`` and 4 bytes (R, G, B, A)
    in mode ``"RGBA"``, rows top to bottom, no padding.
    """

    width: int
    height: int
    mode: Literal["RGB", "RGBA"]
    pixels: bytes = attrs.field(repr=lambda p: f"<{len(p)} bytes>")

    @property
    def channels(self) -> int:
        """Bytes per pixel: 3 for RGB, 4 for RGBA."""
        return _CHANNELS[self.mode]

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        """The channel values of the pixel at column ``x``, row ``y``.

        Raises:
            ValueError: the point lies outside the image.
        """
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise ValueError(f"pixel ({x}, {y}) is outside the {self.width}x{self.height} image")
        n = self.channels
        start = (y * self.width + x) * n
        return tuple(self.pixels[start : start + n])


def encode_png(
    width: int,
    height: int,
    pixels: Buffer,
    *,
    mode: Literal["RGB", "RGBA"] = "RGB",
    compress_level: int = 6,
    filter: Literal["sub", "none"] = "sub",
) -> bytes:
    """Encode 8-bit pixels as a non-interlaced PNG.

    ``pixels`` holds ``height`` rows of ``width`` pixels, 3 bytes each (R, G, B)
    in mode ``"RGB"`` or 4 bytes (R, G, B, A) in mode ``"RGBA"``, no padding.
    It is copied; the caller may change it as soon as this returns.

    ``filter`` picks the PNG row filter: ``"sub"`` (type 1: each byte minus
    the one a pixel to its left) or ``"none"`` (type 0), for every row but
    those in a run of rows that each equal the row above (runs of 96 KiB of
    scanlines or more: 27 rows of 1280 RGB pixels), which are written
    with Up (type 2: all zeros), deflated once and reused (see
    :func:`~orgo_async.protocol._deflate.compress_rows`): a flat 1280x720
    screen took 0.3 ms at level 1 instead of 1.6, for the same pixels.

    Sub is the default: on a 1280x720 synthetic desktop (flat colours, a few
    thousand characters of text) at level 6 it took 18.5 ms for 27.6 kB
    against 13.8 ms for 40.5 kB with None, and on a smooth gradient 17 ms for
    15 kB against 18 ms for 427 kB; None saves a few milliseconds where size
    does not matter. ``compress_level`` is zlib's,
    0 (store) to 9 (smallest). From 1 MB of scanlines up (a 640x546 RGB
    image) the deflate runs on up to four cores at once (see
    :mod:`orgo_async.protocol._deflate`), each core copying and filtering
    its own rows: the same pixels, a few per cent more bytes, about half the
    time on two cores. ``pixels`` is read until this returns. Safe to call
    from several threads at once.

    Raises:
        ValueError: a size of zero or over 16384, a buffer whose length is not
            ``width * height * channels``, an unknown mode, filter or level.
    """
    channels = _CHANNELS.get(mode)
    if channels is None:
        raise ValueError(f"mode must be 'RGB' or 'RGBA', not {mode!r}")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an int, not {type(value).__name__}")
        if not 1 <= value <= MAX_ENCODE_SIZE:
            raise ValueError(f"{name} must be between 1 and {MAX_ENCODE_SIZE}, not {value}")
    if not isinstance(compress_level, int) or not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must be 0..9, not {compress_level!r}")
    if filter not in ("sub", "none"):
        raise ValueError(f"filter must be 'sub' or 'none', not {filter!r}")
    view = memoryview(pixels).cast("B")
    stride = width * channels
    if view.nbytes != stride * height:
        raise ValueError(
            f"pixels holds {view.nbytes} bytes; a {width}x{height} {mode} image needs "
            f"{stride * height}"
        )

    # Each scanline is a filter-type byte and the row, built a piece of rows at
    # a time by the threads that deflate them: one join per piece, no zero-filled
    # buffer, and the Python loop per row, never per pixel. In a long run of
    # rows that each equal the one above (a flat screen, a blank part of one),
    # those rows are Up-filtered (all zeros), and compress_rows reuses the
    # deflate of such rows instead of deflating them again.
    sub = _SubFilter(stride, channels) if filter == "sub" else None
    kind = b"\x01" if sub else b"\x00"
    repeats = _repeated_rows(pixels, view, stride, height, _deflate.blank_run_min(stride + 1))
    blank = b"\x02" + bytes(stride)

    def scanlines(first: int, stop: int) -> bytes:
        rows = (view[at : at + stride] for at in range(first * stride, stop * stride, stride))
        repeated = _rows_in(repeats, first, stop)
        if repeated:
            return b"".join(
                blank if y in repeated else kind + (sub(row) if sub else row)
                for y, row in enumerate(rows, first)
            )
        if sub is None:
            return b"\x00".join((b"", *rows))
        return b"\x01".join((b"", *map(sub, rows)))

    idat = _deflate.compress_rows(
        scanlines, height, stride + 1, compress_level, blank=blank, blank_runs=repeats
    )
    ihdr = _IHDR.pack(width, height, 8, _COLOUR_TYPE[mode], 0, 0, 0)
    return b"".join((SIGNATURE, _chunk(b"IHDR", ihdr), _chunk(b"IDAT", idat), _chunk(b"IEND", b"")))


def png_size(data: Buffer) -> tuple[int, int]:
    """The ``(width, height)`` of a PNG, read from its header chunk alone.

    Raises:
        ProtocolError: not a PNG, or a damaged header.
    """
    view = memoryview(data).cast("B")
    width, height, *_ = _read_ihdr(view)
    return width, height


def decode_png(data: Buffer, *, max_pixels: int = 64_000_000) -> DecodedPNG:
    """Decode a PNG into 8-bit RGB or RGBA pixels.

    Grey images come back as RGB and grey+alpha as RGBA. Images filtered with
    None, Sub or Up decode at a few tens of milliseconds per megapixel;
    Average and Paeth rows are undone byte by byte, about a second per
    megapixel.

    Raises:
        ProtocolError: not a PNG; a bad CRC; a truncated file; a colour type,
            bit depth, interlace method or critical chunk this decoder does not
            support; more than ``max_pixels`` pixels (refused before anything
            is inflated); image data that is damaged, short or too long.
    """
    view = memoryview(data).cast("B")
    width, height, depth, colour, compression, filter_method, interlace = _read_ihdr(view)
    if depth != 8:
        raise ProtocolError(f"PNG bit depth {depth} is not supported (only 8)")
    if colour not in _DECODABLE:
        name = _COLOUR_NAMES.get(colour, "unknown")
        raise ProtocolError(f"PNG colour type {colour} ({name}) is not supported")
    if compression != 0 or filter_method != 0:
        raise ProtocolError(
            f"PNG compression method {compression} / filter method {filter_method} is unknown"
        )
    if interlace != 0:
        raise ProtocolError("interlaced PNG images are not supported")
    if width * height > max_pixels:
        raise ProtocolError(
            f"PNG of {width}x{height} pixels exceeds the limit of {max_pixels} pixels"
        )
    bpp, mode = _DECODABLE[colour]

    idat: list[memoryview] = []
    # _read_ihdr checked the first chunk; the rest follow it.
    for kind, body in _chunks(view)[1:]:
        if kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        elif kind == b"IHDR":
            raise ProtocolError("PNG has a second IHDR chunk")
        elif kind[0] & 0x20 == 0 and kind != b"PLTE":
            # An unknown critical chunk changes how the image must be read.
            raise ProtocolError(f"PNG critical chunk {kind!r} is not supported")
    else:
        raise ProtocolError("PNG ends without an IEND chunk")
    if not idat:
        raise ProtocolError("PNG has no IDAT chunk")

    stride = width * bpp
    expected = (stride + 1) * height
    inflater = zlib.decompressobj()
    try:
        # One byte over the expected size is enough to tell "too long".
        raw = inflater.decompress(b"".join(idat), expected + 1)
    except zlib.error as exc:
        raise ProtocolError(f"PNG image data is damaged: {exc}") from exc
    if len(raw) > expected:
        raise ProtocolError(f"PNG image data is longer than the {width}x{height} header allows")
    if len(raw) < expected:
        raise ProtocolError(
            f"PNG image data is truncated: {len(raw)} of {expected} bytes after inflating"
        )

    pixels = _unfilter(raw, height, stride, bpp)
    if colour == 0:
        pixels = _expand(pixels, 1, 3)
    elif colour == 4:
        pixels = _expand(pixels, 2, 4)
    return DecodedPNG(width, height, mode, bytes(pixels))


# -- chunks ---------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = binascii.crc32(body, binascii.crc32(kind))
    return _CHUNK_HEAD.pack(len(body), kind) + body + _CRC.pack(crc)


def _chunks(view: memoryview) -> list[tuple[bytes, memoryview]]:
    """Every chunk after the signature, CRC-checked, up to and including IEND."""
    out: list[tuple[bytes, memoryview]] = []
    pos = len(SIGNATURE)
    end = len(view)
    while pos < end:
        if end - pos < 12:
            raise ProtocolError(f"PNG is truncated: a chunk header at offset {pos} is incomplete")
        length, kind = _CHUNK_HEAD.unpack_from(view, pos)
        if length > _MAX_UINT31:
            raise ProtocolError(f"PNG chunk length {length} at offset {pos} is impossible")
        if not all(65 <= c <= 90 or 97 <= c <= 122 for c in kind):
            raise ProtocolError(f"PNG chunk type {kind!r} at offset {pos} is not a chunk name")
        if end - pos < 12 + length:
            raise ProtocolError(
                f"PNG is truncated: chunk {kind.decode('ascii')} needs {length} bytes, "
                f"{max(0, end - pos - 12)} present"
            )
        body = view[pos + 8 : pos + 8 + length]
        (crc,) = _CRC.unpack_from(view, pos + 8 + length)
        if binascii.crc32(body, binascii.crc32(kind)) != crc:
            raise ProtocolError(f"PNG chunk {kind.decode('ascii')} has a bad CRC")
        out.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            break
    return out


def _read_ihdr(view: memoryview) -> tuple[int, int, int, int, int, int, int]:
    if bytes(view[: len(SIGNATURE)]) != SIGNATURE:
        raise ProtocolError("not a PNG (bad signature)")
    if len(view) < len(SIGNATURE) + 8 + 13 + 4:
        raise ProtocolError("PNG is truncated before the end of its IHDR chunk")
    length, kind = _CHUNK_HEAD.unpack_from(view, len(SIGNATURE))
    if kind != b"IHDR" or length != 13:
        raise ProtocolError("PNG does not start with a 13-byte IHDR chunk")
    body = view[16:29]
    (crc,) = _CRC.unpack_from(view, 29)
    if binascii.crc32(body, binascii.crc32(b"IHDR")) != crc:
        raise ProtocolError("PNG chunk IHDR has a bad CRC")
    fields: tuple[int, int, int, int, int, int, int] = _IHDR.unpack(body)
    width, height = fields[0], fields[1]
    if not (1 <= width <= _MAX_UINT31 and 1 <= height <= _MAX_UINT31):
        raise ProtocolError(f"PNG size {width}x{height} is invalid")
    return fields


# -- filters --------------------------------------------------------------
#
# Sub and Up work on a whole row at once as one big integer, one byte per
# 8-bit lane ("SIMD within a register"): with H = 0x80 in every lane and
# L = 0x7f, lane-wise addition mod 256 is ((a & L) + (b & L)) ^ ((a ^ b) & H)
# and subtraction is ((a | H) - (b & L)) ^ (~(a ^ b) & H). No carry or borrow
# crosses a lane, and CPython's big-integer arithmetic runs in C.


def _lane_masks(n: int) -> tuple[int, int]:
    return int.from_bytes(b"\x80" * n, "big"), int.from_bytes(b"\x7f" * n, "big")


def _repeated_rows(
    pixels: Buffer, view: memoryview, stride: int, height: int, shortest: int
) -> list[tuple[int, int]]:
    """The runs ``(first, stop)`` of at least ``shortest`` rows that each equal the row above.

    Rows are compared at every ``shortest // 2``-th row only, and around those
    that repeat, so that a screen without long runs costs a few dozen compares.
    """
    if isinstance(pixels, bytes | bytearray):
        starts = pixels.startswith  # compares in place, up to the first difference

        def repeats(y: int) -> bool:
            return starts(view[(y - 1) * stride : y * stride], y * stride)
    else:

        def repeats(y: int) -> bool:
            above, row = view[(y - 1) * stride : (y + 1) * stride].tobytes(), stride
            return above[:row] == above[row:]

    runs: list[tuple[int, int]] = []
    step = max(1, shortest // 2)
    y = step
    while y < height:
        if repeats(y):
            first, stop = y, y + 1
            while first > 1 and repeats(first - 1):
                first -= 1
            while stop < height and repeats(stop):
                stop += 1
            if stop - first >= shortest:
                runs.append((first, stop))
            y = stop
        y += step
    return runs


def _rows_in(runs: list[tuple[int, int]], first: int, stop: int) -> set[int]:
    return {y for start, end in runs for y in range(max(start, first), min(end, stop))}


class _SubFilter:
    """Sub-filter rows of ``stride`` bytes: byte minus the byte ``bpp`` earlier."""

    def __init__(self, stride: int, bpp: int) -> None:
        self._stride = stride
        self._shift = 8 * bpp
        self._high, self._low = _lane_masks(stride)

    def __call__(self, row: memoryview) -> bytes:
        high, low = self._high, self._low
        a = int.from_bytes(row, "big")
        # Big-endian: shifting right moves every byte one pixel to the right.
        b = a >> self._shift
        diff = ((a | high) - (b & low)) ^ (((a ^ b) & high) ^ high)
        return diff.to_bytes(self._stride, "big")


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> bytearray:
    out = bytearray(stride * height)
    high, low = _lane_masks(stride)
    line = stride + 1
    prior = bytes(stride)
    for row in range(height):
        kind = raw[row * line]
        cur = raw[row * line + 1 : (row + 1) * line]
        if kind == 0:
            recon = cur
        elif kind == 1:
            # An inclusive prefix sum per channel by doubling: after the step
            # with shift s, each byte holds the sum of the 2s bytes ending at it.
            acc = int.from_bytes(cur, "big")
            shift = bpp
            while shift < stride:
                b = acc >> (8 * shift)
                acc = ((acc & low) + (b & low)) ^ ((acc ^ b) & high)
                shift *= 2
            recon = acc.to_bytes(stride, "big")
        elif kind == 2:
            a = int.from_bytes(cur, "big")
            b = int.from_bytes(prior, "big")
            recon = (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(stride, "big")
        elif kind == 3:
            recon = _unfilter_average(bytearray(cur), prior, bpp)
        elif kind == 4:
            recon = _unfilter_paeth(bytearray(cur), prior, bpp)
        else:
            raise ProtocolError(f"PNG row {row} has unknown filter type {kind}")
        out[row * stride : (row + 1) * stride] = recon
        prior = bytes(recon)
    return out


def _unfilter_average(cur: bytearray, prior: bytes, bpp: int) -> bytes:
    for i in range(min(bpp, len(cur))):
        cur[i] = (cur[i] + (prior[i] >> 1)) & 0xFF
    for i in range(bpp, len(cur)):
        cur[i] = (cur[i] + ((cur[i - bpp] + prior[i]) >> 1)) & 0xFF
    return bytes(cur)


def _unfilter_paeth(cur: bytearray, prior: bytes, bpp: int) -> bytes:
    # With no left neighbour the predictor is always the byte above.
    for i in range(min(bpp, len(cur))):
        cur[i] = (cur[i] + prior[i]) & 0xFF
    for i in range(bpp, len(cur)):
        a = cur[i - bpp]
        b = prior[i]
        c = prior[i - bpp]
        pa = abs(b - c)
        pb = abs(a - c)
        pc = abs(a + b - c - c)
        if pa <= pb and pa <= pc:
            pred = a
        elif pb <= pc:
            pred = b
        else:
            pred = c
        cur[i] = (cur[i] + pred) & 0xFF
    return bytes(cur)


def _expand(pixels: bytearray, src: int, dst: int) -> bytearray:
    """Grey (src 1) to RGB (dst 3), or grey+alpha (src 2) to RGBA (dst 4)."""
    count = len(pixels) // src
    out = bytearray(count * dst)
    grey = pixels[0::src]
    out[0::dst] = grey
    out[1::dst] = grey
    out[2::dst] = grey
    if src == 2:
        out[3::dst] = pixels[1::2]
    return out
