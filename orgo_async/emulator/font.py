"""The emulator's bitmap font: 5x7 glyphs for printable ASCII, drawn as runs of pixels.

The synthetic desktop (:mod:`.synthetic`) writes every piece of text with it:
the title and status bars and the text area. A character takes a cell of
``CELL_WIDTH`` x ``CELL_HEIGHT`` pixels at scale 1 (the glyph, a blank column
and a blank row), ``scale`` times that when scaled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = [
    "CELL_HEIGHT",
    "CELL_WIDTH",
    "GLYPH_HEIGHT",
    "GLYPH_WIDTH",
    "Runs",
    "check_scale",
    "glyph",
    "glyph_runs",
    "text_size",
]

# 5x7 glyphs for printable ASCII, one line per character: its code in hex,
# then seven rows top to bottom, each row 5 bits with the leftmost pixel in
# bit 4 (0x10). Characters outside printable ASCII draw as an empty box.

_FONT_DATA: Final = """
20 00 00 00 00 00 00 00
21 04 04 04 04 00 00 04
22 0A 0A 0A 00 00 00 00
23 0A 0A 1F 0A 1F 0A 0A
24 04 0F 14 0E 05 1E 04
25 18 19 02 04 08 13 03
26 0C 12 14 08 15 12 0D
27 0C 04 08 00 00 00 00
28 02 04 08 08 08 04 02
29 08 04 02 02 02 04 08
2A 00 04 15 0E 15 04 00
2B 00 04 04 1F 04 04 00
2C 00 00 00 00 0C 04 08
2D 00 00 00 1F 00 00 00
2E 00 00 00 00 00 0C 0C
2F 00 01 02 04 08 10 00
30 0E 11 13 15 19 11 0E
31 04 0C 04 04 04 04 0E
32 0E 11 01 02 04 08 1F
33 1F 02 04 02 01 11 0E
34 02 06 0A 12 1F 02 02
35 1F 10 1E 01 01 11 0E
36 06 08 10 1E 11 11 0E
37 1F 01 02 04 08 08 08
38 0E 11 11 0E 11 11 0E
39 0E 11 11 0F 01 02 0C
3A 00 0C 0C 00 0C 0C 00
3B 00 0C 0C 00 0C 04 08
3C 02 04 08 10 08 04 02
3D 00 00 1F 00 1F 00 00
3E 08 04 02 01 02 04 08
3F 0E 11 01 02 04 00 04
40 0E 11 01 0D 15 15 0E
41 0E 11 11 11 1F 11 11
42 1E 11 11 1E 11 11 1E
43 0E 11 10 10 10 11 0E
44 1C 12 11 11 11 12 1C
45 1F 10 10 1E 10 10 1F
46 1F 10 10 1E 10 10 10
47 0E 11 10 17 11 11 0F
48 11 11 11 1F 11 11 11
49 0E 04 04 04 04 04 0E
4A 07 02 02 02 02 12 0C
4B 11 12 14 18 14 12 11
4C 10 10 10 10 10 10 1F
4D 11 1B 15 15 11 11 11
4E 11 11 19 15 13 11 11
4F 0E 11 11 11 11 11 0E
50 1E 11 11 1E 10 10 10
51 0E 11 11 11 15 12 0D
52 1E 11 11 1E 14 12 11
53 0F 10 10 0E 01 01 1E
54 1F 04 04 04 04 04 04
55 11 11 11 11 11 11 0E
56 11 11 11 11 11 0A 04
57 11 11 11 15 15 15 0A
58 11 11 0A 04 0A 11 11
59 11 11 11 0A 04 04 04
5A 1F 01 02 04 08 10 1F
5B 0E 08 08 08 08 08 0E
5C 00 10 08 04 02 01 00
5D 0E 02 02 02 02 02 0E
5E 04 0A 11 00 00 00 00
5F 00 00 00 00 00 00 1F
60 08 04 02 00 00 00 00
61 00 00 0E 01 0F 11 0F
62 10 10 16 19 11 11 1E
63 00 00 0E 10 10 11 0E
64 01 01 0D 13 11 11 0F
65 00 00 0E 11 1F 10 0E
66 06 09 08 1C 08 08 08
67 00 0F 11 11 0F 01 0E
68 10 10 16 19 11 11 11
69 04 00 0C 04 04 04 0E
6A 02 00 06 02 02 12 0C
6B 10 10 12 14 18 14 12
6C 0C 04 04 04 04 04 0E
6D 00 00 1A 15 15 11 11
6E 00 00 16 19 11 11 11
6F 00 00 0E 11 11 11 0E
70 00 00 1E 11 1E 10 10
71 00 00 0D 13 0F 01 01
72 00 00 16 19 10 10 10
73 00 00 0E 10 0E 01 1E
74 08 08 1C 08 08 09 06
75 00 00 11 11 11 13 0D
76 00 00 11 11 11 0A 04
77 00 00 11 11 15 15 0A
78 00 00 11 0A 04 0A 11
79 00 00 11 11 0F 01 0E
7A 00 00 1F 02 04 08 1F
7B 02 04 04 08 04 04 02
7C 04 04 04 04 04 04 04
7D 08 04 04 02 04 04 08
7E 00 00 08 15 02 00 00
"""

_UNKNOWN_GLYPH: Final = (0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F)

GLYPH_WIDTH: Final = 5
GLYPH_HEIGHT: Final = 7
# A character's cell at scale 1: the glyph plus one blank column and row.
CELL_WIDTH: Final = GLYPH_WIDTH + 1
CELL_HEIGHT: Final = GLYPH_HEIGHT + 1

# Runs of lit pixels per glyph row: ((start column, length), ...) for each of
# the seven rows, so drawing is one slice assignment per run, not per pixel.
Runs = tuple[tuple[tuple[int, int], ...], ...]


def _runs(rows: Sequence[int]) -> Runs:
    out = []
    for bits in rows:
        runs: list[tuple[int, int]] = []
        col = 0
        while col < GLYPH_WIDTH:
            if bits & (0x10 >> col):
                start = col
                while col < GLYPH_WIDTH and bits & (0x10 >> col):
                    col += 1
                runs.append((start, col - start))
            else:
                col += 1
        out.append(tuple(runs))
    return tuple(out)


def _parse_font(data: str) -> dict[str, Runs]:
    font: dict[str, Runs] = {}
    for line in data.split("\n"):
        if line:
            code, *rows = (int(field, 16) for field in line.split())
            font[chr(code)] = _runs(rows)
    return font


_FONT: Final = _parse_font(_FONT_DATA)
_UNKNOWN_RUNS: Final = _runs(_UNKNOWN_GLYPH)


def glyph_runs(ch: str) -> Runs:
    """``ch``'s glyph as runs of lit pixels: for each of its seven rows, ``(column, length)``
    pairs (an empty box for characters outside printable ASCII)."""
    return _FONT.get(ch, _UNKNOWN_RUNS)


def glyph(ch: str) -> tuple[int, ...]:
    """The seven 5-bit rows of ``ch``'s glyph (leftmost pixel in bit 4)."""
    return tuple(
        sum(((1 << n) - 1) << (GLYPH_WIDTH - start - n) for start, n in row)
        for row in glyph_runs(ch)
    )


def text_size(text: str, scale: int = 2) -> tuple[int, int]:
    """The ``(width, height)`` in pixels a line of ``text`` covers at ``scale``.

    Every character takes a cell of ``6 * scale`` by ``8 * scale`` pixels
    (the 5x7 glyph plus a blank column and row).
    """
    check_scale(scale)
    return len(text) * CELL_WIDTH * scale, CELL_HEIGHT * scale


def check_scale(scale: int) -> None:
    """Raises ValueError unless ``scale`` is an int from 1 to 16."""
    if not isinstance(scale, int) or not 1 <= scale <= 16:
        raise ValueError(f"scale must be an int from 1 to 16, not {scale!r}")
