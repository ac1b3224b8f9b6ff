"""``orgo.screens``: a computer's displays: list, add, resize, remove.

Every computer has its ``default`` screen (the boot resolution); Orgo allows a
few more, each with its own size. ``screen=`` on
:meth:`Desktop.screenshot <orgo_async.resources.desktop.Desktop.screenshot>`
captures one of them. Screens do not survive a restart.
"""

from __future__ import annotations

import builtins

from .._checks import check_int, optional
from .._config import Timeouts
from ..models import MAX_SCREEN_SIDE, Computer, Screen
from ._base import Resource, path_id

__all__ = ["Screens"]


def _screens_path(computer: str | Computer, screen_id: str | None = None) -> str:
    value = computer.id if isinstance(computer, Computer) else computer
    path = f"/computers/{path_id(value, 'computer id')}/screens"
    return path if screen_id is None else f"{path}/{path_id(screen_id, 'screen_id')}"


def _size(width: int | None, height: int | None) -> dict[str, int]:
    checked = {
        "width": optional(check_int)("width", width, minimum=1, maximum=MAX_SCREEN_SIDE),
        "height": optional(check_int)("height", height, minimum=1, maximum=MAX_SCREEN_SIDE),
    }
    return {k: v for k, v in checked.items() if v is not None}


class Screens(Resource):
    """A computer's screens; reach it as ``orgo.screens``."""

    async def list(
        self, computer: str | Computer, *, timeout: Timeouts | float | None = None
    ) -> builtins.list[Screen]:
        """The computer's screens, the default one included.

        Raises:
            ConflictError: the computer is not running.
        """
        return await self._get(
            _screens_path(computer),
            cast_to=builtins.list[Screen],
            keys=("screens",),
            timeout=timeout,
        )

    async def create(
        self,
        computer: str | Computer,
        *,
        width: int | None = None,
        height: int | None = None,
        timeout: Timeouts | float | None = None,
    ) -> Screen:
        """Add a screen; a dimension left out takes the computer's boot size.

        Raises:
            ValueError: a size is not a whole number from 1 to 8192 (before any request).
            ConflictError: the computer is not running, or has as many screens as allowed.
        """
        return await self._post(
            _screens_path(computer), cast_to=Screen, json=_size(width, height), timeout=timeout
        )

    async def update(
        self,
        computer: str | Computer,
        screen_id: str,
        *,
        width: int | None = None,
        height: int | None = None,
        timeout: Timeouts | float | None = None,
    ) -> Screen:
        """Resize a screen (either dimension, or both).

        Raises:
            ValueError: no size given, or one out of range (before any request).
            NotFoundError: no such screen.
        """
        body = _size(width, height)
        if not body:
            raise ValueError("update needs width or height")
        return await self._patch(
            _screens_path(computer, screen_id), cast_to=Screen, json=body, timeout=timeout
        )

    async def delete(
        self, computer: str | Computer, screen_id: str, *, timeout: Timeouts | float | None = None
    ) -> None:
        """Remove an added screen (the default one stays).

        Raises:
            NotFoundError: no such screen.
            InvalidRequestError: it is the default screen.
        """
        await self._delete(_screens_path(computer, screen_id), timeout=timeout)
