"""An OpenAI Agents SDK ``AsyncComputer`` on an Orgo computer.

:func:`openai_computer` yields an :class:`agents.AsyncComputer` for the
Agents SDK's ``ComputerTool``::

    from agents import Agent, ComputerTool, Runner
    from orgo_async.agents import openai_computer

    async with openai_computer(orgo, computer) as desktop:
        agent = Agent(name="operator", tools=[ComputerTool(desktop)], model="computer-use-preview")
        result = await Runner.run(agent, "Open a terminal and run uname -a")

With ``transport="vnc"`` (and with ``"auto"`` when the connection opens) every
member goes over the computer's VNC connection: screenshots come from the
local framebuffer mirror (no round trip), and the pointer and keys are RFB
events. With ``transport="rest"`` (and with ``"auto"`` when VNC cannot be
opened) they are Orgo's REST desktop actions, which have no pointer move, no
middle click, no horizontal scroll, no drag along a path and no keys held
during a click: those raise a clear :class:`ValueError` instead of being
faked. Key names go through the keysym table of
:mod:`orgo_async.protocol.rfb.keysyms`, so ``CTRL``, ``ENTER``, ``ArrowLeft``,
``PageDown``, ``CMD`` and X11 names (``Page_Up``, ``F5``) all work.

Bad input (a point off the screen, an unknown key or button, text over
:data:`MAX_TEXT` characters) raises :class:`ValueError` naming it before
anything is sent; an action that does not finish within ``action_timeout``
raises :class:`TimeoutError`. The Agents SDK's computer path has no error
channel to the model: such an exception ends ``Runner.run`` with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Final, Literal, TypeVar, cast

import attrs

try:
    from agents import AsyncComputer
    from agents.computer import Button, Environment
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "openai_computer needs the 'openai' extra: pip install 'orgo_async[openai]'"
    ) from exc

from .._checks import check_choice, check_int, check_seconds
from ..errors import ConnectorError
from ..protocol.rfb import BUTTON_LEFT
from ..protocol.rfb.keysyms import keysym, keysym_char, keysym_name, modifier
from ..resources.desktop import _resolution

if TYPE_CHECKING:
    from .._client import Orgo
    from ..connect.vnc import Button as VncButton, Vnc
    from ..models import Computer
    from ..resources.desktop import Desktop

__all__ = ["MAX_TEXT", "OrgoAsyncComputer", "Transport", "openai_computer"]

log = logging.getLogger("orgo_async.agents")

Transport = Literal["auto", "vnc", "rest"]
T = TypeVar("T")

MAX_TEXT: Final = 10_000
"""The longest text one ``type`` action takes, in characters."""

_MAX_KEYS: Final = 16
_MAX_PATH: Final = 1_000
# The most wheel clicks one scroll takes: the VNC connector's and Orgo's REST limits.
_MAX_VNC_CLICKS: Final = 1_000
_MAX_REST_CLICKS: Final = 100
# The model's buttons as the desktop's: RFB pointer events carry left, middle
# (the wheel button) and right; Orgo's REST click takes left and right.
_VNC_BUTTONS: Final = {"left": "left", "right": "right", "wheel": "middle"}
_REST_BUTTONS: Final = {"left": "left", "right": "right"}


@contextlib.asynccontextmanager
async def openai_computer(
    orgo: Orgo,
    computer: Computer,
    *,
    transport: Transport = "auto",
    wait_seconds: float = 2.0,
    pixels_per_click: int = 100,
    action_timeout: float = 60.0,
) -> AsyncIterator[OrgoAsyncComputer]:
    """An ``agents.AsyncComputer`` driving ``computer``, open for the ``async with`` block.

    Args:
        orgo: The session.
        computer: A running computer.
        transport: ``"vnc"`` (fail if the VNC connection cannot be opened),
            ``"rest"`` (Orgo's REST desktop actions only) or ``"auto"`` (VNC,
            or REST when VNC cannot be opened: the reason is logged).
        wait_seconds: How long the model's ``wait`` action waits (0 to 60).
        pixels_per_click: The model's ``scroll_x``/``scroll_y`` are pixels:
            one wheel click per this many (rounded, at least one when not 0).
            ``1`` takes them as wheel clicks.
        action_timeout: Seconds one action may take before :class:`TimeoutError`.

    With ``"auto"`` or ``"vnc"``, a computer that is still starting is
    waited for as the VNC connector waits (its ``ready_timeout``).

    Raises:
        ValueError: a bad argument, before any I/O; with ``transport="vnc"``,
            also a computer without a ``connection_url``.
        HandshakeError, ConnectionClosedError: with ``transport="vnc"``, the
            VNC connection could not be opened.
        ImportError: with ``transport="vnc"``, the ``vnc`` extra is missing.
    """
    check_choice("transport", transport, ("auto", "vnc", "rest"))
    check_seconds("wait_seconds", wait_seconds, maximum=60.0)
    check_int("pixels_per_click", pixels_per_click, minimum=1, maximum=10_000)
    check_seconds("action_timeout", action_timeout, minimum=0.0, inclusive=False)
    desktop = orgo.desktop(computer)
    async with contextlib.AsyncExitStack() as stack:
        vnc: Vnc | None = None
        if transport != "rest":
            try:
                socket = orgo.connect(computer).vnc()  # ValueError: no connection_url
                await stack.enter_async_context(socket)
            except (ConnectorError, ImportError, ValueError) as exc:
                if transport == "vnc":
                    raise
                log.info(
                    "computer %s: no VNC connection (%s: %s); using REST desktop actions",
                    computer.id,
                    type(exc).__name__,
                    exc,
                )
            else:
                vnc = socket
        size = (vnc.width, vnc.height) if vnc is not None else _resolution(computer.resolution)
        if size is None:  # unknown resolution: the screen says
            shot = await desktop.screenshot()
            if shot.width is None or shot.height is None:
                raise ValueError(f"computer {computer.id}: the screen size is unknown")
            size = (shot.width, shot.height)
        yield OrgoAsyncComputer(
            desktop,
            vnc,
            size,
            wait_seconds=float(wait_seconds),
            pixels_per_click=pixels_per_click,
            action_timeout=float(action_timeout),
        )


@attrs.define(eq=False, repr=False)
class OrgoAsyncComputer(AsyncComputer):
    """The ``AsyncComputer`` :func:`openai_computer` yields (see the module doc)."""

    _desktop: Desktop = attrs.field(alias="desktop")
    _vnc: Vnc | None = attrs.field(alias="vnc")
    _size: tuple[int, int] = attrs.field(alias="size")
    _wait: float = attrs.field(kw_only=True, alias="wait_seconds")
    _per_click: int = attrs.field(kw_only=True, alias="pixels_per_click")
    _timeout: float = attrs.field(kw_only=True, alias="action_timeout")

    def __repr__(self) -> str:
        return f"<OrgoAsyncComputer of computer {self._desktop.computer.id} via {self.transport}>"

    @property
    def transport(self) -> Literal["vnc", "rest"]:
        """How the actions go: over the VNC connection or as REST desktop actions."""
        return "rest" if self._vnc is None else "vnc"

    @property
    def environment(self) -> Environment:
        # The Responses API takes "linux"; the Agents SDK's Literal lacks it.
        return cast(Environment, "linux")

    @property
    def dimensions(self) -> tuple[int, int]:
        if self._vnc is not None and self._vnc.width:
            return self._vnc.width, self._vnc.height  # follows a resize
        return self._size

    # -- the members ---------------------------------------------------------------------

    async def screenshot(self) -> str:
        """The screen as a base64 PNG: the VNC mirror's, or a REST screenshot."""
        if self._vnc is not None:
            png = await self._run("screenshot", self._vnc.screenshot(timeout=None))
        else:
            shot = await self._run("screenshot", self._desktop.screenshot(format="png"))
            if shot.mime_type != "image/png":
                raise ValueError(f"the screenshot came as {shot.mime_type}, not a PNG")
            png = shot.data
        return base64.b64encode(png).decode("ascii")

    async def click(
        self, x: int, y: int, button: Button = "left", *, keys: list[str] | None = None
    ) -> None:
        """Click ``button`` (left, right; wheel over VNC) at ``(x, y)``."""
        self._point(x, y)
        if self._vnc is not None:
            vnc_button = cast("VncButton", _button(button, _VNC_BUTTONS, "over VNC"))
            held = self._held(keys)
            await self._run("click", self._holding(held, self._vnc.click(x, y, button=vnc_button)))
        else:
            rest_button = _button(button, _REST_BUTTONS, "over REST")
            self._no_keys_over_rest(keys, "click")
            await self._run("click", self._desktop.click(x, y, button=rest_button))

    async def double_click(self, x: int, y: int, *, keys: list[str] | None = None) -> None:
        """Double-click the left button at ``(x, y)``."""
        self._point(x, y)
        if self._vnc is not None:
            held = self._held(keys)
            await self._run(
                "double_click", self._holding(held, self._vnc.click(x, y, double=True))
            )
        else:
            self._no_keys_over_rest(keys, "double_click")
            await self._run("double_click", self._desktop.click(x, y, double=True))

    async def scroll(
        self, x: int, y: int, scroll_x: int, scroll_y: int, *, keys: list[str] | None = None
    ) -> None:
        """Scroll at ``(x, y)``: ``scroll_y`` > 0 down, ``scroll_x`` > 0 right, in pixels."""
        self._point(x, y)
        most = _MAX_VNC_CLICKS if self._vnc is not None else _MAX_REST_CLICKS
        across = self._clicks("scroll_x", scroll_x, most)
        down = self._clicks("scroll_y", scroll_y, most)
        if self._vnc is not None:
            vnc = self._vnc
            held = self._held(keys)

            async def wheel() -> None:
                if not across and not down:
                    await vnc.move(x, y)
                if down:
                    await vnc.scroll("down" if down > 0 else "up", abs(down), x=x, y=y)
                if across:
                    await vnc.scroll("right" if across > 0 else "left", abs(across), x=x, y=y)

            await self._run("scroll", self._holding(held, wheel()))
            return
        self._no_keys_over_rest(keys, "scroll")
        if across:
            raise ValueError("scroll_x: REST desktop actions scroll up and down only")
        if down:
            direction = "down" if down > 0 else "up"
            await self._run("scroll", self._desktop.scroll(direction, abs(down), x=x, y=y))

    async def type(self, text: str) -> None:
        """Type ``text`` (at most :data:`MAX_TEXT` characters)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a string; got {type(text).__name__}")
        if len(text) > MAX_TEXT:
            raise ValueError(
                f"text must be at most {MAX_TEXT} characters; got {len(text)} characters"
            )
        if not text:
            return
        if self._vnc is not None:
            await self._run("type", self._vnc.type(text))
        else:
            # REST types a key every 12 ms and answers after the last one.
            typing = len(text) * 0.012
            await self._run("type", self._desktop.type(text), extra=typing)

    async def wait(self) -> None:
        """Wait ``wait_seconds`` (REST: the desktop waits before answering)."""
        if self._vnc is not None:
            await asyncio.sleep(self._wait)
        else:
            await self._run("wait", self._desktop.wait(self._wait))

    async def move(self, x: int, y: int, *, keys: list[str] | None = None) -> None:
        """Move the pointer to ``(x, y)`` (VNC only: REST has no pointer move)."""
        self._point(x, y)
        if self._vnc is None:
            raise ValueError("move: REST desktop actions cannot move the pointer (use VNC)")
        held = self._held(keys)
        await self._run("move", self._holding(held, self._vnc.move(x, y)))

    async def keypress(self, keys: list[str]) -> None:
        """Press ``keys`` together (``["CTRL", "C"]``): down in order, up in reverse."""
        names = _key_names("keys", keys)
        if not names:
            raise ValueError("keys must name at least one key; got an empty list")
        if self._vnc is not None:
            await self._run("keypress", self._vnc.key("+".join(names)))
            return
        mods = [modifier(keysym(n)) for n in names]
        plain = [n for n, m in zip(names, mods, strict=True) if m is None]
        if len(plain) > 1:
            raise ValueError(
                f"keys: REST desktop actions press modifiers and one key; got {list(keys)!r}"
            )
        combo = [m for m in mods if m is not None] + plain
        await self._run("keypress", self._desktop.key("+".join(combo)))

    async def drag(self, path: list[tuple[int, int]], *, keys: list[str] | None = None) -> None:
        """Press the left button at ``path[0]``, move through the points, release at the last."""
        if not isinstance(path, Sequence) or isinstance(path, str) or len(path) < 2:
            raise ValueError(f"path must be a list of at least 2 (x, y) points; got {path!r}")
        if len(path) > _MAX_PATH:
            raise ValueError(f"path must have at most {_MAX_PATH} points; got {len(path)}")
        points: list[tuple[int, int]] = []
        for i, point in enumerate(path):
            if not isinstance(point, Sequence) or len(point) != 2:
                raise ValueError(f"path[{i}] must be an (x, y) pair; got {point!r}")
            self._point(point[0], point[1], f"path[{i}]")
            points.append((point[0], point[1]))
        if self._vnc is not None:
            vnc = self._vnc
            held = self._held(keys)

            (x0, y0), (x1, y1) = points[0], points[-1]
            events = [(x0, y0, 0), *((x, y, BUTTON_LEFT) for x, y in points), (x1, y1, 0)]
            await self._run("drag", self._holding(held, vnc.send_pointer(events)))
            return
        self._no_keys_over_rest(keys, "drag")
        if len(points) > 2:
            raise ValueError(
                f"path: REST desktop actions drag in a straight line from one point to "
                f"another; got {len(points)} points"
            )
        (x0, y0), (x1, y1) = points
        await self._run("drag", self._desktop.drag(x0, y0, x1, y1))

    # -- helpers -------------------------------------------------------------------------

    async def _run(self, member: str, action: Awaitable[T], *, extra: float = 0.0) -> T:
        limit = self._timeout + extra
        try:
            async with asyncio.timeout(limit):
                return await action
        except TimeoutError:
            raise TimeoutError(
                f"{member} did not finish within {limit:g} s on computer "
                f"{self._desktop.computer.id}"
            ) from None

    async def _holding(self, held: list[int], action: Awaitable[None]) -> None:
        """Run ``action`` with the keysyms ``held`` down (VNC), releasing them after."""
        vnc = self._vnc
        if not held or vnc is None:
            await action
            return
        await vnc.send_keys([(k, True) for k in held])
        try:
            await action
        finally:
            await vnc.send_keys([(k, False) for k in reversed(held)])

    def _held(self, keys: object) -> list[int]:
        if keys is None:
            return []
        return [keysym(name) for name in _key_names("keys", keys)]

    @staticmethod
    def _no_keys_over_rest(keys: object, member: str) -> None:
        if keys:
            raise ValueError(
                f"keys: REST desktop actions cannot hold keys during a {member} (use VNC)"
            )

    def _point(self, x: object, y: object, name: str = "") -> None:
        width, height = self.dimensions
        prefix = f"{name}." if name else ""
        check_int(f"{prefix}x", x, minimum=0, maximum=width - 1)
        check_int(f"{prefix}y", y, minimum=0, maximum=height - 1)

    def _clicks(self, name: str, pixels: object, most: int) -> int:
        """Wheel clicks for ``pixels`` (signed), at most ``most`` either way."""
        value = check_int(name, pixels)
        if not value:
            return 0
        clicks = max(1, round(abs(value) / self._per_click))
        if clicks > most:
            raise ValueError(
                f"{name} must be at most {most * self._per_click} pixels either way "
                f"({most} wheel clicks over {self.transport.upper()}); got {value}"
            )
        return clicks if value > 0 else -clicks


def _button(button: object, allowed: dict[str, str], how: str) -> str:
    mapped = allowed.get(button) if isinstance(button, str) else None
    if mapped is None:
        raise ValueError(
            f"button must be one of {', '.join(allowed)} {how}; got {button!r} "
            f"(the desktop cannot be sent back or forward clicks)"
            if button in ("back", "forward")
            else f"button must be one of {', '.join(allowed)} {how}; got {button!r}"
        )
    return mapped


def _key_names(name: str, keys: object) -> list[str]:
    """The keysym table's names for the model's keys (``"CTRL"`` -> ``"Control_L"``).

    A single letter is the key, not the character: ``"C"`` is the ``c`` key
    (Shift is a key of its own in the list).

    Raises:
        ValueError: not a list of strings, too many, or an unknown key name.
    """
    if not isinstance(keys, Sequence) or isinstance(keys, str):
        raise ValueError(f"{name} must be a list of key names; got {keys!r}")
    if len(keys) > _MAX_KEYS:
        raise ValueError(f"{name} must name at most {_MAX_KEYS} keys; got {len(keys)}")
    names: list[str] = []
    for key in keys:
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{name} must hold non-empty key names; got {key!r}")
        key = key.strip()
        try:
            value = keysym(key.lower() if len(key) == 1 and key.isalpha() else key)
        except ValueError:
            raise ValueError(f"{name}: unknown key name {key!r}") from None
        # One spelling per keysym that joins safely with "+": the X11 name, else the character.
        spelling = keysym_name(value) or keysym_char(value)
        if spelling is None:
            raise ValueError(f"{name}: {key!r} is not a key that can be pressed")
        names.append(spelling)
    return names
