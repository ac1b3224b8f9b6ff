"""``orgo.files``: upload, list, export, download, delete.

Uploads land in ``/root/Desktop/<name>`` on the workspace's running computers.
"""

from __future__ import annotations

import asyncio
import builtins
import mimetypes
import os
from pathlib import Path
from typing import Final

import aiohttp

from .._checks import check_id
from .._config import Timeouts
from ..models import Computer, ExportedFile, FileInfo
from ._base import Resource

__all__ = ["MAX_UPLOAD_BYTES", "Files"]

MAX_UPLOAD_BYTES: Final = 10 * 1024 * 1024
"""Orgo's upload limit: 10 MB."""


def _computer_id(computer: str | Computer | None) -> str | None:
    if computer is None:
        return None
    return check_id("computer id", computer.id if isinstance(computer, Computer) else computer)


def _check_filename(filename: object) -> str:
    # The name lands as one file in Desktop/: a separator, a NUL (which no HTTP header
    # may carry) or a dot directory cannot be part of it.
    if (
        not isinstance(filename, str)
        or filename in ("", ".", "..")
        or any(c in filename for c in "/\\\0")
    ):
        raise ValueError(
            "filename must be a plain file name (no '/', '\\' or NUL, not '.' or '..'); "
            f"got {filename!r}"
        )
    return filename


def _too_large(size: int, what: str) -> ValueError:
    return ValueError(
        f"{what} is {size:,} bytes; Orgo accepts uploads of at most "
        f"{MAX_UPLOAD_BYTES:,} bytes (10 MB)"
    )


class Files(Resource):
    """Files; reach it as ``orgo.files``."""

    async def upload(
        self,
        file: str | os.PathLike[str] | bytes,
        *,
        workspace_id: str,
        computer: str | Computer | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> FileInfo:
        """Upload a file (a path, or bytes with ``filename``) of at most 10 MB.

        Raises:
            ValueError: over 10 MB, bytes without a filename, or a filename
                that is not a plain file name (before sending).
            FileNotFoundError: the path does not exist.
        """
        check_id("workspace_id", workspace_id)
        desktop = _computer_id(computer)
        if isinstance(file, bytes | bytearray):
            if not filename:
                raise ValueError("uploading bytes needs filename=")
            _check_filename(filename)
            if len(file) > MAX_UPLOAD_BYTES:
                raise _too_large(len(file), filename)
            data = bytes(file)
        else:
            source = Path(file)
            filename = _check_filename(filename or source.name)  # before reading the file
            data = await asyncio.to_thread(_read_limited, source)
        kind = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"

        def form() -> aiohttp.FormData:
            form = aiohttp.FormData()
            form.add_field("file", data, filename=filename, content_type=kind)
            # The API reference says projectId, the migration guide workspaceId: send both.
            form.add_field("projectId", workspace_id)
            form.add_field("workspaceId", workspace_id)
            if desktop is not None:
                form.add_field("desktopId", desktop)
            return form

        return await self._post(
            "/files/upload", cast_to=FileInfo, key="file", data=form, timeout=timeout
        )

    async def list(
        self,
        *,
        workspace_id: str | None = None,
        computer: str | Computer | None = None,
        timeout: Timeouts | float | None = None,
    ) -> builtins.list[FileInfo]:
        """The files of a workspace, optionally only those of one computer."""
        params: dict[str, str] = {}
        if workspace_id is not None:
            params["projectId"] = check_id("workspace_id", workspace_id)
        desktop = _computer_id(computer)
        if desktop is not None:
            params["desktopId"] = desktop
        return await self._get(
            "/files",
            cast_to=builtins.list[FileInfo],
            keys=("files",),
            params=params,
            timeout=timeout,
        )

    async def export(
        self, computer: str | Computer, path: str, *, timeout: Timeouts | float | None = None
    ) -> ExportedFile:
        """Export a file from a running computer (``Desktop/x``, ``~/x`` or ``/home/user/x``).

        Raises:
            PermissionDeniedError: the path is outside the home directory.
        """
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"path must be a non-empty string; got {path!r}")
        body = {"desktopId": _computer_id(computer), "path": path}
        return await self._post("/files/export", cast_to=ExportedFile, json=body, timeout=timeout)

    async def download_url(self, file_id: str, *, timeout: Timeouts | float | None = None) -> str:
        """A signed URL for the file (valid about an hour)."""
        return await self._get(
            "/files/download",
            cast_to=str,
            key="url",
            params={"id": check_id("file_id", file_id)},
            timeout=timeout,
        )

    async def download(self, file_id: str, *, timeout: Timeouts | float | None = None) -> bytes:
        """The file's bytes (through its signed URL; the API key goes only to the API's origin)."""
        url = await self.download_url(file_id, timeout=timeout)
        return await self._get(url, cast_to=bytes, timeout=timeout)

    async def delete(self, file_id: str, *, timeout: Timeouts | float | None = None) -> None:
        """Delete a stored file."""
        await self._delete(
            "/files/delete", params={"id": check_id("file_id", file_id)}, timeout=timeout
        )


def _read_limited(path: Path) -> bytes:
    size = path.stat().st_size  # before reading: a 2 GB file is refused cheaply
    if size > MAX_UPLOAD_BYTES:
        raise _too_large(size, str(path))
    return path.read_bytes()
