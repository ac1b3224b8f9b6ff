"""The rectangle encodings: Raw, CopyRect, Hextile and ZRLE decoders, and the server's encoders.

Decoders are generators over the core's :class:`~orgo_async.protocol._reader.StreamReader`
(RFC 6143 §7.7): they hand packed-RGB events to the ``emit`` function they
are given, a band of rows at a time, so memory stays bounded whatever the
server sends and the first pixels are reported before the rectangle's last
byte arrives. The hot loops keep to slice assignments and ``bytes.translate``:
nothing loops over pixels in Python except ZRLE's run lengths.

Encoders turn packed RGB into the client's pixel format: Raw, CopyRect, the
Cursor pseudo-encoding, and ZRLE with solid and raw tiles over one zlib
stream per connection.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Generator, Iterable
from itertools import repeat
from typing import Any, Final, NamedTuple, TypeAlias

from ...errors import ProtocolError
from .._reader import StreamReader
from ._wire import RAW_BAND_BYTES, RECT, U32, pack_screens
from .constants import (
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_RAW,
    ENCODING_ZRLE,
)
from .events import CursorShape, DesktopResized, RectCopy, RectFill, RectPixels, RFBEvent, Screen
from .pixels import BIT_UNPACK, PixelCodec, crop_rect, fill_rect, put_rect

__all__ = [
    "Decoding",
    "Emit",
    "InflatingDecoder",
    "Rect",
    "ZRLEDecoder",
    "ZRLEEncoder",
    "copy_rect",
    "cursor_rect",
    "raw_rect",
    "read_copy_rect",
    "read_cursor",
    "read_hextile",
    "read_raw",
    "resize_rect",
    "zrle_tiles",
]

# ZRLE: compressed bytes are read, and inflated, this much at a time.
_ZLIB_CHUNK: Final = 1 << 16

_BYTE: Final = [bytes((i,)) for i in range(256)]
_INDICES: Final = [bytes(range(size)) for size in range(17)]


# -- decoders ---------------------------------------------------------------------------------

Emit: TypeAlias = Callable[[RFBEvent], None]
"""Where a decoder hands each event it decodes."""

Decoding: TypeAlias = Generator[None, None, None]
"""A decoder at work: it yields whenever it needs more bytes than its reader holds."""


class Rect(NamedTuple):
    """Where a FramebufferUpdate rectangle lies: its left, top, width and height in pixels."""

    x: int
    y: int
    w: int
    h: int


def read_raw(reader: StreamReader, codec: PixelCodec, rect: Rect, emit: Emit) -> Decoding:
    """Raw: rows of pixels, reported in bands of about :data:`RAW_BAND_BYTES`."""
    x, y, w, h = rect
    row_bytes = w * codec.bpp
    if not row_bytes or not h:
        return
    rows = max(1, RAW_BAND_BYTES // row_bytes)
    for top in range(0, h, rows):
        band = min(rows, h - top)
        data = yield from reader.read_exact(band * row_bytes)
        emit(RectPixels(x, y + top, w, band, codec.to_rgb(data)))


def read_hextile(reader: StreamReader, codec: PixelCodec, rect: Rect, emit: Emit) -> Decoding:
    """Hextile: 16x16 tiles, reported a band of tiles at a time (plain bands as fills)."""
    x, y, w, h = rect
    read = reader.read_exact
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
            mask = (yield from read(1))[0]
            if mask & 1:  # raw: the other bits don't matter
                put_rect(band, bpp, w, left, 0, tw, th, (yield from read(tw * bpp * th)))
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
            fill_rect(band, bpp, w, left, 0, tw, th, bg)
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
            # The hot loop of Hextile: subrectangles are many and small, so they are
            # filled here, a slice a row, rather than through fill_rect().
            base = left * bpp
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
            emit(RectFill(x, y + top, w, th, codec.to_rgb(fill)))
        elif w:
            emit(RectPixels(x, y + top, w, th, codec.to_rgb(band)))


def read_copy_rect(
    reader: StreamReader, rect: Rect, width: int, height: int
) -> Generator[None, None, RectCopy]:
    """CopyRect: the source position, which must lie inside a ``width`` x ``height`` screen."""
    x, y, w, h = rect
    src_x, src_y = struct.unpack(">HH", (yield from reader.read_exact(4)))
    if src_x + w > width or src_y + h > height:
        raise ProtocolError(f"CopyRect source {w}x{h}+{src_x}+{src_y} is outside")
    return RectCopy(src_x, src_y, x, y, w, h)


def read_cursor(reader: StreamReader, codec: PixelCodec, rect: Rect, emit: Emit) -> Decoding:
    """The Cursor pseudo-encoding: pixels, then a bit mask (its size is checked by the caller)."""
    x, y, w, h = rect
    pixels = yield from reader.read_exact(w * h * codec.bpp)
    mask = yield from reader.read_exact((w + 7) // 8 * h)
    emit(CursorShape(x, y, w, h, codec.to_rgb(pixels), mask))


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


def _beyond_palette(size: int) -> ProtocolError:
    return ProtocolError(f"ZRLE palette index beyond a palette of {size}")


def _decode_zrle_tile(
    buf: bytearray, cpp: int, tw: int, th: int, band: bytearray, width: int, tile_x: int
) -> tuple[int, bytes | None]:
    """Decode the ZRLE tile at the start of ``buf`` into ``band`` at column ``tile_x``.

    ``band`` holds rows of ``width`` CPIXELs. Returns the bytes used and, for
    a solid tile, its CPIXEL.

    Raises:
        _Short: the data ends inside the tile.
        ProtocolError: an invalid tile.
    """
    n = tw * th
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
        fill_rect(band, cpp, width, tile_x, 0, tw, th, solid)
        return end, solid
    elif kind <= 16:  # packed palette
        end = off + kind * cpp
        palette = buf[off:end]
        bits = 1 if kind == 2 else 2 if kind <= 4 else 4
        per_row = (tw * bits + 7) // 8
        off, end = end, end + per_row * th
        if end > len(buf):
            raise _Short
        table = BIT_UNPACK[bits]
        if (tw * bits) % 8 == 0:
            indices = b"".join(map(table.__getitem__, buf[off:end]))
        else:
            indices = b"".join(
                b"".join(map(table.__getitem__, buf[at : at + per_row]))[:tw]
                for at in range(off, end, per_row)
            )
        off = end
        if indices.translate(None, _INDICES[kind]):  # anything left is out of range
            raise _beyond_palette(kind)
        pixels = _apply_palette(indices, palette, cpp)
    elif kind == 128 or kind >= 130:  # RLE: plain (128), or of palette indices (130-255)
        size = kind - 128  # the palette's; none for plain RLE
        end = off + size * cpp
        palette = buf[off:end]
        off = end
        out = bytearray()  # CPIXELs for plain RLE, else palette indices
        left = n
        # Runs are ZRLE's hot loop, so both kinds share one loop and the length (1 + the
        # sum of bytes up to the first that is not 255) is decoded inline, not in a call.
        try:
            while left > 0:
                if size:
                    index = buf[off]
                    off += 1
                    if index < 128:  # a single pixel, without a length
                        if index >= size:
                            raise _beyond_palette(size)
                        out.append(index)
                        left -= 1
                        continue
                    index -= 128
                    value: bytes | bytearray = _BYTE[index]
                else:
                    value = buf[off : off + cpp]
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
                if size and index >= size:
                    raise _beyond_palette(size)
                out += value * run
                left -= run
        except IndexError:
            raise _Short from None
        pixels = _apply_palette(out, palette, cpp) if size else out
    else:
        raise ProtocolError(f"unused ZRLE tile subencoding {kind}")
    if off > len(buf):
        raise _Short
    put_rect(band, cpp, width, tile_x, 0, tw, th, pixels)
    return off, solid


class InflatingDecoder:
    """A decoder's state on one connection when its rectangles come over zlib: the zlib
    streams, which carry over from rectangle to rectangle, and inflated bytes not yet decoded.

    Subclasses read a rectangle with ``read(reader, codec, rect, emit)``, a
    :data:`Decoding` like :func:`read_raw`.
    """

    def __init__(self, streams: int) -> None:
        self._streams: list[Any] = [None] * streams  # zlib.Decompress, made on first use
        self.buffer = bytearray()
        """Inflated bytes waiting for the rest of their ZRLE tile or Tight row (less than one)."""

    def _stream(self, index: int) -> Any:
        """The zlib stream ``index``: a new one at first, or after it was set to None (a reset)."""
        stream = self._streams[index]
        if stream is None:
            stream = self._streams[index] = zlib.decompressobj()
        return stream


class ZRLEDecoder(InflatingDecoder):
    """ZRLE's state on one connection: the zlib stream, and inflated bytes not yet decoded.

    One zlib stream serves the whole connection: it is never reset (RFC 6143 §7.7.6).
    """

    def __init__(self) -> None:
        super().__init__(streams=1)

    def read(self, reader: StreamReader, codec: PixelCodec, rect: Rect, emit: Emit) -> Decoding:
        """One ZRLE rectangle, reported a band of 64-pixel-high tiles at a time."""
        x, y, w, h = rect
        (length,) = U32.unpack((yield from reader.read_exact(4)))
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
        inflate = self._stream(0)
        zbuf = self.buffer
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
                    used, solid = _decode_zrle_tile(zbuf, cpp, tw, th, band, w, left)
                except _Short:
                    raise ProtocolError("ZRLE data ends inside a tile") from None
                del zbuf[:used]
                if plain:
                    if solid is None or (fill is not None and fill != solid):
                        plain = False
                    fill = solid
            if plain and fill is not None:
                emit(RectFill(x, y + top, w, th, codec.to_rgb(fill, cpixel=True)))
            else:
                emit(RectPixels(x, y + top, w, th, codec.to_rgb(band, cpixel=True)))
        # The rest of the rectangle's bytes (a flush marker, typically) must still go
        # through zlib to keep the stream in step, and must not hold more pixels.
        while not zbuf and more_left():
            zbuf += yield from inflate_some()
        if zbuf:
            raise ProtocolError("ZRLE rectangle holds more data than its tiles")


# -- encoders ---------------------------------------------------------------------------------


def raw_rect(codec: PixelCodec, rect: RectPixels | RectFill) -> bytes:
    """A rectangle in Raw (a fill repeats its colour)."""
    x, y, w, h = rect.x, rect.y, rect.width, rect.height
    if isinstance(rect, RectFill):
        return RECT.pack(x, y, w, h, ENCODING_RAW) + codec.from_rgb(rect.rgb) * (w * h)
    return RECT.pack(x, y, w, h, ENCODING_RAW) + codec.from_rgb(rect.rgb)


def copy_rect(rect: RectCopy) -> bytes:
    """A rectangle in CopyRect."""
    header = RECT.pack(rect.x, rect.y, rect.width, rect.height, ENCODING_COPYRECT)
    return header + struct.pack(">HH", rect.src_x, rect.src_y)


def cursor_rect(codec: PixelCodec, cursor: CursorShape) -> bytes:
    """The Cursor pseudo-encoding: the hotspot as the position, pixels, then the mask."""
    header = RECT.pack(
        cursor.hotspot_x, cursor.hotspot_y, cursor.width, cursor.height, ENCODING_CURSOR
    )
    return header + codec.from_rgb(cursor.rgb) + cursor.mask


def resize_rect(rect: DesktopResized, encoding: int) -> bytes:
    """A new size in ``encoding``: DesktopSize, or ExtendedDesktopSize (with the screens)."""
    w, h = rect.width, rect.height
    if encoding == ENCODING_EXTENDED_DESKTOP_SIZE:
        screens = rect.screens or (Screen(0, 0, 0, w, h),)
        # ExtendedDesktopSize reuses x and y for the reason and the status.
        header = RECT.pack(rect.reason, rect.status, w, h, encoding)
        return header + bytes((len(screens), 0, 0, 0)) + pack_screens(screens)
    return RECT.pack(0, 0, w, h, encoding)


def zrle_tiles(codec: PixelCodec, w: int, h: int, rgb: bytes) -> bytes:
    """ZRLE tiles of ``w`` x ``h`` RGB pixels: solid ones as subencoding 1, the rest raw."""
    cpp = codec.cpp
    pixels = codec.from_rgb(rgb, cpixel=True)
    out = bytearray()
    for top in range(0, h, 64):
        th = min(64, h - top)
        for left in range(0, w, 64):
            tw = min(64, w - left)
            tile = crop_rect(pixels, cpp, w, left, top, tw, th)
            first = tile[:cpp]
            if tile == first * (tw * th):
                out += b"\x01" + first
            else:
                out += b"\x00"
                out += tile
    return bytes(out)


class ZRLEEncoder:
    """ZRLE on one connection: one zlib stream, with a sync flush after each rectangle."""

    def __init__(self, level: int) -> None:
        self._deflate = zlib.compressobj(level)

    def rect(self, codec: PixelCodec, rect: RectPixels | RectFill) -> bytes:
        """A rectangle in ZRLE (a fill as solid tiles)."""
        x, y, w, h = rect.x, rect.y, rect.width, rect.height
        if isinstance(rect, RectFill):
            tile = b"\x01" + codec.from_rgb(rect.rgb, cpixel=True)
            tiles = tile * (((w + 63) // 64) * ((h + 63) // 64))
        else:
            tiles = zrle_tiles(codec, w, h, rect.rgb)
        # A sync flush per rectangle: the client can inflate it without the next one.
        data = self._deflate.compress(tiles) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return RECT.pack(x, y, w, h, ENCODING_ZRLE) + U32.pack(len(data)) + data
