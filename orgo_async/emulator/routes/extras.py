"""Routes beyond the lifecycle: streams, screens, resume/ensure-running/fork, events, limits.

- ``POST /computers/{id}/stream/start {connection_name}``, ``GET .../stream/status``,
  ``POST .../stream/stop``;
- ``GET``/``POST /computers/{id}/screens``, ``PATCH``/``DELETE .../screens/{screen_id}``;
- ``POST /computers/{id}/resume`` (202), ``/ensure-running`` (the computer), ``/fork`` (201);
- ``GET /computers/{id}/events``: the catalog of the events socket's event types;
- ``GET /billing/compute-limits``.

:class:`~orgo_async.emulator.extras.Extras` keeps the state behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ...protocol.events import EVENT_TYPES
from ..extras import MAX_SCREEN_SIDE, Extras
from ..store import Computer
from ._base import COMPUTER_PATH, emulator_of, invalid, ok, optional_integer, read_json, text
from .computers import computer_json

if TYPE_CHECKING:
    from ..app import Emulator

__all__ = [
    "EVENT_CATALOG",
    "EXTRAS_KEY",
    "add_routes",
    "compute_limits",
    "create_screen",
    "delete_screen",
    "ensure_running",
    "event_catalog",
    "fork_computer",
    "list_screens",
    "patch_screen",
    "resume_computer",
    "start_stream",
    "stop_stream",
    "stream_status",
]

EXTRAS_KEY: Final[web.AppKey[Extras]] = web.AppKey("orgo_extras")
"""Where handlers find the emulator's :class:`~orgo_async.emulator.extras.Extras`."""


def add_routes(router: web.UrlDispatcher) -> None:
    """Map the stream, screen, resume/ensure-running/fork and events paths of one
    computer, and ``/api/billing/compute-limits``."""
    add = router.add_route
    computer = COMPUTER_PATH
    add("POST", computer + "/stream/start", start_stream)
    add("GET", computer + "/stream/status", stream_status)
    add("POST", computer + "/stream/stop", stop_stream)
    add("GET", computer + "/screens", list_screens)
    add("POST", computer + "/screens", create_screen)
    add("PATCH", computer + "/screens/{screen_id}", patch_screen)
    add("DELETE", computer + "/screens/{screen_id}", delete_screen)
    add("POST", computer + "/resume", resume_computer)
    add("POST", computer + "/ensure-running", ensure_running)
    add("POST", computer + "/fork", fork_computer)
    add("GET", computer + "/events", event_catalog)
    add("GET", "/api/billing/compute-limits", compute_limits)


EVENT_CATALOG: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "window_focus": ("A window got the input focus", ("window_id", "title")),
    "window_open": ("A window was opened", ("window_id", "title")),
    "window_close": ("A window was closed", ("window_id",)),
    "clipboard": ("The clipboard changed", ("content",)),
    "file_change": (
        "A file in Desktop or Downloads was created, modified or deleted",
        ("path", "action"),
    ),
    "screen_change": ("The screen size changed", ("width", "height")),
    "audio_stream_start": ("Audio output started", ()),
    "audio_stream_stop": ("Audio output stopped", ()),
    "process_start": ("A process started", ("pid", "name")),
    "process_stop": ("A process ended", ("pid", "name")),
    "idle": ("No input for a while (every 30 s of it)", ("idle_seconds",)),
    "active": ("Input after an idle spell", ()),
}
"""Each event type the events socket delivers: what it means and its ``data`` fields."""


def _target(request: web.Request) -> tuple[Emulator, Extras, Computer]:
    emu = emulator_of(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    return emu, request.app[EXTRAS_KEY], computer


# --------------------------------------------------------------------------- streams


async def start_stream(request: web.Request) -> web.Response:
    """POST /computers/{id}/stream/start ``{connection_name}``."""
    body = await read_json(request)
    connection = text(body, "connection_name", 100)
    _emu, extras, computer = _target(request)
    stream = extras.start_stream(computer, connection)
    return ok(
        {
            "success": True,
            "status": stream.status,
            "pid": stream.pid,
            "start_time": stream.start_time,
        }
    )


async def stream_status(request: web.Request) -> web.Response:
    """GET /computers/{id}/stream/status: ``idle``, ``streaming`` or ``terminated``."""
    _emu, extras, computer = _target(request)
    return ok(extras.stream(computer).to_json())


async def stop_stream(request: web.Request) -> web.Response:
    """POST /computers/{id}/stream/stop (idempotent)."""
    _emu, extras, computer = _target(request)
    was_streaming = extras.stop_stream(computer)
    return ok({"success": True, "status": "idle", "stopped": was_streaming})


# --------------------------------------------------------------------------- screens


def _sizes(body: dict[str, Any]) -> tuple[int | None, int | None]:
    return (
        optional_integer(body, "width", 1, MAX_SCREEN_SIDE),
        optional_integer(body, "height", 1, MAX_SCREEN_SIDE),
    )


async def list_screens(request: web.Request) -> web.Response:
    """GET /computers/{id}/screens."""
    _emu, extras, computer = _target(request)
    return ok({"screens": [s.to_json() for s in extras.screens(computer)]})


async def create_screen(request: web.Request) -> web.Response:
    """POST /computers/{id}/screens ``{width?, height?}`` → 201 the screen."""
    body = await read_json(request, optional=True)
    width, height = _sizes(body)
    _emu, extras, computer = _target(request)
    return ok(extras.add_screen(computer, width, height).to_json(), 201)


async def patch_screen(request: web.Request) -> web.Response:
    """PATCH /computers/{id}/screens/{screen_id} ``{width?, height?}`` (at least one)."""
    body = await read_json(request)
    width, height = _sizes(body)
    if width is None and height is None:
        raise invalid("width or height is required: an integer from 1 to 8192")
    _emu, extras, computer = _target(request)
    screen = extras.resize_screen(computer, request.match_info["screen_id"], width, height)
    return ok(screen.to_json())


async def delete_screen(request: web.Request) -> web.Response:
    """DELETE /computers/{id}/screens/{screen_id}."""
    _emu, extras, computer = _target(request)
    extras.remove_screen(computer, request.match_info["screen_id"])
    return ok({"success": True})


# --------------------------------------------------------------------------- lifecycle extras


async def resume_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/resume → 202 ``{waking, pending, expected_seconds}``."""
    _emu, extras, computer = _target(request)
    return ok(extras.resume(computer), 202)


async def ensure_running(request: web.Request) -> web.Response:
    """POST /computers/{id}/ensure-running → the computer (started if it was stopped)."""
    emu, extras, computer = _target(request)
    extras.ensure_running(computer)
    return ok(computer_json(emu, computer, emu.state.now()))


async def fork_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/fork → 201 the new computer."""
    emu, extras, source = _target(request)
    fork = extras.fork(source)
    return ok(computer_json(emu, fork, emu.state.now()), 201)


# --------------------------------------------------------------------------- catalogs


async def event_catalog(request: web.Request) -> web.Response:
    """GET /computers/{id}/events: the event types ``/ws/events`` delivers."""
    _target(request)
    return ok(
        {
            "event_types": [
                {
                    "type": name,
                    "description": EVENT_CATALOG[name][0],
                    "data": EVENT_CATALOG[name][1],
                }
                for name in sorted(EVENT_TYPES)
            ]
        }
    )


async def compute_limits(request: web.Request) -> web.Response:
    """GET /billing/compute-limits."""
    return ok(request.app[EXTRAS_KEY].compute_limits())
