"""Helpers for the RFB core tests: a client and a server joined, pictures, hand-built updates."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from orgo_async.protocol.rfb import (
    DEFAULT_PIXEL_FORMAT,
    ENCODING_ZRLE,
    Framebuffer,
    PixelFormat,
    RFBClientProtocol,
    RFBEvent,
    RFBProtocol,
    RFBServerProtocol,
)

# Not multiples of 16 or 64: every encoding meets partial tiles.
W, H = 100, 70


Colour = tuple[int, int, int]


RGBX = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)  # what vncdotool asks for


BIG_ENDIAN = PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0)


HIGH_BYTES = PixelFormat(32, 24, False, True, 255, 255, 255, 24, 16, 8)  # CPIXEL drops the low byte


RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)


BGR233 = PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6)


TEN_BIT = PixelFormat(32, 30, True, True, 1023, 1023, 1023, 20, 10, 0)


# 6 bits a channel in 3 bytes: a 3-byte CPIXEL that is not byte-aligned.
EIGHTEEN_BIT = PixelFormat(32, 18, False, True, 63, 63, 63, 12, 6, 0)


EIGHTEEN_BIT_BE = PixelFormat(32, 18, True, True, 63, 63, 63, 12, 6, 0)


class Pair:
    """A client and a server core joined by a fake network, recording what the server sent."""

    def __init__(
        self, *, client: dict[str, Any] | None = None, server: dict[str, Any] | None = None
    ) -> None:
        self.client = RFBClientProtocol(**(client or {}))
        server_kw: dict[str, Any] = {"width": W, "height": H, **(server or {})}
        self.server = RFBServerProtocol(**server_kw)
        self.to_client = bytearray()

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for data in self.server.data_to_send():
                moved = True
                self.to_client += data
                self.client.receive_data(data)
            for data in self.client.data_to_send():
                moved = True
                self.server.receive_data(data)

    def connect(self) -> tuple[list[RFBEvent], list[RFBEvent]]:
        self.pump()
        return self.client.events_received(), self.server.events_received()


def painted(width: int, height: int, events: Iterable[RFBEvent]) -> Framebuffer:
    """A framebuffer painted by client events, to compare pixels whatever the encoding."""
    fb = Framebuffer(width, height)
    for event in events:
        fb.apply(event)
    return fb


def picture(w: int, h: int, seed: int = 1) -> bytes:
    """A desktop-like RGB image: flat areas, a gradient, text-like specks and some noise."""
    rng = random.Random(seed)
    out = bytearray()
    for y in range(h):
        for x in range(w):
            if y < h // 5:
                out += bytes((30, 30, 120))
            elif x < w // 3:
                out += bytes(((x * 7) & 255, (y * 3) & 255, 90))
            elif rng.random() < 0.1:
                out += bytes((0, 0, 0))
            elif x > w * 3 // 4:
                out += bytes(rng.randrange(256) for _ in range(3))
            else:
                out += bytes((240, 240, 240))
    return bytes(out)


def quantise(rgb: bytes, pf: PixelFormat) -> bytes:
    """What ``rgb`` looks like after a trip through ``pf`` (reference arithmetic)."""
    out = bytearray()
    tops = (pf.red_max, pf.green_max, pf.blue_max)
    for i, value in enumerate(rgb):
        top = tops[i % 3]
        level = (value * top + 127) // 255
        out.append((level * 255 + top // 2) // top)
    return bytes(out)


def server_init(w: int = W, h: int = H, name: bytes = b"desk", pf: bytes | None = None) -> bytes:
    pf = DEFAULT_PIXEL_FORMAT.pack() if pf is None else pf
    return struct.pack(">HH", w, h) + pf + struct.pack(">I", len(name)) + name


def connected_client(w: int = W, h: int = H, **kw: Any) -> RFBProtocol:
    """A client past the handshake (3.8, None), its outgoing bytes and events drained."""
    client = RFBClientProtocol(**kw)
    client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(w, h))
    client.data_to_send()
    client.events_received()
    return client


def connected_server(**kw: Any) -> RFBProtocol:
    server = RFBServerProtocol(width=W, height=H, **kw)
    server.receive_data(b"RFB 003.008\n\x01\x01")
    server.data_to_send()
    server.events_received()
    return server


def update(*rects: bytes, count: int | None = None) -> bytes:
    return b"\0\0" + struct.pack(">H", len(rects) if count is None else count) + b"".join(rects)


def rect(x: int, y: int, w: int, h: int, encoding: int, body: bytes = b"") -> bytes:
    return struct.pack(">HHHHi", x, y, w, h, encoding) + body


def px(colour: Colour) -> bytes:
    """A pixel in the default format (B, G, R, X in memory)."""
    r, g, b = colour
    return bytes((b, g, r, 0))


def cpx(colour: Colour) -> bytes:
    """A ZRLE CPIXEL in the default format (B, G, R)."""
    r, g, b = colour
    return bytes((b, g, r))


RED, GREEN, BLUE, YELLOW, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255,) * 3


def zrle_length(run: int) -> bytes:
    """An RLE run length: 255s, then the remainder; their sum is run - 1."""
    return b"\xff" * ((run - 1) // 255) + bytes(((run - 1) % 255,))


def _runs(pixels: Sequence[Colour]) -> list[tuple[Colour, int]]:
    runs: list[tuple[Colour, int]] = []
    for p in pixels:
        if runs and runs[-1][0] == p:
            runs[-1] = (p, runs[-1][1] + 1)
        else:
            runs.append((p, 1))
    return runs


def zrle_tile(kind: str, pixels: Sequence[Colour], tw: int) -> bytes:
    """One ZRLE tile in the default format, written from the spec's description."""
    if kind == "raw":
        return b"\x00" + b"".join(cpx(p) for p in pixels)
    if kind == "solid":
        assert len(set(pixels)) == 1
        return b"\x01" + cpx(pixels[0])
    palette = sorted(set(pixels))
    index = {p: i for i, p in enumerate(palette)}
    if kind == "packed":
        size = len(palette)
        assert 2 <= size <= 16
        bits = 1 if size == 2 else 2 if size <= 4 else 4
        out = bytearray((size,)) + b"".join(cpx(p) for p in palette)
        for row in range(len(pixels) // tw):
            acc = filled = 0
            for p in pixels[row * tw : (row + 1) * tw]:
                acc, filled = (acc << bits) | index[p], filled + bits
                if filled == 8:
                    out.append(acc)
                    acc = filled = 0
            if filled:
                out.append(acc << (8 - filled))  # rows end on a byte boundary
        return bytes(out)
    if kind == "plain-rle":
        return b"\x80" + b"".join(cpx(p) + zrle_length(n) for p, n in _runs(pixels))
    if kind == "palette-rle":
        out = bytearray((128 + len(palette),)) + b"".join(cpx(p) for p in palette)
        for p, n in _runs(pixels):
            out += bytes((index[p],)) if n == 1 else bytes((index[p] | 128,)) + zrle_length(n)
        return bytes(out)
    raise AssertionError(kind)


def zrle_rect(x: int, y: int, w: int, h: int, tiles: bytes, deflate: Any) -> bytes:
    data = deflate.compress(tiles) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return rect(x, y, w, h, ENCODING_ZRLE, struct.pack(">I", len(data)) + data)


def tile_pixels(kind: str, tw: int, th: int, rng: random.Random) -> list[Colour]:
    """Pixels that suit ``kind``: few colours for palettes, long runs for RLE."""
    n = tw * th
    if kind == "solid":
        return [YELLOW] * n
    if kind == "raw":
        return [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n)]
    colours = [(i * 40 % 256, i * 90 % 256, i * 20 % 256) for i in range(rng.choice([2, 3, 9, 16]))]
    if kind == "packed":
        return [
            colours[i % len(colours)] if i < len(colours) else rng.choice(colours) for i in range(n)
        ]
    if kind == "palette-rle":
        colours = [(i, 255 - i, i * 2 % 256) for i in range(127)]  # the largest palette
    out: list[Colour] = []
    while len(out) < n:
        out += [rng.choice(colours)] * rng.choice([1, 1, 2, 255, 256, 300, 600])
    out = out[:n]
    if len(set(out)) == 1:  # a palette needs two colours (one is a solid tile)
        out[-1] = next(c for c in colours if c != out[0])
    return out


KINDS = ["raw", "solid", "packed", "plain-rle", "palette-rle"]


def zrle_stream(seed: int = 5) -> tuple[bytes, bytes]:
    """Two ZRLE updates on one zlib stream, every subencoding in several tile sizes.

    Returns the update bytes (for a 200x140 framebuffer) and the expected RGB.
    """
    rng = random.Random(seed)
    deflate = zlib.compressobj(6)
    expected = Framebuffer(200, 140)
    messages = []
    for x, y, w, h in ((0, 0, 150, 70), (3, 70, 130, 70)):
        tiles = bytearray()
        for top in range(0, h, 64):
            for left in range(0, w, 64):
                tw, th = min(64, w - left), min(64, h - top)
                kind = KINDS[(top // 64 * 3 + left // 64 + x) % len(KINDS)]
                pixels = tile_pixels(kind, tw, th, rng)
                tiles += zrle_tile(kind, pixels, tw)
                expected.paint(x + left, y + top, tw, th, b"".join(bytes(p) for p in pixels))
        messages.append(update(zrle_rect(x, y, w, h, bytes(tiles), deflate)))
    return b"".join(messages), bytes(expected.pixels)
