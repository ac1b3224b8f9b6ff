"""The file routes: upload (streamed, 10 MB limit), list, export, signed download, delete."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from orgo_async.emulator import BootTime, Emulator, EmulatorConfig
from orgo_async.emulator.routes.files import MAX_UPLOAD_BYTES

from ..rest import Api, Pc, Reply


@pytest.fixture
def config() -> EmulatorConfig:
    # Boots of 5 ms: these tests start many computers and wait for each.
    return EmulatorConfig(boot=BootTime.fixed(0.005), stop_seconds=0.005, seed=3)


def sign_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_upload_lands_on_the_computers_desktop(api: Api, ws: dict[str, Any], pc: Pc) -> None:
    reply = await api.upload(b"hello file\n", "notes.txt", project=ws["id"], desktop=pc.id)
    assert reply.status == 200, reply.body
    file = reply.body["file"]
    assert set(file) == {
        "id",
        "filename",
        "size_bytes",
        "content_type",
        "created_at",
        "desktop_id",
        "project_id",
        "source",
    }
    assert (file["filename"], file["size_bytes"], file["content_type"]) == (
        "notes.txt",
        11,
        "text/plain",
    )
    assert (file["desktop_id"], file["project_id"], file["source"]) == (pc.id, ws["id"], "upload")
    assert (api.emu.workdir(pc.id) / "Desktop" / "notes.txt").read_bytes() == b"hello file\n"
    listed = await api.act(pc, "platform", "bash", {"command": "ls Desktop; cat Desktop/*"})
    assert listed.body["output"] == "notes.txt\nhello file\n"
    assert api.emu.counters.uploads == 1


async def test_upload_to_a_workspace_reaches_every_running_computer(
    api: Api, ws: dict[str, Any], pc: Pc
) -> None:
    second = await api.running_pc(ws, "c2")
    stopped = await api.running_pc(ws, "c3")
    await api.call("POST", f"/api/computers/{stopped.id}/stop")
    elsewhere = await api.running_pc(await api.workspace("other"), "c4")
    reply = await api.upload(b"shared", "shared.txt", project=ws["id"], field="workspaceId")
    assert reply.status == 200
    assert "desktop_id" not in reply.body["file"]
    for target in (pc, second):
        assert (api.emu.workdir(target.id) / "Desktop" / "shared.txt").read_bytes() == b"shared"
    for target in (stopped, elsewhere):
        assert not (api.emu.workdir(target.id) / "Desktop" / "shared.txt").exists()


async def test_upload_refuses_bad_forms(api: Api, ws: dict[str, Any], pc: Pc) -> None:
    missing = await api.upload(b"x", "x.txt", project=None)
    assert (missing.status, missing.body["code"]) == (400, "invalid_field")
    assert "projectId" in missing.body["error"]
    unknown = await api.upload(b"x", "x.txt", project="nope")
    assert (unknown.status, unknown.body["code"]) == (404, "workspace_not_found")
    other = await api.workspace("other")
    wrong_desktop = await api.upload(b"x", "x.txt", project=other["id"], desktop=pc.id)
    assert (wrong_desktop.status, "desktopId" in wrong_desktop.body["error"]) == (400, True)
    no_desktop = await api.upload(b"x", "x.txt", project=ws["id"], desktop="nope")
    assert no_desktop.status == 404
    # aiohttp's client percent-encodes a "/" in a filename: write the form by hand.
    # The last name is sent as a\\b in the quoted header, which unquotes to a\b.
    for name in ("../escape.txt", "a/b.txt", "..", "a\\\\b"):
        raw = (
            f'--b\r\nContent-Disposition: form-data; name="projectId"\r\n\r\n{ws["id"]}\r\n'
            f'--b\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'
            "x\r\n--b--\r\n"
        )
        reply = await api.call(
            "POST",
            "/api/files/upload",
            data=raw.encode(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert (reply.status, reply.body["code"]) == (400, "invalid_field"), name
        assert "filename" in reply.body["error"]
    not_multipart = await api.call("POST", "/api/files/upload", {"file": "x"})
    assert (not_multipart.status, not_multipart.body["code"]) == (400, "invalid_body")
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("projectId", ws["id"])
    no_file = await api.call("POST", "/api/files/upload", data=form)
    assert (no_file.status, "file is required" in no_file.body["error"]) == (400, True)
    assert list(api.emu.files.blob_dir.iterdir()) == []
    assert api.emu.counters.uploads == 0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


BOUNDARY = "emulator-test-boundary"


def _part(name: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()


async def _post_chunked(
    emu: Emulator, chunks: Iterable[bytes], *, end: bool = False
) -> tuple[int, bytes]:
    """Send an upload as a chunked body; unless ``end``, one that never ends, so that
    the answer must come while it streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    head = (
        "POST /api/files/upload HTTP/1.1\r\n"
        f"Host: {emu.hostport}\r\n"
        f"Authorization: Bearer {emu.api_key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )

    async def send() -> None:
        writer.write(head.encode())
        with contextlib.suppress(ConnectionError):  # the server may hang up after answering
            for data in chunks:
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                await writer.drain()
            if end:
                writer.write(b"0\r\n\r\n")
            await asyncio.Event().wait()

    sending = asyncio.create_task(send())
    try:
        async with asyncio.timeout(10):
            return await _read_response(reader)
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        writer.close()


async def test_an_upload_over_10_mb_is_refused_while_it_streams(
    api: Api, ws: dict[str, Any], pc: Pc
) -> None:
    emu = api.emu
    block = b"\0" * (1 << 20)
    file_part = _part("file", "big.bin")
    status, body = await _post_chunked(
        emu, [file_part] + [block] * (MAX_UPLOAD_BYTES // len(block) + 1)
    )
    assert status == 413
    assert b'"code": "file_too_large"' in body and b'"error": "File too large"' in body

    # A declared length over the limit is refused before any of the body is sent.
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    try:
        writer.write(
            (
                "POST /api/files/upload HTTP/1.1\r\n"
                f"Host: {emu.hostport}\r\n"
                f"Authorization: Bearer {emu.api_key}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {50 * MAX_UPLOAD_BYTES}\r\n\r\n"
            ).encode()
        )
        async with asyncio.timeout(5):
            status, body = await _read_response(reader)
        assert status == 413
    finally:
        writer.close()

    assert list(emu.files.blob_dir.iterdir()) == []
    assert not (emu.workdir(pc.id) / "Desktop" / "big.bin").exists()
    assert emu.counters.uploads == 0


async def test_a_50_mb_body_that_is_no_file_is_refused_while_it_streams(
    api: Api, ws: dict[str, Any]
) -> None:
    # 50 MB of short lines before any boundary: counted as they stream, refused past the limit.
    lines = (b"x" * 1022 + b"\r\n") * 1024
    status, body = await _post_chunked(api.emu, [lines] * 50)
    assert status == 413, body
    assert json.loads(body)["code"] == "file_too_large"
    # The same for many small fields.
    fields = (_part("note") + b"v" * 900 + b"\r\n") * 1000
    head = _part("projectId") + ws["id"].encode() + b"\r\n"
    status, body = await _post_chunked(api.emu, [head] + [fields] * 50)
    assert status == 413, body
    assert api.emu.counters.responses_by_status.get(500) is None


async def test_malformed_multipart_bodies_are_400(api: Api, ws: dict[str, Any], pc: Pc) -> None:
    emu = api.emu
    malformed = {
        "a line of 50 MB": [b"x" * (1 << 20)] * 50,
        "a part header of 50 MB": [_part("file", "a.txt")[:-2] + b"X-Big: "]
        + [b"y" * (1 << 20)] * 50,
        "too many part headers": [_part("file", "a.txt")[:-2] + b"X-A: b\r\n" * 1000],
    }
    for label, chunks in malformed.items():
        status, body = await _post_chunked(emu, chunks)
        assert status == 400, label
        assert json.loads(body)["code"] == "invalid_body", label
    # NUL in a filename, raw in the quoted header (aiohttp refuses such a header) or
    # percent-encoded in filename*: a 400 that names the field.
    for header in ('filename="a\x00b.txt"', "filename*=UTF-8''a%00b.txt"):
        raw = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="projectId"\r\n\r\n'
            f"{ws['id']}\r\n"
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; {header}\r\n\r\n'
            f"x\r\n--{BOUNDARY}--\r\n"
        ).encode()
        status, body = await _post_chunked(emu, [raw], end=True)
        error = json.loads(body)
        assert (status, error["code"]) == (400, "invalid_field"), header
        assert error["error"].startswith("filename must be a plain file name"), header
    assert emu.counters.responses_by_status.get(500) is None
    assert list(emu.files.blob_dir.iterdir()) == []
    assert emu.counters.uploads == 0


async def test_files_list_export_download_delete_round_trip(
    api: Api, ws: dict[str, Any], pc: Pc
) -> None:
    uploaded = (await api.upload(b"up", "up.txt", project=ws["id"], desktop=pc.id)).body["file"]
    (api.emu.workdir(pc.id) / "Desktop" / "report.csv").write_text("a,b\n1,2\n")

    exported = await api.call(
        "POST", "/api/files/export", {"desktopId": pc.id, "path": "Desktop/report.csv"}
    )
    assert exported.status == 200, exported.body
    file = exported.body["file"]
    assert exported.body["success"] is True
    assert (file["filename"], file["size_bytes"], file["source"]) == ("report.csv", 8, "export")
    assert (file["desktop_id"], file["project_id"], file["content_type"]) == (
        pc.id,
        ws["id"],
        "text/csv",
    )

    # The signed URL needs no API key; a tampered or expired one is refused.
    url = exported.body["url"]
    assert url.startswith(f"{api.emu.origin}/api/files/blob/{file['id']}?")
    blob = await api.call("GET", url, auth=False)
    assert (blob.status, blob.raw, blob.headers["Content-Type"]) == (200, b"a,b\n1,2\n", "text/csv")
    assert "report.csv" in blob.headers["Content-Disposition"]
    query = sign_of(url)
    base = url.split("?")[0]
    tampered = {**query, "sig": query["sig"][:-1] + ("0" if query["sig"][-1] != "0" else "1")}
    later = {**query, "exp": str(int(query["exp"]) + 60)}
    other_file = f"{api.emu.origin}/api/files/blob/{uploaded['id']}?{urlencode(query)}"
    for bad in (f"{base}?{urlencode(tampered)}", f"{base}?{urlencode(later)}", base, other_file):
        refused = await api.call("GET", bad, auth=False)
        assert (refused.status, refused.body["code"]) == (403, "invalid_signature"), bad
    stored = api.emu.files.get(file["id"])
    expired = api.emu.files.signed_url(stored, now=time.time() - 3601)
    assert (await api.call("GET", expired, auth=False)).status == 403

    listed = await api.call("GET", "/api/files", params={"projectId": ws["id"]})
    assert [(f["id"], f["source"]) for f in listed.body["files"]] == [
        (uploaded["id"], "upload"),
        (file["id"], "export"),
    ]
    by_desktop = await api.call("GET", "/api/files", params={"desktopId": pc.instance_id})
    assert len(by_desktop.body["files"]) == 2
    assert (await api.call("GET", "/api/files", params={"projectId": "nope"})).status == 404

    download = await api.call("GET", "/api/files/download", params={"id": uploaded["id"]})
    assert download.status == 200
    assert (await api.call("GET", download.body["url"], auth=False)).raw == b"up"

    deleted = await api.call("DELETE", "/api/files/delete", params={"id": uploaded["id"]})
    assert (deleted.status, deleted.body) == (200, {"success": True})
    again = await api.call("DELETE", "/api/files/delete", params={"id": uploaded["id"]})
    assert (again.status, again.body["code"]) == (404, "file_not_found")
    gone = await api.call("GET", "/api/files/download", params={"id": uploaded["id"]})
    assert gone.status == 404
    assert (await api.call("GET", download.body["url"], auth=False)).status == 404
    assert (await api.call("GET", "/api/files/download")).status == 400
    listed = await api.call("GET", "/api/files", params={"projectId": ws["id"]})
    assert [f["id"] for f in listed.body["files"]] == [file["id"]]


async def test_an_upload_never_follows_a_link_planted_on_its_way(
    api: Api, ws: dict[str, Any], pc: Pc, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep me")

    async def shell(command: str) -> int:
        reply = await api.act(pc, "platform", "bash", {"command": command})
        assert reply.status == 200, reply.body
        code: int = reply.body["exit_code"]
        return code

    async def upload(name: str) -> None:
        reply = await api.upload(b"uploaded", name, project=ws["id"], desktop=pc.id)
        assert reply.status == 200, reply.body

    # Planted by the computer's own shell: links at the destinations, and where the
    # emulator keeps its stored copies (beside the computers' directories).
    planted = (
        f"ln -s {victim} Desktop/notes.txt && ln -s {outside}/made.txt Desktop/new.txt"
        f" && ln -s {outside} ../_files"
    )
    assert await shell(planted) == 0
    names = ["notes.txt", "new.txt"]
    if await shell(f"ln {victim} Desktop/hard.txt") == 0:  # a hard link: same file system only
        names.append("hard.txt")
    desktop = api.emu.workdir(pc.id) / "Desktop"
    for name in names:
        await upload(name)
        # The link was replaced by the upload, never written through.
        assert not (desktop / name).is_symlink()
        assert (desktop / name).read_bytes() == b"uploaded"
    assert victim.read_text() == "keep me"
    assert sorted(os.listdir(outside)) == ["victim.txt"]
    assert not [p for p in os.listdir(desktop.parent) if p.startswith(".")]  # no copy left

    # A Desktop that is itself a link to elsewhere receives nothing.
    assert await shell(f"rm -rf Desktop && ln -s {outside} Desktop") == 0
    await upload("through.txt")
    assert sorted(os.listdir(outside)) == ["victim.txt"]
    assert victim.read_text() == "keep me"


async def test_export_paths(api: Api, ws: dict[str, Any], pc: Pc, tmp_path: Path) -> None:
    home = api.emu.workdir(pc.id)
    (home / "top.txt").write_text("top")
    (home / "Desktop" / "d.txt").write_text("desk")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (home / "Desktop" / "link.txt").symlink_to(outside)

    async def export(path: str, desktop: str = pc.id) -> Reply:
        return await api.call("POST", "/api/files/export", {"desktopId": desktop, "path": path})

    for path, name in (
        ("~/top.txt", "top.txt"),
        ("/home/user/Desktop/d.txt", "d.txt"),
        ("top.txt", "top.txt"),
    ):
        reply = await export(path)
        assert (reply.status, reply.body["file"]["filename"]) == (200, name), path
    for path in ("/etc/passwd", "/rootx/d.txt", "../../../etc/passwd", "Desktop/link.txt"):
        reply = await export(path)
        assert (reply.status, reply.body["error"]) == (403, "Path outside the home directory")
    assert (await export("Desktop/missing.txt")).status == 404
    assert (await export("Desktop")).status == 400
    assert (await export("", pc.id)).status == 400
    assert (await export("top.txt", "nope")).status == 404
    await api.call("POST", f"/api/computers/{pc.id}/stop")
    stopped = await export("top.txt")
    assert (stopped.status, stopped.body["code"]) == (400, "desktop_unavailable")


async def test_deleting_a_workspace_deletes_its_files(api: Api, ws: dict[str, Any], pc: Pc) -> None:
    kept_ws = await api.workspace("kept")
    doomed = (await api.upload(b"1", "a.txt", project=ws["id"])).body["file"]
    kept = (await api.upload(b"2", "b.txt", project=kept_ws["id"])).body["file"]
    assert (await api.call("DELETE", f"/api/workspaces/{ws['id']}")).status == 200
    listed = await api.call("GET", "/api/files")
    assert [f["id"] for f in listed.body["files"]] == [kept["id"]]
    assert not (api.emu.files.blob_dir / doomed["id"]).exists()
    assert (api.emu.files.blob_dir / kept["id"]).exists()
