"""The PNG codec: round trips, files from an independent writer, and damaged input."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from orgo_async.errors import ProtocolError
from orgo_async.protocol.png import DecodedPNG, decode_png, encode_png, png_size

# -- an independent reference writer ------------------------------------------
#
# Written straight from the PNG spec with per-byte loops, sharing no code with
# the codec, so that the decoder is checked against every filter type.

BPP = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def ihdr(width: int, height: int, colour: int, *, depth: int = 8, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(kind: int, row: bytes, prior: bytes, bpp: int) -> bytes:
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        predictor = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - predictor) % 256)
    return bytes([kind]) + bytes(out)


def reference_png(
    width: int,
    height: int,
    colour: int,
    pixels: bytes,
    filters: list[int],
    *,
    idat_parts: int = 1,
    extra: bytes = b"",
) -> bytes:
    """A PNG of ``pixels`` (in the colour type's own layout) with row ``r`` filtered by
    ``filters[r % len(filters)]``, its zlib stream cut into ``idat_parts`` IDAT chunks."""
    bpp = BPP[colour]
    stride = width * bpp
    prior = bytes(stride)
    raw = b""
    for r in range(height):
        row = pixels[r * stride : (r + 1) * stride]
        raw += filter_row(filters[r % len(filters)], row, prior, bpp)
        prior = row
    stream = zlib.compress(raw, 9)
    cuts = sorted(random.Random(len(stream)).sample(range(len(stream) + 1), idat_parts - 1))
    bounds = [0, *cuts, len(stream)]
    idats = b"".join(chunk(b"IDAT", stream[s:e]) for s, e in zip(bounds, bounds[1:], strict=False))
    return b"\x89PNG\r\n\x1a\n" + ihdr(width, height, colour) + extra + idats + chunk(b"IEND", b"")


def random_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# -- round trips ------------------------------------------------------------------


@st.composite
def images(draw: st.DrawFn) -> tuple[int, int, str, bytes]:
    width = draw(st.integers(1, 24))
    height = draw(st.integers(1, 12))
    mode = draw(st.sampled_from(["RGB", "RGBA"]))
    size = width * height * (3 if mode == "RGB" else 4)
    pixels = draw(st.binary(min_size=size, max_size=size))
    return width, height, mode, pixels


@given(images(), st.sampled_from(["sub", "none"]), st.integers(0, 9))
def test_encode_then_decode_gives_the_same_pixels(
    image: tuple[int, int, str, bytes], filter_: str, level: int
) -> None:
    width, height, mode, pixels = image
    png = encode_png(width, height, pixels, mode=mode, filter=filter_, compress_level=level)  # type: ignore[arg-type]
    decoded = decode_png(png)
    assert (decoded.width, decoded.height, decoded.mode) == (width, height, mode)
    assert decoded.pixels == pixels
    assert png_size(png) == (width, height)


def test_encode_accepts_bytearray_and_memoryview_and_copies() -> None:
    pixels = bytearray(random_bytes(5 * 4 * 3))
    png = encode_png(5, 4, memoryview(pixels))
    expected = bytes(pixels)
    pixels[:] = bytes(len(pixels))
    assert decode_png(png).pixels == expected
    assert decode_png(encode_png(5, 4, pixels)).pixels == bytes(len(pixels))


def test_sub_filter_is_the_default_and_none_is_available() -> None:
    pixels = random_bytes(4 * 3 * 3)
    for filter_, kind in (("sub", 1), ("none", 0)):
        png = encode_png(4, 3, pixels, filter=filter_)  # type: ignore[arg-type]
        raw = zlib.decompress(png[png.index(b"IDAT") + 4 : png.index(b"IEND") - 8])
        assert raw[0 :: 4 * 3 + 1] == bytes([kind]) * 3
    assert encode_png(4, 3, pixels) == encode_png(4, 3, pixels, filter="sub")


def test_a_large_image_round_trips() -> None:
    rows = [bytes((x * 7 + y) % 256 for x in range(640 * 3)) for y in range(8)]
    pixels = b"".join(rows) * 40
    assert decode_png(encode_png(640, 320, pixels)).pixels == pixels


def test_decoded_pixel_and_repr() -> None:
    pixels = bytes(range(2 * 2 * 4))
    decoded = decode_png(encode_png(2, 2, pixels, mode="RGBA"))
    assert decoded.pixel(1, 1) == (12, 13, 14, 15)
    assert decoded.pixel(0, 1) == (8, 9, 10, 11)
    assert decoded.channels == 4
    assert "16 bytes" in repr(decoded)
    with pytest.raises(ValueError, match="outside"):
        decoded.pixel(2, 0)
    assert decoded == DecodedPNG(2, 2, "RGBA", pixels)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 1, b""), {}, "width"),
        ((1, 0, b""), {}, "height"),
        ((16385, 1, bytes(16385 * 3)), {}, "width"),
        ((1, 16385, bytes(16385 * 3)), {}, "height"),
        ((2, 2, bytes(11)), {}, "holds 11 bytes"),
        ((2, 2, bytes(12)), {"mode": "RGBA"}, "needs 16"),
        ((1, 1, bytes(3)), {"mode": "L"}, "mode"),
        ((1, 1, bytes(3)), {"compress_level": 10}, "compress_level"),
        ((1, 1, bytes(3)), {"filter": "paeth"}, "filter"),
    ],
)
def test_encode_rejects_bad_arguments(args: tuple, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        encode_png(*args, **kwargs)


# -- files from the reference writer --------------------------------------------


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("colour", [2, 6])
def test_every_filter_type_decodes(kind: int, colour: int) -> None:
    width, height = 13, 7
    pixels = random_bytes(width * height * BPP[colour], seed=kind)
    decoded = decode_png(reference_png(width, height, colour, pixels, [kind]))
    assert decoded.mode == ("RGB" if colour == 2 else "RGBA")
    assert decoded.pixels == pixels


@given(
    st.integers(1, 16),
    st.integers(1, 8),
    st.sampled_from([0, 2, 4, 6]),
    st.lists(st.integers(0, 4), min_size=1, max_size=8),
    st.integers(1, 4),
    st.randoms(use_true_random=False),
)
@settings(max_examples=60)
def test_mixed_filters_and_split_idat_decode(
    width: int,
    height: int,
    colour: int,
    filters: list[int],
    parts: int,
    rnd: random.Random,
) -> None:
    pixels = rnd.randbytes(width * height * BPP[colour])
    png = reference_png(width, height, colour, pixels, filters, idat_parts=parts)
    assert decode_png(png).pixels == expand(colour, pixels)


def expand(colour: int, pixels: bytes) -> bytes:
    """Grey to RGB and grey+alpha to RGBA, the slow obvious way."""
    if colour == 0:
        return b"".join(bytes((g, g, g)) for g in pixels)
    if colour == 4:
        return b"".join(bytes((g, g, g, a)) for g, a in zip(pixels[::2], pixels[1::2], strict=True))
    return pixels


def test_grey_becomes_rgb() -> None:
    decoded = decode_png(reference_png(3, 1, 0, bytes((0, 128, 255)), [1]))
    assert decoded.mode == "RGB"
    assert decoded.pixels == bytes((0, 0, 0, 128, 128, 128, 255, 255, 255))


def test_grey_alpha_becomes_rgba() -> None:
    decoded = decode_png(reference_png(2, 1, 4, bytes((10, 20, 200, 255)), [4]))
    assert decoded.mode == "RGBA"
    assert decoded.pixel(0, 0) == (10, 10, 10, 20)
    assert decoded.pixel(1, 0) == (200, 200, 200, 255)


def test_ancillary_chunks_and_a_suggested_palette_are_ignored() -> None:
    pixels = random_bytes(4 * 4 * 3)
    extra = chunk(b"tEXt", b"Comment\x00hello") + chunk(b"PLTE", bytes(9))
    assert decode_png(reference_png(4, 4, 2, pixels, [0], extra=extra)).pixels == pixels


def test_empty_idat_chunks_are_fine() -> None:
    pixels = random_bytes(3 * 3 * 3)
    png = reference_png(3, 3, 2, pixels, [2])
    at = png.index(b"IDAT") - 4
    png = png[:at] + chunk(b"IDAT", b"") + png[at:]
    assert decode_png(png).pixels == pixels


# -- damaged and unsupported input ------------------------------------------------

SMALL = encode_png(3, 2, random_bytes(3 * 2 * 3), filter="sub")


def test_truncated_at_every_offset_raises_protocol_error() -> None:
    for end in range(len(SMALL)):
        with pytest.raises(ProtocolError):
            decode_png(SMALL[:end])


def test_png_size_of_a_truncated_header_raises_protocol_error() -> None:
    for end in range(33):
        with pytest.raises(ProtocolError):
            png_size(SMALL[:end])
    assert png_size(SMALL[:33]) == (3, 2)


@given(st.data())
def test_any_flipped_byte_raises_protocol_error(data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(SMALL) - 1))
    mask = data.draw(st.integers(1, 255))
    damaged = bytearray(SMALL)
    damaged[at] ^= mask
    with pytest.raises(ProtocolError):
        decode_png(bytes(damaged))


def test_bad_crc() -> None:
    damaged = SMALL[:-1] + bytes([SMALL[-1] ^ 1])  # the IEND chunk's CRC
    with pytest.raises(ProtocolError, match="IEND has a bad CRC"):
        decode_png(damaged)
    at = SMALL.index(b"IHDR") + 4
    damaged = SMALL[:at] + bytes([SMALL[at] ^ 0x80]) + SMALL[at + 1 :]
    with pytest.raises(ProtocolError, match="IHDR has a bad CRC"):
        png_size(damaged)


def with_header(header: bytes, body: bytes = b"") -> bytes:
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (ihdr(2, 2, 2, interlace=1), "interlaced"),
        (ihdr(2, 2, 3), "palette"),
        (ihdr(2, 2, 2, depth=16), "bit depth 16"),
        (ihdr(2, 2, 0, depth=4), "bit depth 4"),
        (ihdr(2, 2, 5), "colour type 5"),
        (ihdr(0, 2, 2), "size 0x2"),
    ],
)
def test_unsupported_headers_are_refused(header: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_png(with_header(header, zlib.compress(bytes(2 * 7))))


def test_a_huge_image_is_refused_before_inflating() -> None:
    # The image data is not even zlib: the size check must come first.
    png = with_header(ihdr(100_000, 100_000, 6), b"not zlib at all")
    with pytest.raises(ProtocolError, match="exceeds the limit of 64000000 pixels"):
        decode_png(png)
    assert png_size(png) == (100_000, 100_000)
    small = encode_png(10, 10, bytes(300))
    with pytest.raises(ProtocolError, match="exceeds the limit of 99 pixels"):
        decode_png(small, max_pixels=99)
    assert decode_png(small, max_pixels=100).width == 10


def test_a_decompression_bomb_stops_at_the_expected_size() -> None:
    bomb = zlib.compress(bytes(20_000_000), 9)  # 20 MB of rows for a 2x2 image
    with pytest.raises(ProtocolError, match="longer than"):
        decode_png(with_header(ihdr(2, 2, 2), bomb))


def test_short_damaged_or_unfinished_image_data() -> None:
    short = zlib.compress(bytes(6))  # 2x2 RGB needs 14 bytes
    with pytest.raises(ProtocolError, match="truncated: 6 of 14"):
        decode_png(with_header(ihdr(2, 2, 2), short))
    with pytest.raises(ProtocolError, match="damaged"):
        decode_png(with_header(ihdr(2, 2, 2), b"\x78\x9c\xff\xff\xff"))
    cut = zlib.compress(bytes(14))[:-6]  # a stream that stops early, CRCs intact
    with pytest.raises(ProtocolError):
        decode_png(with_header(ihdr(2, 2, 2), cut))


def test_unknown_filter_type() -> None:
    raw = b"\x05" + bytes(6) + b"\x00" + bytes(6)
    with pytest.raises(ProtocolError, match="unknown filter type 5"):
        decode_png(with_header(ihdr(2, 2, 2), zlib.compress(raw)))


def test_structural_errors() -> None:
    body = zlib.compress(bytes(14))
    head = b"\x89PNG\r\n\x1a\n" + ihdr(2, 2, 2)
    cases = {
        "bad signature": b"\x89PNG\r\n\x1a\x00" + SMALL[8:],
        "without an IEND": head + chunk(b"IDAT", body),
        "no IDAT": head + chunk(b"IEND", b""),
        "second IHDR": head + ihdr(2, 2, 2) + chunk(b"IDAT", body) + chunk(b"IEND", b""),
        "critical chunk": head + chunk(b"ABCD", b"") + chunk(b"IDAT", body) + chunk(b"IEND", b""),
        "13-byte IHDR": b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes(14)) + bytes(20),
        "not a chunk name": head + chunk(b"ID\x00T", body) + chunk(b"IEND", b""),
    }
    for message, png in cases.items():
        with pytest.raises(ProtocolError, match=message):
            decode_png(png)
    with pytest.raises(ProtocolError, match="impossible"):
        decode_png(head + b"\xff\xff\xff\xffIDAT" + bytes(8))
