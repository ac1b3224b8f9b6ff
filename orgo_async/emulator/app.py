"""The emulator's aiohttp application, its handlers and the :class:`Emulator` server.

Paths, bodies, status codes and error shapes follow Orgo's documentation
(``reference/orgo-create-computer.txt`` and ``reference/orgo-api.md``); where
production drifted from the docs, :class:`~orgo_async.emulator.EmulatorConfig`
switches the drift on. Every response carries ``X-Request-Id``; every error is
``{"error": message, "code": snake_code, "request_id": id, ...extra}``.

Request pipeline (one middleware), for ``/api/...``:

1. count the request, 2. check ``Authorization: Bearer <api_key>`` (401),
3. apply config drift (``workspaces_path_missing``), 4. let the first firing
:class:`~orgo_async.emulator.FaultRule` break the request, 5. run the handler.

Admin routes under ``/_emulator/`` need the API key too but are neither
counted nor subject to faults.

One ``/api`` route skips step 2: the signed file URL
(``/api/files/blob/{id}?exp=&sig=``), whose signature is its credential.

The desktop actions (screenshot, click, drag, type, key, scroll, wait, bash,
exec; platform route and proxy) live in :mod:`.desktop`, the file routes in
:mod:`.files`. The desktop WebSockets (``/desktops/{instance_id}/ws/{name}``)
live in :mod:`.ws`: outside ``/api``, authenticated per computer by the
socket handlers themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import attrs
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from ..protocol.events import EVENT_TYPES
from . import desktop as actions, files
from .backends import DesktopBackends
from .commands import CommandRunner
from .desktop import DESKTOP_KEY, DesktopService, proxy_unavailable
from .faults import FaultRule, Faults
from .files import FILES_KEY, FileStore
from .state import (
    MAX_DISK_GB,
    ApiError,
    BootTime,
    Clock,
    Computer,
    Counters,
    EmulatorConfig,
    Store,
    Workspace,
    retry_after_header,
)
from .ws import SOCKET_NAMES, SOCKETS_KEY, SocketHub, desktop_socket
from .xvnc import XvncError

__all__ = ["EMULATOR_KEY", "Emulator", "create_app"]

log = logging.getLogger("orgo_async.emulator")

EMULATOR_KEY: Final[web.AppKey[Emulator]] = web.AppKey("orgo_emulator")
"""Where handlers find their :class:`Emulator` (``request.app[EMULATOR_KEY]``)."""

_RESOLUTION: Final = re.compile(r"^(\d+)x(\d+)x(8|16|24|32)$")
_GPUS: Final = ("none", "a10", "l40s", "a100-40gb", "a100-80gb")
_RAM_CHOICES: Final = (4, 8, 16, 32, 64)
_CPU_CHOICES: Final = (1, 2, 4, 8, 16)
_WORKSPACE_STATUSES: Final = ("active", "inactive")
_HEALTH_ROUTE: Final = "desktop_health"
# The signed blob URL is its own credential: no API key (files.py checks the signature).
_SIGNED_ROUTE: Final = "files_blob"
# An upload is read part by part by its handler (a 10 MB file is not read up front).
_UPLOAD_ROUTE: Final = "files_upload"


# --------------------------------------------------------------------------- helpers


def _emu(request: web.Request) -> Emulator:
    return request.app[EMULATOR_KEY]


def _new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


def _show(value: object) -> str:
    # Messages quote the JSON the client sent (true, not True).
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _invalid(message: str) -> ApiError:
    # Orgo documents no machine-readable field key, so the message names the field.
    return ApiError(400, "invalid_field", message)


async def _json_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; 400 ``invalid_json`` otherwise (empty allowed if optional)."""
    raw = await request.read()
    if optional and not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "Request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "Request body must be a JSON object")
    return data


def _integer(field: str, value: object, expected: str) -> int:
    # JavaScript backends see 4.0 as 4, so integral floats pass; booleans never do.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{field} must be {expected}, got {_show(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise _invalid(f"{field} must be {expected}, got {_show(value)}")
    return int(value)


def _choice(body: Mapping[str, Any], field: str, choices: tuple[int, ...], default: int) -> int:
    value = body.get(field)
    if value is None:
        return default
    allowed = ", ".join(str(c) for c in choices)
    number = _integer(field, value, f"one of {allowed}")
    if number not in choices:
        raise _invalid(f"{field} must be one of {allowed}, got {_show(value)}")
    return number


def _bounded(
    body: Mapping[str, Any], field: str, low: int, high: int | None, default: int | None
) -> int | None:
    value = body.get(field)
    if value is None:
        return default
    expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    number = _integer(field, value, expected)
    if number < low or (high is not None and number > high):
        raise _invalid(f"{field} must be {expected}, got {_show(value)}")
    return number


def _optional_str(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"{field} must be a string, got {_show(value)}")
    return value


def _workspace_ref(body: Mapping[str, Any]) -> str:
    # project_id is the deprecated alias of workspace_id (orgo-api.md 1.4).
    value = body.get("workspace_id")
    if value is None:
        value = body.get("project_id")
    if not isinstance(value, str) or not value:
        raise _invalid("workspace_id is required: the ID of a workspace")
    return value


def _resolution(body: Mapping[str, Any]) -> str:
    value = body.get("resolution")
    if value is None:
        return "1280x720x24"
    message = (
        "resolution must be WIDTHxHEIGHTxDEPTH with width and height from 1 to 8192"
        f" and depth 8, 16, 24 or 32 (e.g. 1280x720x24), got {_show(value)}"
    )
    if not isinstance(value, str):
        raise _invalid(message)
    match = _RESOLUTION.match(value)
    if match is None or not all(1 <= int(match.group(i)) <= 8192 for i in (1, 2)):
        raise _invalid(message)
    return value


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
        "connection_url": f"http://{hostport}/desktops/{computer.instance_id}",
        "vnc_password": computer.vnc_password,
        "template_ref": computer.template_ref,
    }
    if emu.config.omit_instance_id:
        del data["instance_id"]
    return data


def workspace_json(emu: Emulator, workspace: Workspace, now: float) -> dict[str, Any]:
    """A workspace with its ``desktops`` (computers), as Orgo's API renders it."""
    return {
        "id": workspace.id,
        "name": workspace.name,
        "user_id": workspace.user_id,
        "status": workspace.status,
        "icon_url": workspace.icon_url,
        "created_at": workspace.created_at,
        "updated_at": workspace.updated_at,
        "desktops": [computer_json(emu, c, now) for c in workspace.computers.values()],
    }


def _ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


# --------------------------------------------------------------------------- workspaces


async def create_workspace(request: web.Request) -> web.Response:
    """POST /workspaces (and /projects)."""
    emu = _emu(request)
    body = await _json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "name_required", "Workspace name is required")
    icon_url = _optional_str(body, "icon_url")
    status = body.get("status")
    if status is None:
        status = "active"
    if status not in _WORKSPACE_STATUSES:
        raise ApiError(
            400,
            "invalid_status",
            f"status must be 'active' or 'inactive', got {_show(status)}",
        )
    workspace = emu.state.create_workspace(name, icon_url=icon_url, status=status)
    return _ok(workspace_json(emu, workspace, emu.state.now()), 201)


async def list_workspaces(request: web.Request) -> web.Response:
    """GET /workspaces (and /projects): no pagination, as in production."""
    emu = _emu(request)
    now = emu.state.now()
    items = [workspace_json(emu, w, now) for w in emu.state.workspaces.values()]
    return _ok({emu.config.list_key: items})


async def get_workspace(request: web.Request) -> web.Response:
    """GET /workspaces/{workspace_id}."""
    emu = _emu(request)
    workspace = emu.state.get_workspace(request.match_info["workspace_id"])
    return _ok(workspace_json(emu, workspace, emu.state.now()))


async def delete_workspace(request: web.Request) -> web.Response:
    """DELETE /workspaces/{id} and POST /projects/{id}/delete: deletes its computers too."""
    emu = _emu(request)
    workspace = emu.state.get_workspace(request.match_info["workspace_id"])
    emu.state.delete_workspace(workspace)
    return _ok({"success": True})


async def delete_project_not_allowed(request: web.Request) -> web.Response:
    """DELETE /projects/{id} answered 405 in production (2026-06); POST .../delete works."""
    raise ApiError(
        405,
        "method_not_allowed",
        "Method not allowed: use POST /api/projects/{id}/delete",
        headers={"Allow": "GET, HEAD"},
    )


async def workspace_by_name(request: web.Request) -> web.Response:
    """GET /projects/by-name/{name} → ``{"project": Workspace}``."""
    emu = _emu(request)
    workspace = emu.state.workspace_by_name(request.match_info["name"])
    return _ok({"project": workspace_json(emu, workspace, emu.state.now())})


# --------------------------------------------------------------------------- computers


async def create_computer(request: web.Request) -> web.Response:
    """POST /computers: validate like Orgo, then 201 with status ``creating``."""
    emu = _emu(request)
    store = emu.state
    store.counters.create_attempts += 1
    body = await _json_object(request)
    workspace_id = _workspace_ref(body)
    store.take_create_token(workspace_id)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"name is required: a non-empty string, got {_show(name)}")
    os_name = body.get("os")
    if os_name is not None and os_name != "linux":
        raise _invalid(f"os must be 'linux' (the only supported value), got {_show(os_name)}")
    ram = _choice(body, "ram", _RAM_CHOICES, 4)
    cpu = _choice(body, "cpu", _CPU_CHOICES, 1)
    disk_size_gb = _bounded(body, "disk_size_gb", 1, MAX_DISK_GB, 8)
    assert disk_size_gb is not None
    resolution = _resolution(body)
    auto_stop_minutes = _bounded(body, "auto_stop_minutes", 0, None, None)
    template_ref = _optional_str(body, "template_ref")
    gpu = body.get("gpu")
    if gpu is not None and gpu not in _GPUS:
        raise _invalid(f"gpu must be one of {', '.join(_GPUS)}, got {_show(gpu)}")
    _optional_str(body, "image")  # legacy, accepted and ignored
    workspace = store.get_workspace(workspace_id)
    computer = store.create_computer(
        workspace,
        name=name,
        ram=ram,
        cpu=cpu,
        disk_size_gb=disk_size_gb,
        resolution=resolution,
        auto_stop_minutes=auto_stop_minutes,
        template_ref=template_ref,
    )
    store.counters.creates += 1
    return _ok(computer_json(emu, computer, store.now()), 201)


async def get_computer(request: web.Request) -> web.Response:
    """GET /computers/{id} (UUID or instance id)."""
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    return _ok(computer_json(emu, computer, emu.state.now()))


async def delete_computer(request: web.Request) -> web.Response:
    """DELETE /computers/{id}: gone at once."""
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    emu.state.delete_computer(computer)
    return _ok({"success": True})


async def start_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/start (from stopped or error)."""
    emu = _emu(request)
    emu.state.start(emu.state.get_computer(request.match_info["computer_id"]))
    return _ok({"success": True, "status": "starting"})


async def stop_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/stop."""
    emu = _emu(request)
    emu.state.stop(emu.state.get_computer(request.match_info["computer_id"]))
    return _ok({"success": True, "status": "stopping"})


async def restart_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/restart; 405 on legacy hosts (``legacy_restart``)."""
    emu = _emu(request)
    if emu.config.legacy_restart:
        raise ApiError(
            405,
            "method_not_allowed",
            "Restart is not supported on this host: stop and start the computer instead",
        )
    emu.state.restart(emu.state.get_computer(request.match_info["computer_id"]))
    return _ok({"success": True, "status": "restarting"})


async def clone_computer(request: web.Request) -> web.Response:
    """POST /computers/{id}/clone ``{name?}`` → 201 Computer (always-on)."""
    emu = _emu(request)
    source = emu.state.get_computer(request.match_info["computer_id"])
    body = await _json_object(request, optional=True)
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise _invalid(f"name must be a non-empty string, got {_show(name)}")
    clone = emu.state.clone(source, name)
    emu.counters.clones += 1
    return _ok(computer_json(emu, clone, emu.state.now()), 201)


async def move_computer(request: web.Request) -> web.Response:
    """PATCH /computers/{id}/move ``{workspace_id}`` (alias ``project_id``)."""
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    body = await _json_object(request)
    target = emu.state.get_workspace(_workspace_ref(body))
    emu.state.move(computer, target)
    return _ok({"success": True, "workspace_id": target.id, "project_id": target.id})


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
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    view = _resize_view(computer)
    view["current_disk_gb"] = computer.disk_size_gb
    view["max_disk_gb"] = MAX_DISK_GB
    return _ok(view)


async def patch_resize(request: web.Request) -> web.Response:
    """PATCH /computers/{id}/resize: 200 all applied, 207 some, 422 none.

    ``cpu``/``ram`` keys are silently ignored, as in production.
    """
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    body = await _json_object(request)

    def integer(field: str, low: int) -> int | None:
        value = body.get(field)
        if value is None:
            return None
        number = _integer(field, value, f"an integer >= {low}")
        if number < low:
            raise _invalid(f"{field} must be an integer >= {low}, got {_show(value)}")
        return number

    results = emu.state.resize(
        computer,
        vcpus=integer("vcpus", 1),
        mem_gb=integer("mem_gb", 1),
        disk_size_gb=integer("disk_size_gb", 1),
        bandwidth_limit_mbps=integer("bandwidth_limit_mbps", 1),
        auto_stop_minutes=integer("auto_stop_minutes", 0),
        auto_stop_given="auto_stop_minutes" in body,
    )
    failed = [name for name, result in results.items() if not result.ok]
    applied = len(results) - len(failed)
    payload = _resize_view(computer)
    payload["results"] = {name: result.to_dict() for name, result in results.items()}
    payload["partial"] = bool(failed) and applied > 0
    if not failed:
        return _ok(payload)
    if applied:
        return _ok(payload, 207)
    raise ApiError(
        422,
        "resize_failed",
        "No requested resize could be applied: " + ", ".join(failed),
        **payload,
    )


async def get_auto_stop(request: web.Request) -> web.Response:
    """GET /computers/{id}/auto-stop."""
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    return _ok({"auto_stop_minutes": computer.auto_stop_minutes, "configurable": True})


async def patch_auto_stop(request: web.Request) -> web.Response:
    """PATCH /computers/{id}/auto-stop ``{auto_stop_minutes >= 0}`` (0 = never)."""
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    body = await _json_object(request)
    if body.get("auto_stop_minutes") is None:
        raise _invalid("auto_stop_minutes is required: an integer >= 0")
    minutes = _bounded(body, "auto_stop_minutes", 0, None, None)
    computer.auto_stop_minutes = minutes
    return _ok({"auto_stop_minutes": minutes, "auto_suspend_after": "0s"})


async def get_vnc_password(request: web.Request) -> web.Response:
    """GET /computers/{id}/vnc-password: the current (rotating) credentials."""
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    return _ok({"password": computer.vnc_password, "desktop_api_token": computer.desktop_api_token})


# --------------------------------------------------------------------------- desktop proxy


def _count_probe(emu: Emulator, key: str) -> Computer | None:
    computer = emu.state.find_computer(key)
    if computer is not None:
        probes = emu.counters.health_probes
        probes[computer.id] = probes.get(computer.id, 0) + 1
    return computer


async def desktop_health(request: web.Request) -> web.Response:
    """GET /api/desktops/{instance_id}/proxy/health: 200 from the instant the boot completes."""
    emu = _emu(request)
    computer = _count_probe(emu, request.match_info["instance_id"])
    if computer is None:
        raise ApiError(404, "computer_not_found", "Desktop not found")
    # The clock is read here, after everything else, so 200 never precedes ready_at.
    if computer.is_running(emu.state.now()):
        return _ok({"status": "ok"})
    raise proxy_unavailable()


async def desktop_proxy(request: web.Request) -> web.Response:
    """Any other /api/desktops/{instance_id}/proxy/{endpoint}.

    The desktop actions have their own routes (:mod:`.desktop`); what
    reaches this one is an unknown endpoint (404 from a running desktop) or
    a known one with the wrong method (405).
    """
    emu = _emu(request)
    computer = emu.state.find_computer(request.match_info["instance_id"])
    if computer is None:
        raise ApiError(404, "computer_not_found", "Desktop not found")
    if not computer.is_running(emu.state.now()):
        raise proxy_unavailable()
    known = actions.ACTIONS.get(request.match_info["endpoint"])
    if known is not None:
        method = known[0]
        raise ApiError(
            405,
            "method_not_allowed",
            f"Method not allowed: use {method}",
            headers={"Allow": method},
        )
    raise ApiError(404, "not_found", "Unknown desktop endpoint", upstream_status=404)


# --------------------------------------------------------------------------- admin


_CONFIG_PATCHABLE: Final = (
    "boot",
    "boot_failure_rate",
    "create_rate_limit",
    "max_computers",
    "legacy_restart",
    "stop_seconds",
    "list_key",
    "omit_instance_id",
    "workspaces_path_missing",
    "ws_auth",
    "audio_tone_hz",
    "idle_seconds",
    "screenshot_seconds",
    "desktop_backend",
)


def config_json(config: EmulatorConfig) -> dict[str, Any]:
    """The config as JSON, without the API key."""
    data = attrs.asdict(config, recurse=False)
    data.pop("api_key")
    data["boot"] = config.boot.to_dict()
    return data


async def admin_counters(request: web.Request) -> web.Response:
    """GET /_emulator/counters (plus ``clock``: the emulator clock now)."""
    emu = _emu(request)
    data = emu.counters.to_dict()
    data["clock"] = emu.state.now()
    return _ok(data)


async def admin_reset_counters(request: web.Request) -> web.Response:
    """DELETE /_emulator/counters."""
    _emu(request).counters.reset()
    return _ok({"success": True})


async def admin_list_faults(request: web.Request) -> web.Response:
    """GET /_emulator/faults."""
    return _ok({"faults": [rule.to_dict() for rule in _emu(request).faults]})


async def admin_add_fault(request: web.Request) -> web.Response:
    """POST /_emulator/faults with a FaultRule as JSON → 201 ``{"id": ...}``."""
    emu = _emu(request)
    body = await _json_object(request)
    try:
        rule = emu.faults.add(FaultRule.from_dict(body))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None
    return _ok({"id": rule.id}, 201)


async def admin_clear_faults(request: web.Request) -> web.Response:
    """DELETE /_emulator/faults."""
    cleared = _emu(request).faults.clear()
    return _ok({"success": True, "cleared": cleared})


async def admin_delete_fault(request: web.Request) -> web.Response:
    """DELETE /_emulator/faults/{rule_id}."""
    if not _emu(request).faults.remove(request.match_info["rule_id"]):
        raise ApiError(404, "not_found", "No such fault rule")
    return _ok({"success": True})


async def admin_get_config(request: web.Request) -> web.Response:
    """GET /_emulator/config."""
    return _ok(config_json(_emu(request).config))


async def admin_patch_config(request: web.Request) -> web.Response:
    """PATCH /_emulator/config: change boot/failure/limits/drift for later requests."""
    emu = _emu(request)
    body = await _json_object(request)
    unknown = sorted(set(body) - set(_CONFIG_PATCHABLE))
    if unknown:
        raise ApiError(
            400,
            "invalid_field",
            f"not patchable: {', '.join(unknown)}; allowed: {', '.join(_CONFIG_PATCHABLE)}",
        )
    changes = dict(body)
    try:
        if "boot" in changes:
            if not isinstance(changes["boot"], dict):
                raise ValueError("boot must be an object like {'dist': 'fixed', 'seconds': 0.3}")
            changes["boot"] = BootTime.from_dict(changes["boot"])
        for flag in ("legacy_restart", "omit_instance_id", "workspaces_path_missing"):
            if flag in changes and not isinstance(changes[flag], bool):
                raise ValueError(f"{flag} must be true or false")
        # Validate everything on a copy first so a bad field changes nothing.
        attrs.evolve(emu.config, **changes)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None
    for key, value in changes.items():
        setattr(emu.config, key, value)
    return _ok(config_json(emu.config))


async def admin_computers(request: web.Request) -> web.Response:
    """GET /_emulator/computers: every computer with its clock values, for benchmarks."""
    emu = _emu(request)
    now = emu.state.now()
    healthy_at = emu.counters.healthy_at
    probes = emu.counters.health_probes
    items = [
        {
            "id": c.id,
            "name": c.name,
            "workspace_id": c.workspace_id,
            "instance_id": c.instance_id,
            "status": c.status_at(now),
            "boot_kind": c.boot_kind,
            "boot_seconds": c.boot_seconds,
            "boot_fails": c.boot_fails,
            "boot_error": c.boot_error,
            "desktop_backend": c.desktop_backend,
            "boot_started_at": c.phase_started_at if c.phase == "boot" else None,
            "ready_at": c.ready_at,
            "healthy_at": healthy_at.get(c.id),
            "health_probes": probes.get(c.id, 0),
            "sockets": len(emu.sockets.sockets(c.id)),
        }
        for c in emu.state.computers.values()
    ]
    return _ok({"computers": items, "clock": now})


async def admin_drop_sockets(request: web.Request) -> web.Response:
    """POST /_emulator/computers/{computer_id}/drop-sockets → ``{"dropped": n}`` (TCP cut)."""
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    return _ok({"dropped": emu.drop_sockets(computer.id)})


async def admin_close_sockets(request: web.Request) -> web.Response:
    """POST /_emulator/computers/{computer_id}/close-sockets ``{code?, reason?}`` → ``{"closed"}``.

    ``code`` defaults to 1001 and must be 1000-1014 (sendable ones) or 3000-4999.
    """
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    body = await _json_object(request, optional=True)
    code = body.get("code", 1001)
    if (
        isinstance(code, bool)
        or not isinstance(code, int)
        or not (1000 <= code <= 1014 and code not in (1004, 1005, 1006) or 3000 <= code <= 4999)
    ):
        raise _invalid(f"code must be a sendable WebSocket close code, got {_show(code)}")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise _invalid(f"reason must be a string, got {_show(reason)}")
    return _ok({"closed": emu.close_sockets(computer.id, code, reason)})


async def admin_publish_event(request: web.Request) -> web.Response:
    """POST /_emulator/computers/{computer_id}/events ``{type, data?}`` → ``{"delivered": n}``.

    ``type`` must be one of Orgo's event types (a client cannot subscribe to
    any other); ``data`` is the event's payload object.
    """
    emu = _emu(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    body = await _json_object(request)
    event_type = body.get("type")
    if event_type not in EVENT_TYPES:
        allowed = ", ".join(sorted(EVENT_TYPES))
        raise _invalid(f"type must be one of {allowed}, got {_show(event_type)}")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise _invalid(f"data must be an object, got {_show(data)}")
    return _ok({"delivered": emu.publish_event(computer, event_type, data)})


# --------------------------------------------------------------------------- middleware


def _drop(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection so the client sees a disconnect instead of a response.

    Closing the transport before returning makes aiohttp's attempt to write
    the returned response fail with a ``ConnectionError``, which it treats as
    a premature client disconnect: no response bytes, no error log, no 500.
    The client gets EOF and raises ``ServerDisconnectedError``.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=204)


def _error_response(exc: ApiError, request_id: str) -> web.Response:
    body: dict[str, Any] = {"error": exc.message, "code": exc.code, "request_id": request_id}
    body.update(exc.extra)
    return web.json_response(body, status=exc.status, headers=exc.headers)


def _http_exception_response(exc: web.HTTPException, request_id: str) -> web.Response:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    code = codes.get(exc.status, f"http_{exc.status}")
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return _error_response(ApiError(exc.status, code, exc.reason, headers=headers), request_id)


def _authenticate(request: web.BaseRequest, api_key: str) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = api_key.encode()
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise ApiError(401, "invalid_api_key", "Invalid API key")


def _is_workspaces_path(path: str) -> bool:
    return path == "/api/workspaces" or path.startswith("/api/workspaces/")


def _route_key(request: web.Request) -> str:
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else "<unmatched>"
    return f"{request.method} {canonical}"


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    emu = _emu(request)
    path = request.path
    api = path == "/api" or path.startswith("/api/")
    admin = path.startswith("/_emulator/")
    request_id = _new_request_id()
    counters = emu.counters
    rule: FaultRule | None = None
    response: web.StreamResponse
    if api:
        key = _route_key(request)
        counters.requests[key] = counters.requests.get(key, 0) + 1
    route_name = request.match_info.route.name
    try:
        if (api or admin) and route_name != _SIGNED_ROUTE:
            _authenticate(request, emu.config.api_key)
        if api:
            if emu.config.workspaces_path_missing and _is_workspaces_path(path):
                raise ApiError(404, "not_found", "Not found")
            rule = emu.faults.match(request.method, path)
            if rule is not None:
                counters.faults_injected += 1
                if rule.kind in ("drop", "status") and request.match_info.route.name == (
                    _HEALTH_ROUTE
                ):
                    # The client did probe, even if the fault answered.
                    _count_probe(emu, request.match_info["instance_id"])
                if rule.kind == "drop":
                    return _drop(request)
                if rule.kind == "status":
                    raise _fault_error(rule)
                if rule.kind == "delay":
                    # A slow server has already received the body: read it now, so a
                    # client that gives up during the delay still gets its request
                    # handled (a late create lands), as in production. Not an upload:
                    # its handler streams the multipart body itself.
                    if route_name != _UPLOAD_ROUTE:
                        await request.read()
                    await emu._sleep(rule.delay)
        response = await handler(request)
    except ApiError as exc:
        response = _error_response(exc, request_id)
    except web.HTTPException as exc:
        response = _http_exception_response(exc, request_id)
    except ConnectionError:
        # The client went away mid-request: nothing to answer, nothing to log.
        log.debug("client disconnected during %s %s", request.method, path)
        return _drop(request)
    except Exception:
        log.exception("emulator handler failed for %s %s", request.method, path)
        response = _error_response(ApiError(500, "internal_error", "Internal error"), request_id)
    if rule is not None and rule.kind == "lose_response":
        return _drop(request)
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    if not admin and not path.startswith("/desktops/"):
        by_status = counters.responses_by_status
        by_status[response.status] = by_status.get(response.status, 0) + 1
    return response


def _fault_error(rule: FaultRule) -> ApiError:
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        headers["Retry-After"] = retry_after_header(rule.retry_after)
        extra["retry_after"] = rule.retry_after
    return ApiError(rule.status, rule.error_code, rule.error_message, headers=headers, **extra)


# --------------------------------------------------------------------------- app


def create_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving ``emulator``: Orgo's REST routes plus ``/_emulator/``."""
    app = web.Application(middlewares=[_middleware])
    app[EMULATOR_KEY] = emulator
    add = app.router.add_route

    # Workspaces, and the deprecated /projects alias served by the same handlers.
    for prefix in ("/api/workspaces", "/api/projects"):
        add("POST", prefix, create_workspace)
        add("GET", prefix, list_workspaces)
        add("GET", prefix + "/{workspace_id}", get_workspace)
    add("DELETE", "/api/workspaces/{workspace_id}", delete_workspace)
    add("DELETE", "/api/projects/{workspace_id}", delete_project_not_allowed)
    add("POST", "/api/projects/{workspace_id}/delete", delete_workspace)
    add("GET", "/api/projects/by-name/{name}", workspace_by_name)

    # Computers. {computer_id} accepts the UUID or the instance id.
    computer = "/api/computers/{computer_id}"
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

    # Desktop actions: on the platform route and through the HTTP Desktop API proxy
    # (API key as Bearer), with the same bodies. The proxy's catch-all comes last
    # (routes match in order): 404 for unknown endpoints, 405 for a wrong method.
    app[DESKTOP_KEY] = emulator.desktops
    desktop = "/api/desktops/{instance_id}/proxy"
    add("GET", desktop + "/health", desktop_health, name=_HEALTH_ROUTE)
    for endpoint, (method, handler) in actions.ACTIONS.items():
        add(method, f"{computer}/{endpoint}", handler)
        add(method, f"{desktop}/{endpoint}", handler)
    add("*", desktop + "/{endpoint:.+}", desktop_proxy)
    add("GET", "/api/storage/screenshots/{name}", actions.stored_screenshot)

    # Files. The blob route needs no API key: its URL is signed.
    app[FILES_KEY] = emulator.files
    add("POST", "/api/files/upload", files.upload_file, name=_UPLOAD_ROUTE)
    add("GET", "/api/files", files.list_files)
    add("POST", "/api/files/export", files.export_file)
    add("GET", "/api/files/download", files.download_file)
    add("DELETE", "/api/files/delete", files.delete_file)
    add("GET", "/api/files/blob/{file_id}", files.file_blob, name=_SIGNED_ROUTE)

    # Desktop WebSockets: /desktops/{instance_id}/ws/{name} (websockify | terminal | audio |
    # events; ws.SOCKET_SERVERS, websockify over the desktop backends). They are outside /api,
    # so the middleware neither checks the API key nor injects faults for them: the
    # socket handler authenticates with the computer's vnc_password itself
    # (?token= or Authorization: Bearer) and closes 4401 / 4404 as Orgo does.
    app[SOCKETS_KEY] = emulator.sockets
    add("GET", "/desktops/{instance_id}/ws/{name}", desktop_socket)

    # Emulator administration (API key required, not counted, no faults).
    add("GET", "/_emulator/counters", admin_counters)
    add("DELETE", "/_emulator/counters", admin_reset_counters)
    add("GET", "/_emulator/faults", admin_list_faults)
    add("POST", "/_emulator/faults", admin_add_fault)
    add("DELETE", "/_emulator/faults", admin_clear_faults)
    add("DELETE", "/_emulator/faults/{rule_id}", admin_delete_fault)
    add("GET", "/_emulator/config", admin_get_config)
    add("PATCH", "/_emulator/config", admin_patch_config)
    add("GET", "/_emulator/computers", admin_computers)
    add("POST", "/_emulator/computers/{computer_id}/drop-sockets", admin_drop_sockets)
    add("POST", "/_emulator/computers/{computer_id}/close-sockets", admin_close_sockets)
    add("POST", "/_emulator/computers/{computer_id}/events", admin_publish_event)
    return app


# --------------------------------------------------------------------------- server


class _AccessLogger(AbstractAccessLogger):
    """The access log without query strings: a socket's ``?token=`` must never be logged.

    (aiohttp's default format logs the whole request line.)
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %.1fms',
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


def _url_host(host: str) -> str:
    # A wildcard bind address is not something a client can connect to.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Emulator:
    """A local Orgo API served on ``config.host:config.port`` (port 0 = ephemeral).

    Use it as ``async with Emulator(config) as emu:``; then ``emu.base_url``
    (``http://127.0.0.1:PORT/api``) is what the SDK takes as its base URL and
    ``emu.api_key`` its key. ``emu.state`` is the store, ``emu.faults`` the
    fault rules, ``emu.counters`` what was seen; ``emu.config`` may be changed
    at any time and applies to later requests. ``clock`` drives every
    lifecycle timestamp (inject a fake one to step time by hand).

    Each running computer serves
    ``/desktops/{instance_id}/ws/{websockify|terminal|audio|events}``
    (:meth:`ws_url`): RFB (VNC) over its desktop, real PTY shells in the
    computer's own directory (:meth:`workdir`), a generated audio tone and live
    desktop events (:meth:`publish_event` adds any event). :meth:`close_sockets`
    and :meth:`drop_sockets` break those sockets on purpose.

    The desktop (``/ws/websockify``, REST actions and screenshots) is served by
    the backend ``config.desktop_backend`` names when the computer boots:
    ``synthetic``, one framebuffer per computer
    (``emu.desktops.framebuffer(computer)``), or ``xvnc``, a real TigerVNC
    ``Xvnc`` per computer driven with ``xdotool`` (:meth:`desktop_display`).
    ``bash``/``exec`` run as real processes through ``emu.commands``; uploaded
    and exported files are in ``emu.files``.

    Leaving the context stops the server, closes client connections (desktop
    sockets with 1001), kills every shell, command (background jobs
    included) and Xvnc, removes the stored files and the temporary working
    directories and leaves no task behind. Not reusable after :meth:`close`.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Clock = time.monotonic):
        config = config if config is not None else EmulatorConfig()
        seed = config.seed
        self.counters = Counters()
        self.state = Store(config, clock=clock, rng=random.Random(seed), counters=self.counters)
        # A separate stream for faults, so adding a fault does not shift boot times.
        self.faults = Faults(random.Random(None if seed is None else f"faults:{seed}"))
        backends = DesktopBackends(self.state)
        self.sockets = SocketHub(self.state, desktops=backends)
        self.commands = CommandRunner(self.state)
        self.desktops = DesktopService(
            self.state,
            self.commands,
            sleep=self._sleep,
            origin=lambda: self.origin,
            backends=backends,
        )
        self.files = FileStore(self.state, origin=lambda: self.origin)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = asyncio.Event()
        self._closed = False

    # ----------------------------------------------------------------- properties

    @property
    def config(self) -> EmulatorConfig:
        """The live configuration (shared with the store)."""
        return self.state.config

    @config.setter
    def config(self, value: EmulatorConfig) -> None:
        self.state.config = value

    @property
    def api_key(self) -> str:
        """The key clients must send as ``Authorization: Bearer``."""
        return self.config.api_key

    @property
    def clock(self) -> Clock:
        """The clock of every lifecycle timestamp."""
        return self.state.clock

    @property
    def port(self) -> int:
        """The bound TCP port; ``RuntimeError`` before :meth:`start`."""
        if self._port is None:
            raise RuntimeError("the emulator is not running")
        return self._port

    @property
    def hostport(self) -> str:
        """``HOST:PORT`` a client connects to (the computers' ``hostname``)."""
        return f"{_url_host(self.config.host)}:{self.port}"

    @property
    def origin(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.hostport}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/api``: the REST base URL."""
        return f"{self.origin}/api"

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind and start serving; the socket accepts connections on return."""
        if self._runner is not None or self._closed:
            raise RuntimeError("an Emulator can be started only once")
        access_log = logging.getLogger("aiohttp.access") if self.config.access_log else None
        # A short shutdown timeout: in-flight handlers are ours and finish fast,
        # except fault delays, which close() wakes up.
        runner = web.AppRunner(
            create_app(self),
            access_log=access_log,
            access_log_class=_AccessLogger,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except BaseException:
            await self.close()
            raise
        log.info("emulator serving %s", self.base_url)

    async def close(self) -> None:
        """Stop serving and drop every connection. Idempotent.

        Desktop sockets are closed with 1001 first (and their shells killed
        and reaped), so no handler is cut off mid-way by the server shutdown.
        """
        self._closed = True
        self._closing.set()
        await self.sockets.shutdown()
        # Desktops and commands first: their requests then answer before the server stops.
        await self.desktops.backends.shutdown()
        await self.commands.shutdown()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.files.close()
        self.state.close_workdirs()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- desktop sockets

    def _computer(self, computer: Computer | str) -> Computer:
        return computer if isinstance(computer, Computer) else self.state.get_computer(computer)

    def workdir(self, computer: Computer | str) -> Path:
        """The computer's own directory (``Desktop/`` and ``Downloads/`` inside), made if missing.

        Terminal shells start here with ``HOME`` set to it; ``file_change``
        events watch its ``Desktop/`` and ``Downloads/``. Removed when the
        computer is deleted. ``computer`` is a Computer, its UUID or instance
        id; an unknown id raises :class:`~orgo_async.emulator.state.ApiError` (404).
        """
        return self.state.workdir(self._computer(computer))

    def ws_url(self, computer: Computer | str, name: str) -> str:
        """``ws://HOST:PORT/desktops/{instance_id}/ws/{name}`` (without the token)."""
        if name not in SOCKET_NAMES:
            raise ValueError(f"name must be one of {', '.join(SOCKET_NAMES)}, got {name!r}")
        return f"ws://{self.hostport}/desktops/{self._computer(computer).instance_id}/ws/{name}"

    async def desktop_display(self, computer: Computer | str) -> str:
        """The X display (``":N"``) of an ``xvnc`` computer, once its Xvnc is ready.

        For X clients of your own (``DISPLAY=:N xdotool ...``). Raises
        ``LookupError`` when the computer's current boot has no working Xvnc
        (another backend, a failed boot, stopped) and ApiError (404) for an
        unknown computer.
        """
        try:
            server = await self.desktops.backends.xvnc.ready(self._computer(computer))
        except XvncError as exc:
            raise LookupError(str(exc)) from None
        assert server.display is not None
        return server.display

    def publish_event(
        self, computer: Computer | str, event_type: str, data: Mapping[str, Any] | None = None
    ) -> int:
        """Send an event to the computer's ``/ws/events`` subscribers of ``event_type``.

        Returns how many subscribers it was queued for (0 when nobody listens).
        This is how other parts of the emulator report ``screen_change``,
        window and clipboard events. Raises ``ValueError`` for a type outside
        Orgo's twelve and ApiError (404) for an unknown computer.
        """
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        return self.sockets.publish(self._computer(computer).id, event_type, data or {})

    def close_sockets(
        self, computer: Computer | str, code: int = 1001, reason: str = "Computer stopping"
    ) -> int:
        """Close the computer's open desktop sockets with ``code``; returns how many.

        Their shells are killed. ApiError (404) for an unknown computer.
        """
        return self.sockets.close_sockets(self._computer(computer).id, code, reason)

    def drop_sockets(self, computer: Computer | str) -> int:
        """Cut the TCP connections of the computer's sockets, no close frame (client: 1006).

        Returns how many were cut; their shells are killed. ApiError (404)
        for an unknown computer.
        """
        return self.sockets.drop_sockets(self._computer(computer).id)

    async def _sleep(self, seconds: float) -> None:
        """Sleep for a delay fault, cut short when the emulator closes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
