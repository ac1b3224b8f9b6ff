"""Computer routes: ``/api/computers`` and ``/api/computers/{computer_id}/...``.

``{computer_id}`` is the computer's UUID or its instance id (Orgo has accepted
both). Create, get and delete; the lifecycle (``start``, ``stop``,
``restart``; :class:`~orgo_async.emulator.store.Store` is the state machine
behind them); ``clone`` and ``move``; ``resize`` and ``auto-stop``; and
``vnc-password``, the computer's current (rotating) credentials. The desktop
actions under the same prefix are :mod:`.desktop`'s.

``POST /api/computers`` validates its body as Orgo does (``docs/orgo-api.md``
§1.5), before it looks the workspace up: each bad field answers 400
``invalid_field`` naming the field and, for a choice, the allowed values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ..store import MAX_DISK_GB, ApiError, Computer, ComputerSpec
from ._base import (
    COMPUTER_PATH,
    choice,
    emulator_of,
    int_choice,
    integer,
    invalid,
    ok,
    optional_integer,
    optional_str,
    read_json,
    show,
    text,
)

if TYPE_CHECKING:
    from ..app import Emulator

__all__ = [
    "add_routes",
    "clone_computer",
    "computer_json",
    "create_computer",
    "delete_computer",
    "get_auto_stop",
    "get_computer",
    "get_resize",
    "get_vnc_password",
    "move_computer",
    "patch_auto_stop",
    "patch_resize",
    "restart_computer",
    "start_computer",
    "stop_computer",
]

_RESOLUTION: Final = re.compile(r"^(\d+)x(\d+)x(8|16|24|32)$")
_GPUS: Final = ("none", "a10", "l40s", "a100-40gb", "a100-80gb")
_RAM_CHOICES: Final = (4, 8, 16, 32, 64)
_CPU_CHOICES: Final = (1, 2, 4, 8, 16)


def add_routes(router: web.UrlDispatcher) -> None:
    """Map ``/api/computers`` and the lifecycle, clone, move, resize, auto-stop and
    ``vnc-password`` paths of one computer."""
    add = router.add_route
    computer = COMPUTER_PATH
    add("POST", "/api/computers", create_computer)
    add("GET", computer, get_computer)
    add("DELETE", computer, delete_computer)
    add("POST", computer + "/start", start_computer)
    add("POST", computer + "/stop", stop_computer)
    add("POST", computer + "/restart", restart_computer)
    add("POST", computer + "/clone", clone_computer)
    add("PATCH", computer + "/move", move_computer)
    add("GET", computer + "/resize", get_resize)
    add("PATCH", computer + "/resize", patch_resize)
    add("GET", computer + "/auto-stop", get_auto_stop)
    add("PATCH", computer + "/auto-stop", patch_auto_stop)
    add("GET", computer + "/vnc-password", get_vnc_password)


def computer_json(emu: Emulator, computer: Computer, now: float) -> dict[str, Any]:
    """A computer as Orgo's API renders it (every documented field plus observed extras)."""
    workspace = emu.state.workspaces.get(computer.workspace_id)
    hostport = emu.hostport
    data: dict[str, Any] = {
        "id": computer.id,
        "name": computer.name,
        "workspace_id": computer.workspace_id,
        "project_id": computer.workspace_id,
        "project_name": workspace.name if workspace is not None else None,
        "os": computer.os,
        "ram": computer.ram,
        "cpu": computer.cpu,
        "disk_size_gb": computer.disk_size_gb,
        "resolution": computer.resolution,
        "status": computer.status_at(now),
        "auto_stop_minutes": computer.auto_stop_minutes,
        "url": f"{emu.origin}/workspaces/{computer.workspace_id}/computers/{computer.id}",
        "created_at": computer.created_at,
        "instance_id": computer.instance_id,
        "fly_instance_id": computer.instance_id,
        "hostname": hostport,
        "connection_url": f"{emu.origin}/desktops/{computer.instance_id}",
        "vnc_password": computer.vnc_password,
        "template_ref": computer.template_ref,
    }
    if emu.config.omit_instance_id:
        del data["instance_id"]
    return data


def _computer(request: web.Request) -> tuple[Emulator, Computer]:
    """The emulator and the computer the path names (404 ``computer_not_found``)."""
    emu = emulator_of(request)
    return emu, emu.state.get_computer(request.match_info["computer_id"])


def _workspace_ref(body: Mapping[str, Any]) -> str:
    # project_id is the deprecated alias of workspace_id (docs/orgo-api.md §1.4).
    value = body.get("workspace_id")
    if value is None:
        value = body.get("project_id")
    if not isinstance(value, str) or not value:
        raise invalid("workspace_id is required: the ID of a workspace")
    return value


def _resolution(body: Mapping[str, Any]) -> str:
    value = body.get("resolution")
    if value is None:
        return "1280x720x24"
    message = (
        "resolution must be WIDTHxHEIGHTxDEPTH with width and height from 1 to 8192"
        f" and depth 8, 16, 24 or 32 (e.g. 1280x720x24), got {show(value)}"
    )
    if not isinstance(value, str):
        raise invalid(message)
    match = _RESOLUTION.match(value)
    if match is None or not all(1 <= int(match.group(i)) <= 8192 for i in (1, 2)):
        raise invalid(message)
    return value


# --------------------------------------------------------------------------- CRUD


async def create_computer(request: web.Request) -> web.Response:
    """POST /computers: validate like Orgo, then 201 with status ``creating``."""
    emu = emulator_of(request)
    store = emu.state
    store.counters.create_attempts += 1
    body = await read_json(request)
    workspace_id = _workspace_ref(body)
    store.take_create_token(workspace_id)
    name = text(body, "name")
    os_name = body.get("os")
    if os_name is not None and os_name != "linux":
        raise invalid(f"os must be 'linux' (the only supported value), got {show(os_name)}")
    # Keyword arguments are evaluated in order: the fields are checked in Orgo's order.
    spec = ComputerSpec(
        name=name,
        ram=int_choice(body, "ram", _RAM_CHOICES, 4),
        cpu=int_choice(body, "cpu", _CPU_CHOICES, 1),
        disk_size_gb=integer(body, "disk_size_gb", 1, MAX_DISK_GB, 8),
        resolution=_resolution(body),
        auto_stop_minutes=optional_integer(body, "auto_stop_minutes", 0),
        template_ref=optional_str(body, "template_ref"),
    )
    choice(body, "gpu", _GPUS, "none")  # accepted and ignored
    optional_str(body, "image")  # legacy, accepted and ignored
    workspace = store.get_workspace(workspace_id)
    if spec.template_ref is not None:
        emu.templates.require_built(spec.template_ref)  # 404 unknown, 409 not built
    computer = store.create_computer(workspace, spec)
    store.counters.creates += 1
    return ok(computer_json(emu, computer, store.now()), 201)


async def get_computer(request: web.Request) -> web.Response:
    """GET /computers/{id} (UUID or instance id)."""
    emu, computer = _computer(request)
    return ok(computer_json(emu, computer, emu.state.now()))


async def delete_computer(request: web.Request) -> web.Response:
    """DELETE /computers/{id}: gone at once."""
    emu, computer = _computer(request)
    emu.state.delete_computer(computer)
    return ok({"success": True})


# --------------------------------------------------------------------------- lifecycle


async def start_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/start (from stopped or error)."""
    emu, computer = _computer(request)
    emu.state.start(computer)
    return ok({"success": True, "status": "starting"})


async def stop_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/stop."""
    emu, computer = _computer(request)
    emu.state.stop(computer)
    return ok({"success": True, "status": "stopping"})


async def restart_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/restart; 405 on legacy hosts (``legacy_restart``)."""
    emu = emulator_of(request)
    if emu.config.legacy_restart:
        raise ApiError(
            405,
            "method_not_allowed",
            "Restart is not supported on this host: stop and start the computer instead",
        )
    emu.state.restart(emu.state.get_computer(request.match_info["computer_id"]))
    return ok({"success": True, "status": "restarting"})


# --------------------------------------------------------------------------- clone and move


async def clone_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/clone ``{name?}`` → 201 Computer (always-on)."""
    emu, source = _computer(request)
    body = await read_json(request, optional=True)
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise invalid(f"name must be a non-empty string, got {show(name)}")
    clone = emu.state.clone(source, name)
    emu.counters.clones += 1
    return ok(computer_json(emu, clone, emu.state.now()), 201)


async def move_computer(request: web.Request) -> web.Response:
    """PATCH /computers/{id}/move ``{workspace_id}`` (alias ``project_id``)."""
    emu, computer = _computer(request)
    body = await read_json(request)
    target = emu.state.get_workspace(_workspace_ref(body))
    emu.state.move(computer, target)
    return ok({"success": True, "workspace_id": target.id, "project_id": target.id})


# --------------------------------------------------------------------------- resize and auto-stop


def _resize_view(computer: Computer) -> dict[str, Any]:
    return {
        "vcpus": computer.cpu,
        "mem_gb": computer.ram,
        "disk_size_gb": computer.disk_size_gb,
        "bandwidth_limit_mbps": computer.bandwidth_limit_mbps,
        "auto_stop_minutes": computer.auto_stop_minutes,
    }


async def get_resize(request: web.Request) -> web.Response:
    """GET /computers/{id}/resize: current size and limits."""
    _emu, computer = _computer(request)
    view = _resize_view(computer)
    view["current_disk_gb"] = computer.disk_size_gb
    view["max_disk_gb"] = MAX_DISK_GB
    return ok(view)


async def patch_resize(request: web.Request) -> web.Response:
    """PATCH /computers/{id}/resize: 200 all applied, 207 some, 422 none.

    ``cpu``/``ram`` keys are silently ignored, as in production.
    """
    emu, computer = _computer(request)
    body = await read_json(request)
    results = emu.state.resize(
        computer,
        vcpus=optional_integer(body, "vcpus", 1),
        mem_gb=optional_integer(body, "mem_gb", 1),
        disk_size_gb=optional_integer(body, "disk_size_gb", 1),
        bandwidth_limit_mbps=optional_integer(body, "bandwidth_limit_mbps", 1),
        auto_stop_minutes=optional_integer(body, "auto_stop_minutes", 0),
        auto_stop_given="auto_stop_minutes" in body,
    )
    failed = [name for name, result in results.items() if not result.ok]
    applied = len(results) - len(failed)
    payload = _resize_view(computer)
    payload["results"] = {name: result.to_dict() for name, result in results.items()}
    payload["partial"] = bool(failed) and applied > 0
    if not failed:
        return ok(payload)
    if applied:
        return ok(payload, 207)
    raise ApiError(
        422,
        "resize_failed",
        "No requested resize could be applied: " + ", ".join(failed),
        **payload,
    )


async def get_auto_stop(request: web.Request) -> web.Response:
    """GET /computers/{id}/auto-stop."""
    _emu, computer = _computer(request)
    return ok({"auto_stop_minutes": computer.auto_stop_minutes, "configurable": True})


async def patch_auto_stop(request: web.Request) -> web.Response:
    """PATCH /computers/{id}/auto-stop ``{auto_stop_minutes >= 0}`` (0 = never)."""
    _emu, computer = _computer(request)
    body = await read_json(request)
    minutes = integer(body, "auto_stop_minutes", 0)
    computer.auto_stop_minutes = minutes
    return ok({"auto_stop_minutes": minutes, "auto_suspend_after": "0s"})


async def get_vnc_password(request: web.Request) -> web.Response:
    """GET /computers/{id}/vnc-password: the current (rotating) credentials."""
    _emu, computer = _computer(request)
    return ok({"password": computer.vnc_password, "desktop_api_token": computer.desktop_api_token})
