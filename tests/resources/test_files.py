"""orgo.files against the emulator: upload, list, export, download, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from orgo_async import (
    MAX_UPLOAD_BYTES,
    Computer,
    NotFoundError,
    Orgo,
    PermissionDeniedError,
    Workspace,
)
from orgo_async.emulator import Emulator


@pytest.fixture
async def computer(orgo: Orgo, workspace: Workspace) -> Computer:
    return (await orgo.computers.launch(workspace_id=workspace.id, name="files")).computer


async def test_upload_lands_on_the_desktop_and_shows_in_bash_ls(
    orgo: Orgo, workspace: Workspace, computer: Computer, emulator: Emulator, tmp_path: Path
) -> None:
    source = tmp_path / "report.txt"
    source.write_text("numbers: 1 2 3\n")
    info = await orgo.files.upload(source, workspace_id=workspace.id, computer=computer)
    assert (info.filename, info.size_bytes) == ("report.txt", 15)
    landed = emulator.workdir(computer.id) / "Desktop" / "report.txt"
    assert landed.read_text() == "numbers: 1 2 3\n"
    listing = await orgo.desktop(computer).bash("ls Desktop")
    assert "report.txt" in listing.output.split()
    from_bytes = await orgo.files.upload(
        b"\x00\x01", workspace_id=workspace.id, computer=computer, filename="blob.bin"
    )
    assert from_bytes.size_bytes == 2


async def test_over_10_mb_is_refused_before_sending(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        out.truncate(MAX_UPLOAD_BYTES + 1)
    before = dict(emulator.counters.requests)
    with pytest.raises(ValueError, match="at most 10,485,760 bytes"):
        await orgo.files.upload(big, workspace_id=workspace.id)
    with pytest.raises(ValueError, match="10 MB"):
        await orgo.files.upload(
            bytes(MAX_UPLOAD_BYTES + 1), workspace_id=workspace.id, filename="x.bin"
        )
    with pytest.raises(ValueError, match="needs filename"):
        await orgo.files.upload(b"x", workspace_id=workspace.id)
    # A name that is not one plain file name, refused naming the argument (a backslash
    # was silently renamed on the way, a NUL failed with a message naming nothing).
    for name in ("a\x00b.txt", "dir\\x.txt", "a/b.txt", ".", ".."):
        with pytest.raises(ValueError, match=r"^filename must be a plain file name") as info:
            await orgo.files.upload(b"x", workspace_id=workspace.id, filename=name)
        assert repr(name) in str(info.value)
    assert emulator.counters.requests == before
    with pytest.raises(FileNotFoundError):
        await orgo.files.upload(tmp_path / "missing", workspace_id=workspace.id)


async def test_list_export_download_delete(
    orgo: Orgo, workspace: Workspace, computer: Computer, emulator: Emulator
) -> None:
    (emulator.workdir(computer.id) / "Desktop" / "out.csv").write_text("a,b\n1,2\n")
    exported = await orgo.files.export(computer, "Desktop/out.csv")
    assert exported.file.filename == "out.csv"
    assert exported.url not in repr(exported)  # the signed URL stays out of reprs
    files = await orgo.files.list(workspace_id=workspace.id)
    assert [f.id for f in files] == [exported.file.id]
    assert await orgo.files.download(exported.file.id) == b"a,b\n1,2\n"
    await orgo.files.delete(exported.file.id)
    assert await orgo.files.list(workspace_id=workspace.id) == []
    with pytest.raises(NotFoundError):
        await orgo.files.delete(exported.file.id)
    with pytest.raises(PermissionDeniedError):
        await orgo.files.export(computer, "/etc/passwd")
