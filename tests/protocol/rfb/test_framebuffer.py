"""The RFB framebuffer mirror: painting events, resizing, knowing when a frame is whole."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from orgo_async.errors import ProtocolError
from orgo_async.protocol.png import decode_png
from orgo_async.protocol.rfb import (
    DEFAULT_PIXEL_FORMAT,
    Bell,
    DesktopResized,
    Framebuffer,
    FramebufferUpdateEnd,
    RectCopy,
    RectFill,
    RectPixels,
    ServerInit,
)

from .conftest import BLUE, GREEN, RED, H, Pair, W, picture


def reference_copy(
    rgb: bytes, width: int, sx: int, sy: int, dx: int, dy: int, w: int, h: int
) -> bytes:
    """CopyRect done pixel by pixel through a temporary copy, for comparison."""
    out = bytearray(rgb)
    source = {
        (x, y): rgb[((sy + y) * width + sx + x) * 3 : ((sy + y) * width + sx + x) * 3 + 3]
        for y in range(h)
        for x in range(w)
    }
    for (x, y), pixel in source.items():
        at = ((dy + y) * width + dx + x) * 3
        out[at : at + 3] = pixel
    return bytes(out)


def test_a_new_framebuffer_is_black_and_incomplete() -> None:
    fb = Framebuffer(4, 3)
    assert (fb.width, fb.height, fb.pixels) == (4, 3, bytearray(36))
    assert not fb.complete
    assert Framebuffer().pixels == bytearray()


def test_painting_filling_and_reading() -> None:
    fb = Framebuffer(5, 4)
    fb.paint(1, 1, 2, 2, bytes(RED) * 2 + bytes(GREEN) * 2)
    fb.fill(0, 3, 5, 1, bytes(BLUE))
    assert fb.pixel(1, 1) == RED and fb.pixel(2, 2) == GREEN and fb.pixel(0, 0) == (0, 0, 0)
    assert fb.crop(1, 1, 2, 2) == bytes(RED) * 2 + bytes(GREEN) * 2
    assert fb.crop(0, 3, 5, 1) == bytes(BLUE) * 5  # whole rows: one slice
    fb.paint(0, 0, 5, 1, bytes(range(15)))
    assert fb.crop(0, 0, 5, 1) == bytes(range(15))


@settings(max_examples=60, deadline=None)
@given(
    x=st.integers(0, 9),
    y=st.integers(0, 6),
    size=st.tuples(st.integers(0, 10), st.integers(0, 7)),
    whole_rows=st.booleans(),
)
def test_fill_paints_exactly_its_rectangle(
    x: int, y: int, size: tuple[int, int], whole_rows: bool
) -> None:
    if whole_rows:
        x, size = 0, (10, size[1])
    w, h = min(size[0], 10 - x), min(size[1], 7 - y)
    fb = Framebuffer(10, 7)
    fb.paint(0, 0, 10, 7, picture(10, 7, seed=3))
    before = bytes(fb.pixels)
    fb.fill(x, y, w, h, bytes(RED))
    for py in range(7):
        for px in range(10):
            inside = x <= px < x + w and y <= py < y + h
            at = (py * 10 + px) * 3
            assert fb.pixel(px, py) == (RED if inside else tuple(before[at : at + 3]))


@settings(max_examples=60, deadline=None)
@given(
    src=st.tuples(st.integers(0, 15), st.integers(0, 11)),
    dst=st.tuples(st.integers(0, 15), st.integers(0, 11)),
    size=st.tuples(st.integers(0, 16), st.integers(0, 12)),
)
def test_copy_is_as_if_through_a_temporary_buffer(
    src: tuple[int, int], dst: tuple[int, int], size: tuple[int, int]
) -> None:
    w, h = min(size[0], 16 - max(src[0], dst[0])), min(size[1], 12 - max(src[1], dst[1]))
    fb = Framebuffer(16, 12)
    image = picture(16, 12, seed=4)
    fb.paint(0, 0, 16, 12, image)
    fb.copy(*src, *dst, w, h)
    assert fb.pixels == reference_copy(image, 16, *src, *dst, w, h)


def test_events_paint_and_report_change() -> None:
    fb = Framebuffer()
    assert fb.apply(ServerInit(W, H, "desk", DEFAULT_PIXEL_FORMAT))
    assert (fb.width, fb.height) == (W, H)
    assert fb.apply(RectFill(0, 0, W, H, bytes(BLUE)))
    assert fb.apply(RectPixels(0, 0, 2, 1, bytes(RED) * 2))
    assert fb.apply(RectCopy(0, 0, 10, 10, 2, 1))
    assert fb.pixel(10, 10) == RED and fb.pixel(11, 10) == RED and fb.pixel(12, 10) == BLUE
    assert not fb.apply(Bell())
    assert not fb.apply(DesktopResized(W, H))  # the same size: nothing to do
    assert not fb.apply(DesktopResized(W + 10, H, reason=1, status=1))  # a refused resize
    with pytest.raises(ProtocolError, match="outside the 100x70 screen"):
        fb.apply(RectPixels(W - 1, 0, 2, 1, bytes(6)))
    with pytest.raises(ProtocolError, match="outside"):
        fb.apply(RectCopy(W - 1, 0, 0, 0, 2, 1))


def test_a_frame_is_complete_once_every_pixel_was_painted() -> None:
    fb = Framebuffer(10, 10)
    fb.apply(RectFill(0, 0, 10, 5, bytes(RED)))
    fb.apply(RectCopy(0, 0, 0, 5, 10, 4))  # copied pixels count as painted
    fb.apply(FramebufferUpdateEnd())
    assert not fb.complete  # the last row is missing
    fb.apply(RectPixels(0, 9, 10, 1, bytes(30)))
    assert not fb.complete  # settled only at the end of an update
    fb.apply(FramebufferUpdateEnd())
    assert fb.complete
    # A copy from a part never painted does not complete a frame.
    fb = Framebuffer(4, 2)
    fb.apply(RectFill(0, 0, 4, 1, bytes(RED)))
    fb.apply(RectCopy(0, 1, 0, 0, 4, 1))
    assert not fb.settle()


def test_resizing_keeps_the_overlap_and_starts_a_new_frame() -> None:
    fb = Framebuffer(4, 3)
    image = picture(4, 3, seed=2)
    fb.paint(0, 0, 4, 3, image)
    assert fb.settle()
    assert fb.apply(DesktopResized(2, 5))
    assert (fb.width, fb.height, fb.complete) == (2, 5, False)
    assert fb.crop(0, 0, 2, 3) == b"".join(image[y * 12 : y * 12 + 6] for y in range(3))
    assert fb.crop(0, 3, 2, 2) == bytes(12)


def test_png_of_the_picture() -> None:
    fb = Framebuffer(30, 20)
    image = picture(30, 20, seed=6)
    fb.paint(0, 0, 30, 20, image)
    png = decode_png(fb.to_png(compress_level=1, filter="none"))
    assert (png.width, png.height, png.mode, png.pixels) == (30, 20, "RGB", image)
    with pytest.raises(ValueError):
        Framebuffer().to_png()


def test_a_client_mirror_follows_a_server_through_every_update() -> None:
    pair = Pair()
    pair.connect()
    rng = random.Random(9)
    expected = Framebuffer(W, H)
    fb = Framebuffer(W, H)
    for _ in range(20):
        x, y = rng.randrange(W), rng.randrange(H)
        w, h = rng.randint(1, W - x), rng.randint(1, H - y)
        rgb = picture(w, h, seed=rng.randrange(100))
        expected.paint(x, y, w, h, rgb)
        pair.server.send_framebuffer_update([RectPixels(x, y, w, h, rgb)])
        pair.pump()
        for event in pair.client.events_received():
            fb.apply(event)
    assert fb.pixels == expected.pixels
