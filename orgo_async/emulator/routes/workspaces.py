"""Workspace routes: ``/api/workspaces`` and its deprecated alias ``/api/projects``.

- ``POST /workspaces {name, icon_url?, status?}`` → 201 Workspace; 400
  ``name_exists``, ``name_required`` or ``invalid_status``;
- ``GET /workspaces`` → ``{"workspaces": [Workspace]}`` and ``GET /projects`` →
  ``{"projects": [Workspace]}``, without pagination: each route answers in the
  shape its clients expect, the legacy route as production answers it (see
  :func:`list_key`);
- ``GET /workspaces/{id}`` → Workspace;
- ``DELETE /workspaces/{id}`` and ``POST /projects/{id}/delete`` →
  ``{"success": true}``, its computers deleted too; ``DELETE /projects/{id}``
  answers 405, as production did (2026-06);
- ``GET /projects/by-name/{name}`` → ``{"project": Workspace}``.

A Workspace is rendered with its computers as ``desktops``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal

from aiohttp import web

from ..store import ApiError, Workspace
from ._base import emulator_of, ok, optional_str, read_json, show
from .computers import computer_json

if TYPE_CHECKING:
    from ..app import Emulator

__all__ = [
    "add_routes",
    "create_workspace",
    "delete_project_not_allowed",
    "delete_workspace",
    "get_workspace",
    "list_key",
    "list_workspaces",
    "workspace_by_name",
    "workspace_json",
]

_WORKSPACE_STATUSES: Final = ("active", "inactive")


def add_routes(router: web.UrlDispatcher) -> None:
    """Map the workspace paths, and the deprecated ``/projects`` alias (the same handlers)."""
    add = router.add_route
    for prefix in ("/api/workspaces", "/api/projects"):
        add("POST", prefix, create_workspace)
        add("GET", prefix, list_workspaces)
        add("GET", prefix + "/{workspace_id}", get_workspace)
    add("DELETE", "/api/workspaces/{workspace_id}", delete_workspace)
    add("DELETE", "/api/projects/{workspace_id}", delete_project_not_allowed)
    add("POST", "/api/projects/{workspace_id}/delete", delete_workspace)
    add("GET", "/api/projects/by-name/{name}", workspace_by_name)


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


def _workspace(request: web.Request) -> tuple[Emulator, Workspace]:
    """The emulator and the workspace the path names (404 ``workspace_not_found``)."""
    emu = emulator_of(request)
    return emu, emu.state.get_workspace(request.match_info["workspace_id"])


async def create_workspace(request: web.Request) -> web.Response:
    """POST /workspaces (and /projects)."""
    emu = emulator_of(request)
    body = await read_json(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "name_required", "Workspace name is required")
    icon_url = optional_str(body, "icon_url")
    status = body.get("status")
    if status is None:
        status = "active"
    if status not in _WORKSPACE_STATUSES:
        raise ApiError(
            400,
            "invalid_status",
            f"status must be 'active' or 'inactive', got {show(status)}",
        )
    workspace = emu.state.create_workspace(name, icon_url=icon_url, status=status)
    return ok(workspace_json(emu, workspace, emu.state.now()), 201)


def list_key(request: web.Request) -> Literal["workspaces", "projects"]:
    """The key a workspace list is answered under, for the route ``request`` took.

    By default (``EmulatorConfig.list_key`` ``"workspaces"``) each route
    answers under its own name: ``/workspaces`` under ``workspaces``, the
    deprecated ``/projects`` under ``projects``, as production answers its
    older clients (docs/orgo-api.md §1.3). ``list_key="projects"`` switches on
    the drift observed in production: ``/workspaces`` answers under
    ``projects`` too.
    """
    emu = emulator_of(request)
    if emu.config.list_key == "projects" or request.path.startswith("/api/projects"):
        return "projects"
    return "workspaces"


async def list_workspaces(request: web.Request) -> web.Response:
    """GET /workspaces (and /projects): no pagination, as in production."""
    emu = emulator_of(request)
    now = emu.state.now()
    items = [workspace_json(emu, w, now) for w in emu.state.workspaces.values()]
    return ok({list_key(request): items})


async def get_workspace(request: web.Request) -> web.Response:
    """GET /workspaces/{workspace_id}."""
    emu, workspace = _workspace(request)
    return ok(workspace_json(emu, workspace, emu.state.now()))


async def delete_workspace(request: web.Request) -> web.Response:
    """DELETE /workspaces/{id} and POST /projects/{id}/delete: deletes its computers too."""
    emu, workspace = _workspace(request)
    emu.state.delete_workspace(workspace)
    return ok({"success": True})


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
    emu = emulator_of(request)
    workspace = emu.state.workspace_by_name(request.match_info["name"])
    return ok({"project": workspace_json(emu, workspace, emu.state.now())})
