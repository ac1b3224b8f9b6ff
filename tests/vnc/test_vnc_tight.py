"""Tight from real servers: the frame decoded from Tight is the frame Raw gives, pixel for pixel.

A full-screen Tk window shows a picture built to reach every lossless Tight
path: flat areas (fills), black-on-white marks (2-colour palettes, 1 bit a
pixel), stripes of a few colours (byte palettes), noise (full colour, zlib),
and a smooth two-way gradient. Neither server here sends the gradient filter
(TigerVNC never does; x11vnc's libvncserver dropped it): the unit tests cover it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orgo_async import Orgo
from orgo_async.connect import Vnc
from orgo_async.connect.vnc import VNC_ENCODINGS, VNC_LOCAL_ENCODINGS
from orgo_async.protocol.rfb import (
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
    ENCODING_LAST_RECT,
    ENCODING_RAW,
    ENCODING_TIGHT,
    tight as tight_module,
)

from .conftest import GEOMETRY, VncServer, connection

WIDTH, HEIGHT = GEOMETRY
# With Cursor, as the Tight lists have it: without, x11vnc draws the pointer into the frame.
RAW_ONLY = (
    ENCODING_RAW,
    ENCODING_COPYRECT,
    ENCODING_DESKTOP_SIZE,
    ENCODING_LAST_RECT,
    ENCODING_CURSOR,
)

_SHOW = """
import sys, tkinter as tk
root = tk.Tk()
root.overrideredirect(True)
root.geometry("{w}x{h}+0+0")
photo = tk.PhotoImage(file=sys.argv[1])
tk.Label(root, image=photo, borderwidth=0, highlightthickness=0).pack()
root.wait_visibility()
root.update()
print("ready", flush=True)
root.mainloop()
"""


def busy_picture(seed: int = 11) -> bytes:
    """1280x720 RGB in bands: flat, text, stripes, noise, a 2-D gradient.

    Bands, not columns: servers cut the screen into wide rectangles and pick a
    filter for each, so a band holds rectangles of its own kind.
    """
    rng = random.Random(seed)
    stripes = [b"\xe0\x10\x10", b"\x10\xe0\x10", b"\x10\x10\xe0", b"\xf0\xf0\x20", b"\x80\x80\x80"]
    img = bytearray(b"\x2a\x5d\x8f" * (WIDTH * 40))
    for y in range(40, 260):  # black marks on white: 2 colours
        row = bytearray(b"\xff\xff\xff" * WIDTH)
        if y % 14 < 8:
            for x in range(WIDTH):
                if rng.random() < 0.25:
                    row[x * 3 : x * 3 + 3] = b"\0\0\0"
        img += row
    for y in range(260, 440):  # a few colours
        img += b"".join(stripes[(x // 3 + y // 5) % len(stripes)] for x in range(WIDTH))
    img += rng.randbytes(WIDTH * 140 * 3)  # full colour
    for y in range(580, HEIGHT):  # smooth both ways
        img += b"".join(
            bytes((x // 5 % 256, (y - 580) + x // 20, 200 - x // 8)) for x in range(WIDTH)
        )
    assert len(img) == WIDTH * HEIGHT * 3
    return bytes(img)


@contextlib.contextmanager
def shown(server: VncServer, picture: bytes, tmp_path: Path) -> Iterator[None]:
    """``picture`` full screen in a Tk window on the server's display."""
    if importlib.util.find_spec("_tkinter") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("this Python has no tkinter")
        pytest.skip("this Python has no tkinter")
    ppm = tmp_path / "scene.ppm"
    ppm.write_bytes(b"P6 %d %d 255\n" % (WIDTH, HEIGHT) + picture)
    script = _SHOW.format(w=WIDTH, h=HEIGHT)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(ppm)],
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        yield
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


async def frame_showing(
    orgo: Orgo, server: VncServer, encodings: tuple[int, ...], expected: bytes, timeout: float
) -> bytes:
    """The pixels of the first frame that shows ``expected`` (the X server may lag the window)."""
    async with Vnc(connection(orgo, server), encodings=encodings) as vnc:
        assert vnc.encodings == encodings
        async with asyncio.timeout(timeout):
            while True:
                _, _, pixels = await vnc.pixels()
                version = vnc.version
                if pixels == expected:
                    return pixels
                await vnc.wait_for_change(since_version=version)


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Which Tight palette paths the decoder went through: 1 bit a pixel, or a byte."""
    seen: Counter[str] = Counter()
    palette_rows = tight_module._palette_rows

    def spy_palette(palette: bytes, size: int, w: int) -> Any:
        seen["mono" if size <= 2 else "palette"] += 1
        return palette_rows(palette, size, w)

    monkeypatch.setattr(tight_module, "_palette_rows", spy_palette)
    return seen


Scene = Callable[[VncServer], bytes]


def flat(server: VncServer) -> bytes:
    server.x("xsetroot", "-solid", "#2a5d8f")
    return b"\x2a\x5d\x8f" * (WIDTH * HEIGHT)


@pytest.mark.parametrize(
    "tight_list", [VNC_LOCAL_ENCODINGS, VNC_ENCODINGS], ids=["local", "remote"]
)
async def test_xvnc_tight_frames_equal_raw_frames(
    offline: Orgo, xvnc: VncServer, tmp_path: Path, paths: Counter[str], tight_list: tuple[int, ...]
) -> None:
    assert tight_list[0] == ENCODING_TIGHT
    expected = flat(xvnc)
    assert await frame_showing(offline, xvnc, tight_list, expected, 10) == await frame_showing(
        offline, xvnc, RAW_ONLY, expected, 10
    )
    picture = busy_picture()
    with shown(xvnc, picture, tmp_path):
        paths.clear()
        tight_frame = await frame_showing(offline, xvnc, tight_list, picture, 10)
        assert tight_frame == await frame_showing(offline, xvnc, RAW_ONLY, picture, 10)
    assert paths["mono"] and paths["palette"], paths


async def test_x11vnc_tight_frames_equal_raw_frames(
    offline: Orgo, x11vnc: VncServer, tmp_path: Path, paths: Counter[str]
) -> None:
    picture = busy_picture()
    with shown(x11vnc, picture, tmp_path):
        # x11vnc polls the screen: give it time to see the window.
        tight_frame = await frame_showing(offline, x11vnc, VNC_ENCODINGS, picture, 20)
        assert tight_frame == await frame_showing(offline, x11vnc, RAW_ONLY, picture, 20)
    assert paths["mono"] and paths["palette"], paths
