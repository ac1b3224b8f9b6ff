"""``/desktops/{instance_id}/ws/websockify``: RFB (VNC) over the computer's desktop backend.

``/ws/websockify`` carries the RFB byte stream in binary WebSocket frames,
both ways, as websockify does: frame boundaries mean nothing, and the
``binary`` subprotocol is accepted when the client offers it (never
required). The socket edge has already checked the token and that the
computer runs; behind it, RFB asks for VNC authentication (type 2) with the
computer's ``vnc_password`` as it is when the connection opens (only its
first 8 characters count, as with every VNC server). What is served depends
on the computer's desktop backend (:mod:`.backends`):

``synthetic``
    :class:`~orgo_async.protocol.rfb.RFBServerProtocol` over the computer's
    :class:`~.synthetic.SyntheticDesktop`, the very one the REST actions draw
    on and screenshots read. Input changes it visibly: keys type text (Return,
    BackSpace, Tab and ``ctrl+...`` combos go through
    :meth:`~.synthetic.SyntheticDesktop.key`), buttons leave markers, a held
    button draws, wheel buttons scroll, and ClientCutText becomes the
    computer's clipboard (a ``clipboard`` event ``{content}``). A full update
    request is answered at once. An incremental one waits until the desktop
    changes (each connection collects its own damage through a desktop
    listener: no polling) and is answered with the changed rectangles. Pixels
    go as ZRLE when the client offers it, else Raw, in whatever pixel format
    it set.
``xvnc``
    The socket is bridged to the computer's ``Xvnc`` RFB unix socket, bytes
    both ways with back-pressure, and either side's end closes the other
    (``1000 Target closed`` when Xvnc hangs up, as websockify says it).

Close codes of this socket, beyond the edge's (4401, 4404, 1001): 1000
"Target closed" after a failed VNC authentication or when the VNC server
hung up, 1003 for a text frame, 1008 for a broken RFB stream, 1011 when the
desktop cannot be served.

This module does not import the socket edge: :func:`serve_websockify` takes
the hub and the socket as arguments, described by the two protocols below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Final, Literal, Protocol, TypeVar

from ..errors import ProtocolError
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
    RFBServerProtocol,
    SetDesktopSize,
    UpdateRequest,
)
from ..protocol.rfb.keysyms import keysym_char, keysym_name, modifier
from .backends import DesktopBackends
from .store import Computer, Store
from .synthetic import MAX_DAMAGE, Button, Rect, SyntheticDesktop, bounding_box
from .xvnc import XvncError

__all__ = ["CHUNK_BYTES", "RFBHub", "RFBSocket", "serve_websockify"]

log = logging.getLogger("orgo_async.emulator")

CHUNK_BYTES: Final = 256 * 1024
"""The largest binary frame sent: a big update goes as several (clients read a stream;
aiohttp clients refuse messages over 4 MiB by default)."""

_CLOSE_NORMAL: Final = 1000
_CLOSE_UNSUPPORTED: Final = 1003
_CLOSE_POLICY: Final = 1008
_CLOSE_INTERNAL: Final = 1011
_CLOSE_NOT_FOUND: Final = 4404

# Two left clicks on the same spot within this many seconds are a double click.
_DOUBLE_CLICK: Final = 0.4


class RFBSocket(Protocol):
    """What :func:`serve_websockify` uses of an accepted desktop socket."""

    @property
    def computer_id(self) -> str: ...

    @property
    def closing(self) -> bool: ...

    def close(self, code: int, reason: str = ...) -> bool: ...

    @property
    def query(self) -> Mapping[str, str]: ...

    async def receive(self) -> str | bytes | None: ...

    async def send_bytes(self, data: bytes) -> bool: ...


S = TypeVar("S", bound=RFBSocket)
S_contra = TypeVar("S_contra", bound=RFBSocket, contravariant=True)


class RFBHub(Protocol[S_contra]):
    """What :func:`serve_websockify` uses of the registry of desktop sockets."""

    @property
    def store(self) -> Store: ...

    @property
    def desktops(self) -> DesktopBackends: ...

    def accepted(self, socket: S_contra) -> None: ...

    def screen_desktop(self, computer: Computer, screen_id: str) -> SyntheticDesktop | None:
        """The desktop of an added screen (``None``: the default one); ``LookupError`` if none."""
        ...

    def publish(self, computer_id: str, event_type: str, data: Mapping[str, Any]) -> int: ...


async def serve_websockify(hub: RFBHub[S], socket: S) -> None:
    """Serve ``/ws/websockify``: RFB over the computer's desktop (see the module doc)."""
    computer = hub.store.computers.get(socket.computer_id)
    if computer is None:
        _refuse(hub, socket, _CLOSE_NOT_FOUND, "Computer not found or not running")
        return
    screen_id = socket.query.get("screen")
    if screen_id is not None:
        # ``&screen=`` streams one of the computer's added screens (each its own desktop).
        try:
            screen = hub.screen_desktop(computer, screen_id)
        except LookupError:
            _refuse(hub, socket, _CLOSE_POLICY, "Screen not found")
            return
        if screen is not None:
            await _SyntheticSession.serve(hub, socket, computer, desktop=screen)
            return
    if computer.desktop_backend == "xvnc":
        await _bridge_xvnc(hub, socket, computer)
    else:
        await _SyntheticSession.serve(hub, socket, computer)


def _refuse(hub: RFBHub[S], socket: S, code: int, reason: str) -> None:
    """Close a socket that was not accepted, counted in ``counters.ws_rejections``."""
    rejections = hub.store.counters.ws_rejections
    rejections[code] = rejections.get(code, 0) + 1
    socket.close(code, reason)


async def _send_stream(socket: RFBSocket, data: bytes) -> bool:
    """Send bytes of the RFB stream, in frames of at most :data:`CHUNK_BYTES`."""
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_BYTES):
        if not await socket.send_bytes(bytes(view[start : start + CHUNK_BYTES])):
            return False
    return True


# -- xvnc: a byte bridge ---------------------------------------------------------------------


async def _bridge_xvnc(hub: RFBHub[S], socket: S, computer: Computer) -> None:
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


async def _pump_to_socket(reader: asyncio.StreamReader, socket: RFBSocket) -> None:
    """Xvnc's bytes to binary frames; its hang-up closes the socket (1000 Target closed)."""
    try:
        while data := await reader.read(CHUNK_BYTES):
            if not await socket.send_bytes(data):
                return
    except OSError:
        pass
    socket.close(_CLOSE_NORMAL, "Target closed")


# -- synthetic: the RFB core over the synthetic desktop --------------------------------------

# The order of modifiers in the combos given to SyntheticDesktop.key().
_MODIFIER_ORDER: Final = ("ctrl", "alt", "super", "shift")

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


class _SyntheticSession:
    """One ``/ws/websockify`` connection to a synthetic desktop."""

    def __init__(
        self,
        hub: RFBHub[Any],
        socket: RFBSocket,
        computer: Computer,
        desktop: SyntheticDesktop,
        core: RFBServerProtocol,
    ) -> None:
        self.hub = hub
        self.socket = socket
        self.computer_id = computer.id
        self.instance_id = computer.instance_id
        self.desktop = desktop
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
    async def serve(
        cls,
        hub: RFBHub[S],
        socket: S,
        computer: Computer,
        *,
        desktop: SyntheticDesktop | None = None,
    ) -> None:
        if desktop is None:
            desktop = hub.desktops.framebuffer(computer)
        try:
            core = RFBServerProtocol(
                password=computer.vnc_password,  # as it is now: a rotation is for new connections
                width=desktop.width,
                height=desktop.height,
                name=computer.name,
            )
        except ImportError as exc:  # VNC authentication needs the optional cryptography
            log.warning("cannot serve VNC for computer %s: %s", computer.instance_id, exc)
            _refuse(hub, socket, _CLOSE_INTERNAL, "VNC authentication unavailable")
            return
        hub.accepted(socket)
        await cls(hub, socket, computer, desktop, core).run()

    async def run(self) -> None:
        remove = self.desktop.add_listener(self._changed)
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
                self.extra.append(DesktopResized(self.desktop.width, self.desktop.height, 1, 1))
                self.wake.set()
        elif isinstance(event, AuthenticationFailed):
            log.debug("VNC authentication failed for computer %s", self.instance_id)
            self.refused = True

    def _pointer(self, event: Pointer) -> None:
        desktop = self.desktop
        x, y = min(event.x, desktop.width - 1), min(event.y, desktop.height - 1)
        old, new = self.mask, event.mask
        self.mask = new
        if (x, y) != desktop.pointer:
            # A button held since before this move starts a drag where it went down.
            for button, (px, py) in self.pressed.items():
                desktop.press(px, py, button)
            self.pressed.clear()
            desktop.move(x, y)  # with a button held: a line
        for bit, button in _BUTTONS:
            if new & bit and not old & bit:
                # Drawn at the release (a click) or at the first move (a drag).
                self.pressed[button] = (x, y)
            elif old & bit and not new & bit:
                if self.pressed.pop(button, None) is not None:
                    desktop.click(x, y, button, double=self._double(x, y, button))
                else:
                    desktop.release(x, y, button)
        for bit, direction in _WHEELS:
            if new & bit and not old & bit:  # a wheel click is a press and a release
                desktop.scroll(direction, 1, x, y)

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
        x, y = self.desktop.pointer
        for bit, button in _BUTTONS:
            if self.mask & bit and button not in self.pressed:
                self.desktop.release(x, y, button)
        self.mask = 0
        self.pressed.clear()

    def _key(self, event: Key) -> None:
        value = event.keysym
        mod = modifier(value)
        if not event.down:
            self.held.pop(value, None)
            return
        if mod is not None:
            self.held[value] = mod
            return
        mods = set(self.held.values())
        char = keysym_char(value)
        if char is not None and not mods & {"ctrl", "alt", "super"}:
            self.desktop.type_text(char)  # the client already applied Shift to the keysym
            return
        if char == " ":
            name = "space"
        elif char is not None:
            name = char
        else:
            name = keysym_name(value) or f"0x{value:x}"
        combo = [m for m in _MODIFIER_ORDER if m in mods]
        self.desktop.key("+".join([*combo, name]))

    # -- updates ----------------------------------------------------------------------------

    def _changed(self, rects: tuple[Rect, ...]) -> None:
        damage = self.damage
        for rect in rects:
            if not any(_contains(d, rect) for d in damage[-4:]):
                damage.append(rect)
        if len(damage) > MAX_DAMAGE:
            self.damage = [bounding_box(damage)]
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
        desktop = self.desktop
        screen = (0, 0, desktop.width, desktop.height)
        extra: list[RectPixels | DesktopResized] = list(self.extra)
        self.extra.clear()
        if (desktop.width, desktop.height) != (self.core.width, self.core.height):
            # The desktop changed size: say so if the client understands, then repaint.
            if not self.core.supports(ENCODING_DESKTOP_SIZE) and not self.core.supports(
                ENCODING_EXTENDED_DESKTOP_SIZE
            ):
                self.socket.close(_CLOSE_NORMAL, "Desktop size changed")
                return None
            extra.append(DesktopResized(desktop.width, desktop.height))
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
        pixels = [RectPixels(x, y, w, h, desktop.region(x, y, w, h)) for x, y, w, h in areas]
        return [*extra, *pixels]
