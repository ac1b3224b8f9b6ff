"""Orgo's file routes (``/api/files/...``) and the emulator's file store.

==========================================  ==============================================
route                                       answer
==========================================  ==============================================
``POST /api/files/upload`` (multipart)      ``{"file": File}``; 413 ``file_too_large``
``GET /api/files?projectId=&desktopId=``    ``{"files": [File]}``
``POST /api/files/export {desktopId, path}``  ``{"success": true, "file": File, "url": url}``
``GET /api/files/download?id=``             ``{"url": url}``
``DELETE /api/files/delete?id=``            ``{"success": true}``
``GET /api/files/blob/{id}?sig=&exp=``      the bytes; no API key, the signature instead
==========================================  ==============================================

A File is ``{id, filename, size_bytes, content_type, created_at, project_id,
source: "upload"|"export", desktop_id?}``. ``workspaceId`` is accepted
wherever ``projectId`` is (the migration guide's name).

Upload: the multipart form carries ``file`` (at most 10 MB), ``projectId``
(or ``workspaceId``, required) and ``desktopId`` (optional). The body is
read part by part and never buffered whole: a declared ``Content-Length``
beyond the limit is refused before anything is read, a body without one
(chunked) is counted as it is read and refused with 413 once it passes the
limit (whatever it holds: a preamble, part headers, fields), and a file part
is refused with 413 as soon as it passes 10 MB. A body that is not valid
multipart (a line or part header too long, too many headers) answers 400
``invalid_body``. The file lands in ``Desktop/<filename>`` of the given
computer's working directory (whatever its status: its disk persists), or,
without ``desktopId``, of every *running* computer of the workspace. A
filename with a path, a NUL or another control character in it is refused
(400 naming ``filename``). The computer's shell owns that directory, so
nothing planted there is followed: the file is written to a new hidden file
(``O_CREAT | O_EXCL | O_NOFOLLOW``) and renamed over the name, which replaces
a symbolic or hard link at the name instead of writing through it, and a
``Desktop`` that is a link receives nothing.

Export: ``path`` may be ``Desktop/x`` (relative to the home directory),
``~/x`` or ``/home/user/x``, all mapped into the computer's working
directory; anything else, or a path that resolves outside it (``..``,
symlinks), answers 403 ``{"error": "Path outside the home directory"}``.
The computer must be running (400 ``desktop_unavailable``); a missing file
is 404, a directory 400.

Signed URLs are ``<origin>/api/files/blob/<id>?exp=<unix>&sig=<hmac>``,
valid :data:`URL_LIFETIME` seconds; the HMAC key is a random secret of the
emulator (never the API key). A bad or expired signature answers 403.

Stored copies live in ``<workdir root>/_files-<random>/`` and go away with
their record (delete), their workspace (deleted workspace) or the emulator.
That directory sits beside the computers' own, so its name is not guessable
and its files are created through a descriptor of it, never through a link.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import logging
import mimetypes
import os
import secrets
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, cast
from urllib.parse import quote

import attrs
from aiohttp import BodyPartReader, MultipartReader, StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError, InvalidHeader

from ..store import ApiError, Computer, Store, Workspace, iso_now
from ._base import invalid, read_json
from .desktop import platform_unavailable

__all__ = [
    "FILES_KEY",
    "HOME",
    "HOMES",
    "MAX_EXPORT_BYTES",
    "MAX_UPLOAD_BYTES",
    "SIGNED_ROUTE",
    "UPLOAD_ROUTE",
    "URL_LIFETIME",
    "FileStore",
    "StoredFile",
    "add_routes",
    "delete_file",
    "download_file",
    "export_file",
    "file_blob",
    "list_files",
    "upload_file",
]

log = logging.getLogger("orgo_async.emulator")

FILES_KEY: Final[web.AppKey[FileStore]] = web.AppKey("orgo_emulator_files")
"""Where the file handlers find the :class:`FileStore`."""

SIGNED_ROUTE: Final = "files_blob"
"""The blob route's name: its signed URL is its own credential, so the request
pipeline asks for no API key (:func:`file_blob` checks the signature)."""

UPLOAD_ROUTE: Final = "files_upload"
"""The upload route's name: its handler reads the multipart body part by part
(a 10 MB file is not read up front, not even by a delay fault)."""


def add_routes(router: web.UrlDispatcher) -> None:
    """Map ``/api/files/...``."""
    add = router.add_route
    add("POST", "/api/files/upload", upload_file, name=UPLOAD_ROUTE)
    add("GET", "/api/files", list_files)
    add("POST", "/api/files/export", export_file)
    add("GET", "/api/files/download", download_file)
    add("DELETE", "/api/files/delete", delete_file)
    add("GET", "/api/files/blob/{file_id}", file_blob, name=SIGNED_ROUTE)


MAX_UPLOAD_BYTES: Final = 10 * 1024 * 1024
"""Orgo's upload limit: 10 MB."""

MAX_EXPORT_BYTES: Final = 100 * 1024 * 1024
"""The largest file an export copies (Orgo documents none; 413 beyond)."""

URL_LIFETIME: Final = 3600
"""Seconds a signed URL stays valid."""

HOME: Final = "/home/user"
"""The home directory Orgo's export documents (mapped to the computer's working directory)."""

HOMES: Final = (HOME, "/root")
"""Home directories an export path may start with: the documented one, and ``/root``,
where uploads land (Orgo's VMs run as root; in a sandbox, one is a link to the other)."""

# Room for the multipart framing and the small fields around a 10 MB file.
_FORM_SLACK: Final = 64 * 1024
_FIELD_LIMIT: Final = 1024
_CHUNK: Final = 64 * 1024
_FIELDS: Final = ("projectId", "workspaceId", "desktopId")
_COPY_CHUNK: Final = 1 << 20
# A directory of the computer's (or ours), opened without following a link in its place.
_DIRECTORY: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Source = Literal["upload", "export"]


def _too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, "file_too_large", "File too large", max_bytes=limit, detail=what)


def _outside_home() -> ApiError:
    return ApiError(403, "path_outside_home", "Path outside the home directory")


def _not_found() -> ApiError:
    return ApiError(404, "file_not_found", "File not found")


# --------------------------------------------------------------------------- store


@attrs.define(eq=False)
class StoredFile:
    """One stored file: its record and where its bytes are."""

    id: str
    filename: str
    size_bytes: int
    content_type: str
    created_at: str
    project_id: str
    desktop_id: str | None
    source: Source
    path: Path = attrs.field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """The record as Orgo's API renders it (``desktop_id`` only when there is one)."""
        data: dict[str, Any] = {
            "id": self.id,
            "filename": self.filename,
            "size_bytes": self.size_bytes,
            "content_type": self.content_type,
            "created_at": self.created_at,
            "project_id": self.project_id,
            "source": self.source,
        }
        if self.desktop_id is not None:
            data["desktop_id"] = self.desktop_id
        return data


class FileStore:
    """The uploaded and exported files of one emulator, and their signed URLs.

    ``origin`` returns ``http://HOST:PORT`` for the URLs. Files of a deleted
    workspace are removed (a store listener). :meth:`close` removes every
    stored copy. All methods run on the event loop.
    """

    def __init__(self, store: Store, *, origin: Callable[[], str]) -> None:
        self.store = store
        self.origin = origin
        self.files: dict[str, StoredFile] = {}
        # Signs the blob URLs: random per emulator, so no URL outlives it.
        self._secret = secrets.token_bytes(32)
        self._dir: Path | None = None
        self._dir_fd: int | None = None
        store.add_workspace_listener(self._on_workspace_deleted)

    @property
    def blob_dir(self) -> Path:
        """Where stored copies live (``<workdir root>/_files-<random>``), made on first use."""
        self._dir_descriptor()
        assert self._dir is not None
        return self._dir

    def _dir_descriptor(self) -> int:
        if self._dir_fd is None:
            # Made fresh, so no link planted by a computer's shell (a sibling) can be in its
            # place; instance ids are 8 hex digits, so the name never collides with theirs.
            path = Path(tempfile.mkdtemp(prefix="_files-", dir=self.store.workdir_root))
            self._dir_fd = os.open(path, _DIRECTORY)
            self._dir = path
        return self._dir_fd

    def new_path(self) -> tuple[str, Path]:
        """A fresh file id and the path its bytes go to (create them with :meth:`create`)."""
        file_id = str(uuid.uuid4())
        return file_id, self.blob_dir / file_id

    def create(self, file_id: str) -> BinaryIO:
        """The new file ``file_id`` in :attr:`blob_dir`, open for writing.

        Created through the directory's descriptor, exclusively and without
        following a link: a directory swapped for a link since is not written through.
        """
        return open(file_id, "xb", opener=_no_follow(self._dir_descriptor(), 0o600))

    def remove(self, file_id: str) -> None:
        """Remove the bytes of ``file_id``, if there are any."""
        if self._dir_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file_id, dir_fd=self._dir_fd)

    def get(self, file_id: str) -> StoredFile:
        """The file, or 404 ``file_not_found``."""
        stored = self.files.get(file_id)
        if stored is None:
            raise _not_found()
        return stored

    def add(self, stored: StoredFile) -> StoredFile:
        """Record a file whose bytes are already at ``stored.path``."""
        self.files[stored.id] = stored
        return stored

    def delete(self, file_id: str) -> None:
        """Forget the file and remove its bytes; 404 ``file_not_found`` if unknown."""
        stored = self.files.pop(file_id, None)
        if stored is None:
            raise _not_found()
        self.remove(stored.id)

    def _signature(self, file_id: str, expires: int) -> str:
        message = f"{file_id}.{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def signed_url(self, stored: StoredFile, *, now: float | None = None) -> str:
        """``<origin>/api/files/blob/<id>?exp=<unix>&sig=<hmac>``, valid :data:`URL_LIFETIME` s."""
        expires = int(time.time() if now is None else now) + URL_LIFETIME
        signature = self._signature(stored.id, expires)
        return f"{self.origin()}/api/files/blob/{stored.id}?exp={expires}&sig={signature}"

    def verify(self, file_id: str, expires: str, signature: str) -> bool:
        """True when ``signature`` signs ``file_id`` until ``expires`` and that is not past."""
        try:
            when = int(expires)
        except ValueError:
            return False
        expected = self._signature(file_id, when)
        # Constant-time on bytes (no TypeError on non-ASCII input), then the expiry.
        return hmac.compare_digest(signature.encode(), expected.encode()) and time.time() <= when

    def _on_workspace_deleted(self, workspace: Workspace) -> None:
        for file_id in [f.id for f in self.files.values() if f.project_id == workspace.id]:
            self.delete(file_id)

    def close(self) -> None:
        """Forget every file and remove the stored copies."""
        self.files.clear()
        directory, self._dir = self._dir, None
        fd, self._dir_fd = self._dir_fd, None
        if fd is not None:
            os.close(fd)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- helpers


def _check_filename(name: str | None) -> str:
    if not name:
        raise invalid("file must have a filename")
    if (
        "/" in name
        or "\\" in name
        or "\x00" in name
        or name in (".", "..")
        or len(name.encode("utf-8", "surrogateescape")) > 255
    ):
        raise invalid(f"filename must be a plain file name without a path, got {name!r}")
    return name


def _content_type(filename: str, declared: str | None = None) -> str:
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(filename)[0] or declared or "application/octet-stream"


class _CountedBody:
    """The request body as the multipart reader consumes it: 413 once it passes ``limit``.

    aiohttp's reader skips a preamble and reads part headers line by line with
    no bound on their total; counting every byte it takes bounds all of it.
    Only what the reader calls is here (it holds this in place of the stream).
    """

    def __init__(self, content: StreamReader, limit: int) -> None:
        self._content = content
        self._limit = limit
        self._taken = 0

    def _count(self, data: bytes) -> bytes:
        self._taken += len(data)
        if self._taken > self._limit:
            raise _too_large(f"the body passed {self._limit} bytes", MAX_UPLOAD_BYTES)
        return data

    async def read(self, n: int = -1) -> bytes:
        return self._count(await self._content.read(n))

    async def readline(self, *, max_line_length: int | None = None) -> bytes:
        if max_line_length is None:  # older aiohttp releases take no such argument
            return self._count(await self._content.readline())
        return self._count(await self._content.readline(max_line_length=max_line_length))

    def at_eof(self) -> bool:
        return self._content.at_eof()

    def unread_data(self, data: bytes) -> None:
        self._taken -= len(data)
        with warnings.catch_warnings():
            # Deprecated for applications; aiohttp's own reader pushes a boundary back with it.
            warnings.simplefilter("ignore", DeprecationWarning)
            self._content.unread_data(data)


def _malformed(exc: Exception) -> ApiError:
    detail = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    if isinstance(exc, InvalidHeader) and "filename" in detail:
        # aiohttp refuses a part header holding a NUL (or CR, LF) before its filename is read.
        return invalid(
            f"filename must be a plain file name without a path or control characters ({detail})"
        )
    return ApiError(400, "invalid_body", f"Malformed multipart body: {detail}")


async def _read_field(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(_FIELD_LIMIT):
        data += chunk
        if len(data) > _FIELD_LIMIT:
            raise invalid(f"{name} is too long")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise invalid(f"{name} must be UTF-8 text") from None


async def _spool(part: BodyPartReader, out: BinaryIO) -> int:
    """Copy a file part to ``out``, refusing it (413) as soon as it passes the limit."""
    size = 0
    # Chunks of 64 KiB go to the page cache in microseconds: no thread needed.
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise _too_large("the file part passed the limit", MAX_UPLOAD_BYTES)
        out.write(chunk)
    return size


@contextlib.contextmanager
def _removed_on_error(files: FileStore, file_id: str) -> Iterator[None]:
    """Remove the stored copy when the block fails: none is left without its record."""
    try:
        yield
    except BaseException:
        files.remove(file_id)
        raise


def _no_follow(dir_fd: int | None = None, mode: int = 0o666) -> Callable[[str, int], int]:
    """An ``open()`` opener relative to ``dir_fd`` that refuses a link as the last component."""

    def opener(path: str, flags: int) -> int:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)

    return opener


def _place(source: Path, home: Path, filename: str) -> None:
    """Copy ``source`` to ``home/Desktop/filename`` without following a link on the way.

    ``home`` is the computer's, and its shell may have planted links in it. The
    copy goes to a new hidden file in ``home`` (exclusive, no link followed),
    then is renamed over the name: a symbolic or hard link at the name is
    replaced, never written through. ``Desktop`` must be a real directory.

    Raises:
        OSError: ``home`` or ``Desktop`` is a link or missing, or the copy failed.
    """
    home_fd = os.open(home, _DIRECTORY)
    try:
        desktop_fd = os.open("Desktop", _DIRECTORY, dir_fd=home_fd)
        try:
            # Beside Desktop/, not in it: the file watcher never sees a half-written copy.
            temp = f".orgo-upload-{secrets.token_hex(8)}"
            try:
                with open(source, "rb") as src, open(temp, "xb", opener=_no_follow(home_fd)) as out:
                    shutil.copyfileobj(src, out, _COPY_CHUNK)
                os.replace(temp, filename, src_dir_fd=home_fd, dst_dir_fd=desktop_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=home_fd)
                raise
        finally:
            os.close(desktop_fd)
    finally:
        os.close(home_fd)


def _export_copy(target: Path, files: FileStore, file_id: str) -> int:
    """Copy ``target`` (resolved: no link in it) to a new stored copy; the bytes copied."""
    with open(target, "rb", opener=_no_follow()) as src, files.create(file_id) as out:
        shutil.copyfileobj(src, out, _COPY_CHUNK)
        return out.tell()


def _copy_to(source: Path, homes: list[Path], filename: str) -> None:
    for home in homes:
        try:
            _place(source, home, filename)
        except OSError as exc:
            # The computer may have been deleted meanwhile, or its Desktop made a link.
            log.debug("could not place an upload in %s: %s", home, exc)


def _query_id(request: web.Request) -> str:
    file_id = request.query.get("id")
    if not file_id:
        raise invalid("id is required: the file's id")
    return file_id


def _computer_ref(store: Store, value: object, name: str = "desktopId") -> Computer:
    if not isinstance(value, str) or not value:
        raise invalid(f"{name} is required: a computer's id")
    return store.get_computer(value)


# --------------------------------------------------------------------------- handlers


async def upload_file(request: web.Request) -> web.Response:
    """POST /api/files/upload (multipart: ``file``, ``projectId``, ``desktopId?``)."""
    files = request.app[FILES_KEY]
    store = files.store
    length = request.content_length
    if length is not None and length > MAX_UPLOAD_BYTES + _FORM_SLACK:
        # Refused before a byte of the body is read.
        raise _too_large(f"the request declares {length} bytes", MAX_UPLOAD_BYTES)
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "invalid_body", "Request body must be multipart/form-data")
    file_id, path = files.new_path()
    fields: dict[str, str] = {}
    upload: tuple[str, str, int] | None = None  # filename, content type, size
    with _removed_on_error(files, file_id):
        try:
            body = _CountedBody(request.content, MAX_UPLOAD_BYTES + _FORM_SLACK)
            reader = MultipartReader(request.headers, cast(StreamReader, body))
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise ApiError(400, "invalid_body", "Nested multipart bodies are not supported")
                if part.name == "file":
                    if upload is not None:
                        raise invalid("file must be given once")
                    filename = _check_filename(part.filename)
                    with files.create(file_id) as out:
                        size = await _spool(part, out)
                    declared = part.headers.get("Content-Type")
                    upload = (filename, _content_type(filename, declared), size)
                elif part.name in _FIELDS:
                    fields[part.name] = await _read_field(part, part.name)
                else:
                    # Unknown fields are skipped, but still bounded.
                    await _read_field(part, str(part.name))
        except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
            raise _malformed(exc) from None
        workspace_id = fields.get("projectId") or fields.get("workspaceId")
        other = fields.get("workspaceId")
        if workspace_id is None:
            raise invalid("projectId is required: the workspace's id")
        if other and other != workspace_id:
            raise invalid("projectId and workspaceId name different workspaces")
        if upload is None:
            raise invalid("file is required: the file to upload")
        workspace = store.get_workspace(workspace_id)
        desktop: Computer | None = None
        if fields.get("desktopId"):
            desktop = _computer_ref(store, fields["desktopId"])
            if desktop.workspace_id != workspace.id:
                raise invalid("desktopId must be a computer of the workspace given as projectId")
        filename, content_type, size = upload
        if desktop is not None:
            computers = [desktop]
        else:
            now = store.now()
            computers = [c for c in workspace.computers.values() if c.is_running(now)]
        # Directories are made here, on the loop; the copying runs in a thread.
        homes: list[Path] = []
        for computer in computers:
            try:
                homes.append(store.workdir(computer))
            except OSError as exc:  # its shell left something mkdir cannot pass
                log.debug("could not place an upload for %s: %s", computer.instance_id, exc)
        await asyncio.to_thread(_copy_to, path, homes, filename)
    stored = files.add(
        StoredFile(
            id=file_id,
            filename=filename,
            size_bytes=size,
            content_type=content_type,
            created_at=iso_now(),
            project_id=workspace.id,
            desktop_id=desktop.id if desktop is not None else None,
            source="upload",
            path=path,
        )
    )
    store.counters.uploads += 1
    return web.json_response({"file": stored.to_json()})


async def list_files(request: web.Request) -> web.Response:
    """GET /api/files ``?projectId=&desktopId=`` (both optional filters)."""
    files = request.app[FILES_KEY]
    store = files.store
    workspace_id = request.query.get("projectId") or request.query.get("workspaceId")
    if workspace_id:
        store.get_workspace(workspace_id)  # 404 for an unknown workspace
    desktop_id = request.query.get("desktopId")
    if desktop_id:
        # An instance id names the computer too; a deleted one still filters by its id.
        computer = store.find_computer(desktop_id)
        desktop_id = computer.id if computer is not None else desktop_id
    items = [
        f.to_json()
        for f in files.files.values()
        if (not workspace_id or f.project_id == workspace_id)
        and (not desktop_id or f.desktop_id == desktop_id)
    ]
    return web.json_response({"files": items})


def _home_relative(path: str) -> str:
    if path in ("~", *HOMES):
        return ""
    if path.startswith("~/"):
        return path[2:]
    for home in HOMES:
        if path.startswith(home + "/"):
            return path[len(home) + 1 :]
    if path.startswith(("/", "~")):
        raise _outside_home()
    return path


async def export_file(request: web.Request) -> web.Response:
    """POST /api/files/export ``{desktopId, path}`` → ``{success, file, url}``."""
    files = request.app[FILES_KEY]
    store = files.store
    body = await read_json(request, optional=True)
    computer = _computer_ref(store, body.get("desktopId"))
    if not computer.is_running(store.now()):
        raise platform_unavailable()
    path = body.get("path")
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise invalid(
            "path is required: Desktop/<name>, ~/<name>, /root/<name> or /home/user/<name>"
        )
    relative = _home_relative(path.strip())
    home = store.workdir(computer).resolve()
    target = (home / relative).resolve()
    if not target.is_relative_to(home):
        raise _outside_home()
    if not target.exists():
        raise ApiError(404, "file_not_found", f"File not found: {path}")
    if not target.is_file():
        raise invalid(f"path must name a file, not a directory: {path}")
    size = target.stat().st_size
    if size > MAX_EXPORT_BYTES:
        raise _too_large(f"the file has {size} bytes", MAX_EXPORT_BYTES)
    file_id, blob = files.new_path()
    with _removed_on_error(files, file_id):
        try:
            copied = await asyncio.to_thread(_export_copy, target, files, file_id)
        except FileNotFoundError:
            raise ApiError(404, "file_not_found", f"File not found: {path}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # made a link since it was resolved
                raise _outside_home() from None
            raise
    stored = files.add(
        StoredFile(
            id=file_id,
            filename=target.name,
            size_bytes=copied,
            content_type=_content_type(target.name),
            created_at=iso_now(),
            project_id=computer.workspace_id,
            desktop_id=computer.id,
            source="export",
            path=blob,
        )
    )
    return web.json_response(
        {"success": True, "file": stored.to_json(), "url": files.signed_url(stored)}
    )


async def download_file(request: web.Request) -> web.Response:
    """GET /api/files/download ``?id=`` → ``{url}`` (signed, valid an hour)."""
    files = request.app[FILES_KEY]
    stored = files.get(_query_id(request))
    return web.json_response({"url": files.signed_url(stored)})


async def delete_file(request: web.Request) -> web.Response:
    """DELETE /api/files/delete ``?id=`` → ``{success: true}``."""
    files = request.app[FILES_KEY]
    files.delete(_query_id(request))
    return web.json_response({"success": True})


async def file_blob(request: web.Request) -> web.StreamResponse:
    """GET /api/files/blob/{file_id} ``?exp=&sig=``: the bytes, for whoever holds the URL.

    The middleware lets this route through without the API key; the
    signature is the credential. 403 ``invalid_signature`` when it is
    missing, wrong or expired; 404 when the file was deleted since.
    """
    files = request.app[FILES_KEY]
    file_id = request.match_info["file_id"]
    query = request.query
    if not files.verify(file_id, query.get("exp", ""), query.get("sig", "")):
        raise ApiError(403, "invalid_signature", "Invalid or expired signature")
    stored = files.get(file_id)
    disposition = f"attachment; filename*=UTF-8''{quote(stored.filename, safe='')}"
    headers = {"Content-Type": stored.content_type, "Content-Disposition": disposition}
    with contextlib.suppress(FileNotFoundError):
        if stored.path.is_file():
            return web.FileResponse(stored.path, headers=headers)
    raise _not_found()
