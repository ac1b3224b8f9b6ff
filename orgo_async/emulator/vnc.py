"""The computers' desktops: ``/desktops/{instance_id}/ws/websockify`` and its two backends.

``/ws/websockify`` carries the RFB (VNC) byte stream in binary WebSocket
frames, both ways, as websockify does: frame boundaries mean nothing, and the
``binary`` subprotocol is accepted when the client offers it (never
required). The socket edge (:mod:`.ws`) has already checked the token and
that the computer runs; behind it, RFB asks for VNC authentication (type 2)
with the computer's ``vnc_password`` as it is when the connection opens
(only its first 8 characters count, as with every VNC server).

Each boot of a computer picks a backend from ``EmulatorConfig.desktop_backend``:

``synthetic`` (the default)
    The RFB core of :mod:`orgo_async.protocol.rfb`, server role, over the
    computer's :class:`~.framebuffer.Framebuffer`, the very one the REST
    actions draw on and screenshots read. Input changes it visibly: keys type
    text (Return, BackSpace, Tab and ``ctrl+...`` combos go through
    :meth:`~.framebuffer.Framebuffer.key`), buttons leave markers, a held
    button draws, wheel buttons scroll, and ClientCutText becomes the
    computer's clipboard (a ``clipboard`` event ``{content}``). A full
    update request is answered at once. An incremental one waits until the
    framebuffer changes (each connection collects its own damage through a
    framebuffer listener: no polling) and is answered with the changed
    rectangles. Pixels go as ZRLE when the client offers it, else Raw, in
    whatever pixel format it set.
``xvnc``
    A real TigerVNC ``Xvnc`` per computer (:mod:`.xvnc`). The socket is
    bridged to its RFB unix socket, bytes both ways with back-pressure, and
    either side's end closes the other (``1000 Target closed`` when Xvnc
    hangs up, as websockify says it). REST actions run ``xdotool`` on its
    display; screenshots are read from it over RFB.

Close codes of this socket, beyond the edge's (4401, 4404, 1001): 1000
"Target closed" after a failed VNC authentication or when the VNC server
hung up, 1003 for a text frame, 1008 for a broken RFB stream, 1011 when the
desktop cannot be served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING, Final, Literal, Protocol

from ..errors import ProtocolError
from ..protocol._base import Role
from ..protocol.rfb import (
    BUTTON_LEFT,
    BUTTON_MIDDLE,
    BUTTON_RIGHT,
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    WHEEL_DOWN,
    WHEEL_LEFT,
    WHEEL_RIGHT,
    WHEEL_UP,
    AuthenticationFailed,
    ClientCutText,
    DesktopResized,
    Key,
    Pointer,
    RectPixels,
    RFBEvent,
    RFBProtocol,
    SetDesktopSize,
    UpdateRequest,
    keysym,
)
from .framebuffer import MIN_HEIGHT, MIN_WIDTH, Button, Framebuffer, Rect
from .store import Computer, Store, Transition
from .xvnc import XvncError, XvncManager, XvncServer, capture_screen, run_x

if TYPE_CHECKING:
    from .sockets import DesktopSocket, SocketHub

__all__ = [
    "CHUNK_BYTES",
    "Desktop",
    "DesktopBackends",
    "SyntheticDesktop",
    "XvncDesktop",
    "desktop_size",
    "serve_websockify",
]

log = logging.getLogger("orgo_async.emulator")

CHUNK_BYTES: Final = 256 * 1024
"""The largest binary frame sent: a big update goes as several (clients read a stream;
aiohttp clients refuse messages over 4 MiB by default)."""

_CLOSE_NORMAL: Final = 1000
_CLOSE_UNSUPPORTED: Final = 1003
_CLOSE_POLICY: Final = 1008
_CLOSE_INTERNAL: Final = 1011
_CLOSE_NOT_FOUND: Final = 4404

# Damage beyond this many rectangles collapses into their bounding box.
_MAX_DAMAGE: Final = 64
# Two left clicks on the same spot within this many seconds are a double click.
_DOUBLE_CLICK: Final = 0.4

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


# --------------------------------------------------------------------------- the backends


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


class SyntheticDesktop:
    """The ``synthetic`` backend: a :class:`~.framebuffer.Framebuffer`.

    Its methods never suspend, so a REST handler's checks still hold when the
    action happens.
    """

    def __init__(self, fb: Framebuffer) -> None:
        self.fb = fb

    @property
    def width(self) -> int:
        return self.fb.width

    @property
    def height(self) -> int:
        return self.fb.height

    async def click(self, x: int, y: int, button: Button, *, double: bool) -> None:
        self.fb.click(x, y, button, double=double)

    async def press(self, x: int, y: int, button: Button) -> None:
        self.fb.press(x, y, button)

    async def release(self, x: int, y: int, button: Button) -> None:
        self.fb.release(x, y, button)

    async def type_text(self, text: str) -> None:
        self.fb.type_text(text)

    async def key(self, name: str) -> None:
        self.fb.key(name)

    async def scroll(
        self, direction: Literal["up", "down"], amount: int, x: int | None, y: int | None
    ) -> tuple[int, int]:
        self.fb.scroll(direction, amount, x, y)
        return self.fb.pointer

    async def capture(self) -> tuple[int, int, bytes]:
        # A copy: the caller encodes it in a thread while the desktop changes on.
        return self.fb.width, self.fb.height, bytes(self.fb.pixels)


_X_KEY_PART: Final = re.compile(r"^[A-Za-z0-9_]+$")


def _x_key(name: str) -> str:
    """A REST key combo as ``xdotool key`` takes it: each key as its keysym number.

    ``ctrl+shift+t`` becomes ``0xffe3+0xffe1+0x74``: xdotool would not know
    aliases such as ``enter`` or ``esc``, nor ``+`` as a key. A name the
    keysym table lacks goes as it is (``XF86AudioMute``), which X resolves.
    """
    if name == "+" or name.endswith("++"):
        head, last = name[:-2], "+"
        parts = [*(head.split("+") if head else []), last]
    else:
        parts = name.split("+")
    out = []
    for part in parts:
        try:
            out.append(f"0x{keysym(part):x}")
        except ValueError:
            if not _X_KEY_PART.match(part):
                raise
            out.append(part)
    return "+".join(out)


class XvncDesktop:
    """The ``xvnc`` backend: a real X display, driven by ``xdotool``, read over RFB."""

    def __init__(self, server: XvncServer, password: str) -> None:
        if server.display is None:
            raise ValueError("the Xvnc is not started")
        self.server = server
        self.display: Final = server.display
        self._password = password

    @property
    def width(self) -> int:
        return self.server.width

    @property
    def height(self) -> int:
        return self.server.height

    async def xdotool(self, *args: str) -> str:
        """Run ``xdotool ARGS`` on this display; its output."""
        return await run_x(self.display, ["xdotool", *args], home=self.server.directory)

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

    It keeps one synthetic :class:`~.framebuffer.Framebuffer` per computer
    (made on first use, dropped by every lifecycle change, like the desktop
    session it stands for), the ``xvnc`` computers' servers
    (:attr:`xvnc`), and the clipboard VNC clients set. Call
    :meth:`shutdown` when the emulator closes.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.xvnc = XvncManager(store, size=desktop_size)
        self._framebuffers: dict[str, Framebuffer] = {}
        self._clipboards: dict[str, str] = {}
        store.add_listener(self._on_transition)

    def framebuffer(self, computer: Computer) -> Framebuffer:
        """The computer's synthetic desktop, made at its resolution on first use."""
        fb = self._framebuffers.get(computer.id)
        if fb is None:
            width, height = desktop_size(computer.resolution)
            fb = Framebuffer(width, height, title=computer.name)
            self._framebuffers[computer.id] = fb
        return fb

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
            return XvncDesktop(server, computer.vnc_password)
        return SyntheticDesktop(self.framebuffer(computer))

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
        """Stop every Xvnc and wait until it is reaped."""
        await self.xvnc.shutdown()


# --------------------------------------------------------------------------- the socket


async def serve_websockify(hub: SocketHub, socket: DesktopSocket) -> None:
    """Serve ``/ws/websockify``: RFB over the computer's desktop (see the module doc)."""
    computer = hub.store.computers.get(socket.computer_id)
    if computer is None:
        _refuse(hub, socket, _CLOSE_NOT_FOUND, "Computer not found or not running")
        return
    if computer.desktop_backend == "xvnc":
        await _bridge_xvnc(hub, socket, computer)
    else:
        await _SyntheticSession.serve(hub, socket, computer)


def _refuse(hub: SocketHub, socket: DesktopSocket, code: int, reason: str) -> None:
    """Close a socket that was not accepted, counted in ``counters.ws_rejections``."""
    rejections = hub.store.counters.ws_rejections
    rejections[code] = rejections.get(code, 0) + 1
    socket.close(code, reason)


async def _send_stream(socket: DesktopSocket, data: bytes) -> bool:
    """Send bytes of the RFB stream, in frames of at most :data:`CHUNK_BYTES`."""
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_BYTES):
        if not await socket.send_bytes(bytes(view[start : start + CHUNK_BYTES])):
            return False
    return True


# -- xvnc: a byte bridge ---------------------------------------------------------------------


async def _bridge_xvnc(hub: SocketHub, socket: DesktopSocket, computer: Computer) -> None:
    backends = hub.desktops
    try:
        server = await backends.xvnc.ready(computer)
    except XvncError as exc:
        log.warning("no VNC for computer %s: %s", computer.instance_id, exc)
        if computer.is_running(hub.store.now()):
            _refuse(hub, socket, _CLOSE_INTERNAL, "Desktop unavailable")
        else:
            _refuse(hub, socket, _CLOSE_NOT_FOUND, "Computer not found or not running")
        return
    if socket.closing:
        return
    try:
        reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
    except OSError as exc:
        log.warning("cannot reach the Xvnc of computer %s: %s", computer.instance_id, exc)
        _refuse(hub, socket, _CLOSE_INTERNAL, "Desktop unavailable")
        return
    hub.accepted(socket)
    pump = asyncio.get_running_loop().create_task(
        _pump_to_socket(reader, socket), name=f"orgo-emulator-vnc-{computer.instance_id}"
    )
    try:
        while (message := await socket.receive()) is not None:
            if isinstance(message, str):
                socket.close(_CLOSE_UNSUPPORTED, "RFB travels in binary frames")
                continue
            writer.write(message)
            await writer.drain()  # back-pressure: a slow Xvnc slows the client down
    except OSError:  # Xvnc went away mid-write (the pump reports it)
        socket.close(_CLOSE_NORMAL, "Target closed")
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _pump_to_socket(reader: asyncio.StreamReader, socket: DesktopSocket) -> None:
    """Xvnc's bytes to binary frames; its hang-up closes the socket (1000 Target closed)."""
    try:
        while data := await reader.read(CHUNK_BYTES):
            if not await socket.send_bytes(data):
                return
    except OSError:
        pass
    socket.close(_CLOSE_NORMAL, "Target closed")


# -- synthetic: the RFB core over the framebuffer ---------------------------------------------

# Modifier keysyms -> the names Framebuffer.key() understands.
_MODIFIERS: Final[dict[int, str]] = {
    0xFFE1: "shift",
    0xFFE2: "shift",
    0xFFE3: "ctrl",
    0xFFE4: "ctrl",
    0xFFE7: "alt",  # Meta
    0xFFE8: "alt",
    0xFFE9: "alt",
    0xFFEA: "alt",
    0xFFEB: "super",
    0xFFEC: "super",
}
_MODIFIER_ORDER: Final = ("ctrl", "alt", "super", "shift")

# Keysyms of keys that are not characters -> their X11 names.
_KEY_NAMES: Final[dict[int, str]] = {
    0xFF08: "BackSpace",
    0xFF09: "Tab",
    0xFF0D: "Return",
    0xFF1B: "Escape",
    0xFF50: "Home",
    0xFF51: "Left",
    0xFF52: "Up",
    0xFF53: "Right",
    0xFF54: "Down",
    0xFF55: "Page_Up",
    0xFF56: "Page_Down",
    0xFF57: "End",
    0xFF63: "Insert",
    0xFF8D: "KP_Enter",
    0xFFFF: "Delete",
    **{0xFFBE + n: f"F{n + 1}" for n in range(24)},
}

_BUTTONS: Final[tuple[tuple[int, Button], ...]] = (
    (BUTTON_LEFT, "left"),
    (BUTTON_MIDDLE, "middle"),
    (BUTTON_RIGHT, "right"),
)
_WHEELS: Final[tuple[tuple[int, Literal["up", "down", "left", "right"]], ...]] = (
    (WHEEL_UP, "up"),
    (WHEEL_DOWN, "down"),
    (WHEEL_LEFT, "left"),
    (WHEEL_RIGHT, "right"),
)


def _keysym_char(value: int) -> str | None:
    """The character a keysym types, if it is one (Latin-1, Unicode, keypad digits)."""
    if 0x20 <= value <= 0x7E or 0xA0 <= value <= 0xFF:
        return chr(value)
    if 0x01000100 <= value <= 0x0110FFFF:
        return chr(value - 0x01000000)
    if 0xFFB0 <= value <= 0xFFB9:
        return chr(value - 0xFFB0 + 0x30)
    return None


def _intersect(a: Rect, b: Rect) -> Rect | None:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def _contains(outer: Rect, inner: Rect) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[0] + inner[2] <= outer[0] + outer[2]
        and inner[1] + inner[3] <= outer[1] + outer[3]
    )


def _bounding_box(rects: list[Rect]) -> Rect:
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return (x0, y0, x1 - x0, y1 - y0)


class _SyntheticSession:
    """One ``/ws/websockify`` connection to a synthetic desktop."""

    def __init__(
        self,
        hub: SocketHub,
        socket: DesktopSocket,
        computer: Computer,
        fb: Framebuffer,
        core: RFBProtocol,
    ) -> None:
        self.hub = hub
        self.socket = socket
        self.computer_id = computer.id
        self.instance_id = computer.instance_id
        self.fb = fb
        self.core = core
        self.damage: list[Rect] = []
        self.request: UpdateRequest | None = None
        self.extra: list[DesktopResized] = []
        self.wake = asyncio.Event()
        self.mask = 0
        self.pressed: dict[Button, tuple[int, int]] = {}
        self.last_click: tuple[float, int, int, Button] | None = None
        self.held: dict[int, str] = {}
        self.refused = False

    @classmethod
    async def serve(cls, hub: SocketHub, socket: DesktopSocket, computer: Computer) -> None:
        fb = hub.desktops.framebuffer(computer)
        try:
            core = RFBProtocol(
                Role.SERVER,
                password=computer.vnc_password,  # as it is now: a rotation is for new connections
                width=fb.width,
                height=fb.height,
                name=computer.name,
            )
        except ImportError as exc:  # VNC authentication needs the optional cryptography
            log.warning("cannot serve VNC for computer %s: %s", computer.instance_id, exc)
            _refuse(hub, socket, _CLOSE_INTERNAL, "VNC authentication unavailable")
            return
        hub.accepted(socket)
        await cls(hub, socket, computer, fb, core).run()

    async def run(self) -> None:
        remove = self.fb.add_listener(self._changed)
        sender = asyncio.get_running_loop().create_task(
            self._send_updates(), name=f"orgo-emulator-rfb-{self.instance_id}"
        )
        try:
            if not await self._flush():
                return
            while (message := await self.socket.receive()) is not None:
                if isinstance(message, str):
                    self.socket.close(_CLOSE_UNSUPPORTED, "RFB travels in binary frames")
                    continue
                try:
                    self.core.receive_data(message)
                except ProtocolError as exc:
                    log.debug("RFB client of computer %s: %s", self.instance_id, exc)
                    await self._flush()  # a refusal's SecurityResult, if any
                    self.socket.close(_CLOSE_POLICY, "Protocol error")
                    continue
                for event in self.core.events_received():
                    self._handle(event)
                if not await self._flush():
                    break
                if self.refused:
                    # As websockify reports a VNC server that hung up.
                    self.socket.close(_CLOSE_NORMAL, "Target closed")
        finally:
            remove()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            self._release_buttons()

    async def _flush(self) -> bool:
        data = b"".join(self.core.data_to_send())
        if not data:
            return not self.socket.closing
        return await _send_stream(self.socket, data)

    # -- client messages --------------------------------------------------------------------

    def _handle(self, event: RFBEvent) -> None:
        if isinstance(event, UpdateRequest):
            self.request = event
            self.wake.set()
        elif isinstance(event, Pointer):
            self._pointer(event)
        elif isinstance(event, Key):
            self._key(event)
        elif isinstance(event, ClientCutText):
            self.hub.desktops.set_clipboard(self.computer_id, event.text)
            self.hub.publish(self.computer_id, "clipboard", {"content": event.text})
        elif isinstance(event, SetDesktopSize):
            # The synthetic desktop keeps the computer's resolution: "prohibited".
            if self.core.supports(ENCODING_EXTENDED_DESKTOP_SIZE):
                self.extra.append(DesktopResized(self.fb.width, self.fb.height, 1, 1))
                self.wake.set()
        elif isinstance(event, AuthenticationFailed):
            log.debug("VNC authentication failed for computer %s", self.instance_id)
            self.refused = True

    def _pointer(self, event: Pointer) -> None:
        fb = self.fb
        x, y = min(event.x, fb.width - 1), min(event.y, fb.height - 1)
        old, new = self.mask, event.mask
        self.mask = new
        if (x, y) != fb.pointer:
            # A button held since before this move starts a drag where it went down.
            for button, (px, py) in self.pressed.items():
                fb.press(px, py, button)
            self.pressed.clear()
            fb.move(x, y)  # with a button held: a line
        for bit, button in _BUTTONS:
            if new & bit and not old & bit:
                # Drawn at the release (a click) or at the first move (a drag).
                self.pressed[button] = (x, y)
            elif old & bit and not new & bit:
                if self.pressed.pop(button, None) is not None:
                    fb.click(x, y, button, double=self._double(x, y, button))
                else:
                    fb.release(x, y, button)
        for bit, direction in _WHEELS:
            if new & bit and not old & bit:  # a wheel click is a press and a release
                fb.scroll(direction, 1, x, y)

    def _double(self, x: int, y: int, button: Button) -> bool:
        """Whether this click completes a double click (the same spot, soon enough)."""
        now = asyncio.get_running_loop().time()
        last, self.last_click = self.last_click, (now, x, y, button)
        if last is None or button != "left":
            return False
        then, lx, ly, lbutton = last
        if lbutton == button and (lx, ly) == (x, y) and now - then <= _DOUBLE_CLICK:
            self.last_click = None  # a third click starts over
            return True
        return False

    def _release_buttons(self) -> None:
        # A client that leaves with a button held must not leave it stuck.
        x, y = self.fb.pointer
        for bit, button in _BUTTONS:
            if self.mask & bit and button not in self.pressed:
                self.fb.release(x, y, button)
        self.mask = 0
        self.pressed.clear()

    def _key(self, event: Key) -> None:
        value = event.keysym
        modifier = _MODIFIERS.get(value)
        if not event.down:
            self.held.pop(value, None)
            return
        if modifier is not None:
            self.held[value] = modifier
            return
        mods = set(self.held.values())
        char = _keysym_char(value)
        if char is not None and not mods & {"ctrl", "alt", "super"}:
            self.fb.type_text(char)  # the client already applied Shift to the keysym
            return
        if char == " ":
            name = "space"
        elif char is not None:
            name = char
        else:
            name = _KEY_NAMES.get(value, f"0x{value:x}")
        combo = [m for m in _MODIFIER_ORDER if m in mods]
        self.fb.key("+".join([*combo, name]))

    # -- updates ----------------------------------------------------------------------------

    def _changed(self, rects: tuple[Rect, ...]) -> None:
        damage = self.damage
        for rect in rects:
            if not any(_contains(d, rect) for d in damage[-4:]):
                damage.append(rect)
        if len(damage) > _MAX_DAMAGE:
            self.damage = [_bounding_box(damage)]
        if self.request is not None:
            self.wake.set()

    async def _send_updates(self) -> None:
        """Answer update requests: at once when there is something to send, else later."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            rects = self._take_update()
            if rects is None:
                continue
            try:
                self.core.send_framebuffer_update(rects)
            except ValueError as exc:
                log.warning("RFB update for computer %s failed: %s", self.instance_id, exc)
                self.socket.close(_CLOSE_INTERNAL, "Internal error")
                return
            if not await self._flush():
                return

    def _take_update(self) -> list[RectPixels | DesktopResized] | None:
        """The rectangles answering the pending request, or None to keep waiting."""
        request = self.request
        if request is None:
            return None
        fb = self.fb
        screen = (0, 0, fb.width, fb.height)
        extra: list[RectPixels | DesktopResized] = list(self.extra)
        self.extra.clear()
        if (fb.width, fb.height) != (self.core.width, self.core.height):
            # The desktop changed size: say so if the client understands, then repaint.
            if not self.core.supports(ENCODING_DESKTOP_SIZE) and not self.core.supports(
                ENCODING_EXTENDED_DESKTOP_SIZE
            ):
                self.socket.close(_CLOSE_NORMAL, "Desktop size changed")
                return None
            extra.append(DesktopResized(fb.width, fb.height))
            areas = [screen]
            self.damage = []
        else:
            region = _intersect((request.x, request.y, request.width, request.height), screen)
            areas = []
            keep: list[Rect] = []
            if not request.incremental:
                if region is not None:
                    areas.append(region)
                keep = [d for d in self.damage if region is None or not _contains(region, d)]
            elif region is not None:
                for rect in self.damage:
                    part = _intersect(rect, region)
                    if part is not None:
                        areas.append(part)
                    if part != rect:
                        keep.append(rect)  # (the part outside goes with a later request)
            else:
                keep = self.damage
            self.damage = keep
            if request.incremental and not areas and not extra:
                return None  # nothing changed yet: answer when something does
        self.request = None
        pixels = [RectPixels(x, y, w, h, fb.region(x, y, w, h)) for x, y, w, h in areas]
        return [*extra, *pixels]
