"""The REST desktop actions: screenshot, click, drag, type, key, scroll, wait, bash, exec.

Each action is served twice, with the same request bodies:

- on the platform route ``/api/computers/{id}/<action>`` (``id`` = UUID or
  instance id): a computer that is not ``running`` answers 400
  ``{"error": "Desktop instance not available", "code": "desktop_unavailable"}``;
- through the desktop proxy ``/api/desktops/{instance_id}/proxy/<action>``:
  a computer that is not running answers 503 ``desktop_unavailable``, as the
  health route does.

Answers follow ``docs/orgo-api.md`` §1.7: ``{"success": true, "action": name,
"details": {...}}`` for the pointer, keyboard and wait actions (``action`` is
``click``, ``double_click``, ``drag``, ``type``, ``key_press``, ``scroll``
or ``wait``). Bad fields answer 400 ``invalid_field`` with a message naming
the field; coordinates are checked against the screen.

Where Orgo's documentation is silent, the emulator chose:

- **screenshot**: ``response_format`` defaults to ``url`` (the documented
  default). ``format=jpeg`` is accepted but answered with a PNG and
  ``mime_type: "image/png"`` (the synthetic desktop has no JPEG encoder).
  ``scale`` (0 < s <= 1) shrinks by nearest neighbour. ``?screen=`` names one
  of the computer's screens (:mod:`.extras`), on the screenshot and on click,
  drag, scroll, type and key alike (as Orgo honours it; bash, exec and wait
  use the default screen); an added screen has a synthetic desktop of its own
  size (:mod:`..screen_desktops`), an unknown one answers 404
  ``screen_not_found``. Each capture of the default screen takes
  ``EmulatorConfig.screenshot_seconds``. A second screenshot of the same
  computer while one is in progress fails: platform 500 ``{"error": "Screenshot failed", "code":
  "screenshot_in_progress", "upstream_status": 409}``, proxy 409 (the VM's
  own answer, passed through). The proxy always answers the direct-VM shape
  ``{image, format: "png", encoding: "base64", width, height}``, whatever
  ``response_format`` says. URL screenshots are kept in memory (the last
  :data:`KEPT_SCREENSHOTS`) and served at ``/api/storage/screenshots/<id>.png``
  to callers holding the API key.
- **type** sleeps ``len(text) * delay_ms`` (at most :data:`MAX_TYPING_SECONDS`)
  while the text appears chunk by chunk; **drag** sleeps ``duration``;
  **wait** sleeps ``seconds`` (``duration`` is the deprecated alias). All
  three are cut short when the emulator closes.
- **bash** answers ``{success: true, action: "bash", command, output,
  exit_code}``; on timeout ``exit_code`` is 124 and ``timed_out: true``
  with the output so far; ``truncated: true`` when the output was longer
  than 1 MiB and only its tail is returned.
- **exec** answers ``{output, success, action: "exec", timeout, exit_code}``
  plus ``error`` (the traceback's exception line) and ``error_type`` (the
  exception's class name) when the code failed; a timeout gives
  ``timeout: true``, ``success: false``, ``error_type: "TimeoutError"``.
- A command killed because its computer stopped, restarted or was deleted
  (or the emulator closed) answers 503 ``desktop_unavailable``.

The pointer, keyboard and screenshot actions go through the computer's
desktop backend (:mod:`orgo_async.emulator.backends`), chosen at each boot by
``EmulatorConfig.desktop_backend``:

- ``synthetic``: one :class:`~orgo_async.emulator.synthetic.SyntheticDesktop` per
  computer, made on first use at the computer's resolution and dropped when
  the computer starts, stops, restarts or is deleted (the next action draws
  on a fresh desktop); ``/ws/websockify`` serves the same framebuffer;
- ``xvnc``: the computer's real ``Xvnc``. Actions run ``xdotool`` on its display
  (a drag is ``mousedown``, the duration, then ``mousemove`` + ``mouseup``); a
  screenshot is read from the X server over RFB and takes what that takes
  (``screenshot_seconds`` does not apply). An action that the X server fails
  answers 500 ``desktop_action_failed`` (a screenshot, 500 ``screenshot_failed``);
  one that waits for an ``Xvnc`` that failed answers as for a computer that is
  not running.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import math
import operator
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal, TypeVar

from aiohttp import web

from ...protocol.png import encode_png
from ..backends import Desktop, DesktopBackends
from ..commands import (
    ArgvFor,
    CommandResult,
    CommandRunner,
    bash_argv,
    exec_argv,
    exec_failure,
)
from ..sandbox import Place
from ..screen_desktops import ScreenDesktops
from ..store import ApiError, Computer, Store, Transition, iso_now, or_404
from ..synthetic import Button, SyntheticDesktop
from ..xvnc import XvncError
from ._base import COMPUTER_PATH, boolean, choice, integer, invalid, number, read_json, show, text
from .extras import EXTRAS_KEY

__all__ = [
    "ACTIONS",
    "DESKTOP_KEY",
    "KEPT_SCREENSHOTS",
    "MAX_TYPING_SECONDS",
    "PROXY_PATH",
    "DesktopService",
    "add_routes",
    "bash",
    "click",
    "drag",
    "exec_code",
    "key",
    "platform_unavailable",
    "proxied_computer",
    "proxy_unavailable",
    "scroll",
    "screenshot",
    "stored_screenshot",
    "type_text",
    "wait",
]

DESKTOP_KEY: Final[web.AppKey[DesktopService]] = web.AppKey("orgo_emulator_desktop")
"""Where the action handlers find the :class:`DesktopService`."""

KEPT_SCREENSHOTS: Final = 64
"""URL screenshots kept for ``/api/storage/screenshots/``; older ones answer 404."""

MAX_TYPING_SECONDS: Final = 5.0
"""The longest a ``type`` action sleeps, however long the text and the delay."""

PROXY_PATH: Final = "/api/desktops/{instance_id}/proxy"
"""The HTTP Desktop API proxy (API key as Bearer): the actions, and :mod:`.health`'s routes."""


def add_routes(router: web.UrlDispatcher) -> None:
    """Map each action on the platform route and through the proxy, and the stored screenshots.

    The proxy's catch-all (:func:`.health.add_fallback`) must come after these:
    routes match in order.
    """
    add = router.add_route
    for endpoint, (method, handler) in ACTIONS.items():
        add(method, f"{COMPUTER_PATH}/{endpoint}", handler)
        add(method, f"{PROXY_PATH}/{endpoint}", handler)
    add("GET", "/api/storage/screenshots/{name}", stored_screenshot)


MAX_TEXT: Final = 100_000
MAX_COMMAND: Final = 100_000
MAX_DRAG_SECONDS: Final = 10.0
MAX_WAIT_SECONDS: Final = 60.0
MAX_SCROLL: Final = 100
MAX_TIMEOUT: Final = 300
_TYPE_CHUNK: Final = 256
_KEY_PART: Final = re.compile(r"^[A-Za-z0-9_]+$|^[!-~]$")

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")

log = logging.getLogger("orgo_async.emulator")


# --------------------------------------------------------------------------- errors


def proxy_unavailable() -> ApiError:
    """503 through the proxy: the desktop does not answer (not running)."""
    return ApiError(503, "desktop_unavailable", "Could not reach the desktop", upstream_status=502)


def platform_unavailable() -> ApiError:
    """400 on the platform route: the computer is not running."""
    return ApiError(400, "desktop_unavailable", "Desktop instance not available")


def _unavailable(proxy: bool) -> ApiError:
    return proxy_unavailable() if proxy else platform_unavailable()


def proxied_computer(store: Store, instance_id: str) -> Computer:
    """The running computer a proxy route names (UUID or instance id).

    404 ``computer_not_found`` when there is none, 503 (:func:`proxy_unavailable`)
    when it is not running.
    """
    computer = or_404(store.find_computer(instance_id), "computer_not_found", "Desktop not found")
    if not computer.is_running(store.now()):
        raise proxy_unavailable()
    return computer


# --------------------------------------------------------------------------- service


class DesktopService:
    """The desktops of one emulator: their backends, screenshots in progress and kept, commands.

    ``sleep`` is the emulator's interruptible sleep (cut short when it
    closes); ``origin`` returns ``http://HOST:PORT`` for screenshot URLs;
    ``backends`` holds the desktops (by default a
    :class:`~orgo_async.emulator.backends.DesktopBackends` of its own).
    """

    def __init__(
        self,
        store: Store,
        commands: CommandRunner,
        *,
        sleep: Sleep,
        origin: Callable[[], str],
        backends: DesktopBackends | None = None,
    ) -> None:
        self.store = store
        self.commands = commands
        self.sleep = sleep
        self.origin = origin
        self.backends = backends if backends is not None else DesktopBackends(store)
        self._capturing: set[str] = set()
        # screenshot id -> (computer id, PNG), oldest first.
        self._kept: collections.OrderedDict[str, tuple[str, bytes]] = collections.OrderedDict()
        store.add_listener(self._on_transition)
        self.screens = ScreenDesktops(store)
        """The added screens' desktops (``?screen=`` on an action or a screenshot)."""

    def framebuffer(self, computer: Computer) -> SyntheticDesktop:
        """The computer's synthetic desktop, made at its resolution on first use.

        A resolution under 64x96 gets a 64x96 desktop (the smallest that
        shows text).
        """
        return self.backends.framebuffer(computer)

    def has_framebuffer(self, computer_id: str) -> bool:
        """True when the computer (UUID) has a desktop right now (it was used since its boot)."""
        return self.backends.has_framebuffer(computer_id)

    async def desktop(self, computer: Computer, *, proxy: bool) -> Desktop:
        """The computer's desktop (its backend's); without suspending for ``synthetic``.

        Raises the route's unavailable error when an ``xvnc`` computer's Xvnc
        failed or stopped.
        """
        try:
            return await self.backends.desktop(computer)
        except XvncError as exc:
            log.warning("desktop of computer %s unavailable: %s", computer.instance_id, exc)
            raise _unavailable(proxy) from None

    async def perform(
        self, computer: Computer, action: Awaitable[T], *, proxy: bool, failure: str
    ) -> T:
        """Await a desktop action; an X server's failure becomes a 500 (``failure`` code).

        A failure because the computer stopped meanwhile answers the route's
        unavailable error instead.
        """
        try:
            return await action
        except XvncError as exc:
            self.check_alive(computer, proxy=proxy)
            log.warning("desktop action on computer %s failed: %s", computer.instance_id, exc)
            message = "Screenshot failed" if failure == "screenshot_failed" else "Action failed"
            raise ApiError(500, failure, message) from None

    def check_alive(self, computer: Computer, *, proxy: bool) -> None:
        """Raise the route's unavailable error unless the computer still exists and runs.

        For actions that sleep: their computer may stop or go away meanwhile.
        """
        store = self.store
        if store.computers.get(computer.id) is not computer or not computer.is_running(store.now()):
            raise _unavailable(proxy)

    def capturing(self, computer_id: str) -> bool:
        """True while a screenshot of the computer (UUID) is being taken."""
        return computer_id in self._capturing

    def count(self, action: str) -> None:
        """Count one accepted action in ``counters.actions``."""
        actions = self.store.counters.actions
        actions[action] = actions.get(action, 0) + 1

    def kept_screenshot(self, screenshot_id: str) -> bytes | None:
        """A URL screenshot's PNG, or None (unknown, or pushed out by newer ones)."""
        entry = self._kept.get(screenshot_id)
        return None if entry is None else entry[1]

    def keep_screenshot(self, computer: Computer, png: bytes) -> str:
        """Keep a PNG for ``/api/storage/screenshots/<id>.png``; its id."""
        screenshot_id = uuid.uuid4().hex
        self._kept[screenshot_id] = (computer.id, png)
        while len(self._kept) > KEPT_SCREENSHOTS:
            self._kept.popitem(last=False)
        return screenshot_id

    async def capture(
        self, computer: Computer, scale: float | None, *, proxy: bool
    ) -> tuple[bytes, int, int]:
        """Take a screenshot: ``(png, width, height)`` after ``screenshot_seconds``.

        Raises the overlapping-screenshot error while another capture of the
        same computer runs, and the unavailable error when the computer
        stopped during the capture.
        """
        if computer.id in self._capturing:
            if proxy:
                raise ApiError(409, "screenshot_in_progress", "Screenshot already in progress")
            raise ApiError(500, "screenshot_in_progress", "Screenshot failed", upstream_status=409)
        self._capturing.add(computer.id)
        try:
            if computer.desktop_backend != "xvnc":  # a real capture takes its own time
                await self.sleep(self.store.config.screenshot_seconds)
            self.check_alive(computer, proxy=proxy)
            desktop = await self.desktop(computer, proxy=proxy)
            # A copy of the pixels, encoded in a thread: the loop keeps serving.
            width, height, snapshot = await self.perform(
                computer, desktop.capture(), proxy=proxy, failure="screenshot_failed"
            )
            result = await asyncio.to_thread(_render, width, height, snapshot, scale)
        finally:
            self._capturing.discard(computer.id)
        self.store.counters.screenshots += 1
        return result

    def _on_transition(self, computer: Computer, transition: Transition) -> None:
        # (The backends drop the desktop session itself.)
        if transition == "delete":
            for screenshot_id in [k for k, v in self._kept.items() if v[0] == computer.id]:
                del self._kept[screenshot_id]


def _render(width: int, height: int, pixels: bytes, scale: float | None) -> tuple[bytes, int, int]:
    if scale is not None and scale < 1.0:
        pixels, width, height = _shrink(pixels, width, height, scale)
    return encode_png(width, height, pixels), width, height


def _shrink(pixels: bytes, width: int, height: int, scale: float) -> tuple[bytes, int, int]:
    """Nearest-neighbour downscale of RGB rows (each output pixel samples its centre)."""
    out_w = max(1, round(width * scale))
    out_h = max(1, round(height * scale))
    columns = [min(width - 1, (2 * x + 1) * width // (2 * out_w)) for x in range(out_w)]
    # One C-level gather per row instead of a Python loop per pixel.
    pick = operator.itemgetter(*[3 * c + k for c in columns for k in range(3)])
    stride = width * 3
    out = bytearray()
    for y in range(out_h):
        source = min(height - 1, (2 * y + 1) * height // (2 * out_h))
        out += bytes(pick(pixels[source * stride : (source + 1) * stride]))
    return bytes(out), out_w, out_h


# --------------------------------------------------------------------------- targets


def _target(request: web.Request) -> tuple[DesktopService, Computer, bool]:
    """The service, the running computer and whether the request came through the proxy.

    Handlers call it after reading the body, so that nothing is awaited
    between this check and the start of the action.
    """
    service = request.app[DESKTOP_KEY]
    store = service.store
    instance_id = request.match_info.get("instance_id")
    if instance_id is not None:
        return service, proxied_computer(store, instance_id), True
    computer = store.get_computer(request.match_info["computer_id"])
    if not computer.is_running(store.now()):
        raise platform_unavailable()
    return service, computer, False


def _screen_desktop(
    request: web.Request, service: DesktopService, computer: Computer
) -> Desktop | None:
    """The desktop of the added screen ``?screen=`` names; None for the default screen.

    404 ``screen_not_found`` for a screen the computer does not have.
    """
    screen_id = request.query.get("screen")
    if screen_id is None or screen_id == "default":
        return None
    screen = request.app[EXTRAS_KEY].screen(computer, screen_id)
    return None if screen.default else service.screens.get(computer, screen)


async def _desktop(
    request: web.Request, service: DesktopService, computer: Computer, proxy: bool
) -> Desktop:
    """The desktop an action acts on: the ``?screen=`` one, else the computer's own."""
    screen = _screen_desktop(request, service, computer)
    return screen if screen is not None else await service.desktop(computer, proxy=proxy)


def _done(action: str, details: Mapping[str, Any]) -> web.Response:
    return web.json_response({"success": True, "action": action, "details": dict(details)})


def _point(desktop: Desktop, body: Mapping[str, Any], xname: str, yname: str) -> tuple[int, int]:
    return (
        integer(body, xname, 0, desktop.width - 1),
        integer(body, yname, 0, desktop.height - 1),
    )


def _button(body: Mapping[str, Any]) -> Button:
    return "right" if choice(body, "button", ("left", "right"), "left") == "right" else "left"


# --------------------------------------------------------------------------- screen


async def screenshot(request: web.Request) -> web.StreamResponse:
    """GET .../screenshot ``?response_format=base64|url|binary&format=png|jpeg&scale=``."""
    service, computer, proxy = _target(request)
    query = request.query
    response_format = choice(query, "response_format", ("base64", "url", "binary"), "url")
    choice(query, "format", ("png", "jpeg"), "png")  # jpeg is answered with a PNG
    scale: float | None = None
    if "scale" in query:
        try:
            scale = float(query["scale"])
        except ValueError:
            scale = math.nan
        if not 0.0 < scale <= 1.0:  # NaN fails too
            raise invalid(f"scale must be a number in (0, 1], got {show(query['scale'])}")
    screen = _screen_desktop(request, service, computer)
    service.count("screenshot")
    if screen is None:
        png, width, height = await service.capture(computer, scale, proxy=proxy)
    else:  # an added screen: its own desktop, at its own size
        captured = await screen.capture()
        png, width, height = await asyncio.to_thread(_render, *captured, scale)
    if proxy:
        return web.json_response(
            {
                "image": base64.b64encode(png).decode("ascii"),
                "format": "png",
                "encoding": "base64",
                "width": width,
                "height": height,
            }
        )
    if response_format == "binary":
        return web.Response(body=png, content_type="image/png")
    if response_format == "base64":
        return web.json_response(
            {
                "success": True,
                "image": base64.b64encode(png).decode("ascii"),
                "mime_type": "image/png",
                "width": width,
                "height": height,
            }
        )
    screenshot_id = service.keep_screenshot(computer, png)
    return web.json_response(
        {
            "success": True,
            "image": f"{service.origin()}/api/storage/screenshots/{screenshot_id}.png",
            "metadata": {
                "id": screenshot_id,
                "timestamp": iso_now(),
                "size": len(png),
                "storage_path": f"screenshots/{screenshot_id}.png",
                "width": width,
                "height": height,
            },
        }
    )


async def stored_screenshot(request: web.Request) -> web.Response:
    """GET /api/storage/screenshots/{name}: a URL screenshot's PNG (API key required)."""
    service = request.app[DESKTOP_KEY]
    name = request.match_info["name"]
    kept = service.kept_screenshot(name[:-4]) if name.endswith(".png") else None
    png = or_404(kept, "not_found", "Screenshot not found")
    return web.Response(body=png, content_type="image/png")


# --------------------------------------------------------------------------- pointer


async def click(request: web.Request) -> web.Response:
    """POST .../click ``{x, y, button: left|right, double}`` (a double click ignores button)."""
    body = await read_json(request, optional=True)
    service, computer, proxy = _target(request)
    desktop = await _desktop(request, service, computer, proxy)
    x, y = _point(desktop, body, "x", "y")
    button = _button(body)
    double = boolean(body, "double", False)
    if double:
        button = "left"
    service.count("click")
    await service.perform(
        computer,
        desktop.click(x, y, button, double=double),
        proxy=proxy,
        failure="desktop_action_failed",
    )
    details = {"x": x, "y": y, "button": button, "double": double}
    return _done("double_click" if double else "click", details)


async def drag(request: web.Request) -> web.Response:
    """POST .../drag ``{start_x, start_y, end_x, end_y, button, duration (0..10 s, 0.5)}``."""
    body = await read_json(request, optional=True)
    service, computer, proxy = _target(request)
    desktop = await _desktop(request, service, computer, proxy)
    start = _point(desktop, body, "start_x", "start_y")
    end = _point(desktop, body, "end_x", "end_y")
    button = _button(body)
    duration = number(body, "duration", 0.0, MAX_DRAG_SECONDS, 0.5)
    service.count("drag")
    failed = "desktop_action_failed"
    # Press, hold for the duration, release at the end: the held button draws the line.
    await service.perform(computer, desktop.press(*start, button), proxy=proxy, failure=failed)
    await service.sleep(duration)
    service.check_alive(computer, proxy=proxy)
    # The desktop may have been reset meanwhile (a restart): finish on the current one.
    desktop = await _desktop(request, service, computer, proxy)
    await service.perform(computer, desktop.release(*end, button), proxy=proxy, failure=failed)
    details = {
        "start_x": start[0],
        "start_y": start[1],
        "end_x": end[0],
        "end_y": end[1],
        "button": button,
        "duration": duration,
    }
    return _done("drag", details)


async def scroll(request: web.Request) -> web.Response:
    """POST .../scroll ``{direction: up|down, amount (1..100, default 1), x?, y?}``.

    Without coordinates it scrolls where the pointer is; with only one, the
    missing axis is 0 (what Orgo's Linux desktops do).
    """
    body = await read_json(request, optional=True)
    service, computer, proxy = _target(request)
    desktop = await _desktop(request, service, computer, proxy)
    direction = body.get("direction")
    if direction not in ("up", "down"):
        raise invalid(f"direction is required: up or down, got {show(direction)}")
    amount = integer(body, "amount", 1, MAX_SCROLL, 1)
    x: int | None = None
    y: int | None = None
    if body.get("x") is not None or body.get("y") is not None:
        x = integer(body, "x", 0, desktop.width - 1, 0)
        y = integer(body, "y", 0, desktop.height - 1, 0)
    service.count("scroll")
    px, py = await service.perform(
        computer,
        desktop.scroll("up" if direction == "up" else "down", amount, x, y),
        proxy=proxy,
        failure="desktop_action_failed",
    )
    return _done("scroll", {"direction": direction, "amount": amount, "x": px, "y": py})


# --------------------------------------------------------------------------- keyboard


async def type_text(request: web.Request) -> web.Response:
    """POST .../type ``{text, delay_ms (0..1000, default 12)}``.

    Answers after about ``len(text) * delay_ms`` (at most
    :data:`MAX_TYPING_SECONDS`), the text appearing as it is typed.
    """
    body = await read_json(request, optional=True)
    service, computer, proxy = _target(request)
    value = text(body, "text", MAX_TEXT)
    delay_ms = integer(body, "delay_ms", 0, 1000, 12)
    service.count("type")
    per_char = min(len(value) * delay_ms / 1000, MAX_TYPING_SECONDS) / len(value)
    for start in range(0, len(value), _TYPE_CHUNK):
        chunk = value[start : start + _TYPE_CHUNK]
        if start:
            service.check_alive(computer, proxy=proxy)
        desktop = await _desktop(request, service, computer, proxy)
        await service.perform(
            computer, desktop.type_text(chunk), proxy=proxy, failure="desktop_action_failed"
        )
        if per_char:
            await service.sleep(per_char * len(chunk))
        elif start + _TYPE_CHUNK < len(value):
            await asyncio.sleep(0)  # chunks keep the loop responsive while a long text is drawn
    return _done("type", {"text_length": len(value), "delay_ms": delay_ms})


def _check_key(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"key is required: an X11 keysym name or combo, got {show(value)}")
    if value == "+" or value.endswith("++"):
        head, base = value[:-2], "+"
    else:
        head, _, base = value.rpartition("+")
    parts = [*head.split("+"), base] if head else [base]
    if len(value) > 100 or not all(_KEY_PART.match(part) for part in parts):
        raise invalid(
            f"key must be X11 keysym names joined by '+' (e.g. Return, ctrl+shift+t),"
            f" got {show(value)}"
        )
    return value


async def key(request: web.Request) -> web.Response:
    """POST .../key ``{key}``: a keysym name (``Return``, ``Page_Up``) or combo (``ctrl+c``)."""
    body = await read_json(request, optional=True)
    service, computer, proxy = _target(request)
    name = _check_key(body.get("key"))
    desktop = await _desktop(request, service, computer, proxy)
    service.count("key")
    await service.perform(computer, desktop.key(name), proxy=proxy, failure="desktop_action_failed")
    return _done("key_press", {"key": name})


# --------------------------------------------------------------------------- wait


async def wait(request: web.Request) -> web.Response:
    """POST .../wait ``{seconds: 0..60}`` (``duration`` is the deprecated alias)."""
    body = await read_json(request, optional=True)
    service, _computer, _ = _target(request)
    field = "seconds" if body.get("seconds") is not None else "duration"
    if body.get(field) is None:
        raise invalid(f"seconds is required: a number from 0 to {MAX_WAIT_SECONDS:g}")
    seconds = number(body, field, 0.0, MAX_WAIT_SECONDS)
    service.count("wait")
    await service.sleep(seconds)
    return _done("wait", {"seconds": seconds})


# --------------------------------------------------------------------------- commands


async def _run(
    request: web.Request, action: Literal["bash", "exec"], field: str, default_timeout: int
) -> tuple[str, int, CommandResult]:
    """Read the source (``field``) and ``timeout``, count the action, run it for real.

    Returns the source, the timeout and how the command ended.
    """
    body = await read_json(request, optional=True)
    service, computer, proxy = _target(request)
    source = text(body, field, MAX_COMMAND)
    timeout = integer(body, "timeout", 1, MAX_TIMEOUT, default_timeout)
    service.count(action)
    counters = service.store.counters

    def python(place: Place) -> list[str]:  # the Python of where it runs
        return exec_argv(source, place.python)

    argv: list[str] | ArgvFor
    if action == "bash":
        counters.bash_runs += 1
        argv = bash_argv(source)
    else:
        counters.exec_runs += 1
        argv = python
    try:
        result = await service.commands.run(computer, argv, timeout=timeout)
    except RuntimeError:  # the emulator is closing
        raise _unavailable(proxy) from None
    except OSError as exc:
        raise ApiError(500, "command_failed", f"Could not start the command: {exc}") from None
    if result.interrupted:
        # The computer stopped, restarted or went away under the command.
        raise proxy_unavailable()
    return source, timeout, result


async def bash(request: web.Request) -> web.Response:
    """POST .../bash ``{command, timeout (1..300 s, default 200)}``: ``bash -c`` for real.

    ``success`` means it ran; check ``exit_code`` (124 with ``timed_out``
    after the timeout, which kills the command and its children).
    """
    command, _timeout, result = await _run(request, "bash", "command", 200)
    answer: dict[str, Any] = {
        "success": True,
        "action": "bash",
        "command": command,
        "output": result.output,
        "exit_code": result.exit_code,
    }
    if result.timed_out:
        answer["timed_out"] = True
    if result.truncated:
        answer["truncated"] = True
    return web.json_response(answer)


async def exec_code(request: web.Request) -> web.Response:
    """POST .../exec ``{code, timeout (1..300 s, default 10)}``: Python, for real.

    ``success`` is false when the code raised (``error``, ``error_type``),
    exited non-zero or timed out (``timeout: true``).
    """
    _code, timeout, result = await _run(request, "exec", "code", 10)
    answer: dict[str, Any] = {
        "output": result.output,
        "success": False,
        "action": "exec",
        "timeout": result.timed_out,
        "exit_code": result.exit_code,
    }
    if result.timed_out:
        answer["error"] = f"Execution timed out after {timeout} seconds"
        answer["error_type"] = "TimeoutError"
    else:
        failure = exec_failure(result.output, result.exit_code)
        if failure is None:
            answer["success"] = True
        else:
            answer["error"] = failure.error
            answer["error_type"] = failure.error_type
    if result.truncated:
        answer["truncated"] = True
    return web.json_response(answer)


ACTIONS: Final[dict[str, tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]] = {
    "screenshot": ("GET", screenshot),
    "click": ("POST", click),
    "drag": ("POST", drag),
    "type": ("POST", type_text),
    "key": ("POST", key),
    "scroll": ("POST", scroll),
    "wait": ("POST", wait),
    "bash": ("POST", bash),
    "exec": ("POST", exec_code),
}
"""Endpoint name -> (method, handler), for the platform route and the proxy alike."""
