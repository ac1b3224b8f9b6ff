"""The emulator's bitmap font."""

from __future__ import annotations

import pytest

from orgo_async.emulator.font import glyph, text_size
from orgo_async.emulator.synthetic import SyntheticDesktop

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


def test_every_printable_character_has_its_own_glyph() -> None:
    glyphs = {ch: glyph(ch) for ch in PRINTABLE}
    assert len(set(glyphs.values())) == len(PRINTABLE)
    assert glyphs[" "] == (0,) * 7
    assert all(any(rows) for ch, rows in glyphs.items() if ch != " ")
    assert all(0 <= row < 32 for rows in glyphs.values() for row in rows)
    assert glyph("\u00e9") not in glyphs.values()  # non-ASCII: the box


def test_text_size() -> None:
    assert text_size("abc", 1) == (18, 8)
    assert text_size("abc") == (36, 16)
    assert SyntheticDesktop.text_size("", 3) == (0, 24)
    with pytest.raises(ValueError, match="scale"):
        text_size("a", 0)
