"""The emulator's own routes under ``/_emulator/``: counters, faults, config, sockets, events.

They need the API key like ``/api`` but are neither counted nor subject to
faults (see the request pipeline in :mod:`orgo_async.emulator.app`).

- ``GET`` / ``DELETE /_emulator/counters``: the counters as JSON (plus
  ``clock``), or reset them;
- ``GET`` / ``POST`` / ``DELETE /_emulator/faults`` and ``DELETE
  /_emulator/faults/{rule_id}``: list, add (a FaultRule as JSON), clear or
  remove fault rules;
- ``GET`` / ``PATCH /_emulator/config``: the config (never the API key), or
  change what later requests see;
- ``GET /_emulator/computers``: every computer with its clock values;
- ``POST /_emulator/computers/{computer_id}/drop-sockets``, ``.../close-sockets``
  and ``.../events``: cut or close its desktop sockets, publish an event.
"""

from __future__ import annotations

from typing import Any, Final

import attrs
from aiohttp import web

from ...protocol.events import EVENT_TYPES
from ..config import BootTime, EmulatorConfig
from ..faults import FaultRule
from ..store import ApiError
from ._base import emulator_of, invalid, ok, read_json, show

__all__ = [
    "admin_add_fault",
    "admin_clear_faults",
    "admin_close_sockets",
    "admin_computers",
    "admin_counters",
    "admin_delete_fault",
    "admin_drop_sockets",
    "admin_get_config",
    "admin_list_faults",
    "admin_patch_config",
    "admin_publish_event",
    "admin_reset_counters",
    "add_routes",
    "config_json",
]

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
    "seed",
)


def add_routes(router: web.UrlDispatcher) -> None:
    """Map ``/_emulator/...``."""
    add = router.add_route
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


def config_json(config: EmulatorConfig) -> dict[str, Any]:
    """The config as JSON, without the API key."""
    data = attrs.asdict(config, recurse=False)
    data.pop("api_key")
    data["boot"] = config.boot.to_dict()
    return data


async def admin_counters(request: web.Request) -> web.Response:
    """GET /_emulator/counters (plus ``clock``: the emulator clock now)."""
    emu = emulator_of(request)
    data = emu.counters.to_dict()
    data["clock"] = emu.state.now()
    return ok(data)


async def admin_reset_counters(request: web.Request) -> web.Response:
    """DELETE /_emulator/counters."""
    emulator_of(request).counters.reset()
    return ok({"success": True})


async def admin_list_faults(request: web.Request) -> web.Response:
    """GET /_emulator/faults."""
    return ok({"faults": [rule.to_dict() for rule in emulator_of(request).faults]})


async def admin_add_fault(request: web.Request) -> web.Response:
    """POST /_emulator/faults with a FaultRule as JSON → 201 ``{"id": ...}``."""
    emu = emulator_of(request)
    body = await read_json(request)
    try:
        rule = emu.faults.add(FaultRule.from_dict(body))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None
    return ok({"id": rule.id}, 201)


async def admin_clear_faults(request: web.Request) -> web.Response:
    """DELETE /_emulator/faults."""
    cleared = emulator_of(request).faults.clear()
    return ok({"success": True, "cleared": cleared})


async def admin_delete_fault(request: web.Request) -> web.Response:
    """DELETE /_emulator/faults/{rule_id}."""
    if not emulator_of(request).faults.remove(request.match_info["rule_id"]):
        raise ApiError(404, "not_found", "No such fault rule")
    return ok({"success": True})


async def admin_get_config(request: web.Request) -> web.Response:
    """GET /_emulator/config."""
    return ok(config_json(emulator_of(request).config))


async def admin_patch_config(request: web.Request) -> web.Response:
    """PATCH /_emulator/config: change boot/failure/limits/drift for later requests.

    A ``seed`` (an integer, or null) starts the boot times, boot failures and
    fault draws over from it (:meth:`Emulator.reseed`).
    """
    emu = emulator_of(request)
    body = await read_json(request)
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
        seed = changes.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an integer or null; got {seed!r}")
        for flag in ("legacy_restart", "omit_instance_id", "workspaces_path_missing"):
            if flag in changes and not isinstance(changes[flag], bool):
                raise ValueError(f"{flag} must be true or false")
        # Validate everything on a copy first so a bad field changes nothing.
        attrs.evolve(emu.config, **changes)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None
    if "seed" in changes:
        emu.reseed(changes.pop("seed"))  # sets config.seed too
    for key, value in changes.items():
        setattr(emu.config, key, value)
    return ok(config_json(emu.config))


async def admin_computers(request: web.Request) -> web.Response:
    """GET /_emulator/computers: every computer with its clock values, for benchmarks."""
    emu = emulator_of(request)
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
    return ok({"computers": items, "clock": now})


async def admin_drop_sockets(request: web.Request) -> web.Response:
    """POST /_emulator/computers/{computer_id}/drop-sockets → ``{"dropped": n}`` (TCP cut)."""
    emu = emulator_of(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    return ok({"dropped": emu.drop_sockets(computer.id)})


async def admin_close_sockets(request: web.Request) -> web.Response:
    """POST /_emulator/computers/{computer_id}/close-sockets ``{code?, reason?}`` → ``{"closed"}``.

    ``code`` defaults to 1001 and must be 1000-1014 (sendable ones) or 3000-4999.
    """
    emu = emulator_of(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    body = await read_json(request, optional=True)
    code = body.get("code", 1001)
    if (
        isinstance(code, bool)
        or not isinstance(code, int)
        or not (1000 <= code <= 1014 and code not in (1004, 1005, 1006) or 3000 <= code <= 4999)
    ):
        raise invalid(f"code must be a sendable WebSocket close code, got {show(code)}")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise invalid(f"reason must be a string, got {show(reason)}")
    return ok({"closed": emu.close_sockets(computer.id, code, reason)})


async def admin_publish_event(request: web.Request) -> web.Response:
    """POST /_emulator/computers/{computer_id}/events ``{type, data?}`` → ``{"delivered": n}``.

    ``type`` must be one of Orgo's event types (a client cannot subscribe to
    any other); ``data`` is the event's payload object.
    """
    emu = emulator_of(request)
    computer = emu.state.get_computer(request.match_info["computer_id"])
    body = await read_json(request)
    event_type = body.get("type")
    if event_type not in EVENT_TYPES:
        allowed = ", ".join(sorted(EVENT_TYPES))
        raise invalid(f"type must be one of {allowed}, got {show(event_type)}")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise invalid(f"data must be an object, got {show(data)}")
    return ok({"delivered": emu.publish_event(computer, event_type, data)})
