"""The desktops of a computer's added screens (``screen-100`` ...), for ``?screen=``.

On Orgo each added screen is a display of its own: the REST actions and the
screenshot given ``?screen=<id>`` act on it, not on the default one. Here each
added screen gets a :class:`~.synthetic.SyntheticDesktop` of its own size,
made on first use (whatever the computer's backend: the ``xvnc`` backend runs
one display). A screen smaller than the smallest synthetic desktop (64x96) is
drawn on one that large and captured at its own size. A synthetic desktop has
a fixed size, so a resized screen is drawn afresh at its new size (what Orgo
keeps across a resize is not known), and so is a screen removed and added
again; they all go with the computer's lifecycle (a restart, stop or
delete), as the screens do.
"""

from __future__ import annotations

from .backends import SyntheticBackend
from .extras import Screen
from .store import Computer, Store, Transition
from .synthetic import MIN_HEIGHT, MIN_WIDTH, SyntheticDesktop

__all__ = ["ScreenBackend", "ScreenDesktops"]


class ScreenBackend(SyntheticBackend):
    """An added screen's desktop: a synthetic one, at the screen's own size."""

    def __init__(self, screen: Screen, *, title: str) -> None:
        width, height = screen.width, screen.height
        super().__init__(
            SyntheticDesktop(max(width, MIN_WIDTH), max(height, MIN_HEIGHT), title=title)
        )
        self.screen = screen
        self.size = (width, height)

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    async def capture(self) -> tuple[int, int, bytes]:
        full_width, _, pixels = await super().capture()
        width, height = self.size
        if width == full_width and height == self.desktop.height:
            return width, height, pixels
        stride = full_width * 3
        rows = (pixels[row * stride : row * stride + width * 3] for row in range(height))
        return width, height, b"".join(rows)


class ScreenDesktops:
    """The added screens' desktops of one emulator, by computer and screen id."""

    def __init__(self, store: Store) -> None:
        self._desktops: dict[str, dict[str, ScreenBackend]] = {}
        store.add_listener(self._on_transition)

    def get(self, computer: Computer, screen: Screen) -> ScreenBackend:
        """The screen's desktop (a new one once the screen has another size, or was re-added)."""
        table = self._desktops.setdefault(computer.id, {})
        desktop = table.get(screen.id)
        size = (screen.width, screen.height)
        if desktop is None or desktop.screen is not screen or desktop.size != size:
            desktop = ScreenBackend(screen, title=f"{computer.name} {screen.id}")
            table[screen.id] = desktop
        return desktop

    def _on_transition(self, computer: Computer, transition: Transition) -> None:
        self._desktops.pop(computer.id, None)
