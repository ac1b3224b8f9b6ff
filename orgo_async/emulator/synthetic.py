"""The emulator's synthetic desktop: an RGB picture that reacts to input.

:class:`SyntheticDesktop` draws a small desktop (a title bar, a text area, a
status bar) with the bitmap font of :mod:`.font` into a
:class:`~orgo_async.protocol.rfb.Framebuffer`, and changes it visibly for
every action an agent can take, so that a screenshot after an action differs
from the one before:

* :meth:`~SyntheticDesktop.type_text` and :meth:`~SyntheticDesktop.key`
  write into the text area at a caret, wrapping at the right edge and
  scrolling up when full (key names and combos are read with the keysym table
  of :mod:`orgo_async.protocol.rfb.keysyms`);
* :meth:`~SyntheticDesktop.click`, :meth:`~SyntheticDesktop.press` and
  :meth:`~SyntheticDesktop.release` draw a round marker (red for left, green
  for right, amber for middle, with a ring for a double click);
* :meth:`~SyntheticDesktop.drag` (and :meth:`~SyntheticDesktop.move` with a
  button held) draws a line;
* every key, pointer position and scroll shows in the status bar.

For a VNC server it tracks change: :attr:`~SyntheticDesktop.damage` collects
the rectangles drawn since the last :meth:`~SyntheticDesktop.take_damage`, and
listeners added with :meth:`~SyntheticDesktop.add_listener` are called
synchronously after each change. Nothing here does I/O or uses asyncio.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Final, Literal

from ..protocol.png import MAX_ENCODE_SIZE
from ..protocol.rfb.framebuffer import Framebuffer
from ..protocol.rfb.keysyms import keysym, keysym_char, modifier, split_combo
from .font import CELL_HEIGHT, CELL_WIDTH, GLYPH_HEIGHT, glyph_runs, text_size

__all__ = [
    "MAX_DAMAGE",
    "MIN_HEIGHT",
    "MIN_WIDTH",
    "Button",
    "Listener",
    "Rect",
    "SyntheticDesktop",
    "bounding_box",
]

Rect = tuple[int, int, int, int]
"""``(x, y, width, height)`` in pixels."""

Listener = Callable[[tuple[Rect, ...]], None]
"""Called after each change with the rectangles that change drew."""

Button = Literal["left", "right", "middle"]

MIN_WIDTH: Final = 64
MIN_HEIGHT: Final = 96
"""The smallest size whose text area still holds one line."""

# Damage beyond this many rectangles collapses into their bounding box: a VNC
# update of one big rectangle beats one of hundreds of tiny ones.
MAX_DAMAGE: Final = 64

# -- colours and layout -----------------------------------------------------

_BAR: Final = bytes((22, 26, 34))
_TITLE_INK: Final = bytes((235, 235, 235))
_STATUS_INK: Final = bytes((170, 220, 170))
_PAPER: Final = bytes((250, 250, 245))
_INK: Final = bytes((20, 20, 20))
_CARET: Final = bytes((0, 120, 215))
_DRAG: Final = bytes((200, 60, 200))
_BUTTON_COLOURS: Final[dict[str, bytes]] = {
    "left": bytes((220, 40, 40)),
    "right": bytes((40, 170, 70)),
    "middle": bytes((230, 170, 20)),
}

_BAR_SCALE: Final = 2
_BAR_HEIGHT: Final = CELL_HEIGHT * _BAR_SCALE + 8
_MARGIN: Final = 8  # desktop visible around the text area
_PADDING: Final = 4  # inside the text area, around the character grid
_TEXT_SCALE: Final = 2
# Text-area lines are spaced wider than the font's cell so that they read as lines.
_LINE_HEIGHT: Final = 10 * _TEXT_SCALE
_COLUMN_WIDTH: Final = CELL_WIDTH * _TEXT_SCALE
_TAB_STOP: Final = 4
_MARKER_RADIUS: Final = 5
_RING: Final = (8, 10)  # inner and outer radius of a double click's ring
_LINE_WIDTH: Final = 3

# Keysyms that edit the text area beyond typing a character.
_RETURN: Final = frozenset({keysym("Return"), keysym("KP_Enter")})
_TAB: Final = keysym("Tab")
_BACKSPACE: Final = keysym("BackSpace")


class SyntheticDesktop:
    """A synthetic desktop of ``width`` x ``height`` RGB pixels.

    ``pixels`` holds the screen as rows of 3-byte RGB pixels, top to bottom
    (the ``pixels`` of a :class:`~orgo_async.protocol.rfb.Framebuffer`);
    read it, but draw only through the methods, which track damage and tell
    listeners (:meth:`resize` replaces it with a new ``bytearray``).
    ``version`` goes up by one after each call that drew something; a call
    that would draw nothing new (a move to where the pointer already is)
    leaves it alone. Coordinates are validated: a point outside the screen
    raises :class:`ValueError` before anything is drawn (only
    :meth:`fill_rect` and :meth:`draw_text` clip instead).

    Not thread-safe; listeners run synchronously inside the drawing call and
    an exception from one propagates to its caller once the change is complete.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        background: Sequence[int] = (40, 70, 110),
        title: str = "Orgo synthetic desktop",
    ) -> None:
        """Draw the empty desktop (``version`` 0, no damage yet).

        Raises:
            ValueError: a size under 64x96 or over 16384, a bad colour.
        """
        _check_size(width, height)
        self.background: tuple[int, int, int] = _check_rgb(background)
        self.title = title
        self._fb = Framebuffer(width, height)
        self._version = 0
        self._pointer = (width // 2, height // 2)
        self._buttons: frozenset[str] = frozenset()
        self._damage: list[Rect] = []
        self._pending: list[Rect] = []
        self._depth = 0
        self._listeners: list[Listener] = []
        # The text area's visible rows; the caret is always at the end of the
        # last one. soft[i] says row i ended by wrapping, not by a newline.
        self._rows: list[str] = [""]
        self._soft: list[bool] = [False]
        self._keys = 0
        self._last_key = ""
        self._last_click = ""
        self._scroll = (0, 0)
        self._status_line = ""
        self._layout()
        # The first picture is no change: version 0, no damage.
        self._redraw()
        self._fb.settle()  # every pixel is drawn: no need to track which from now on
        self._pending.clear()

    # -- state ----------------------------------------------------------------

    @property
    def width(self) -> int:
        """The screen's width in pixels (at least 64)."""
        return self._fb.width

    @property
    def height(self) -> int:
        """The screen's height in pixels (at least 96)."""
        return self._fb.height

    @property
    def pixels(self) -> bytearray:
        """The screen, rows of 3-byte RGB pixels, top to bottom (read only)."""
        return self._fb.pixels

    @property
    def version(self) -> int:
        """Goes up by one after each change; unchanged means the pixels are unchanged."""
        return self._version

    @property
    def pointer(self) -> tuple[int, int]:
        """Where the pointer is, ``(x, y)``."""
        return self._pointer

    @property
    def buttons(self) -> frozenset[str]:
        """The buttons held down (by :meth:`press`, until :meth:`release`)."""
        return self._buttons

    @property
    def text(self) -> str:
        """The text visible in the text area, lines joined by ``\\n``."""
        return self._logical_text()

    @property
    def title_bar(self) -> Rect:
        return (0, 0, self._fb.width, _BAR_HEIGHT)

    @property
    def status_bar(self) -> Rect:
        return (0, self._fb.height - _BAR_HEIGHT, self._fb.width, _BAR_HEIGHT)

    @property
    def text_area(self) -> Rect:
        """The rectangle that typing draws into (the caret included)."""
        return self._text_area

    @property
    def text_grid(self) -> tuple[int, int]:
        """``(columns, rows)`` of characters the text area shows."""
        return self._cols, self._max_rows

    # -- change tracking --------------------------------------------------------

    @property
    def damage(self) -> list[Rect]:
        """Rectangles changed since the last :meth:`take_damage` (a copy)."""
        return list(self._damage)

    def take_damage(self) -> list[Rect]:
        """Return the rectangles changed since the last call, and forget them.

        Together they cover every pixel that changed (they may cover more).
        """
        damage, self._damage = self._damage, []
        return damage

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(rects)`` after each change; returns a function that removes it.

        The listener runs synchronously, after ``pixels``, ``version`` and
        ``damage`` are updated, with the rectangles of that change.
        """
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        # Public methods nest (type_text draws cells, key types text): only the
        # outermost one publishes, so that one call is one change.
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._pending:
                self._publish()

    def _publish(self) -> None:
        rects = tuple(self._pending)
        self._pending.clear()
        self._version += 1
        for rect in rects:
            _merge_into(self._damage, rect)
        if len(self._damage) > MAX_DAMAGE:
            self._damage = [bounding_box(self._damage)]
        error: BaseException | None = None
        for listener in list(self._listeners):
            try:
                listener(rects)
            except Exception as exc:  # the other listeners still hear of the change
                error = error or exc
        if error is not None:
            raise error

    def _mark(self, x: int, y: int, w: int, h: int) -> None:
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self._fb.width), min(y + h, self._fb.height)
        if x1 > x0 and y1 > y0:
            _merge_into(self._pending, (x0, y0, x1 - x0, y1 - y0))

    # -- reading ----------------------------------------------------------------

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """The ``(r, g, b)`` of one pixel.

        Raises:
            ValueError: the point is outside the screen.
        """
        self._check_point(x, y)
        return self._fb.pixel(x, y)

    def region(self, x: int, y: int, w: int, h: int) -> bytes:
        """The RGB bytes of a rectangle, ``h`` rows of ``w`` pixels.

        Raises:
            ValueError: the rectangle does not lie inside the screen.
        """
        for name, value in (("x", x), ("y", y), ("w", w), ("h", h)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, not {value!r}")
        if x + w > self._fb.width or y + h > self._fb.height:
            raise ValueError(
                f"rectangle ({x}, {y}, {w}, {h}) exceeds the {self.width}x{self.height} screen"
            )
        return self._fb.crop(x, y, w, h)

    def to_png(self, *, compress_level: int = 6) -> bytes:
        """The screen as an RGB PNG (see :func:`~orgo_async.protocol.png.encode_png`)."""
        return self._fb.to_png(compress_level=compress_level)

    # -- drawing ----------------------------------------------------------------

    def fill_rect(self, x: int, y: int, w: int, h: int, rgb: Sequence[int]) -> None:
        """Fill a rectangle with one colour, clipped to the screen.

        Raises:
            ValueError: a negative width or height, or a bad colour.
        """
        if w < 0 or h < 0:
            raise ValueError(f"width and height must not be negative, not {w}x{h}")
        colour = bytes(_check_rgb(rgb))
        with self._changing():
            self._fill(x, y, w, h, colour)

    def draw_text(
        self,
        x: int,
        y: int,
        text: str,
        rgb: Sequence[int],
        *,
        scale: int = 2,
        background: Sequence[int] | None = None,
    ) -> tuple[int, int]:
        """Draw one line of text with its top-left corner at ``(x, y)``, clipped.

        Characters outside printable ASCII draw as an empty box. With
        ``background``, every character cell is filled first; without it the
        text is drawn over what is there. Returns the ``(width, height)``
        covered, as :func:`~.font.text_size`.

        Raises:
            ValueError: a bad colour, or a scale outside 1..16.
        """
        ink = bytes(_check_rgb(rgb))
        paper = None if background is None else bytes(_check_rgb(background))
        w, h = text_size(text, scale)
        with self._changing():
            if paper is not None:
                self._fill(x, y, w, h, paper)
            for i, ch in enumerate(text):
                self._glyph(x + i * CELL_WIDTH * scale, y, ch, ink, scale)
            self._mark(x, y, w, h)
        return w, h

    text_size = staticmethod(text_size)

    def resize(self, width: int, height: int) -> None:
        """Change the screen's size and redraw it; the damage becomes the whole screen.

        The text is wrapped again for the new width (the last rows are kept
        if it no longer fits); markers and lines are gone. The pointer is
        moved inside the new screen.

        Raises:
            ValueError: a size under 64x96 or over 16384.
        """
        _check_size(width, height)
        text = self._logical_text()
        self._fb = Framebuffer(width, height)
        self._pointer = (min(self._pointer[0], width - 1), min(self._pointer[1], height - 1))
        self._layout()
        self._rows, self._soft = _wrap(text, self._cols, self._max_rows)
        # Rectangles of the old size mean nothing now.
        self._damage = []
        self._pending = []
        with self._changing():
            self._redraw()
        self._fb.settle()

    # -- keyboard -----------------------------------------------------------------

    def type_text(self, text: str) -> None:
        """Type ``text`` into the text area at the caret.

        ``\\n`` (or ``\\r``, or ``\\r\\n``) starts a new line, ``\\t`` moves to
        the next multiple of 4 columns, other control characters are ignored,
        and characters outside printable ASCII show as an empty box. Lines
        wrap at the right edge; the text scrolls up when the area is full.
        """
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, not {type(text).__name__}")
        if not text:
            return
        with self._changing():
            self._hide_caret()
            previous = ""
            for ch in text:
                if ch == "\n":
                    if previous != "\r":
                        self._newline(soft=False)
                elif ch == "\r":
                    self._newline(soft=False)
                elif ch == "\t":
                    for _ in range(_TAB_STOP - len(self._rows[-1]) % _TAB_STOP):
                        self._put(" ")
                elif ch >= " " and ch != "\x7f":
                    self._put(ch)
                previous = ch
            self._show_caret()

    def key(self, name: str) -> None:
        """Press and release a key given by its X11 keysym name, or a combo.

        ``Return``, ``BackSpace``, ``Tab``, ``space``, single characters
        (``a``, ``Z``, ``7``, ``%``) and the keysym names of ASCII punctuation
        (``period``, ``slash``, ...) edit the text area; ``shift+a`` types
        ``A``. ``ctrl+a`` clears the text area and ``ctrl+l`` redraws the
        desktop without the click markers and lines. Every key, known or not
        (``F5``, ``ctrl+shift+t``), shows in the status bar with a running
        count, so every key changes pixels.

        Raises:
            ValueError: an empty name.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"key name must be a non-empty str, not {name!r}")
        mods, base = _split_combo(name)
        with self._changing():
            self._keys += 1
            self._last_key = name
            if mods == {"ctrl"} and base.lower() == "a":
                self._clear_text()
            elif mods == {"ctrl"} and base.lower() == "l":
                self._redraw()
            elif mods <= {"shift"}:
                value = _keysym_of(base)
                ch = _char_of(base, value, shift=bool(mods))
                if ch is not None:
                    self.type_text(ch)
                elif value in _RETURN:
                    self.type_text("\n")
                elif value == _TAB:
                    self.type_text("\t")
                elif value == _BACKSPACE:
                    self._backspace()
            self._draw_status()

    # -- pointer ------------------------------------------------------------------

    def move(self, x: int, y: int) -> None:
        """Move the pointer; with a button held, draw a line from where it was.

        Raises:
            ValueError: the point is outside the screen.
        """
        self._check_point(x, y)
        with self._changing():
            if self._buttons:
                self._line(*self._pointer, x, y)
            self._pointer = (x, y)
            self._draw_status()

    def click(self, x: int, y: int, button: Button = "left", *, double: bool = False) -> None:
        """Move the pointer to ``(x, y)`` and click: a marker appears there.

        The marker is a filled disc in the button's colour (left red, right
        green, middle amber), ringed for a double click.

        Raises:
            ValueError: the point is outside the screen, or an unknown button.
        """
        colour = _button_colour(button)
        self._check_point(x, y)
        self._mark_click(x, y, colour, f"{'double ' if double else ''}{button} {x},{y}", double)

    def press(self, x: int, y: int, button: Button = "left") -> None:
        """Move to ``(x, y)`` and hold ``button`` down: a marker appears there.

        Raises:
            ValueError: the point is outside the screen, or an unknown button.
        """
        colour = _button_colour(button)
        self._check_point(x, y)
        self._buttons = self._buttons | {button}
        self._mark_click(x, y, colour, f"{button} down {x},{y}", False)

    def release(self, x: int, y: int, button: Button = "left") -> None:
        """Move to ``(x, y)`` (drawing a line if a button is held), then let ``button`` go.

        Raises:
            ValueError: the point is outside the screen, or an unknown button.
        """
        _button_colour(button)
        self._check_point(x, y)
        with self._changing():
            self.move(x, y)
            self._buttons = self._buttons - {button}
            self._last_click = f"{button} up {x},{y}"
            self._draw_status()

    def drag(self, x0: int, y0: int, x1: int, y1: int, button: Button = "left") -> None:
        """Drag from ``(x0, y0)`` to ``(x1, y1)``: a line is drawn, the pointer ends at the end.

        Raises:
            ValueError: either point is outside the screen, or an unknown button.
        """
        _button_colour(button)
        self._check_point(x0, y0)
        self._check_point(x1, y1)
        with self._changing():
            self._line(x0, y0, x1, y1)
            self._pointer = (x1, y1)
            self._last_click = f"drag {button} {x0},{y0}-{x1},{y1}"
            self._draw_status()

    def scroll(
        self,
        direction: Literal["up", "down", "left", "right"],
        amount: int = 1,
        x: int | None = None,
        y: int | None = None,
    ) -> None:
        """Scroll by ``amount`` steps at ``(x, y)`` (default: where the pointer is).

        The running total shows in the status bar (down and right count up),
        and the pointer moves to ``(x, y)``.

        Raises:
            ValueError: an unknown direction, an amount under 1, only one of
                ``x`` and ``y``, or a point outside the screen.
        """
        if direction not in ("up", "down", "left", "right"):
            raise ValueError(f"direction must be up, down, left or right, not {direction!r}")
        if not isinstance(amount, int) or amount < 1:
            raise ValueError(f"amount must be a positive int, not {amount!r}")
        if (x is None) != (y is None):
            raise ValueError("give both x and y, or neither")
        if x is None or y is None:
            x, y = self._pointer
        self._check_point(x, y)
        vertical, horizontal = self._scroll
        if direction == "up":
            vertical -= amount
        elif direction == "down":
            vertical += amount
        elif direction == "left":
            horizontal -= amount
        else:
            horizontal += amount
        with self._changing():
            self._scroll = (vertical, horizontal)
            self._pointer = (x, y)
            self._draw_status()

    def _mark_click(self, x: int, y: int, colour: bytes, label: str, double: bool) -> None:
        """Put the pointer at ``(x, y)`` and a marker there; ``label`` goes in the status bar."""
        with self._changing():
            self._pointer = (x, y)
            self._marker(x, y, colour, double=double)
            self._last_click = label
            self._draw_status()

    # -- internals: layout and chrome ---------------------------------------------

    def _layout(self) -> None:
        w, h = self._fb.width, self._fb.height
        area = (_MARGIN, _BAR_HEIGHT + _MARGIN, w - 2 * _MARGIN, h - 2 * _BAR_HEIGHT - 2 * _MARGIN)
        self._text_area: Rect = area
        self._cols = max(1, (area[2] - 2 * _PADDING) // _COLUMN_WIDTH)
        self._max_rows = max(1, (area[3] - 2 * _PADDING) // _LINE_HEIGHT)
        self._grid_x = area[0] + _PADDING
        self._grid_y = area[1] + _PADDING

    def _redraw(self) -> None:
        self._fill(0, 0, self._fb.width, self._fb.height, bytes(self.background))
        self._fill(*self.title_bar, _BAR)
        size = f"{self._fb.width}x{self._fb.height}"
        room = self._fb.width - 24  # margins at both ends and between the two
        scale = _BAR_SCALE
        if text_size(self.title + size, scale)[0] > room:
            scale = 1
        pad = (_BAR_HEIGHT - GLYPH_HEIGHT * scale) // 2
        self._text(8, pad, self.title, _TITLE_INK, scale)
        size_width = text_size(size, scale)[0]
        if text_size(self.title, scale)[0] + size_width <= room:
            self._text(self._fb.width - 8 - size_width, pad, size, _TITLE_INK, scale)
        self._fill(*self._text_area, _PAPER)
        for row, line in enumerate(self._rows):
            for col, ch in enumerate(line):
                self._cell(row, col, ch)
        self._show_caret()
        self._draw_status(force=True)

    def _draw_status(self, *, force: bool = False) -> None:
        x, y = self._pointer
        parts = [f"key: {self._last_key or '-'} #{self._keys}", f"pointer {x},{y}"]
        vertical, horizontal = self._scroll
        parts.append(f"scroll {vertical}" if not horizontal else f"scroll {vertical},{horizontal}")
        if self._last_click:
            parts.append(self._last_click)
        line = " | ".join(parts)
        # The same line again would change no pixel: no change to report.
        if line == self._status_line and not force:
            return
        self._status_line = line
        bar = self.status_bar
        self._fill(*bar, _BAR)
        # Small screens get the small font so that the whole line still shows.
        scale = _BAR_SCALE if text_size(line, _BAR_SCALE)[0] <= bar[2] - 16 else 1
        pad = (_BAR_HEIGHT - GLYPH_HEIGHT * scale) // 2
        self._text(8, bar[1] + pad, line, _STATUS_INK, scale)

    def _text(self, x: int, y: int, text: str, ink: bytes, scale: int) -> None:
        for i, ch in enumerate(text):
            self._glyph(x + i * CELL_WIDTH * scale, y, ch, ink, scale)
        w, h = text_size(text, scale)
        self._mark(x, y, w, h)

    # -- internals: the text area ------------------------------------------------

    def _cell_origin(self, row: int, col: int) -> tuple[int, int]:
        return self._grid_x + col * _COLUMN_WIDTH, self._grid_y + row * _LINE_HEIGHT

    def _cell(self, row: int, col: int, ch: str) -> None:
        x, y = self._cell_origin(row, col)
        self._fill(x, y, _COLUMN_WIDTH, _LINE_HEIGHT, _PAPER)
        self._glyph(x, y + _TEXT_SCALE, ch, _INK, _TEXT_SCALE)

    def _caret_rect(self) -> Rect:
        x, y = self._cell_origin(len(self._rows) - 1, len(self._rows[-1]))
        return (x, y + _TEXT_SCALE // 2, _TEXT_SCALE, _LINE_HEIGHT - _TEXT_SCALE)

    def _show_caret(self) -> None:
        self._fill(*self._caret_rect(), _CARET)

    def _hide_caret(self) -> None:
        self._fill(*self._caret_rect(), _PAPER)

    def _put(self, ch: str) -> None:
        self._cell(len(self._rows) - 1, len(self._rows[-1]), ch)
        self._rows[-1] += ch
        # Wrap at once: the caret never sits past the last column.
        if len(self._rows[-1]) >= self._cols:
            self._newline(soft=True)

    def _newline(self, *, soft: bool) -> None:
        self._soft[-1] = soft
        self._rows.append("")
        self._soft.append(False)
        if len(self._rows) > self._max_rows:
            del self._rows[0], self._soft[0]
            self._scroll_text_up()

    def _scroll_text_up(self) -> None:
        ax, _, aw, _ = self._text_area
        top = self._grid_y
        bottom = top + self._max_rows * _LINE_HEIGHT
        self._fb.copy(ax, top + _LINE_HEIGHT, ax, top, aw, bottom - _LINE_HEIGHT - top)
        self._fill(ax, bottom - _LINE_HEIGHT, aw, _LINE_HEIGHT, _PAPER)
        self._mark(ax, top, aw, bottom - top)

    def _backspace(self) -> None:
        self._hide_caret()
        if not self._rows[-1] and len(self._rows) > 1:
            # Join with the line above; the caret cannot stand past a full row.
            self._rows.pop()
            self._soft.pop()
            self._soft[-1] = False
            if len(self._rows[-1]) < self._cols:
                self._show_caret()
                return
        if self._rows[-1]:
            self._rows[-1] = self._rows[-1][:-1]
            x, y = self._cell_origin(len(self._rows) - 1, len(self._rows[-1]))
            self._fill(x, y, _COLUMN_WIDTH, _LINE_HEIGHT, _PAPER)
        self._show_caret()

    def _clear_text(self) -> None:
        self._rows, self._soft = [""], [False]
        self._fill(*self._text_area, _PAPER)
        self._show_caret()

    def _logical_text(self) -> str:
        parts: list[str] = []
        for row, soft in zip(self._rows, self._soft, strict=True):
            parts.append(row)
            parts.append("" if soft else "\n")
        return "".join(parts[:-1])

    # -- internals: pixels ------------------------------------------------------

    def _check_point(self, x: int, y: int) -> None:
        for name, value, limit in (("x", x, self._fb.width), ("y", y, self._fb.height)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, not {value!r}")
            if not 0 <= value < limit:
                raise ValueError(
                    f"{name}={value} is outside the {self._fb.width}x{self._fb.height} screen"
                )

    def _fill(self, x: int, y: int, w: int, h: int, colour: bytes) -> None:
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self._fb.width), min(y + h, self._fb.height)
        if x1 <= x0 or y1 <= y0:
            return
        self._fb.fill(x0, y0, x1 - x0, y1 - y0, colour)
        _merge_into(self._pending, (x0, y0, x1 - x0, y1 - y0))

    def _glyph(self, x: int, y: int, ch: str, ink: bytes, scale: int) -> None:
        # Marks nothing: callers mark the whole cell or line once. Text is most of
        # what is drawn, so its runs go straight into the pixels, one slice each.
        fb = self._fb
        width, height, p = fb.width, fb.height, fb.pixels
        for r, row_runs in enumerate(glyph_runs(ch)):
            if not row_runs:
                continue
            for col, n in row_runs:
                x0 = max(x + col * scale, 0)
                x1 = min(x + (col + n) * scale, width)
                if x1 <= x0:
                    continue
                segment = ink * (x1 - x0)
                for py in range(max(y + r * scale, 0), min(y + (r + 1) * scale, height)):
                    start = (py * width + x0) * 3
                    p[start : start + len(segment)] = segment

    def _marker(self, x: int, y: int, colour: bytes, *, double: bool) -> None:
        first = len(self._pending)
        self._disc(x, y, 0, _MARKER_RADIUS, colour)
        if double:
            self._disc(x, y, *_RING, colour)
        self._collapse_damage(first)

    def _disc(self, cx: int, cy: int, inner: int, outer: int, colour: bytes) -> None:
        """Fill the pixels at a distance in [inner, outer] of the centre (0: a disc)."""
        for dy in range(-outer, outer + 1):
            half = math.isqrt(outer * outer - dy * dy)
            if abs(dy) < inner:
                hole = math.isqrt(inner * inner - dy * dy - 1)
                self._fill(cx - half, cy + dy, half - hole, 1, colour)
                self._fill(cx + hole + 1, cy + dy, half - hole, 1, colour)
            else:
                self._fill(cx - half, cy + dy, 2 * half + 1, 1, colour)

    def _line(self, x0: int, y0: int, x1: int, y1: int) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        half = _LINE_WIDTH // 2
        first = len(self._pending)
        for i in range(steps + 1):
            x = x0 + round((x1 - x0) * i / steps)
            y = y0 + round((y1 - y0) * i / steps)
            self._fill(x - half, y - half, _LINE_WIDTH, _LINE_WIDTH, _DRAG)
        self._collapse_damage(first)

    def _collapse_damage(self, first: int) -> None:
        # One rectangle for a whole shape instead of one per row or dab. (A
        # rectangle merged into the one before `first` stays covered: the box
        # of the rest is added after it.)
        shape = self._pending[first:]
        if shape:
            del self._pending[first:]
            _merge_into(self._pending, bounding_box(shape))


# -- helpers ------------------------------------------------------------------


def _merge_into(rects: list[Rect], rect: Rect) -> None:
    """Append ``rect``, folding it into the last rectangle when that stays exact."""
    if rects:
        lx, ly, lw, lh = rects[-1]
        x, y, w, h = rect
        if lx <= x and ly <= y and x + w <= lx + lw and y + h <= ly + lh:
            return
        if x <= lx and y <= ly and lx + lw <= x + w and ly + lh <= y + h:
            rects[-1] = rect
            return
        # Side by side in the same band (a run of typed cells), or stacked in
        # the same column (the rows of a fill): the union is a rectangle.
        if ly == y and lh == h and x <= lx + lw and lx <= x + w:
            left = min(lx, x)
            rects[-1] = (left, y, max(lx + lw, x + w) - left, h)
            return
        if lx == x and lw == w and y <= ly + lh and ly <= y + h:
            top = min(ly, y)
            rects[-1] = (x, top, w, max(ly + lh, y + h) - top)
            return
    rects.append(rect)


def bounding_box(rects: Sequence[Rect]) -> Rect:
    """The smallest rectangle that covers all of ``rects`` (at least one)."""
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return (x0, y0, x1 - x0, y1 - y0)


def _wrap(text: str, cols: int, max_rows: int) -> tuple[list[str], list[bool]]:
    rows, soft = [""], [False]
    for ch in text:
        if ch == "\n":
            rows.append("")
            soft.append(False)
        else:
            rows[-1] += ch
            if len(rows[-1]) >= cols:
                soft[-1] = True
                rows.append("")
                soft.append(False)
    return rows[-max_rows:], soft[-max_rows:]


def _split_combo(name: str) -> tuple[set[str], str]:
    """``"ctrl+shift+t"`` -> ({"ctrl", "shift"}, "t"); ``"+"``, ``"ctrl++"``: the plus key."""
    *head, base = split_combo(name)
    mods: set[str] = set()
    for part in head:
        try:
            mod = modifier(keysym(part.strip()))
        except ValueError:
            mod = None
        # An unknown modifier makes an unknown key: it only shows in the status bar.
        mods.add(mod if mod is not None else f"?{part}")
    return mods, base


def _keysym_of(base: str) -> int | None:
    """The keysym a key name or a printable ASCII character stands for, if any."""
    if len(base) == 1 and not " " <= base <= "~":
        return None  # only ASCII has glyphs: other characters are unknown keys here
    try:
        return keysym(base)
    except ValueError:
        return None


def _char_of(base: str, value: int | None, *, shift: bool) -> str | None:
    """The printable ASCII character a key types, if it types one."""
    if len(base) == 1:
        return (base.upper() if shift else base) if value is not None else None
    ch = None if value is None else keysym_char(value)
    return ch if ch is not None and " " <= ch <= "~" else None


def _button_colour(button: str) -> bytes:
    colour = _BUTTON_COLOURS.get(button)
    if colour is None:
        raise ValueError(f"button must be left, right or middle, not {button!r}")
    return colour


def _check_size(width: int, height: int) -> None:
    for name, value, least in (("width", width, MIN_WIDTH), ("height", height, MIN_HEIGHT)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an int, not {value!r}")
        if not least <= value <= MAX_ENCODE_SIZE:
            raise ValueError(f"{name} must be between {least} and {MAX_ENCODE_SIZE}, not {value}")


def _check_rgb(rgb: Sequence[int]) -> tuple[int, int, int]:
    try:
        r, g, b = rgb
    except (TypeError, ValueError):
        raise ValueError(f"colour must be (r, g, b), not {rgb!r}") from None
    for value in (r, g, b):
        if not isinstance(value, int) or not 0 <= value <= 255:
            raise ValueError(f"colour components must be ints 0..255, not {rgb!r}")
    return (r, g, b)
