"""``orgo.workspaces``: create, list, get, get by name, delete.

Orgo renamed "projects" to "workspaces", and production has answered 404 on
``/workspaces`` while ``/projects`` worked (orgo-api.md 1.3). Every call tries
``/workspaces`` first and falls back to ``/projects`` on 404 or 405; once the
fallback has worked, the session goes straight to ``/projects``.
"""

from __future__ import annotations

from typing import Any

from .._config import Timeouts
from .._converter import structure, structure_list
from .._http import Response
from ..errors import MethodNotAllowedError, NotFoundError
from ..models import Workspace
from ._base import Resource, path_id

_STATUSES = ("active", "inactive")


class Workspaces(Resource):
    """Workspaces (formerly projects); reach it as ``orgo.workspaces``."""

    # Set once /projects answered where /workspaces did not: later calls go straight there.
    _workspaces_missing = False

    async def create(
        self,
        name: str,
        *,
        icon_url: str | None = None,
        status: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> Workspace:
        """Create a workspace; names are unique per account.

        Raises:
            ValueError: empty name or unknown status, before any request.
            InvalidRequestError: the name is taken (Orgo answers 400 for that).
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name must be a non-empty string; got {name!r}")
        if status is not None and status not in _STATUSES:
            raise ValueError(f"status must be one of {', '.join(_STATUSES)}; got {status!r}")
        body: dict[str, Any] = {"name": name}
        if icon_url is not None:
            body["icon_url"] = icon_url
        if status is not None:
            body["status"] = status
        response = await self._call("POST", "", json=body, timeout=timeout, idempotent=False)
        return structure(_unwrap(response.json()), Workspace)

    async def list(self, *, timeout: Timeouts | float | None = None) -> list[Workspace]:
        """Every workspace the key can see (owned and shared), with their computers."""
        response = await self._call("GET", "", timeout=timeout)
        return structure_list(response.json(), Workspace, "workspaces", "projects")

    async def get(self, workspace_id: str, *, timeout: Timeouts | float | None = None) -> Workspace:
        """One workspace with its computers.

        Raises:
            NotFoundError: no such workspace.
        """
        response = await self._call(
            "GET", "/" + path_id(workspace_id, "workspace_id"), timeout=timeout
        )
        return structure(_unwrap(response.json()), Workspace)

    async def get_by_name(self, name: str, *, timeout: Timeouts | float | None = None) -> Workspace:
        """The workspace with this exact name.

        Uses ``/projects/by-name/{name}`` and, where that route is missing,
        the list.

        Raises:
            NotFoundError: no workspace has this name.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string; got {name!r}")
        try:
            response = await self._client._request(
                "GET", "/projects/by-name/" + path_id(name, "name"), timeout=timeout
            )
        except (NotFoundError, MethodNotAllowedError) as exc:
            # A 404 here means either "no such name" or "no such route": the list tells which.
            for workspace in await self.list(timeout=timeout):
                if workspace.name == name:
                    return workspace
            raise NotFoundError(
                status=404,
                message=f"no workspace named {name!r}",
                code="workspace_not_found",
                method="GET",
                path="/workspaces",
            ) from exc
        return structure(_unwrap(response.json()), Workspace)

    async def delete(self, workspace_id: str, *, timeout: Timeouts | float | None = None) -> None:
        """Delete a workspace and every computer in it.

        Raises:
            NotFoundError: no such workspace.
        """
        suffix = "/" + path_id(workspace_id, "workspace_id")
        try:
            await self._call("DELETE", suffix, timeout=timeout)
        except MethodNotAllowedError:
            # DELETE /projects/{id} answered 405 in production (2026-06); this verb works.
            await self._client._request("POST", f"/projects{suffix}/delete", timeout=timeout)

    # -- private ---------------------------------------------------------------

    async def _call(
        self,
        method: str,
        suffix: str,
        *,
        json: Any = None,
        timeout: Timeouts | float | None,
        idempotent: bool | None = None,
    ) -> Response:
        request = self._client._request
        if not self._workspaces_missing:
            try:
                return await request(
                    method,
                    "/workspaces" + suffix,
                    json=json,
                    timeout=timeout,
                    idempotent=idempotent,
                )
            except (NotFoundError, MethodNotAllowedError) as exc:
                first: Exception = exc
        else:
            return await request(
                method, "/projects" + suffix, json=json, timeout=timeout, idempotent=idempotent
            )
        try:
            response = await request(
                method, "/projects" + suffix, json=json, timeout=timeout, idempotent=idempotent
            )
        except NotFoundError:
            # Both 404: a real "not found" (or both routes gone); report the original.
            raise first from None
        self._workspaces_missing = True
        return response


def _unwrap(body: Any) -> Any:
    """Some answers wrap the workspace as ``{"workspace": ...}`` or ``{"project": ...}``."""
    if isinstance(body, dict) and "id" not in body:
        for key in ("workspace", "project"):
            if isinstance(body.get(key), dict):
                return body[key]
    return body
