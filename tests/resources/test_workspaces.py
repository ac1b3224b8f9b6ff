"""orgo.workspaces against the emulator, including the /projects drift."""

from __future__ import annotations

import pytest

from orgo_async import InvalidRequestError, NotFoundError, Orgo
from orgo_async.emulator import Emulator


async def test_create_list_get_by_name_delete(orgo: Orgo, emulator: Emulator) -> None:
    ws = await orgo.workspaces.create("alpha", status="active")
    assert ws.name == "alpha" and ws.id
    listed = await orgo.workspaces.list()
    assert [w.id for w in listed] == [ws.id]
    assert (await orgo.workspaces.get(ws.id)).name == "alpha"
    assert (await orgo.workspaces.get_by_name("alpha")).id == ws.id
    await orgo.workspaces.delete(ws.id)
    assert await orgo.workspaces.list() == []
    with pytest.raises(NotFoundError):
        await orgo.workspaces.get(ws.id)


async def test_duplicate_name_and_bad_input(orgo: Orgo, emulator: Emulator) -> None:
    await orgo.workspaces.create("dup")
    with pytest.raises(InvalidRequestError) as info:
        await orgo.workspaces.create("dup")
    assert info.value.code == "name_exists"
    before = sum(emulator.counters.requests.values())
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        await orgo.workspaces.create("  ")
    with pytest.raises(ValueError, match="status must be one of active, inactive"):
        await orgo.workspaces.create("x", status="paused")
    with pytest.raises(ValueError, match="workspace_id must be a non-empty string"):
        await orgo.workspaces.get("")
    assert sum(emulator.counters.requests.values()) == before


async def test_get_by_name_missing(orgo: Orgo) -> None:
    await orgo.workspaces.create("present")
    with pytest.raises(NotFoundError, match="no workspace named 'absent'"):
        await orgo.workspaces.get_by_name("absent")


async def test_falls_back_to_projects_and_remembers(orgo: Orgo, emulator: Emulator) -> None:
    emulator.config.workspaces_path_missing = True
    emulator.config.list_key = "projects"
    ws = await orgo.workspaces.create("legacy")
    assert [w.name for w in await orgo.workspaces.list()] == ["legacy"]
    assert (await orgo.workspaces.get(ws.id)).id == ws.id
    await orgo.workspaces.delete(ws.id)  # DELETE /projects answers 405: POST .../delete
    assert await orgo.workspaces.list() == []
    routes = emulator.counters.requests
    # After the first fallback the session goes straight to /projects.
    assert sum(v for k, v in routes.items() if "/workspaces" in k) == 1
    assert routes["DELETE /api/projects/{workspace_id}"] == 1
    assert routes["POST /api/projects/{workspace_id}/delete"] == 1


async def test_not_found_through_both_paths(orgo: Orgo, emulator: Emulator) -> None:
    with pytest.raises(NotFoundError) as info:
        await orgo.workspaces.get("no-such-id")
    assert info.value.path.endswith("/workspaces/no-such-id")
