"""The computers' desktops, as the REST actions drive them: the two desktop backends.

Each boot of a computer picks a backend from ``EmulatorConfig.desktop_backend``:

``synthetic`` (the default)
    A :class:`~.synthetic.SyntheticDesktop` per computer: a picture drawn by
    the emulator that changes visibly for every action. REST actions draw on
    it, screenshots read it, and ``/ws/websockify`` serves it over RFB
    (:mod:`.rfb_server`).
``xvnc``
    A real TigerVNC ``Xvnc`` per computer (:mod:`.xvnc`). REST actions run
    ``xdotool`` on its display; screenshots are read from it over RFB, and
    ``/ws/websockify`` is bridged to it.

:class:`DesktopBackends` keeps them for one emulator; :class:`Desktop` is what
an action sees of either.
"""

from __future__ import annotations

import re
from typing import Final, Literal, Protocol

from ..protocol.rfb.keysyms import keysym, split_combo
from .sandbox import SANDBOX_HOME, Place, Sandboxes
from .store import Computer, Store, Transition
from .synthetic import MIN_HEIGHT, MIN_WIDTH, Button, SyntheticDesktop
from .xvnc import XvncError, XvncManager, XvncServer, capture_screen, run_x

__all__ = [
    "Desktop",
    "DesktopBackends",
    "SyntheticBackend",
    "XvncBackend",
    "desktop_size",
]

# xdotool's button numbers.
_X_BUTTONS: Final[dict[str, str]] = {"left": "1", "middle": "2", "right": "3"}
_X_WHEEL: Final[dict[str, str]] = {"up": "4", "down": "5", "left": "6", "right": "7"}


def desktop_size(resolution: str) -> tuple[int, int]:
    """The screen size of a computer's ``WIDTHxHEIGHTxDEPTH`` resolution, for both backends.

    At least 64x96 (the smallest synthetic desktop that shows text); an
    unreadable resolution gives 1280x720.
    """
    parts = resolution.split("x")
    try:
        width, height = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        width, height = 1280, 720
    return max(width, MIN_WIDTH), max(height, MIN_HEIGHT)


class Desktop(Protocol):
    """One computer's desktop, as the REST actions drive it.

    Coordinates are checked by the caller against :attr:`width` and
    :attr:`height`. The ``xvnc`` desktop's methods raise
    :class:`~.xvnc.XvncError` when its X server fails them.
    """

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    async def click(self, x: int, y: int, button: Button, *, double: bool) -> None:
        """Move to ``(x, y)`` and click (twice for ``double``)."""

    async def press(self, x: int, y: int, button: Button) -> None:
        """Move to ``(x, y)`` and hold ``button`` down."""

    async def release(self, x: int, y: int, button: Button) -> None:
        """Move to ``(x, y)`` (dragging what is held) and let ``button`` go."""

    async def type_text(self, text: str) -> None:
        """Type ``text``."""

    async def key(self, name: str) -> None:
        """Press and release a key or a combo such as ``ctrl+shift+t``."""

    async def scroll(
        self, direction: Literal["up", "down"], amount: int, x: int | None, y: int | None
    ) -> tuple[int, int]:
        """Scroll ``amount`` steps at ``(x, y)`` (default: the pointer); the pointer after."""

    async def capture(self) -> tuple[int, int, bytes]:
        """The screen: ``(width, height, packed RGB rows)``."""


class SyntheticBackend:
    """A computer's desktop on the ``synthetic`` backend: a :class:`~.synthetic.SyntheticDesktop`.

    Its methods never suspend, so a REST handler's checks still hold when the
    action happens.
    """

    def __init__(self, desktop: SyntheticDesktop) -> None:
        self.desktop = desktop

    @property
    def width(self) -> int:
        return self.desktop.width

    @property
    def height(self) -> int:
        return self.desktop.height

    async def click(self, x: int, y: int, button: Button, *, double: bool) -> None:
        self.desktop.click(x, y, button, double=double)

    async def press(self, x: int, y: int, button: Button) -> None:
        self.desktop.press(x, y, button)

    async def release(self, x: int, y: int, button: Button) -> None:
        self.desktop.release(x, y, button)

    async def type_text(self, text: str) -> None:
        self.desktop.type_text(text)

    async def key(self, name: str) -> None:
        self.desktop.key(name)

    async def scroll(
        self, direction: Literal["up", "down"], amount: int, x: int | None, y: int | None
    ) -> tuple[int, int]:
        self.desktop.scroll(direction, amount, x, y)
        return self.desktop.pointer

    async def capture(self) -> tuple[int, int, bytes]:
        # A copy: the caller encodes it in a thread while the desktop changes on.
        return self.desktop.width, self.desktop.height, bytes(self.desktop.pixels)


_X_KEY_PART: Final = re.compile(r"^[A-Za-z0-9_]+$")


def _x_key(name: str) -> str:
    """A REST key combo as ``xdotool key`` takes it: each key as its keysym number.

    ``ctrl+shift+t`` becomes ``0xffe3+0xffe1+0x74``: xdotool would not know
    aliases such as ``enter`` or ``esc``, nor ``+`` as a key. A name the
    keysym table lacks goes as it is (``XF86AudioMute``), which X resolves.
    """
    parts = split_combo(name)
    out = []
    for part in parts:
        try:
            out.append(f"0x{keysym(part):x}")
        except ValueError:
            if not _X_KEY_PART.match(part):
                raise
            out.append(part)
    return "+".join(out)


class XvncBackend:
    """A computer's desktop on the ``xvnc`` backend: a real X display, driven by
    ``xdotool``, read over RFB."""

    def __init__(self, server: XvncServer, password: str) -> None:
        if server.display is None:
            raise ValueError("the Xvnc is not started")
        self.server = server
        self.display: Final = server.display
        # An Xvnc keeps the size it was started with.
        self.width: Final = server.width
        self.height: Final = server.height
        self._password = password

    async def xdotool(self, *args: str) -> str:
        """Run ``xdotool ARGS`` on this display; its output."""
        return await run_x(
            self.display,
            ["xdotool", *args],
            home=self.server.directory,
            sandbox=self.server.sandbox,
        )

    async def click(self, x: int, y: int, button: Button, *, double: bool) -> None:
        repeat = ["--repeat", "2", "--delay", "40"] if double else []
        await self.xdotool("mousemove", str(x), str(y), "click", *repeat, _X_BUTTONS[button])

    async def press(self, x: int, y: int, button: Button) -> None:
        await self.xdotool("mousemove", str(x), str(y), "mousedown", _X_BUTTONS[button])

    async def release(self, x: int, y: int, button: Button) -> None:
        await self.xdotool("mousemove", str(x), str(y), "mouseup", _X_BUTTONS[button])

    async def type_text(self, text: str) -> None:
        # The REST action paces the typing itself (delay_ms): none here.
        await self.xdotool("type", "--delay", "0", "--", text)

    async def key(self, name: str) -> None:
        await self.xdotool("key", "--", _x_key(name))

    async def pointer(self) -> tuple[int, int]:
        """Where the X pointer is."""
        fields = dict(
            line.split("=", 1)
            for line in (await self.xdotool("getmouselocation", "--shell")).splitlines()
            if "=" in line
        )
        return int(fields["X"]), int(fields["Y"])

    async def scroll(
        self, direction: Literal["up", "down"], amount: int, x: int | None, y: int | None
    ) -> tuple[int, int]:
        move = [] if x is None or y is None else ["mousemove", str(x), str(y)]
        clicks = ["click", "--repeat", str(amount), "--delay", "10", _X_WHEEL[direction]]
        await self.xdotool(*move, *clicks)
        return await self.pointer()

    async def capture(self) -> tuple[int, int, bytes]:
        return await capture_screen(self.server.socket_path, self._password)


class DesktopBackends:
    """The desktops of one emulator's computers, whatever their backend.

    It keeps one :class:`~.synthetic.SyntheticDesktop` per computer
    (made on first use, dropped by every lifecycle change, like the desktop
    session it stands for), the ``xvnc`` computers' servers
    (:attr:`xvnc`), and the clipboard VNC clients set. Call
    :meth:`shutdown` when the emulator closes.
    """

    def __init__(self, store: Store, *, sandboxes: Sandboxes | None = None) -> None:
        self.store = store
        self.sandboxes = sandboxes if sandboxes is not None else Sandboxes(store, mode="off")
        """Where the computers' processes run (:mod:`.sandbox`)."""
        self.xvnc = XvncManager(store, size=desktop_size, sandboxes=self.sandboxes)
        self._framebuffers: dict[str, SyntheticDesktop] = {}
        self._clipboards: dict[str, str] = {}
        store.add_listener(self._on_transition)

    def framebuffer(self, computer: Computer) -> SyntheticDesktop:
        """The computer's synthetic desktop, made at its resolution on first use."""
        desktop = self._framebuffers.get(computer.id)
        if desktop is None:
            width, height = desktop_size(computer.resolution)
            desktop = SyntheticDesktop(width, height, title=computer.name)
            self._framebuffers[computer.id] = desktop
        return desktop

    def has_framebuffer(self, computer_id: str) -> bool:
        """True when the computer (UUID) has a synthetic desktop right now."""
        return computer_id in self._framebuffers

    async def desktop(self, computer: Computer) -> Desktop:
        """The computer's desktop for its current boot.

        For ``synthetic`` this returns without suspending. For ``xvnc`` it
        waits until the computer's Xvnc accepts connections.

        Raises:
            XvncError: the computer's Xvnc failed, was stopped or is missing.
        """
        if computer.desktop_backend == "xvnc":
            server = await self.xvnc.ready(computer)
            return XvncBackend(server, computer.vnc_password)
        return SyntheticBackend(self.framebuffer(computer))

    async def place(self, computer: Computer) -> Place:
        """Where the computer's processes run now: its sandbox (started if needed), or
        the host in its directory; with ``DISPLAY`` when its desktop is a real X display.

        Raises:
            SandboxError: the computer's sandbox could not be started.
        """
        home = self.store.workdir(computer)
        sandbox = await self.sandboxes.get(computer)
        display = None
        if computer.desktop_backend == "xvnc":
            try:
                display = (await self.xvnc.ready(computer)).display
            except XvncError:
                display = None  # a failed desktop: the shell still runs, without X
        if sandbox is None:
            return Place(cwd=home, home=str(home), display=display)
        return Place(cwd=home, home=SANDBOX_HOME, sandbox=sandbox, display=display)

    def clipboard(self, computer_id: str) -> str | None:
        """The text a VNC client last put on the computer's (UUID) clipboard, if any."""
        return self._clipboards.get(computer_id)

    def set_clipboard(self, computer_id: str, text: str) -> None:
        """Set the computer's (UUID) clipboard."""
        self._clipboards[computer_id] = text

    def _on_transition(self, computer: Computer, transition: Transition) -> None:
        # Every transition ends the desktop session: the next one starts afresh.
        self._framebuffers.pop(computer.id, None)
        self._clipboards.pop(computer.id, None)

    async def shutdown(self) -> None:
        """Stop every Xvnc and sandbox and wait until they are reaped."""
        await self.xvnc.shutdown()
        await self.sandboxes.shutdown()
