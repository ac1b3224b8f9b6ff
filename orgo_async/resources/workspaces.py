"""``orgo.workspaces``: create, list, get, get by name, delete.

Orgo renamed "projects" to "workspaces", and production has answered 404 on
``/workspaces`` while ``/projects`` worked (docs/orgo-api.md §1.3). Every call tries
``/workspaces`` first and falls back to ``/projects`` on 404 or 405; once the
fallback has worked, the session goes straight to ``/projects``.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

from .._checks import check_choice, check_text, optional
from .._config import Timeouts
from ..errors import MethodNotAllowedError, NotFoundError
from ..models import MAX_NAME_LENGTH, Workspace
from ._base import Resource, path_id

_STATUSES = ("active", "inactive")

T = TypeVar("T")


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
        body: dict[str, Any] = {"name": check_text("name", name, max_length=MAX_NAME_LENGTH)}
        optional(check_choice)("status", status, _STATUSES)
        if icon_url is not None:
            body["icon_url"] = icon_url
        if status is not None:
            body["status"] = status
        return await self._either("POST", "", cast_to=Workspace, json=body, timeout=timeout)

    async def list(self, *, timeout: Timeouts | float | None = None) -> list[Workspace]:
        """Every workspace the key can see (owned and shared), with their computers."""
        return await self._either(
            "GET", "", cast_to=list[Workspace], keys=("workspaces", "projects"), timeout=timeout
        )

    async def get(self, workspace_id: str, *, timeout: Timeouts | float | None = None) -> Workspace:
        """One workspace with its computers.

        Raises:
            NotFoundError: no such workspace.
        """
        return await self._either(
            "GET", "/" + path_id(workspace_id, "workspace_id"), cast_to=Workspace, timeout=timeout
        )

    async def get_by_name(self, name: str, *, timeout: Timeouts | float | None = None) -> Workspace:
        """The workspace with this exact name.

        Uses ``/projects/by-name/{name}`` and, where that route is missing,
        the list.

        Raises:
            NotFoundError: no workspace has this name.
        """
        check_text("name", name, max_length=MAX_NAME_LENGTH)
        cause: Exception | None = None
        # The URL library folds "." and ".." into another route: those go to the list.
        if name not in (".", ".."):
            try:
                return await self._get(
                    "/projects/by-name/" + quote(name, safe=""), cast_to=Workspace, timeout=timeout
                )
            except (NotFoundError, MethodNotAllowedError) as exc:
                # A 404 means either "no such name" or "no such route": the list tells which.
                cause = exc
        for workspace in await self.list(timeout=timeout):
            if workspace.name == name:
                return workspace
        raise NotFoundError(
            status=404,
            message=f"no workspace named {name!r}",
            code="workspace_not_found",
            method="GET",
            path="/workspaces",
        ) from cause

    async def delete(self, workspace_id: str, *, timeout: Timeouts | float | None = None) -> None:
        """Delete a workspace and every computer in it.

        Raises:
            NotFoundError: no such workspace.
        """
        suffix = "/" + path_id(workspace_id, "workspace_id")
        try:
            await self._either("DELETE", suffix, cast_to=type(None), timeout=timeout)
        except MethodNotAllowedError:
            # DELETE /projects/{id} answered 405 in production (2026-06); this verb works.
            await self._post(f"/projects{suffix}/delete", cast_to=type(None), timeout=timeout)

    # -- private ---------------------------------------------------------------

    async def _either(
        self,
        method: str,
        suffix: str,
        *,
        cast_to: type[T],
        keys: tuple[str, ...] = (),
        json: Any = None,
        timeout: Timeouts | float | None,
    ) -> T:
        """``/workspaces{suffix}``, falling back to the legacy ``/projects{suffix}``."""
        # POST creates a workspace: not idempotent. The others are.
        idempotent = False if method == "POST" else None
        first: Exception | None = None
        for prefix in ("/projects",) if self._workspaces_missing else ("/workspaces", "/projects"):
            try:
                answer = await self._call(
                    method,
                    prefix + suffix,
                    cast_to=cast_to,
                    keys=keys,
                    json=json,
                    timeout=timeout,
                    idempotent=idempotent,
                )
            except (NotFoundError, MethodNotAllowedError) as exc:
                if first is None and prefix == "/workspaces":
                    first = exc
                    continue
                if first is not None and isinstance(exc, NotFoundError):
                    # Both 404: a real "not found" (or both routes gone); report the original.
                    raise first from None
                raise
            if prefix == "/projects" and first is not None:
                self._workspaces_missing = True  # from now on, straight to /projects
            return answer
        raise AssertionError("unreachable")  # pragma: no cover
