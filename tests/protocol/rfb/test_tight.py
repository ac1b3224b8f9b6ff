"""Tight (lossless), built by hand from rfbproto: every subencoding and filter, the four zlib
streams and their reset bits, compact lengths, and malformed data."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

import pytest

from orgo_async.errors import ProtocolError
from orgo_async.protocol._reader import StreamReader
from orgo_async.protocol.rfb import (
    ENCODING_RAW,
    ENCODING_TIGHT,
    ENCODING_TIGHT_COMPRESS_0,
    ENCODING_ZRLE,
    FramebufferUpdateEnd,
    FramebufferUpdateStart,
    PixelFormat,
    RectFill,
    RectPixels,
    RFBEvent,
)
from orgo_async.protocol.rfb.tight import _read_compact, tight_tpixel_size

from .conftest import (
    BIG_ENDIAN,
    BLUE,
    GREEN,
    RED,
    RGB565,
    RGBX,
    WHITE,
    YELLOW,
    Colour,
    H,
    Pair,
    W,
    connected_client,
    painted,
    picture,
    quantise,
    rect,
    update,
)

COPY, PALETTE, GRADIENT = 0, 1, 2


def compact(n: int) -> bytes:
    """A compact length: 7 bits a byte, the top bit saying another follows; the third has 8."""
    out = bytearray([n & 0x7F])
    if n > 0x7F:
        out[0] |= 0x80
        out.append(n >> 7 & 0x7F)
        if n > 0x3FFF:
            out[1] |= 0x80
            out.append(n >> 14)
    return bytes(out)


def data(payload: bytes, deflate: zlib._Compress | None) -> bytes:
    """Filtered data as sent: as is below 12 bytes, else a compact length and zlib."""
    if len(payload) < 12:
        return payload
    assert deflate is not None
    z = deflate.compress(payload) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return compact(len(z)) + z


def basic(stream: int, filter_id: int | None, resets: int = 0) -> bytes:
    """The control byte (and filter id) of basic compression on ``stream``."""
    control = stream << 4 | resets
    if filter_id is None:
        return bytes((control,))
    return bytes((control | 0x40, filter_id))


def tight(x: int, y: int, w: int, h: int, body: bytes) -> bytes:
    return rect(x, y, w, h, ENCODING_TIGHT, body)


def rgb(pixels: Sequence[Colour]) -> bytes:
    return b"".join(bytes(p) for p in pixels)


def mono_rows(bits: Sequence[int], w: int, pad: int = 0) -> bytes:
    """1-bit rows, most significant bit first, each padded to a byte with ``pad`` bits."""
    out = bytearray()
    for top in range(0, len(bits), w):
        row = list(bits[top : top + w])
        row += [pad] * (-len(row) % 8)
        for at in range(0, len(row), 8):
            out.append(sum(bit << (7 - k) for k, bit in enumerate(row[at : at + 8])))
    return bytes(out)


def canvas_after(client: object, w: int, h: int, *chunks: bytes) -> bytes:
    for chunk in chunks:
        client.receive_data(chunk)  # type: ignore[attr-defined]
    return bytes(painted(w, h, client.events_received()).pixels)  # type: ignore[attr-defined]


def gradient_encode(
    pixels: Sequence[Sequence[int]], w: int, tops: Sequence[int]
) -> list[list[int]]:
    """Reference gradient filter: each channel minus its clamped left + above - above-left."""
    out = []
    for i, pixel in enumerate(pixels):
        x, y = i % w, i // w
        diff = []
        for c, top in enumerate(tops):
            left = pixels[i - 1][c] if x else 0
            up = pixels[i - w][c] if y else 0
            upper_left = pixels[i - w - 1][c] if x and y else 0
            guess = min(max(left + up - upper_left, 0), top)
            diff.append((pixel[c] - guess) % (top + 1))
        out.append(diff)
    return out


# -- subencodings ------------------------------------------------------------------------------


def test_fill_is_one_tpixel_of_rgb() -> None:
    client = connected_client()
    client.receive_data(update(tight(3, 4, 50, 20, b"\x80" + bytes(YELLOW))))
    events = client.events_received()
    assert events[1] == RectFill(3, 4, 50, 20, bytes(YELLOW))
    assert isinstance(events[2], FramebufferUpdateEnd)


def test_tpixels_are_whole_pixels_in_other_formats() -> None:
    assert tight_tpixel_size(RGBX) == 3 and tight_tpixel_size(BIG_ENDIAN) == 3
    assert tight_tpixel_size(RGB565) == 2
    client = connected_client(pixel_format=RGB565)
    blue_565 = (31).to_bytes(2, "little")
    image = picture(9, 4)
    values = []
    for at in range(0, len(image), 3):
        r, g, b = image[at : at + 3]
        values.append(
            ((r * 31 + 127) // 255) << 11 | ((g * 63 + 127) // 255) << 5 | (b * 31 + 127) // 255
        )
    pixels = b"".join(v.to_bytes(2, "little") for v in values)
    deflate = zlib.compressobj()
    canvas = canvas_after(
        client,
        W,
        H,
        update(
            tight(0, 0, 10, 10, b"\x80" + blue_565),
            tight(20, 0, 9, 4, basic(0, None) + data(pixels, deflate)),
        ),
    )
    assert canvas[:3] == bytes(BLUE)
    fb = painted(W, H, [])
    fb.pixels[:] = canvas
    assert fb.crop(20, 0, 9, 4) == quantise(image, RGB565)


@pytest.mark.parametrize("w", [1, 7, 8, 13, 17])
def test_two_colour_palettes_take_a_bit_a_pixel_rows_padded(w: int) -> None:
    h = 5
    rng = random.Random(w)
    bits = [rng.randrange(2) for _ in range(w * h)]
    palette = (RED, WHITE)
    for pad in (0, 1):  # padding bits are ignored, whatever they are
        client = connected_client()
        body = basic(1, PALETTE) + b"\x01" + rgb(palette)
        body += data(mono_rows(bits, w, pad), zlib.compressobj())
        canvas = canvas_after(client, W, H, update(tight(2, 3, w, h, body)))
        fb = painted(W, H, [])
        fb.pixels[:] = canvas
        assert fb.crop(2, 3, w, h) == rgb([palette[b] for b in bits])


def test_byte_palettes_up_to_256_colours() -> None:
    deflate = zlib.compressobj()
    client = connected_client()
    for size, (w, h) in ((3, (7, 4)), (5, (13, 3)), (256, (40, 30))):
        palette = [(i, 255 - i, (i * 7) % 256) for i in range(size)]
        rng = random.Random(size)
        indices = bytes(rng.randrange(size) for _ in range(w * h))
        body = basic(2, PALETTE) + bytes((size - 1,)) + rgb(palette) + data(indices, deflate)
        client.receive_data(update(tight(1, 1, w, h, body)))
        fb = painted(W, H, client.events_received())
        assert fb.crop(1, 1, w, h) == rgb([palette[i] for i in indices])


def test_copy_filter_with_and_without_the_filter_byte_on_one_stream() -> None:
    # The second rectangle repeats the first: its zlib data refers back into the first's,
    # so it decodes only if the stream carried over.
    image = picture(30, 20)
    deflate = zlib.compressobj(9)
    first = tight(0, 0, 30, 20, basic(3, COPY) + data(image, deflate))
    second = tight(40, 30, 30, 20, basic(3, None) + data(image, deflate))
    client = connected_client()
    fb = painted(W, H, [])
    client.receive_data(update(first, second))
    for event in client.events_received():
        fb.apply(event)
    assert fb.crop(0, 0, 30, 20) == image and fb.crop(40, 30, 30, 20) == image
    # The second alone, on a fresh stream, can't be inflated.
    deflate = zlib.compressobj(9)
    data(image, deflate)
    with pytest.raises(ProtocolError, match="malformed RFB data"):
        connected_client().receive_data(
            update(tight(40, 30, 30, 20, basic(3, None) + data(image, deflate)))
        )


def test_four_streams_are_independent_and_reset_by_their_bits() -> None:
    image = picture(20, 10, seed=3)
    client = connected_client()
    streams = [zlib.compressobj() for _ in range(4)]
    rects = [tight(0, 10 * s, 20, 10, basic(s, None) + data(image, streams[s])) for s in range(4)]
    client.receive_data(update(*rects))
    fb = painted(W, H, client.events_received())
    assert all(fb.crop(0, 10 * s, 20, 10) == image for s in range(4))
    # Streams 1 and 2 restart on the server: the client resets them when told to.
    streams[1], streams[2] = zlib.compressobj(), zlib.compressobj()
    client.receive_data(
        update(
            tight(30, 0, 20, 10, basic(1, None, resets=0b0110) + data(image, streams[1])),
            tight(30, 10, 20, 10, basic(2, None) + data(image, streams[2])),
            tight(30, 20, 20, 10, basic(3, None) + data(image, streams[3])),
        )
    )
    fb = painted(W, H, client.events_received())
    assert all(fb.crop(30, 10 * s, 20, 10) == image for s in range(3))
    # Without the reset bit, a restarted stream is garbage to the client.
    streams[0] = zlib.compressobj()
    with pytest.raises(ProtocolError, match="malformed RFB data"):
        client.receive_data(update(tight(0, 0, 20, 10, basic(0, None) + data(image, streams[0]))))


def test_short_data_goes_without_zlib_and_leaves_the_stream_alone() -> None:
    deflate = zlib.compressobj()
    image = picture(10, 6, seed=4)
    palette = [RED, GREEN, BLUE]
    client = connected_client()
    client.receive_data(
        update(
            tight(0, 0, 10, 6, basic(0, None) + data(image, deflate)),
            tight(0, 10, 3, 1, basic(0, None) + rgb([RED, GREEN, BLUE])),  # 9 bytes
            tight(
                0,
                20,
                11,
                1,
                basic(0, PALETTE) + b"\x02" + rgb(palette) + bytes([0, 1, 2] * 3 + [2, 1]),
            ),
            tight(0, 30, 2, 3, basic(0, PALETTE) + b"\x01" + rgb([RED, BLUE]) + b"\x40\x80\xc0"),
            tight(20, 0, 10, 6, basic(0, None) + data(image, deflate)),
        )
    )
    fb = painted(W, H, client.events_received())
    assert fb.crop(0, 0, 10, 6) == image == fb.crop(20, 0, 10, 6)
    assert fb.crop(0, 10, 3, 1) == rgb([RED, GREEN, BLUE])
    assert fb.crop(0, 20, 11, 1) == rgb([palette[i] for i in [0, 1, 2] * 3 + [2, 1]])
    assert fb.crop(0, 30, 2, 3) == rgb([RED, BLUE, BLUE, RED, BLUE, BLUE])


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16383, 16384, (1 << 22) - 1])
def test_compact_lengths(value: int) -> None:
    encoded = compact(value)
    assert len(encoded) == (1 if value < 128 else 2 if value < 16384 else 3)
    reader = StreamReader(limit=16)
    parse = _read_compact(reader)
    for byte in encoded:  # one byte at a time: the reader waits between them
        assert next(parse) is None
        reader.feed_data(bytes((byte,)))
    with pytest.raises(StopIteration) as stop:
        next(parse)
    assert stop.value.value == value


@pytest.mark.parametrize("target", [127, 128, 16383, 16384])
def test_compressed_lengths_at_the_compact_edges(target: int) -> None:
    # Stored (level 0) zlib grows with its input one for one: pick the width whose data
    # compresses to exactly ``target`` bytes.
    rng = random.Random(target)
    palette = [(i, i, 255 - i) for i in range(256)]
    for w in range(target - 40, target):
        indices = bytes(rng.randrange(256) for _ in range(w))
        probe = zlib.compressobj(0)
        z = probe.compress(indices) + probe.flush(zlib.Z_SYNC_FLUSH)
        if len(z) == target:
            break
    else:
        raise AssertionError(f"no width compresses to {target} bytes")
    client = connected_client(w, 1, max_width=1 << 15)
    body = basic(0, PALETTE) + b"\xff" + rgb(palette) + compact(len(z)) + z
    client.receive_data(update(tight(0, 0, w, 1, body)))
    assert painted(w, 1, client.events_received()).pixels == rgb([palette[i] for i in indices])


@pytest.mark.parametrize("pf", [None, RGB565], ids=["tpixel", "565"])
def test_gradient_filter(pf: PixelFormat | None) -> None:
    w, h = 23, 9
    rng = random.Random(9)
    if pf is None:
        tops = (255, 255, 255)
        colours = [
            (x * 11 % 256, y * 29 % 256, rng.randrange(256)) for y in range(h) for x in range(w)
        ]
    else:
        tops = (31, 63, 31)
        colours = [
            (x % 32, (x + y * 5) % 64, rng.randrange(32)) for y in range(h) for x in range(w)
        ]
    diffs = gradient_encode(colours, w, tops)
    if pf is None:
        payload = rgb([(d[0], d[1], d[2]) for d in diffs])
        expected = rgb(colours)
        client = connected_client()
    else:
        payload = b"".join((d[0] << 11 | d[1] << 5 | d[2]).to_bytes(2, "little") for d in diffs)
        expected = b"".join(
            bytes(((r * 255 + 15) // 31, (g * 255 + 31) // 63, (b * 255 + 15) // 31))
            for r, g, b in colours
        )
        client = connected_client(pixel_format=pf)
    # Sent in two pieces so the filter carries the row above across bands.
    body = basic(1, GRADIENT) + data(payload, zlib.compressobj())
    message = update(tight(5, 5, w, h, body))
    client.receive_data(message[: len(message) // 2])
    client.receive_data(message[len(message) // 2 :])
    assert painted(W, H, client.events_received()).crop(5, 5, w, h) == expected


def test_large_rectangles_arrive_in_bands_with_bounded_buffers() -> None:
    width, height = 1280, 300
    client = connected_client(width, height)
    image = bytes(RED) * 5 + bytes(BLUE) * 3
    image = (image * (width * height))[: width * height * 3]
    message = update(tight(0, 0, width, height, basic(0, COPY) + data(image, zlib.compressobj(9))))
    for at in range(0, len(message), 1000):
        client.receive_data(message[at : at + 1000])
        assert client.buffered_bytes < 1 << 18
    events = client.events_received()
    bands = [e for e in events if isinstance(e, RectPixels)]
    assert len(bands) > 1 and sum(b.height for b in bands) == height
    assert painted(width, height, events).pixels == image


def test_zero_sized_rectangles() -> None:
    client = connected_client()
    client.receive_data(update(tight(0, 0, 0, 5, b"\x80" + bytes(RED)), tight(0, 0, 5, 0, b"\x00")))
    assert [type(e) for e in client.events_received()] == [
        FramebufferUpdateStart,
        FramebufferUpdateEnd,
    ]


# -- malformed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (basic(0, 3), "unknown Tight filter id 3"),
        (b"\x90" + compact(4) + b"\xff\xd8\xff\xd9", "Tight JPEG rectangle"),
        (b"\xa0", "unknown Tight compression control 0xa0"),
        (b"\xf3", "unknown Tight compression control 0xf3"),
        (
            basic(0, PALETTE) + b"\x02" + rgb([RED, GREEN, BLUE]) + bytes([0, 1, 2, 3]),
            "palette index beyond a palette of 3",
        ),
        (
            basic(0, PALETTE) + b"\x00" + rgb([RED]) + b"\x00\x40",
            "palette index beyond a palette of 1",
        ),
        (basic(0, None) + compact(16384) + bytes(20), "too long for 12 bytes of a 2x2"),
    ],
)
def test_errors(body: bytes, message: str) -> None:
    client = connected_client()
    with pytest.raises(ProtocolError, match=message):
        client.receive_data(update(tight(0, 0, 2, 2, body)))


def test_bombs_and_short_data_are_bounded() -> None:
    bomb = zlib.compress(bytes(10_000_000))
    client = connected_client()
    with pytest.raises(ProtocolError, match="inflates past 14700 bytes"):
        client.receive_data(update(tight(0, 0, 70, 70, basic(0, None) + compact(len(bomb)))))
        client.receive_data(bomb)
        assert client.buffered_bytes < 1 << 17
    short = zlib.compressobj()
    z = short.compress(bytes(100)) + short.flush(zlib.Z_SYNC_FLUSH)
    client = connected_client()
    with pytest.raises(ProtocolError, match="inflates to 100 bytes, not 300"):
        client.receive_data(update(tight(0, 0, 10, 10, basic(0, None) + compact(len(z)) + z)))
    with pytest.raises(ProtocolError, match=r"rectangle 10x10\+95\+0 \(encoding 7\) is outside"):
        connected_client().receive_data(update(tight(95, 0, 10, 10, b"\x80" + bytes(RED))))


# -- our own server ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encodings", "sent"),
    [
        (
            (ENCODING_TIGHT, ENCODING_TIGHT_COMPRESS_0 + 1, ENCODING_ZRLE, ENCODING_RAW),
            ENCODING_ZRLE,
        ),
        ((ENCODING_TIGHT, ENCODING_RAW), ENCODING_RAW),
        ((ENCODING_TIGHT,), ENCODING_RAW),
    ],
)
def test_our_server_falls_back_from_tight(encodings: tuple[int, ...], sent: int) -> None:
    pair = Pair(client={"encodings": encodings})
    pair.connect()
    image = picture(W, H)
    pair.server.send_framebuffer_update([RectPixels(0, 0, W, H, image)])
    start = len(pair.to_client)
    pair.pump()
    assert int.from_bytes(pair.to_client[start + 12 : start + 16], "big", signed=True) == sent
    events: list[RFBEvent] = pair.client.events_received()
    assert painted(W, H, events).pixels == image
