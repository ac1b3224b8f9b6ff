"""X11 keysyms: names, aliases, characters and combos, for every part that handles keys.

RFB key events carry X11 keysyms. This is the one table of them: the VNC
client turns key names, combos and text into keysyms with :func:`keysym`,
:func:`key_combo` and :func:`text_to_keys`; a server turns keysyms back into
characters, names and modifiers with :func:`keysym_char`, :func:`keysym_name`
and :func:`modifier`. Names are X11's (``Return``, ``Page_Up``, ``F5``,
``Control_L``, ``minus``) or friendly aliases (``ctrl``, ``enter``, ``esc``,
``pgup``...), looked up in any case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

__all__ = [
    "Modifier",
    "key_combo",
    "keysym",
    "keysym_char",
    "keysym_name",
    "modifier",
    "split_combo",
    "text_to_keys",
]

Modifier = Literal["ctrl", "shift", "alt", "super"]
"""The four modifiers, whichever side of the keyboard (Meta counts as Alt)."""

_X11_KEYSYMS: Final[dict[str, int]] = {
    "BackSpace": 0xFF08,
    "Tab": 0xFF09,
    "Linefeed": 0xFF0A,
    "Clear": 0xFF0B,
    "Return": 0xFF0D,
    "Pause": 0xFF13,
    "Scroll_Lock": 0xFF14,
    "Sys_Req": 0xFF15,
    "Escape": 0xFF1B,
    "Delete": 0xFFFF,
    "Home": 0xFF50,
    "Left": 0xFF51,
    "Up": 0xFF52,
    "Right": 0xFF53,
    "Down": 0xFF54,
    "Page_Up": 0xFF55,
    "Page_Down": 0xFF56,
    "End": 0xFF57,
    "Begin": 0xFF58,
    "Select": 0xFF60,
    "Print": 0xFF61,
    "Execute": 0xFF62,
    "Insert": 0xFF63,
    "Undo": 0xFF65,
    "Redo": 0xFF66,
    "Menu": 0xFF67,
    "Find": 0xFF68,
    "Cancel": 0xFF69,
    "Help": 0xFF6A,
    "Break": 0xFF6B,
    "Num_Lock": 0xFF7F,
    "KP_Enter": 0xFF8D,
    **{f"KP_{n}": 0xFFB0 + n for n in range(10)},
    "Shift_L": 0xFFE1,
    "Shift_R": 0xFFE2,
    "Control_L": 0xFFE3,
    "Control_R": 0xFFE4,
    "Caps_Lock": 0xFFE5,
    "Meta_L": 0xFFE7,
    "Meta_R": 0xFFE8,
    "Alt_L": 0xFFE9,
    "Alt_R": 0xFFEA,
    "Super_L": 0xFFEB,
    "Super_R": 0xFFEC,
    **{f"F{n}": 0xFFBE + n - 1 for n in range(1, 25)},
    # Latin-1 punctuation by its X11 name (the keysym is the code point).
    **{
        name: ord(char)
        for char, name in zip(
            " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
            "space exclam quotedbl numbersign dollar percent ampersand apostrophe parenleft "
            "parenright asterisk plus comma minus period slash colon semicolon less equal "
            "greater question at bracketleft backslash bracketright asciicircum underscore "
            "grave braceleft bar braceright asciitilde".split(),
            strict=True,
        )
    },
}

# Friendly names; looked up case-insensitively, like the X11 names.
_ALIASES: Final[dict[str, str]] = {
    "ctrl": "Control_L",
    "control": "Control_L",
    "shift": "Shift_L",
    "alt": "Alt_L",
    "option": "Alt_L",
    "super": "Super_L",
    "win": "Super_L",
    "cmd": "Super_L",
    "command": "Super_L",
    "meta": "Meta_L",
    "enter": "Return",
    "esc": "Escape",
    "del": "Delete",
    "ins": "Insert",
    "pgup": "Page_Up",
    "pageup": "Page_Up",
    "pgdn": "Page_Down",
    "pagedown": "Page_Down",
    "arrowleft": "Left",
    "arrowright": "Right",
    "arrowup": "Up",
    "arrowdown": "Down",
    "capslock": "Caps_Lock",
    "numlock": "Num_Lock",
    "printscreen": "Print",
    # Older X11 names of two Latin-1 keysyms.
    "quoteright": "apostrophe",
    "quoteleft": "grave",
}

_KEYSYMS_FOLDED: Final[dict[str, int]] = {
    **{name.lower(): value for name, value in _X11_KEYSYMS.items()},
    **{alias: _X11_KEYSYMS[name] for alias, name in _ALIASES.items()},
}

_NAMES: Final[Mapping[int, str]] = {value: name for name, value in reversed(_X11_KEYSYMS.items())}

_MODIFIERS: Final[Mapping[int, Modifier]] = {
    _X11_KEYSYMS["Shift_L"]: "shift",
    _X11_KEYSYMS["Shift_R"]: "shift",
    _X11_KEYSYMS["Control_L"]: "ctrl",
    _X11_KEYSYMS["Control_R"]: "ctrl",
    _X11_KEYSYMS["Meta_L"]: "alt",
    _X11_KEYSYMS["Meta_R"]: "alt",
    _X11_KEYSYMS["Alt_L"]: "alt",
    _X11_KEYSYMS["Alt_R"]: "alt",
    _X11_KEYSYMS["Super_L"]: "super",
    _X11_KEYSYMS["Super_R"]: "super",
}

_CONTROL_CHARS: Final[Mapping[str, str]] = {
    "\n": "Return",
    "\r": "Return",
    "\t": "Tab",
    "\b": "BackSpace",
    "\x1b": "Escape",
}


def _char_keysym(char: str) -> int:
    if char in _CONTROL_CHARS:
        return _X11_KEYSYMS[_CONTROL_CHARS[char]]
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code  # Latin-1 keysyms are the code points
    if code > 0xFF:
        return 0x01000000 + code  # X11's Unicode keysyms
    raise ValueError(f"no keysym for the control character {char!r}")


def keysym(name: str) -> int:
    """The X11 keysym for a key name or a single character.

    A single character maps to itself (``"a"``, ``"A"``, ``"é"``, ``"€"``;
    ``"\\n"`` is Return). Longer names are X11 names (``Return``, ``Page_Up``,
    ``F5``, ``Control_L``, ``minus``) or friendly aliases (``ctrl``, ``shift``,
    ``alt``, ``super``, ``meta``, ``enter``, ``esc``, ``pgup``...), in any case.

    Raises:
        ValueError: an unknown name.
    """
    if len(name) == 1:
        return _char_keysym(name)
    value = _X11_KEYSYMS.get(name)
    if value is None:
        value = _KEYSYMS_FOLDED.get(name.lower())
    if value is None:
        raise ValueError(f"unknown key name {name!r}")
    return value


def split_combo(combo: str) -> list[str]:
    """The key names of a combo, modifiers first: ``"ctrl+shift+t"`` -> ``["ctrl", "shift", "t"]``.

    ``"+"`` and a combo ending in ``"++"`` (``"ctrl++"``) end with the plus key.
    The names are neither stripped nor checked.
    """
    if combo == "+" or combo.endswith("++"):
        head = combo[:-2]
        return [*(head.split("+") if head else []), "+"]
    return combo.split("+")


def key_combo(combo: str) -> list[tuple[int, bool]]:
    """The ``(keysym, down)`` sequence that types a combo such as ``"ctrl+shift+t"``.

    Modifiers go down in order, the last key goes down and up, then the
    modifiers come up in reverse order. ``"ctrl++"`` is Control and plus.

    Raises:
        ValueError: an empty combo or an unknown key name.
    """
    parts = [name.strip() for name in split_combo(combo.strip())]
    if not all(parts):
        raise ValueError(f"malformed key combo {combo!r}")
    keys = [keysym(part) for part in parts]
    *modifiers, key = keys
    return [
        *((m, True) for m in modifiers),
        (key, True),
        (key, False),
        *((m, False) for m in reversed(modifiers)),
    ]


def text_to_keys(text: str) -> list[tuple[int, bool]]:
    """The ``(keysym, down)`` presses and releases that type ``text``.

    Newlines (``\\n``, ``\\r\\n`` or ``\\r``) become Return and tabs Tab;
    capitals are sent as their own keysyms (VNC servers add Shift as needed).

    Raises:
        ValueError: a control character with no key.
    """
    keys: list[tuple[int, bool]] = []
    for char in text.replace("\r\n", "\n"):
        value = _char_keysym(char)
        keys.append((value, True))
        keys.append((value, False))
    return keys


def keysym_char(value: int) -> str | None:
    """The character a keysym types, if it types one (Latin-1, Unicode, keypad digits)."""
    if 0x20 <= value <= 0x7E or 0xA0 <= value <= 0xFF:
        return chr(value)
    if 0x01000100 <= value <= 0x0110FFFF:
        return chr(value - 0x01000000)
    if 0xFFB0 <= value <= 0xFFB9:
        return chr(value - 0xFFB0 + 0x30)
    return None


def keysym_name(value: int) -> str | None:
    """The X11 name of a keysym in the table (``0xFF0D`` -> ``"Return"``), if it has one."""
    return _NAMES.get(value)


def modifier(value: int) -> Modifier | None:
    """Which modifier a keysym is, if it is one (either side; Meta counts as Alt)."""
    return _MODIFIERS.get(value)
