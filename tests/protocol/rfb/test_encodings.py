"""The encodings: pixel formats both ways, Raw bands, and Hextile and ZRLE built by hand
from the spec."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from orgo_async.errors import ProtocolError
from orgo_async.protocol.rfb import (
    DEFAULT_PIXEL_FORMAT,
    ENCODING_HEXTILE,
    ENCODING_RAW,
    ENCODING_ZRLE,
    FramebufferUpdateEnd,
    FramebufferUpdateStart,
    PixelFormat,
    RectFill,
    RectPixels,
)

from .conftest import (
    BGR233,
    BIG_ENDIAN,
    BLUE,
    EIGHTEEN_BIT,
    EIGHTEEN_BIT_BE,
    GREEN,
    HIGH_BYTES,
    RED,
    RGB565,
    RGBX,
    TEN_BIT,
    WHITE,
    YELLOW,
    H,
    Pair,
    W,
    connected_client,
    cpx,
    painted,
    picture,
    px,
    quantise,
    rect,
    update,
    zrle_length,
    zrle_rect,
    zrle_stream,
    zrle_tile,
)


@pytest.mark.parametrize("encoding", [ENCODING_RAW, ENCODING_ZRLE])
@pytest.mark.parametrize(
    "pf",
    [
        DEFAULT_PIXEL_FORMAT,
        RGBX,
        BIG_ENDIAN,
        HIGH_BYTES,
        RGB565,
        BGR233,
        TEN_BIT,
        EIGHTEEN_BIT,
        EIGHTEEN_BIT_BE,
    ],
    ids=["bgrx", "rgbx", "big-endian", "high-bytes", "565", "233", "10-bit", "18-bit", "18-bit-be"],
)
def test_pixels_round_trip(encoding: int, pf: PixelFormat) -> None:
    pair = Pair(client={"pixel_format": pf})
    pair.connect()
    assert pair.server.pixel_format == pf
    image = picture(W, H)
    pair.server.send_framebuffer_update([RectPixels(0, 0, W, H, image)], encoding=encoding)
    pair.pump()
    events = pair.client.events_received()
    assert isinstance(events[0], FramebufferUpdateStart) and events[0].rects == 1
    assert isinstance(events[-1], FramebufferUpdateEnd)
    canvas = painted(W, H, events)
    exact = pf.red_max == pf.green_max == pf.blue_max == 255
    assert bytes(canvas.pixels) == (image if exact else quantise(image, pf))


def test_zero_sized_rectangles_carry_no_pixels() -> None:
    pair = Pair()
    pair.connect()
    pair.server.send_framebuffer_update([RectPixels(0, 0, 0, 5, b"")], encoding=ENCODING_ZRLE)
    pair.server.send_framebuffer_update([RectPixels(0, 0, 5, 0, b"")], encoding=ENCODING_RAW)
    pair.pump()
    assert [type(e) for e in pair.client.events_received()] == [
        FramebufferUpdateStart,
        FramebufferUpdateEnd,
    ] * 2


def test_large_raw_rectangles_arrive_in_bounded_bands() -> None:
    client = connected_client(2000, 1000)
    body = bytes(2000 * 1000 * 4)
    client.receive_data(update(rect(0, 0, 2000, 1000, ENCODING_RAW)))
    for at in range(0, len(body), 300_000):
        client.receive_data(body[at : at + 300_000])
        assert client.buffered_bytes < 1 << 20
    events = client.events_received()
    bands = [e for e in events if isinstance(e, RectPixels)]
    assert len(bands) > 1 and sum(b.height for b in bands) == 1000
    assert all(len(b.rgb) == b.width * b.height * 3 for b in bands)


def test_hextile_every_subencoding() -> None:
    client = connected_client()
    raw_tile = [(x * 10, y * 100, 7) for y in range(2) for x in range(16)]
    # A 20x18 rectangle at (3, 2): tiles 16x16, 4x16 (first row), 16x2, 4x2 (second row).
    tiles = (
        # 1: background + foreground + 2 subrects: (2,3) 4x2 and (10,12) 6x3.
        bytes((2 | 4 | 8,)) + px(RED) + px(GREEN) + b"\x02" + b"\x23\x31" + b"\xac\x52"
        # 2: background carried over (red); 2 coloured subrects: (0,0) 1x1 and (1,1) 2x2.
        + bytes((8 | 16,)) + b"\x02" + px(BLUE) + b"\x00\x00" + px(YELLOW) + b"\x11\x11"
        # 3: raw.
        + b"\x01" + b"".join(px(c) for c in raw_tile)
        # 4: a new background, no subrects (AnySubrects with a zero count).
        + bytes((2 | 8,)) + px(WHITE) + b"\x00"
    )  # fmt: skip
    client.receive_data(update(rect(3, 2, 20, 18, ENCODING_HEXTILE, tiles)))
    canvas = painted(W, H, client.events_received())
    for y in range(18):
        for x in range(20):
            if y < 16 and x < 16:
                in_a = 2 <= x <= 5 and 3 <= y <= 4
                in_b = 10 <= x <= 15 and 12 <= y <= 14
                want = GREEN if in_a or in_b else RED
            elif y < 16:
                want = (
                    BLUE if (x, y) == (16, 0) else YELLOW if x in (17, 18) and y in (1, 2) else RED
                )
            elif x < 16:
                want = raw_tile[(y - 16) * 16 + x]
            else:
                want = WHITE
            assert canvas.pixel(3 + x, 2 + y) == want, (x, y)
    assert canvas.pixel(2, 2) == (0, 0, 0) and canvas.pixel(23, 2) == (0, 0, 0)


def test_hextile_carries_background_and_foreground_over() -> None:
    client = connected_client()
    tiles = (
        bytes((2 | 4 | 8,)) + px(BLUE) + px(WHITE) + b"\x01" + b"\x00\x0f"  # column 0, 16 tall
        + bytes((8,)) + b"\x01" + b"\xf0\x00"  # blue and white carried: (15,0) 1x1
        + b"\x00"  # blue, carried, nothing else
    )  # fmt: skip
    client.receive_data(update(rect(0, 0, 48, 16, ENCODING_HEXTILE, tiles)))
    canvas = painted(W, H, client.events_received())
    assert canvas.pixel(0, 15) == WHITE and canvas.pixel(1, 15) == BLUE
    assert canvas.pixel(31, 0) == WHITE and canvas.pixel(30, 0) == BLUE
    assert canvas.pixel(40, 8) == BLUE


def test_hextile_plain_bands_become_fills() -> None:
    client = connected_client()
    tiles = b"\x02" + px(GREEN) + b"\x00" + b"\x08\x00" + b"\x00" * 3
    tiles += b"\x00\x02" + px(RED) + b"\x00"  # two colours in the third band
    client.receive_data(update(rect(0, 0, 40, 40, ENCODING_HEXTILE, tiles)))
    events = client.events_received()
    assert events[1:3] == [
        RectFill(0, 0, 40, 16, bytes(GREEN)),
        RectFill(0, 16, 40, 16, bytes(GREEN)),
    ]
    assert isinstance(events[3], RectPixels)
    assert events[3].rgb == (bytes(GREEN) * 16 + bytes(RED) * 24) * 8


@pytest.mark.parametrize(
    ("tiles", "message"),
    [
        (b"\x08\x00", "without a background"),
        (b"\x0a" + px(RED) + b"\x01\x00\x00", "without a foreground"),
        (b"\x1a" + px(RED) + b"\x01" + px(RED) + b"\xf0\x10", r"subrectangle 2x1\+15\+0 outside"),
        (b"\x20", "unknown Hextile subencoding bits"),
    ],
)
def test_hextile_errors(tiles: bytes, message: str) -> None:
    client = connected_client()
    with pytest.raises(ProtocolError, match=message):
        client.receive_data(update(rect(0, 0, 16, 16, ENCODING_HEXTILE, tiles)))


def test_zrle_every_subencoding_on_one_zlib_stream() -> None:
    client = connected_client(200, 140)
    stream, expected = zrle_stream()
    client.receive_data(stream)
    assert painted(200, 140, client.events_received()).pixels == expected


def test_zrle_covers_every_palette_width_and_long_runs() -> None:
    # Each packed-palette width (1, 2, 4 bits) on a tile width that leaves row padding,
    # and runs that need several length bytes.
    client = connected_client(200, 140)
    deflate = zlib.compressobj()
    for size in (2, 3, 4, 5, 16):
        palette = [(i * 15, 255 - i * 15, 7) for i in range(size)]
        pixels = [palette[i % size] for i in range(13 * 5)]
        client.receive_data(
            update(zrle_rect(1, 1, 13, 5, zrle_tile("packed", pixels, 13), deflate))
        )
        assert painted(200, 140, client.events_received()).crop(1, 1, 13, 5) == b"".join(
            bytes(p) for p in pixels
        )
    pixels = [RED] * 255 + [GREEN] * 256 + [BLUE] * 511 + [WHITE] * (64 * 64 - 1022)
    for kind in ("plain-rle", "palette-rle"):
        client.receive_data(update(zrle_rect(0, 0, 64, 64, zrle_tile(kind, pixels, 64), deflate)))
        canvas = painted(200, 140, client.events_received())
        assert canvas.crop(0, 0, 64, 64) == b"".join(bytes(p) for p in pixels)
    # A run of one written with the top bit set and a zero length byte is valid too.
    tile = b"\x82" + cpx(RED) + cpx(BLUE) + b"\x80\x00" + b"\x81" + zrle_length(63)
    client.receive_data(update(zrle_rect(0, 0, 64, 1, tile, deflate)))
    assert painted(200, 140, client.events_received()).crop(0, 0, 2, 1) == bytes(RED + BLUE)


def test_zrle_palette_rle_text_tiles_side_by_side() -> None:
    # Text-like tiles: stretches of single pixels between runs, a palette past 16 colours,
    # tiles ending in singles right before the next tile's bytes (a raw tile's are all
    # below 128 here), and the stream cut into pieces of every size.
    rng = random.Random(5)
    palette = [(i * 8, 250 - i * 8, (i * 37) % 256) for i in range(30)]
    dark = [(i, 2 * i, 3 * i) for i in range(40)]
    tiles = bytearray()
    expected = bytearray(64 * 3 * 64 * 3)
    for column, kind in enumerate(("palette-rle", "palette-rle", "raw")):
        pixels: list[tuple[int, int, int]] = []
        while len(pixels) < 64 * 64:
            colour = rng.choice(palette if kind != "raw" else dark)
            pixels += [colour] * min(64 * 64 - len(pixels), rng.choice((1, 1, 1, 2, 7, 300)))
        pixels[-3:] = pixels[-3:] if kind == "raw" else palette[:3]  # singles to the end
        tiles += zrle_tile(kind, pixels, 64)
        for i, colour in enumerate(pixels):
            at = ((i // 64) * 192 + column * 64 + i % 64) * 3
            expected[at : at + 3] = bytes(colour)
    data = update(zrle_rect(0, 0, 192, 64, bytes(tiles), zlib.compressobj()))
    for step in (1, 7, len(data)):
        client = connected_client(200, 140)
        for at in range(0, len(data), step):
            client.receive_data(data[at : at + step])
        assert painted(200, 140, client.events_received()).crop(0, 0, 192, 64) == expected


@pytest.mark.parametrize("step", [len(b"x"), 10_000, 1 << 20])
def test_zrle_rectangles_that_inflate_a_lot(step: int) -> None:
    # Far more pixels than compressed bytes: zlib's output is capped per call and the
    # rest is fetched as tiles need it.
    width, height = 1280, 130
    client = connected_client(width, height)
    deflate = zlib.compressobj(9)
    tiles = bytearray()
    stripes = bytes(RED) * 5 + bytes(BLUE) * 3
    for top in range(0, height, 64):
        for left in range(0, width, 64):
            tw, th = min(64, width - left), min(64, height - top)
            tiles += b"\x00" + (stripes * (tw * th))[: tw * th * 3]
    data = update(zrle_rect(0, 0, width, height, bytes(tiles), deflate))
    for at in range(0, len(data), step):
        client.receive_data(data[at : at + step])
        assert client.buffered_bytes < 1 << 18
    canvas = painted(width, height, client.events_received())
    assert canvas.pixel(0, 0) == (0, 0, 255) and canvas.pixel(5, 0) == (255, 0, 0)
    assert canvas.pixel(64, 129) == canvas.pixel(0, 0)


def test_zrle_solid_bands_become_fills() -> None:
    client = connected_client(200, 140)
    deflate = zlib.compressobj()
    tiles = (b"\x01" + cpx(BLUE)) * 6
    client.receive_data(update(zrle_rect(0, 0, 150, 70, tiles, deflate)))
    assert client.events_received()[1:3] == [
        RectFill(0, 0, 150, 64, bytes(BLUE)),
        RectFill(0, 64, 150, 6, bytes(BLUE)),
    ]


@pytest.mark.parametrize(
    ("tiles", "message"),
    [
        (b"\x11", "unused ZRLE tile subencoding 17"),
        (b"\x81", "unused ZRLE tile subencoding 129"),
        (b"\x02" + cpx(RED) + cpx(BLUE) + b"\x00", "ends inside a tile"),  # 2x2 needs 2 rows
        (b"\x00" + cpx(RED) * 3, "ends inside a tile"),
        (b"\x01" + cpx(RED)[:2], "ends inside a tile"),
        (b"\x80" + cpx(RED) + b"\xff", "ends inside a tile"),
        (b"\x82" + cpx(RED) + cpx(BLUE) + b"\x01", "ends inside a tile"),
        (b"\x80" + cpx(RED) + b"\x04", "run goes past the end"),
        (b"\x82" + cpx(RED) + cpx(BLUE) + b"\x02\x00\x00\x00", "palette index beyond"),
        (b"\x82" + cpx(RED) + cpx(BLUE) + b"\x81\x04", "run goes past the end"),
        (b"\x03" + cpx(RED) * 3 + b"\xc0\xc0", "palette index beyond a palette of 3"),
        (b"\x01" + cpx(RED) + b"\x00", "more data than its tiles"),
        (b"", "ends before its last tile"),
    ],
)
def test_zrle_errors(tiles: bytes, message: str) -> None:
    client = connected_client()
    with pytest.raises(ProtocolError, match=message):
        client.receive_data(update(zrle_rect(0, 0, 2, 2, tiles, zlib.compressobj())))


def test_zrle_bombs_and_lies_are_bounded() -> None:
    client = connected_client()
    with pytest.raises(ProtocolError, match="too long for a 2x2 rectangle"):
        client.receive_data(update(rect(0, 0, 2, 2, ENCODING_ZRLE, b"\xff\xff\xff\xff")))
    client = connected_client()
    bomb = zlib.compress(b"\x01" + bytes(10_000_000))
    with pytest.raises(ProtocolError, match="inflates past"):
        client.receive_data(update(rect(0, 0, 64, 64, ENCODING_ZRLE, struct.pack(">I", len(bomb)))))
        client.receive_data(bomb)
    client = connected_client()
    with pytest.raises(ProtocolError, match="malformed RFB data"):
        client.receive_data(update(rect(0, 0, 2, 2, ENCODING_ZRLE, b"\0\0\0\x04junk")))
