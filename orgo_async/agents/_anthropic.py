"""The anthropic SDK's computer toolset, served by an Orgo computer.

:func:`anthropic_toolset` yields an :class:`OrgoComputerToolset`, a subclass of
the SDK's ``BetaAsyncAbstractComputerToolset20260801``; hand it to the SDK's
tool runner like any toolset::

    async with anthropic_toolset(orgo, computer, confirm=ask) as computer_tools:
        runner = client.beta.messages.tool_runner(
            model=..., max_tokens=1024, messages=[...], tools=[computer_tools]
        )
        async for message in runner:
            ...

Members go over the computer's live VNC connection (screenshots from its local
framebuffer mirror, pointer and keys as RFB events) or over the REST desktop
actions, as ``transport`` says. A member the transport cannot serve is left
unimplemented, so the SDK reports it to the model as disabled. The model sees
screenshots scaled to fit its image limits and sends coordinates in that
space; they are scaled back to the screen's here. A mistake of the model's
(a point off the screen, an unknown key, too much text) or a computer that is
gone comes back to it as a tool error, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Literal

try:
    from anthropic.tools import (
        BetaAsyncAbstractComputerToolset20260801,
        BetaAsyncComputerConfirmCallable,
        BetaComputerCursorPositionResult,
        BetaScreenshotResult,
        BetaToolConfigs,
        BetaToolsetCallContext,
        ToolError,
    )
    from anthropic.types.beta import (
        BetaComputerCursorPositionInput,
        BetaComputerDoubleClickInput,
        BetaComputerHoldKeyInput,
        BetaComputerKeyInput,
        BetaComputerLeftClickDragInput,
        BetaComputerLeftClickInput,
        BetaComputerLeftMouseDownInput,
        BetaComputerLeftMouseUpInput,
        BetaComputerMiddleClickInput,
        BetaComputerMouseMoveInput,
        BetaComputerRightClickInput,
        BetaComputerScreenshotInput,
        BetaComputerScrollInput,
        BetaComputerToolsetConfigsParam,
        BetaComputerTripleClickInput,
        BetaComputerTypeInput,
        BetaComputerWaitInput,
        BetaComputerZoomInput,
        BetaToolResultBlockParam,
        BetaToolUseBlock,
    )
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "the Anthropic computer toolset needs the anthropic SDK: "
        "pip install 'orgo_async[anthropic]'"
    ) from exc

from ..errors import ConnectionClosedError, NotFoundError, OrgoError
from ..protocol.png import decode_png, encode_png, png_size
from ..protocol.rfb import (
    BUTTON_LEFT,
    BUTTON_MIDDLE,
    BUTTON_RIGHT,
    WHEEL_DOWN,
    WHEEL_LEFT,
    WHEEL_RIGHT,
    WHEEL_UP,
    key_combo,
    text_to_keys,
)
from ..protocol.rfb.keysyms import keysym, keysym_name, modifier, split_combo
from ..resources.desktop import _resolution
from ._images import crop_rgb, fit, resize_rgb

if TYPE_CHECKING:
    from .._client import Orgo
    from ..connect import Vnc
    from ..models import Computer
    from ..resources.desktop import Desktop

__all__ = ["REST_UNSERVED", "OrgoComputerToolset", "Transport", "anthropic_toolset"]

log = logging.getLogger("orgo_async.agents")

Transport = Literal["auto", "vnc", "rest"]

MAX_TEXT: Final = 10_000
"""The most characters one ``type`` call may type."""
MAX_REPEAT: Final = 100
"""The most times one ``key`` call may repeat its keys."""
MAX_SECONDS: Final = 60
"""The longest ``wait`` or ``hold_key``, in seconds."""
_DRAG_STEPS: Final = 10
_WHEEL: Final = {"up": WHEEL_UP, "down": WHEEL_DOWN, "left": WHEEL_LEFT, "right": WHEEL_RIGHT}
_CLICKS: Final = {"left": BUTTON_LEFT, "right": BUTTON_RIGHT, "middle": BUTTON_MIDDLE}
# How screenshots the model sees are PNG-encoded (zlib level, row filter): Vnc.screenshot()'s
# defaults, so an unscaled screenshot shares its cached PNG. At 1280x720 that takes 3-6 ms for
# 18-103 kB where level 3 with the Sub filter took 9-14 ms for 17-93 kB; the model's cost
# depends on the image's size in pixels, not in bytes.
_LEVEL: Final = 1
_FILTER: Final = "none"

Keys = list[tuple[int, bool]]

CallHook = Callable[
    [BetaToolUseBlock, Callable[[], Awaitable[BetaToolResultBlockParam]]],
    Awaitable[BetaToolResultBlockParam],
]
"""Runs around each member call the tool runner makes: ``hook(tool_use, call)`` awaits
``call()`` for the result block the model will read (or does not, to stop the run)."""


class OrgoComputerToolset(BetaAsyncAbstractComputerToolset20260801):
    """The computer toolset on one Orgo computer; get one from :func:`anthropic_toolset`.

    Every member is served over VNC; with ``transport="rest"`` the subclass
    :func:`anthropic_toolset` picks leaves out what REST cannot do.
    :attr:`screen_size` is the desktop's size and :attr:`image_size` the size
    of the screenshots the model sees (the space of its coordinates).
    """

    def __init__(
        self,
        desktop: Desktop,
        *,
        transport: Transport,
        confirm: BetaAsyncComputerConfirmCallable | None = None,
        configs: BetaComputerToolsetConfigsParam | None = None,
        tool_configs: BetaToolConfigs | None = None,
    ) -> None:
        super().__init__(configs=configs, confirm=confirm, tool_configs=tool_configs)
        self.transport: Transport = transport
        self._desktop = desktop
        self._vnc: Vnc | None = None
        self.screen_size = (0, 0)
        self.image_size = (0, 0)
        self._pointer: tuple[int, int] | None = None  # in screen pixels, once known
        self._buttons = 0  # the RFB mask of the buttons held down
        self.around_call: CallHook | None = None
        """Observes each call the tool runner makes (see :data:`CallHook`); ``None``: none."""

    def __repr__(self) -> str:
        width, height = self.screen_size
        return (
            f"<{type(self).__name__} of computer {self._desktop.computer.id} "
            f"over {self.transport}, {width}x{height}>"
        )

    async def tool_result(self, tool_use: BetaToolUseBlock) -> BetaToolResultBlockParam:
        """The tool runner's entry point, through :attr:`around_call` when one is set."""
        hook = self.around_call
        if hook is None:
            return await super().tool_result(tool_use)
        return await hook(tool_use, lambda: super(OrgoComputerToolset, self).tool_result(tool_use))

    async def _start(self, vnc: Vnc | None) -> None:
        """Learn the screen's size; over VNC, put the pointer at its centre so it is known."""
        self._vnc = vnc
        if vnc is not None:
            width, height = vnc.width, vnc.height
        else:
            width, height = _resolution(self._desktop.computer.resolution) or (0, 0)
            if not width:
                shot = await self._desktop.screenshot()
                width, height = shot.width or 0, shot.height or 0
        self.screen_size = (width, height)
        self.image_size = fit(width, height)
        if vnc is not None:
            centre = (width // 2, height // 2)
            await vnc.send_pointer([(*centre, 0)])
            self._pointer = centre

    # -- the screen ------------------------------------------------------------------------

    async def screenshot(
        self, context: BetaToolsetCallContext, input: BetaComputerScreenshotInput
    ) -> BetaScreenshotResult:
        with _tool_errors():
            if self._vnc is None:
                shot = await self._desktop.screenshot()
                if (shot.width, shot.height) == self.image_size and shot.mime_type == "image/png":
                    return BetaScreenshotResult(data=base64.b64encode(shot.data).decode("ascii"))
                width, height, rgb = await self._decoded(shot.data)
            else:
                vnc = self._vnc
                if (vnc.width, vnc.height) == self.image_size:
                    # No scaling: the connection's screenshot, cached while the screen
                    # stays the same, so an unchanged screen costs no copy and no encode.
                    png = await vnc.screenshot(compress_level=_LEVEL, filter=_FILTER)
                    if png_size(png) == self.image_size:  # not resized meanwhile
                        return BetaScreenshotResult(data=base64.b64encode(png).decode("ascii"))
                width, height, rgb = await vnc.pixels()
            to_width, to_height = self.image_size
            png = await asyncio.to_thread(_png, rgb, width, height, to_width, to_height)
        return BetaScreenshotResult(data=base64.b64encode(png).decode("ascii"))

    async def zoom(
        self, context: BetaToolsetCallContext, input: BetaComputerZoomInput
    ) -> BetaScreenshotResult:
        x0, y0, x1, y1 = input.region
        image_width, image_height = self.image_size
        if not (0 <= x0 < x1 <= image_width and 0 <= y0 < y1 <= image_height):
            raise ToolError(
                f"region {input.region} must have x0 < x1 <= {image_width} and "
                f"y0 < y1 <= {image_height}, from 0, on this {image_width}x{image_height} screen"
            )
        width, height = self.screen_size
        sx0, sy0 = x0 * width // image_width, y0 * height // image_height
        sx1 = max(sx0 + 1, min(width, -(-x1 * width // image_width)))
        sy1 = max(sy0 + 1, min(height, -(-y1 * height // image_height)))
        with _tool_errors():
            _, _, rgb = await self._pixels()

            def render() -> bytes:
                crop = crop_rgb(rgb, width, sx0, sy0, sx1, sy1)
                to_width, to_height = fit(sx1 - sx0, sy1 - sy0, grow=True)
                return _png(crop, sx1 - sx0, sy1 - sy0, to_width, to_height)

            png = await asyncio.to_thread(render)
        return BetaScreenshotResult(data=base64.b64encode(png).decode("ascii"))

    async def cursor_position(
        self, context: BetaToolsetCallContext, input: BetaComputerCursorPositionInput
    ) -> BetaComputerCursorPositionResult:
        if self._pointer is None:  # pragma: no cover - set when the VNC transport starts
            raise ToolError("the cursor position is not known yet; move the mouse first")
        x, y = self._to_image(*self._pointer)
        return BetaComputerCursorPositionResult(x=x, y=y)

    # -- the pointer -----------------------------------------------------------------------

    async def mouse_move(
        self, context: BetaToolsetCallContext, input: BetaComputerMouseMoveInput
    ) -> str | None:
        x, y = self._point(input.coordinate, "coordinate")
        with _tool_errors():
            await self._send_pointer([(x, y, self._buttons)])
        return None

    async def left_mouse_down(
        self, context: BetaToolsetCallContext, input: BetaComputerLeftMouseDownInput
    ) -> str | None:
        x, y = self._here()
        with _tool_errors():
            await self._send_pointer([(x, y, self._buttons | BUTTON_LEFT)])
        self._buttons |= BUTTON_LEFT
        return None

    async def left_mouse_up(
        self, context: BetaToolsetCallContext, input: BetaComputerLeftMouseUpInput
    ) -> str | None:
        x, y = self._here()
        with _tool_errors():
            await self._send_pointer([(x, y, self._buttons & ~BUTTON_LEFT)])
        self._buttons &= ~BUTTON_LEFT
        return None

    async def left_click(
        self, context: BetaToolsetCallContext, input: BetaComputerLeftClickInput
    ) -> str | None:
        await self._click(input.coordinate, input.text, "left", 1)
        return None

    async def right_click(
        self, context: BetaToolsetCallContext, input: BetaComputerRightClickInput
    ) -> str | None:
        await self._click(input.coordinate, input.text, "right", 1)
        return None

    async def middle_click(
        self, context: BetaToolsetCallContext, input: BetaComputerMiddleClickInput
    ) -> str | None:
        await self._click(input.coordinate, input.text, "middle", 1)
        return None

    async def double_click(
        self, context: BetaToolsetCallContext, input: BetaComputerDoubleClickInput
    ) -> str | None:
        await self._click(input.coordinate, input.text, "left", 2)
        return None

    async def triple_click(
        self, context: BetaToolsetCallContext, input: BetaComputerTripleClickInput
    ) -> str | None:
        await self._click(input.coordinate, input.text, "left", 3)
        return None

    async def left_click_drag(
        self, context: BetaToolsetCallContext, input: BetaComputerLeftClickDragInput
    ) -> str | None:
        x0, y0 = self._point(input.start_coordinate, "start_coordinate")
        x1, y1 = self._point(input.coordinate, "coordinate")
        held = self._modifiers(input.text)
        with _tool_errors():
            if self._vnc is None:
                self._rest_only_plain(held, "left_click_drag")
                await self._desktop.drag(x0, y0, x1, y1)
                self._pointer = (x1, y1)
                return None
            events = [(x0, y0, self._buttons), (x0, y0, self._buttons | BUTTON_LEFT)]
            events += [
                (
                    x0 + round((x1 - x0) * i / _DRAG_STEPS),
                    y0 + round((y1 - y0) * i / _DRAG_STEPS),
                    self._buttons | BUTTON_LEFT,
                )
                for i in range(1, _DRAG_STEPS + 1)
            ]
            events.append((x1, y1, self._buttons & ~BUTTON_LEFT))
            async with self._holding(held):
                await self._send_pointer(events)
            self._buttons &= ~BUTTON_LEFT
        return None

    async def scroll(
        self, context: BetaToolsetCallContext, input: BetaComputerScrollInput
    ) -> str | None:
        direction = input.scroll_direction
        amount = input.scroll_amount
        if not 1 <= amount <= 100:
            raise ToolError(f"scroll_amount must be from 1 to 100; got {amount}")
        point = None if input.coordinate is None else self._point(input.coordinate, "coordinate")
        held = self._modifiers(input.text)
        with _tool_errors():
            if self._vnc is None:
                self._rest_only_plain(held, "scroll")
                if direction not in ("up", "down"):
                    raise ToolError(f"scrolling {direction} is not available over REST")
                x, y = point if point is not None else (None, None)
                await self._desktop.scroll(direction, amount, x=x, y=y)
                if point is not None:
                    self._pointer = point
                return None
            x, y = point if point is not None else self._here()
            bit = _WHEEL[direction]
            events = [(x, y, self._buttons)]
            for _ in range(amount):
                events += [(x, y, self._buttons | bit), (x, y, self._buttons)]
            async with self._holding(held):
                await self._send_pointer(events)
        return None

    # -- the keyboard ----------------------------------------------------------------------

    async def type(
        self, context: BetaToolsetCallContext, input: BetaComputerTypeInput
    ) -> str | None:
        text = input.text
        if len(text) > MAX_TEXT:
            raise ToolError(
                f"text is {len(text)} characters; type at most {MAX_TEXT} at a time"
            )
        if not text:
            return None
        with _tool_errors():
            vnc = self._vnc
            # Over VNC each character is a keysym the X server must map; REST
            # types through xdotool, which maps any character: beyond Latin-1,
            # "auto" sends the text that way.
            if vnc is None or (self.transport == "auto" and not _latin1(text)):
                await self._desktop.type(text)
            else:
                await vnc.send_keys(_keys(text_to_keys, text))
        return None

    async def key(self, context: BetaToolsetCallContext, input: BetaComputerKeyInput) -> str | None:
        repeat = 1 if input.repeat is None else input.repeat
        if not 1 <= repeat <= MAX_REPEAT:
            raise ToolError(f"repeat must be from 1 to {MAX_REPEAT}; got {repeat}")
        combos = input.text.split()
        if not combos:
            raise ToolError("text names no key: give a key or combo such as 'Return' or 'ctrl+s'")
        keys = [key for combo in combos for key in _keys(key_combo, combo)]
        with _tool_errors():
            vnc = self._vnc
            if vnc is None:
                names = [_rest_combo(combo) for combo in combos]
                for _ in range(repeat):
                    for name in names:
                        await self._desktop.key(name)
            else:
                await vnc.send_keys(keys * repeat)
        return None

    async def hold_key(
        self, context: BetaToolsetCallContext, input: BetaComputerHoldKeyInput
    ) -> str | None:
        if not 0 <= input.duration <= MAX_SECONDS:
            raise ToolError(_duration_error(input.duration))
        names = [part.strip() for part in split_combo(input.text.strip())]
        if not all(names):
            raise ToolError(f"malformed key combo {input.text!r}")
        held = [_keysym(name) for name in names]
        with _tool_errors():
            async with self._holding(held):
                await asyncio.sleep(input.duration)
        return None

    async def wait(
        self, context: BetaToolsetCallContext, input: BetaComputerWaitInput
    ) -> str | None:
        if not 0 <= input.duration <= MAX_SECONDS:
            raise ToolError(_duration_error(input.duration))
        with _tool_errors():
            if self._vnc is None:
                await self._desktop.wait(input.duration)
            else:
                await asyncio.sleep(input.duration)  # time passes here as on the desktop
        return None

    # -- helpers ---------------------------------------------------------------------------

    async def _pixels(self) -> tuple[int, int, bytes]:
        vnc = self._vnc
        if vnc is not None:
            return await vnc.pixels()
        return await self._decoded((await self._desktop.screenshot()).data)

    async def _decoded(self, data: bytes) -> tuple[int, int, bytes]:
        """A REST screenshot as packed RGB, checked to be the whole screen."""
        image = await asyncio.to_thread(decode_png, data)
        rgb = image.pixels
        if image.mode == "RGBA":
            rgb = _drop_alpha(rgb)
        if (image.width, image.height) != self.screen_size:
            raise ToolError(
                f"the screenshot is {image.width}x{image.height}, not the screen's "
                f"{self.screen_size[0]}x{self.screen_size[1]}"
            )
        return image.width, image.height, rgb

    async def _click(
        self, coordinate: list[int] | None, text: str | None, button: str, count: int
    ) -> None:
        point = None if coordinate is None else self._point(coordinate, "coordinate")
        held = self._modifiers(text)
        with _tool_errors():
            x, y = point if point is not None else self._here()
            if self._vnc is None:
                self._rest_only_plain(held, f"{button} click")
                await self._desktop.click(x, y, button=button, double=count == 2)
                self._pointer = (x, y)
                return
            bit = _CLICKS[button]
            events = [(x, y, self._buttons)]
            for _ in range(count):
                events += [(x, y, self._buttons | bit), (x, y, self._buttons)]
            async with self._holding(held):
                await self._send_pointer(events)

    async def _send_pointer(self, events: Sequence[tuple[int, int, int]]) -> None:
        vnc = self._vnc
        assert vnc is not None, "a REST toolset serves no raw pointer member"
        await vnc.send_pointer(events)
        self._pointer = events[-1][:2]

    @contextlib.asynccontextmanager
    async def _holding(self, keys: Sequence[int]) -> AsyncIterator[None]:
        """Hold ``keys`` down (in order) around the block; they come up even when it fails."""
        vnc = self._vnc
        if not keys:
            yield
            return
        assert vnc is not None, "a REST toolset holds no keys"
        await vnc.send_keys([(key, True) for key in keys])
        try:
            yield
        finally:
            with contextlib.suppress(OrgoError):
                await asyncio.shield(vnc.send_keys([(key, False) for key in reversed(keys)]))

    def _modifiers(self, text: str | None) -> list[int]:
        """The keysyms of a click's ``text`` (keys held during it, such as ``"ctrl+shift"``)."""
        if not text:
            return []
        names = [part.strip() for part in split_combo(text.strip())]
        if not all(names):
            raise ToolError(f"malformed key combination {text!r}")
        return [_keysym(name) for name in names]

    @staticmethod
    def _rest_only_plain(held: Sequence[int], what: str) -> None:
        if held:
            raise ToolError(f"holding keys during a {what} is not available over REST")

    def _point(self, coordinate: list[int], field: str) -> tuple[int, int]:
        """A point the model gave (screenshot pixels) as screen pixels."""
        x, y = coordinate
        image_width, image_height = self.image_size
        if not (0 <= x < image_width and 0 <= y < image_height):
            raise ToolError(
                f"{field} {coordinate} is outside the screen: x must be from 0 to "
                f"{image_width - 1} and y from 0 to {image_height - 1}"
            )
        width, height = self.screen_size
        return (
            min(width - 1, (2 * x + 1) * width // (2 * image_width)),
            min(height - 1, (2 * y + 1) * height // (2 * image_height)),
        )

    def _to_image(self, x: int, y: int) -> tuple[int, int]:
        width, height = self.screen_size
        image_width, image_height = self.image_size
        return min(image_width - 1, x * image_width // width), min(
            image_height - 1, y * image_height // height
        )

    def _here(self) -> tuple[int, int]:
        if self._pointer is None:
            raise ToolError(
                "give a coordinate: the cursor position is not known (over REST it is only "
                "known after an action at a coordinate)"
            )
        return self._pointer


class _RestComputerToolset(OrgoComputerToolset):
    """The members REST desktop actions can serve; the SDK reports the rest as disabled.

    REST has no pointer move, no button held down or let go, no held key, no
    cursor position, no middle click and no triple click: those stay the
    abstract class's own, which the SDK reads as "not implemented".
    """

    cursor_position = BetaAsyncAbstractComputerToolset20260801.cursor_position
    mouse_move = BetaAsyncAbstractComputerToolset20260801.mouse_move
    left_mouse_down = BetaAsyncAbstractComputerToolset20260801.left_mouse_down
    left_mouse_up = BetaAsyncAbstractComputerToolset20260801.left_mouse_up
    middle_click = BetaAsyncAbstractComputerToolset20260801.middle_click
    triple_click = BetaAsyncAbstractComputerToolset20260801.triple_click
    hold_key = BetaAsyncAbstractComputerToolset20260801.hold_key


REST_UNSERVED: Final = frozenset(
    {
        "cursor_position",
        "mouse_move",
        "left_mouse_down",
        "left_mouse_up",
        "middle_click",
        "triple_click",
        "hold_key",
    }
)
"""The members ``transport="rest"`` reports to the model as disabled."""


@contextlib.asynccontextmanager
async def anthropic_toolset(
    orgo: Orgo,
    computer: Computer,
    *,
    confirm: BetaAsyncComputerConfirmCallable | None = None,
    configs: BetaComputerToolsetConfigsParam | None = None,
    transport: Transport = "auto",
) -> AsyncIterator[OrgoComputerToolset]:
    """The anthropic SDK's computer toolset on ``computer``, as an async context manager.

    ``confirm`` and ``configs`` go to the SDK's class unchanged: it requires a
    ``confirm`` while ``type``, ``key`` or ``hold_key`` is enabled (turn them
    off in ``configs`` to do without one) and raises ``ToolsetConfigError``
    before anything is opened.

    ``transport``:

    * ``"vnc"``: every member over the computer's VNC connection (opened here,
      closed on exit): screenshots from the local framebuffer mirror, pointer
      and keys as RFB events;
    * ``"rest"``: the REST desktop actions; the members they cannot serve
      (:data:`REST_UNSERVED`) are reported to the model as disabled;
    * ``"auto"`` (default): VNC, faster for every member and the only way for
      some, except ``type`` of text beyond Latin-1, which goes over REST.

    Over VNC the pointer is put at the centre of the screen on entry, so
    ``cursor_position`` is always known.

    Raises:
        ValueError: an unknown ``transport``.
        anthropic.tools.ToolsetConfigError: ``configs``/``confirm`` the SDK refuses.
    """
    if transport not in ("auto", "vnc", "rest"):
        raise ValueError(f"transport must be 'auto', 'vnc' or 'rest'; got {transport!r}")
    cls = _RestComputerToolset if transport == "rest" else OrgoComputerToolset
    toolset = cls(orgo.desktop(computer), transport=transport, confirm=confirm, configs=configs)
    async with contextlib.AsyncExitStack() as stack:
        vnc = None
        if transport != "rest":
            vnc = await stack.enter_async_context(orgo.connect(computer).vnc())
        await toolset._start(vnc)
        try:
            yield toolset
        finally:
            await toolset.close()


# -- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _tool_errors() -> Iterator[None]:
    """Turn what a desktop action raises into the tool error the model reads."""
    try:
        yield
    except ToolError:
        raise
    except NotFoundError as exc:
        raise ToolError(f"the computer is gone (Orgo answered 404: {exc.message})") from exc
    except ConnectionClosedError as exc:
        raise ToolError(f"the connection to the computer is closed: {exc}") from exc
    except (OrgoError, ValueError, TimeoutError) as exc:
        raise ToolError(f"{type(exc).__name__}: {exc}") from exc


def _keys(make: Callable[[str], Keys], text: str) -> Keys:
    try:
        return make(text)
    except ValueError as exc:
        raise ToolError(str(exc)) from exc


def _keysym(name: str) -> int:
    try:
        return keysym(name)
    except ValueError as exc:
        raise ToolError(str(exc)) from exc


def _rest_combo(combo: str) -> str:
    """A combo in the REST action's syntax, its names checked with the keysym table.

    Modifiers by their REST names (``ctrl``, ``shift``, ``alt``, ``super``),
    the key by its X11 name.
    """
    parts = [part.strip() for part in split_combo(combo)]
    *mods, last = parts
    names = []
    for mod in mods:
        kind = modifier(_keysym(mod))
        if kind is None:
            raise ToolError(f"key {combo!r}: {mod!r} is not a modifier")
        names.append(kind)
    value = _keysym(last)
    name = keysym_name(value) or (last if len(last) == 1 and " " < last <= "~" else None)
    if name is None:
        raise ToolError(f"key {combo!r}: {last!r} cannot be sent over REST")
    return "+".join([*names, name])


def _drop_alpha(rgba: bytes) -> bytes:
    rgb = bytearray(len(rgba) // 4 * 3)
    for channel in range(3):
        rgb[channel::3] = rgba[channel::4]
    return bytes(rgb)


def _latin1(text: str) -> bool:
    return all(ord(ch) <= 0xFF for ch in text)


def _png(rgb: bytes, width: int, height: int, to_width: int, to_height: int) -> bytes:
    scaled = resize_rgb(rgb, width, height, to_width, to_height)
    return encode_png(to_width, to_height, scaled, compress_level=_LEVEL, filter=_FILTER)


def _duration_error(duration: int) -> str:
    return f"duration must be from 0 to {MAX_SECONDS} seconds; got {duration}"
