"""Tight (encoding 7), lossless: fill, palette, copy and gradient rectangles over four zlib streams.

Each Tight rectangle starts with a compression-control byte (rfbproto,
"Tight Encoding"): its low four bits reset zlib streams 0-3 before the
rectangle is read; its high four are ``1000`` for a fill (one TPIXEL), ``1001``
for JPEG, or ``0ftt`` for basic compression: stream ``tt`` (0-3), and ``f``
set when a filter id follows (0 copy, 1 palette, 2 gradient; copy when
absent). A palette filter sends its size less one, then the colours; two
colours (or one) take 1 bit a pixel, rows padded to a byte, more take a
byte a pixel. The filtered data is sent as is when shorter than 12 bytes,
else as a compact length (1-3 bytes, 7 bits each, the third 8) and zlib
data on the rectangle's stream, which carries over to later rectangles.

A TPIXEL is 3 bytes, R, G, B, when the pixel format is 32 bits, depth 24,
true colour with every channel's max 255; otherwise it is the whole pixel.
So with :data:`~.pixels.DEFAULT_PIXEL_FORMAT`, full-colour data inflates
straight to the packed RGB that events carry: zlib (C) and slicing do the
work, no loop over pixels in Python. Palettes expand through ``translate``
tables. Only the gradient filter (which TigerVNC never sends; x11vnc and
TightVNC may) goes pixel by pixel.

JPEG rectangles come only to a client that lists a quality-level
pseudo-encoding (-32..-23); this decoder lists none and refuses them.
Decoding is bounded: the compressed length is checked against what the
rectangle can take, and zlib output is capped at the rectangle's size.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Final

from ...errors import ProtocolError
from .._reader import StreamReader
from .encodings import Decoding, Emit, InflatingDecoder, Rect
from .events import RectFill, RectPixels
from .pixels import BIT_UNPACK, PixelCodec, PixelFormat

__all__ = ["TightDecoder", "tight_tpixel_size"]

MIN_TO_COMPRESS: Final = 12
"""Filtered data shorter than this is sent without zlib (and without a length)."""

_CHUNK: Final = 1 << 16
_FILL: Final = 0x8
_JPEG: Final = 0x9
_FILTER_COPY: Final = 0
_FILTER_PALETTE: Final = 1
_FILTER_GRADIENT: Final = 2
_INDICES: Final = [bytes(range(size)) for size in range(257)]
_ALL_BITS: Final = b"".join(BIT_UNPACK[1])  # the 8 palette indices of each byte 0..255


def tight_tpixel_size(pf: PixelFormat) -> int:
    """The bytes of a TPIXEL in ``pf``: 3 (R, G, B) for 32-bit depth-24 true colour with
    8-bit channels, else the whole pixel's."""
    if (
        pf.bits_per_pixel == 32
        and pf.depth == 24
        and pf.true_colour
        and pf.red_max == pf.green_max == pf.blue_max == 255
    ):
        return 3
    return pf.bytes_per_pixel


def compressed_bound(size: int) -> int:
    """The longest zlib data that can hold ``size`` bytes (stored blocks, flushes and all)."""
    return size + (size >> 6) + 1024


class TightDecoder(InflatingDecoder):
    """Tight's state on one connection: four zlib streams, reset by rectangles' control bytes."""

    def __init__(self) -> None:
        super().__init__(streams=4)

    def read(self, reader: StreamReader, codec: PixelCodec, rect: Rect, emit: Emit) -> Decoding:
        """One Tight rectangle, reported a band of rows at a time as its data inflates."""
        x, y, w, h = rect
        control = (yield from reader.read_exact(1))[0]
        for stream in range(4):
            if control >> stream & 1:
                self._streams[stream] = None
        kind = control >> 4
        t = tight_tpixel_size(codec.pf)
        if kind == _FILL:
            pixel = yield from reader.read_exact(t)
            if w and h:
                emit(RectFill(x, y, w, h, _tpixels_to_rgb(codec, t, pixel)))
            return
        if kind == _JPEG:
            raise ProtocolError("Tight JPEG rectangle, but no JPEG quality level was asked for")
        if kind > _JPEG:
            raise ProtocolError(f"unknown Tight compression control {control:#04x}")
        filter_id = _FILTER_COPY
        if kind & 0x4:
            filter_id = (yield from reader.read_exact(1))[0]
        rows: Callable[[bytes | bytearray, int], bytes]
        if filter_id == _FILTER_COPY:
            row_bytes = w * t

            def rows(data: bytes | bytearray, count: int) -> bytes:
                return _tpixels_to_rgb(codec, t, data)

        elif filter_id == _FILTER_PALETTE:
            size = (yield from reader.read_exact(1))[0] + 1
            palette = _tpixels_to_rgb(codec, t, (yield from reader.read_exact(size * t)))
            row_bytes, rows = _palette_rows(palette, size, w)
        elif filter_id == _FILTER_GRADIENT:
            row_bytes = w * t
            rows = _Gradient(codec, t, w).rows
        else:
            raise ProtocolError(f"unknown Tight filter id {filter_id}")
        total = row_bytes * h
        if not total:
            return
        if total < MIN_TO_COMPRESS:
            data = yield from reader.read_exact(total)
            emit(RectPixels(x, y, w, h, rows(data, h)))
            return
        length = yield from _read_compact(reader)
        if length > compressed_bound(total):
            raise ProtocolError(
                f"Tight data of {length} bytes is too long for {total} bytes of a {w}x{h} rectangle"
            )
        stream = kind & 0x3
        inflate = self._stream(stream)
        pending = self.buffer
        top = 0
        produced = 0
        remaining = length
        while remaining:
            chunk = yield from reader.read_some(min(remaining, _CHUNK))
            remaining -= len(chunk)
            while True:
                # At most the rest of the rectangle plus one byte: one more is an error.
                limit = min(_CHUNK, total - produced + 1)
                out = inflate.decompress(chunk, limit)
                chunk = inflate.unconsumed_tail
                # A full output may leave more inside zlib even with no input left.
                more = bool(chunk) or len(out) == limit
                produced += len(out)
                if produced > total:
                    raise ProtocolError(f"Tight data inflates past {total} bytes")
                if pending:
                    pending += out
                    out = bytes(pending)
                    pending.clear()
                count = len(out) // row_bytes
                if count:
                    used = count * row_bytes
                    emit(RectPixels(x, y + top, w, count, rows(out[:used], count)))
                    top += count
                    out = out[used:]
                pending += out
                if not more:
                    break
        if produced != total:
            pending.clear()
            raise ProtocolError(f"Tight data inflates to {produced} bytes, not {total}")


def _read_compact(reader: StreamReader) -> Generator[None, None, int]:
    """A compact length: 7 bits a byte while the top bit is set, the third byte all 8."""
    value = 0
    for shift in (0, 7):
        byte = (yield from reader.read_exact(1))[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
    return value | (yield from reader.read_exact(1))[0] << 14


def _tpixels_to_rgb(codec: PixelCodec, t: int, data: bytes | bytearray) -> bytes:
    return bytes(data) if t == 3 else codec.to_rgb(data)


def _palette_rows(
    palette: bytes, size: int, w: int
) -> tuple[int, Callable[[bytes | bytearray, int], bytes]]:
    """The bytes a row and the row decoder of a palette rectangle (``palette`` in RGB)."""
    tables = []
    for c in range(3):
        table = bytearray(256)
        table[:size] = palette[c::3]
        tables.append(bytes(table))
    red, green, blue = tables
    valid = _INDICES[size]

    def expand(indices: bytes) -> bytes:
        # Anything left after deleting the valid indices is out of range (256 are all valid).
        if size < 256 and indices.translate(None, valid):
            raise ProtocolError(f"Tight palette index beyond a palette of {size}")
        out = bytearray(len(indices) * 3)
        out[0::3] = indices.translate(red)
        out[1::3] = indices.translate(green)
        out[2::3] = indices.translate(blue)
        return bytes(out)

    if size > 2:
        return w, lambda data, count: expand(bytes(data))

    per_row = (w + 7) // 8
    piece: Callable[[int], bytes]
    if size == 2:
        # Each byte of bits -> its 8 pixels of RGB (24 bytes), from one table a rectangle.
        pixels = expand(_ALL_BITS)
        piece = [pixels[at : at + 24] for at in range(0, len(pixels), 24)].__getitem__
    else:  # one colour: a set bit is an index out of range, so indices are checked
        piece = BIT_UNPACK[1].__getitem__
    row_rgb = w * 3

    def mono(data: bytes | bytearray, count: int) -> bytes:
        if w % 8 == 0:
            out = b"".join(map(piece, data))
        else:
            out = b"".join(
                b"".join(map(piece, data[at : at + per_row]))[: row_rgb if size == 2 else w]
                for at in range(0, count * per_row, per_row)
            )
        return out if size == 2 else expand(out)

    return per_row, mono


class _Gradient:
    """The gradient filter's rows: each channel predicted as left + above - above-left,
    clamped to the channel's range, plus the difference sent (modulo the range)."""

    def __init__(self, codec: PixelCodec, t: int, w: int) -> None:
        self.codec = codec
        self.t = t
        self.w = w
        pf = codec.pf
        if t == 3:
            self.channels = [(255, 0), (255, 0), (255, 0)]
        else:
            self.channels = [
                (pf.red_max, pf.red_shift),
                (pf.green_max, pf.green_shift),
                (pf.blue_max, pf.blue_shift),
            ]
        self.order: Any = "big" if pf.big_endian else "little"
        self.previous = [[0] * w for _ in range(3)]  # the row above, per channel

    def rows(self, data: bytes | bytearray, count: int) -> bytes:
        t, w = self.t, self.w
        out = bytearray()
        for r in range(count):
            row = data[r * w * t : (r + 1) * w * t]
            if t == 3:
                diffs = [list(row[c::3]) for c in range(3)]
            else:
                values = [int.from_bytes(row[i : i + t], self.order) for i in range(0, w * t, t)]
                diffs = [[(v >> shift) & top for v in values] for top, shift in self.channels]
            current = []
            for (top, _), diff, above in zip(self.channels, diffs, self.previous, strict=True):
                line = [0] * w
                left = upper_left = 0
                for i in range(w):
                    up = above[i]
                    guess = left + up - upper_left
                    guess = 0 if guess < 0 else top if guess > top else guess
                    left = line[i] = (guess + diff[i]) % (top + 1)
                    upper_left = up
                current.append(line)
            self.previous = current
            if t == 3:
                packed = bytearray(w * 3)
                for c in range(3):
                    packed[c::3] = bytes(current[c])
                out += packed
            else:
                shifts = [shift for _, shift in self.channels]
                out += b"".join(
                    sum(ch[i] << s for ch, s in zip(current, shifts, strict=True)).to_bytes(
                        t, self.order
                    )
                    for i in range(w)
                )
        return bytes(out) if t == 3 else self.codec.to_rgb(out)
