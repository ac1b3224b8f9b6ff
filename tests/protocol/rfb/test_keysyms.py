"""The keysym table: names, aliases, characters, combos and text, both ways."""

from __future__ import annotations

import pytest

from orgo_async.protocol.rfb import key_combo, keysym, text_to_keys
from orgo_async.protocol.rfb.keysyms import keysym_char, keysym_name, modifier, split_combo


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("a", 0x61),
        ("A", 0x41),
        ("7", 0x37),
        ("/", 0x2F),
        ("é", 0xE9),
        ("€", 0x010020AC),
        ("😀", 0x0101F600),
        ("\n", 0xFF0D),
        ("Return", 0xFF0D),
        ("enter", 0xFF0D),
        ("BackSpace", 0xFF08),
        ("backspace", 0xFF08),
        ("Tab", 0xFF09),
        ("Escape", 0xFF1B),
        ("esc", 0xFF1B),
        ("Delete", 0xFFFF),
        ("Home", 0xFF50),
        ("End", 0xFF57),
        ("Page_Up", 0xFF55),
        ("pgdn", 0xFF56),
        ("Left", 0xFF51),
        ("Up", 0xFF52),
        ("Right", 0xFF53),
        ("Down", 0xFF54),
        ("F1", 0xFFBE),
        ("F12", 0xFFC9),
        ("ctrl", 0xFFE3),
        ("Control_L", 0xFFE3),
        ("shift", 0xFFE1),
        ("Shift_L", 0xFFE1),
        ("alt", 0xFFE9),
        ("Alt_L", 0xFFE9),
        ("super", 0xFFEB),
        ("Super_L", 0xFFEB),
        ("meta", 0xFFE7),
        ("space", 0x20),
        ("minus", 0x2D),
        ("plus", 0x2B),
    ],
)
def test_keysyms(name: str, value: int) -> None:
    assert keysym(name) == value


def test_key_combos() -> None:
    ctrl, shift, t = 0xFFE3, 0xFFE1, 0x74
    assert key_combo("ctrl+shift+t") == [
        (ctrl, True),
        (shift, True),
        (t, True),
        (t, False),
        (shift, False),
        (ctrl, False),
    ]
    assert key_combo("Return") == [(0xFF0D, True), (0xFF0D, False)]
    assert key_combo("ctrl++") == [(ctrl, True), (0x2B, True), (0x2B, False), (ctrl, False)]
    assert key_combo("+") == [(0x2B, True), (0x2B, False)]
    assert key_combo(" Ctrl + Alt + Delete ")[:3] == [(ctrl, True), (0xFFE9, True), (0xFFFF, True)]
    for bad in ("", "ctrl+", "ctrl++t+", "nope", "ctrl+nope"):
        with pytest.raises(ValueError):
            key_combo(bad)


def test_text_to_keys() -> None:
    assert text_to_keys("Hi\r\n\t€") == [
        (0x48, True),
        (0x48, False),
        (0x69, True),
        (0x69, False),
        (0xFF0D, True),
        (0xFF0D, False),
        (0xFF09, True),
        (0xFF09, False),
        (0x010020AC, True),
        (0x010020AC, False),
    ]
    with pytest.raises(ValueError, match="control character"):
        text_to_keys("\x01")
    with pytest.raises(ValueError, match="unknown key name"):
        keysym("Hyperdrive")


def test_keypad_digits_and_old_quote_names() -> None:
    assert [keysym(f"KP_{n}") for n in (0, 9)] == [0xFFB0, 0xFFB9]
    assert keysym("kp_enter") == 0xFF8D
    assert (keysym("quoteright"), keysym("quoteleft")) == (0x27, 0x60)


@pytest.mark.parametrize(
    ("combo", "names"),
    [
        ("ctrl+shift+t", ["ctrl", "shift", "t"]),
        ("Return", ["Return"]),
        ("+", ["+"]),
        ("ctrl++", ["ctrl", "+"]),
        ("++", ["+"]),
        ("ctrl+", ["ctrl", ""]),
        (" ctrl + a", [" ctrl ", " a"]),  # not stripped: callers decide
    ],
)
def test_split_combo(combo: str, names: list[str]) -> None:
    assert split_combo(combo) == names


def test_keysyms_back_to_characters_names_and_modifiers() -> None:
    assert [keysym_char(v) for v in (0x61, 0xE9, 0x010020AC, 0xFFB7)] == ["a", "é", "€", "7"]
    assert keysym_char(0xFF0D) is None and keysym_char(0x1F) is None
    assert keysym_name(0xFF0D) == "Return" and keysym_name(0xFFC9) == "F12"
    assert keysym_name(0x27) == "apostrophe"  # the X11 name, not the older alias
    assert keysym_name(0xFE03) is None
    assert [modifier(keysym(n)) for n in ("Shift_R", "ctrl", "meta", "Alt_R", "win")] == [
        "shift",
        "ctrl",
        "alt",
        "alt",
        "super",
    ]
    assert modifier(keysym("a")) is None
    # Every name the table knows maps back to a keysym whose name maps to it again.
    for name in ("BackSpace", "Page_Down", "KP_Enter", "Super_R", "F24", "asciitilde"):
        value = keysym(name)
        assert keysym(keysym_name(value) or "") == value
