"""The synthetic desktop: it reacts visibly to input and reports what it changed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings, strategies as st

from orgo_async.emulator.synthetic import MAX_DAMAGE, Button, Rect, SyntheticDesktop
from orgo_async.protocol.png import decode_png

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))

RED, GREEN, AMBER = (220, 40, 40), (40, 170, 70), (230, 170, 20)


def fb(width: int = 320, height: int = 240) -> SyntheticDesktop:
    return SyntheticDesktop(width, height)


def changed_pixels(before: bytes, after: bytes, width: int) -> set[tuple[int, int]]:
    return {
        ((i // 3) % width, (i // 3) // width)
        for i in range(0, len(before), 3)
        if before[i : i + 3] != after[i : i + 3]
    }


def inside(point: tuple[int, int], rect: Rect) -> bool:
    x, y = point
    rx, ry, rw, rh = rect
    return rx <= x < rx + rw and ry <= y < ry + rh


def text_region(f: SyntheticDesktop) -> bytes:
    return f.region(*f.text_area)


# -- construction and reading --------------------------------------------------


def test_a_new_desktop() -> None:
    f = fb()
    assert (f.width, f.height, len(f.pixels)) == (320, 240, 320 * 240 * 3)
    assert f.version == 0 and f.damage == [] and f.buttons == frozenset()
    assert f.pointer == (160, 120)
    assert f.pixel(0, 60) == (40, 70, 110)  # the background left of the text area
    assert f.text == ""
    cols, rows = f.text_grid
    assert cols >= 20 and rows >= 5


@pytest.mark.parametrize(
    ("width", "height"), [(0, 100), (63, 100), (100, 95), (16385, 100), (100, 16385)]
)
def test_sizes_are_validated(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="width|height"):
        SyntheticDesktop(width, height)


def test_pixel_and_region() -> None:
    f = fb()
    f.fill_rect(10, 20, 3, 2, (1, 2, 3))
    assert f.pixel(12, 21) == (1, 2, 3)
    assert f.region(10, 20, 3, 2) == bytes((1, 2, 3)) * 6
    assert f.region(0, 0, 0, 0) == b""
    assert len(f.region(0, 0, 320, 240)) == len(f.pixels)
    for bad in [(320, 0), (0, 240), (-1, 0)]:
        with pytest.raises(ValueError, match="outside"):
            f.pixel(*bad)
    with pytest.raises(ValueError, match="exceeds"):
        f.region(310, 0, 11, 1)
    with pytest.raises(ValueError, match="non-negative"):
        f.region(-1, 0, 1, 1)


def test_fill_rect_clips_and_draw_text_returns_its_size() -> None:
    f = fb()
    f.fill_rect(-10, -10, 15, 15, (9, 9, 9))
    assert f.pixel(4, 4) == (9, 9, 9) and f.pixel(5, 5) != (9, 9, 9)
    assert f.take_damage() == [(0, 0, 5, 5)]
    f.fill_rect(1000, 1000, 5, 5, (9, 9, 9))  # entirely off screen: no change
    assert f.take_damage() == []
    size = f.draw_text(300, 100, "hello", (255, 0, 0), scale=1, background=(0, 0, 0))
    assert size == (30, 8)
    assert f.take_damage() == [(300, 100, 20, 8)]  # clipped at the right edge
    with pytest.raises(ValueError, match="colour"):
        f.fill_rect(0, 0, 1, 1, (256, 0, 0))
    with pytest.raises(ValueError, match="negative"):
        f.fill_rect(0, 0, -1, 1, (0, 0, 0))


def test_to_png_decodes_to_the_same_pixels() -> None:
    f = fb()
    f.type_text("PNG round trip")
    f.click(50, 200, "right", double=True)
    decoded = decode_png(f.to_png())
    assert (decoded.width, decoded.height, decoded.mode) == (320, 240, "RGB")
    assert decoded.pixels == bytes(f.pixels)


# -- typing -----------------------------------------------------------------------


def test_typing_changes_only_the_text_area() -> None:
    f = fb()
    before = bytes(f.pixels)
    f.type_text("Hello, world!")
    changed = changed_pixels(before, bytes(f.pixels), f.width)
    assert changed
    assert all(inside(p, f.text_area) for p in changed)
    assert f.text == "Hello, world!"


def test_keys_change_only_the_text_area_and_the_status_bar() -> None:
    f = fb()
    before = bytes(f.pixels)
    for key in ["H", "i", "space", "period", "Return", "BackSpace", "F5", "ctrl+shift+t"]:
        f.key(key)
    changed = changed_pixels(before, bytes(f.pixels), f.width)
    assert any(inside(p, f.text_area) for p in changed)
    assert any(inside(p, f.status_bar) for p in changed)
    assert all(inside(p, f.text_area) or inside(p, f.status_bar) for p in changed)
    assert f.text == "Hi ."


@given(
    st.text(PRINTABLE, min_size=1, max_size=20),
    st.text(PRINTABLE, min_size=1, max_size=20),
)
@settings(max_examples=50)
def test_different_texts_give_different_pixels(a: str, b: str) -> None:
    # Trailing spaces are invisible except for where the caret ends up.
    fa, fb_ = fb(), fb()
    fa.type_text(a)
    fb_.type_text(b)
    assert (text_region(fa) == text_region(fb_)) == (a == b)


def test_every_key_changes_pixels_even_unknown_and_repeated_ones() -> None:
    f = fb()
    for key in ["F5", "F5", "Page_Up", "ctrl+shift+t", "hyper+x"]:
        before = bytes(f.pixels)
        version = f.version
        f.key(key)
        assert bytes(f.pixels) != before
        assert f.version == version + 1
    with pytest.raises(ValueError, match="key name"):
        f.key("")


def test_key_names_type_characters() -> None:
    f = fb()
    for key in ["a", "shift+b", "C", "7", "space", "exclam", "slash", "KP_5", "plus", "+"]:
        f.key(key)
    f.key("Tab")
    f.key("x")
    f.key("Return")
    f.key("y")
    assert f.text == "aBC7 !/5++  x\ny"  # the tab: to column 12


def test_backspace_restores_the_erased_characters_pixels() -> None:
    f = fb()
    f.type_text("ab")
    snapshot = text_region(f)
    f.type_text("c")
    assert text_region(f) != snapshot
    f.key("BackSpace")
    assert text_region(f) == snapshot
    assert f.text == "ab"


def test_backspace_across_a_wrap_and_a_newline() -> None:
    f = fb()
    cols, _ = f.text_grid
    f.type_text("x" * (cols - 1))
    snapshot = text_region(f)
    f.type_text("y")  # fills the row: the caret wraps to the next one
    assert f.text == "x" * (cols - 1) + "y"
    f.key("BackSpace")
    assert text_region(f) == snapshot
    f.type_text("\n")
    f.key("BackSpace")  # joins the lines again
    assert text_region(f) == snapshot
    empty = fb()
    empty.key("BackSpace")  # nothing to erase: only the status bar changes
    assert text_region(empty) == text_region(fb())


def test_ctrl_a_clears_the_text_area() -> None:
    f = fb()
    f.type_text("some text\nmore text")
    f.key("ctrl+a")
    assert f.text == ""
    assert text_region(f) == text_region(fb())


def test_ctrl_l_redraws_the_desktop_keeping_the_text() -> None:
    f, g = fb(), fb()
    f.type_text("kept")
    g.type_text("kept")
    f.click(100, 100)
    f.drag(10, 200, 300, 210)
    f.key("ctrl+l")
    g.key("ctrl+l")
    assert f.text == "kept"
    above_status = (0, 0, f.width, f.status_bar[1])
    assert f.region(*above_status) == g.region(*above_status)


def test_lines_wrap_and_scroll_when_full() -> None:
    f = fb()
    cols, rows = f.text_grid
    f.type_text("z" * (cols + 3))
    assert f.text == "z" * (cols + 3)
    lines = [f"line {i}" for i in range(rows + 5)]
    f.key("ctrl+a")
    f.type_text("\n".join(lines))
    assert f.text == "\n".join(lines[-rows:])
    fresh = fb()
    fresh.type_text("\n".join(lines[-rows:]))
    assert text_region(f) == text_region(fresh)


def test_control_characters_and_crlf() -> None:
    f = fb()
    f.type_text("a\r\nb\rc\x00\x7fd\u00e9")
    assert f.text == "a\nb\ncd\u00e9"
    with pytest.raises(ValueError, match="str"):
        f.type_text(b"bytes")  # type: ignore[arg-type]


# -- the pointer --------------------------------------------------------------------


@pytest.mark.parametrize(("button", "colour"), [("left", RED), ("right", GREEN), ("middle", AMBER)])
def test_click_draws_a_marker_and_moves_the_pointer(
    button: str, colour: tuple[int, int, int]
) -> None:
    f = fb()
    before = f.pixel(30, 150)
    f.click(30, 150, button)  # type: ignore[arg-type]
    assert f.pixel(30, 150) == colour != before
    assert f.pixel(33, 150) == colour  # a disc, not a dot
    assert f.pointer == (30, 150)


def test_double_click_adds_a_ring() -> None:
    single, double = fb(), fb()
    single.click(100, 150)
    double.click(100, 150, double=True)
    assert double.pixel(100, 150) == RED
    assert double.pixel(109, 150) == RED and single.pixel(109, 150) != RED
    assert double.pixel(106, 150) != RED  # the gap between the disc and the ring


def test_move_press_and_release() -> None:
    f = fb()
    before = bytes(f.pixels)
    f.move(10, 200)
    assert f.pointer == (10, 200)
    changed = changed_pixels(before, bytes(f.pixels), f.width)
    assert changed and all(inside(p, f.status_bar) for p in changed)  # only the status line
    f.press(10, 200, "left")
    assert f.buttons == {"left"}
    f.move(100, 200)  # held: a line
    assert f.pixel(50, 200) == (200, 60, 200)
    f.release(100, 200, "left")
    assert f.buttons == frozenset()
    before = bytes(f.pixels)
    f.move(150, 200)  # not held: no line
    assert f.pixel(125, 200) != (200, 60, 200)
    with pytest.raises(ValueError, match="button"):
        f.press(1, 1, "fourth")  # type: ignore[arg-type]


def test_drag_draws_a_line() -> None:
    f = fb()
    f.drag(20, 40, 220, 140)
    assert f.pointer == (220, 140)
    for t in (0.0, 0.25, 0.5, 1.0):
        assert f.pixel(round(20 + 200 * t), round(40 + 100 * t)) == (200, 60, 200)
    assert f.take_damage()[0] == (19, 39, 203, 103)


def test_scroll_updates_the_status_bar_and_moves_the_pointer() -> None:
    f = fb()
    status = f.region(*f.status_bar)
    f.scroll("down", 3, 40, 50)
    assert f.pointer == (40, 50)
    after_down = f.region(*f.status_bar)
    assert after_down != status
    f.scroll("up", 3)  # at the pointer
    assert f.pointer == (40, 50)
    assert f.region(*f.status_bar) not in (after_down, status)
    f.scroll("left", 1)
    with pytest.raises(ValueError, match="direction"):
        f.scroll("sideways", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amount"):
        f.scroll("up", 0)
    with pytest.raises(ValueError, match="both"):
        f.scroll("up", 1, x=3)


@pytest.mark.parametrize(
    "action",
    [
        lambda f: f.click(320, 0),
        lambda f: f.click(0, -1),
        lambda f: f.move(0, 240),
        lambda f: f.drag(0, 0, 400, 0),
        lambda f: f.scroll("up", 1, 0, 999),
        lambda f: f.click(1.5, 0),
    ],
)
def test_coordinates_are_validated(action: Callable[[SyntheticDesktop], None]) -> None:
    f = fb()
    before = bytes(f.pixels)
    with pytest.raises(ValueError):
        action(f)
    assert bytes(f.pixels) == before and f.version == 0


# -- resize ---------------------------------------------------------------------------


def test_resize_keeps_the_text_and_damages_everything() -> None:
    f = fb()
    f.type_text("resize me")
    f.take_damage()
    seen: list[tuple[Rect, ...]] = []
    f.add_listener(seen.append)
    f.resize(640, 200)
    assert (f.width, f.height, len(f.pixels)) == (640, 200, 640 * 200 * 3)
    assert f.text == "resize me"
    assert f.take_damage() == [(0, 0, 640, 200)]
    assert seen == [((0, 0, 640, 200),)]
    assert decode_png(f.to_png()).pixels == bytes(f.pixels)
    fresh = SyntheticDesktop(640, 200)
    fresh.type_text("resize me")
    assert text_region(f) == text_region(fresh)
    f.resize(64, 96)  # the smallest: only the caret's row is left
    assert f.text_grid == (3, 1) and f.text == ""
    assert f.pointer[0] < 64 and f.pointer[1] < 96


# -- change tracking ------------------------------------------------------------------

BUTTONS: list[Button] = ["left", "right", "middle"]

ACTIONS: list[Callable[[SyntheticDesktop, int, int], object]] = [
    lambda f, x, y: f.type_text("typed text " * (x % 4)),
    lambda f, x, y: f.type_text("\n"),
    lambda f, x, y: f.type_text("".join(f"line {i}\n" for i in range(x % 12))),  # scrolls
    lambda f, x, y: f.key("BackSpace"),
    lambda f, x, y: f.key(["a", "Return", "F1", "ctrl+a", "ctrl+l", "Tab"][x % 6]),
    lambda f, x, y: f.click(x, y, BUTTONS[y % 3], double=x % 2 == 0),
    lambda f, x, y: f.move(x, y),
    lambda f, x, y: f.press(x, y),
    lambda f, x, y: f.release(x, y),
    lambda f, x, y: f.drag(x, y, f.width - 1 - x, y // 2),
    lambda f, x, y: f.scroll("down", 1 + x % 3, x, y),
    lambda f, x, y: f.fill_rect(x - 20, y - 20, 40, 30, (x % 256, y % 256, 0)),
    lambda f, x, y: f.draw_text(x, y, "drawn", (0, 0, 0), scale=1 + x % 3),
]


@given(
    st.lists(
        st.tuples(st.integers(0, len(ACTIONS) - 1), st.integers(0, 319), st.integers(0, 239)),
        min_size=1,
        max_size=25,
    )
)
@settings(max_examples=40, deadline=None)
def test_damage_covers_every_changed_pixel(steps: list[tuple[int, int, int]]) -> None:
    f = fb()
    # A client that only ever copies the damaged rectangles stays identical.
    mirror = bytearray(f.pixels)
    stride = f.width * 3
    for index, x, y in steps:
        version = f.version
        before = bytes(f.pixels)
        ACTIONS[index](f, x, y)
        if before != f.pixels:
            assert f.version == version + 1
        else:  # a redraw of identical pixels may count as a change
            assert f.version in (version, version + 1)
        damage = f.take_damage()
        assert len(damage) <= MAX_DAMAGE
        for rx, ry, rw, rh in damage:
            assert rw > 0 and rh > 0 and rx >= 0 and ry >= 0
            assert rx + rw <= f.width and ry + rh <= f.height
            for row in range(ry, ry + rh):
                at = row * stride
                mirror[at + rx * 3 : at + (rx + rw) * 3] = f.pixels[
                    at + rx * 3 : at + (rx + rw) * 3
                ]
        assert mirror == f.pixels


def test_damage_accumulates_and_merges_into_a_bounding_box() -> None:
    f = fb()
    for i in range(MAX_DAMAGE + 10):
        f.fill_rect((i * 37) % 300, (i * 53) % 200, 2, 2, (0, 0, 0))
        assert len(f.damage) <= MAX_DAMAGE
    damage = f.take_damage()
    assert len(damage) == 1
    x, y, w, h = damage[0]
    assert x <= 4 and y <= 4 and x + w >= 296 and y + h >= 196
    assert f.take_damage() == [] and f.damage == []


def test_typing_damage_is_a_few_rectangles() -> None:
    f = fb()
    f.type_text("a line of text")
    assert len(f.take_damage()) <= 3


def test_listeners_hear_each_change_once() -> None:
    f = fb()
    seen: list[tuple[Rect, ...]] = []
    remove = f.add_listener(seen.append)
    f.type_text("one change")
    f.click(10, 200)
    f.move(10, 200)  # the same place: nothing changes, nobody is told
    assert len(seen) == 2 and f.version == 2
    assert all(isinstance(rects, tuple) and rects for rects in seen)
    remove()
    remove()  # idempotent
    f.click(20, 200)
    assert len(seen) == 2 and f.version == 3


def test_a_failing_listener_does_not_stop_the_others() -> None:
    f = fb()
    seen: list[int] = []

    def broken(rects: tuple[Rect, ...]) -> None:
        raise RuntimeError("listener bug")

    f.add_listener(broken)
    f.add_listener(lambda rects: seen.append(len(rects)))
    with pytest.raises(RuntimeError, match="listener bug"):
        f.click(5, 200)
    assert seen and f.pixel(5, 200) == RED and f.version == 1
