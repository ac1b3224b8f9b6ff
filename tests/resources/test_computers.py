"""orgo.computers against the emulator: every endpoint, happy and error paths."""

from __future__ import annotations

import asyncio

import pytest

from orgo_async import (
    ComputerStatus,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    Orgo,
    ReadyTimeout,
    Workspace,
)
from orgo_async.emulator import BootTime, Emulator, FaultRule

from ..conftest import TEST_BOOT, eventually


async def test_create_returns_every_documented_field(orgo: Orgo, workspace: Workspace) -> None:
    c = await orgo.computers.create(
        workspace_id=workspace.id, name="agent-1", ram=8, cpu=2, resolution="1024x768x24"
    )
    assert c.name == "agent-1" and c.workspace_id == workspace.id
    assert (c.ram, c.cpu, c.resolution, c.os) == (8, 2, "1024x768x24", "linux")
    assert c.status in (ComputerStatus.CREATING, ComputerStatus.STARTING)
    assert c.instance_id and c.connection_url and c.connection_url.endswith(c.instance_id)
    assert c.vnc_password and len(c.vnc_password) == 16
    assert c.project_name == "tests"
    assert c.created_at is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ram", 5),
        ("cpu", 3),
        ("resolution", "big"),
        ("name", ""),
        ("auto_stop_minutes", -1),
        ("disk_size_gb", -8),
    ],
)
async def test_bad_fields_fail_before_any_request(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, field: str, value: object
) -> None:
    emulator.counters.reset()
    fields: dict[str, object] = {"workspace_id": workspace.id, "name": "x", field: value}
    with pytest.raises(ValueError, match=field):
        await orgo.computers.create(**fields)  # type: ignore[arg-type]
    assert emulator.counters.requests == {}
    assert emulator.counters.create_attempts == 0


async def test_duplicate_name_is_a_conflict(orgo: Orgo, workspace: Workspace) -> None:
    await orgo.computers.create(workspace_id=workspace.id, name="same")
    with pytest.raises(ConflictError) as info:
        await orgo.computers.create(workspace_id=workspace.id, name="same")
    assert info.value.status == 409 and info.value.code == "name_exists"
    assert len(await orgo.computers.list(workspace.id)) == 1


async def test_unknown_workspace_and_computer(orgo: Orgo) -> None:
    with pytest.raises(NotFoundError):
        await orgo.computers.create(workspace_id="nope", name="x")
    with pytest.raises(NotFoundError) as info:
        await orgo.computers.get("0000-missing")
    assert info.value.code == "computer_not_found"
    with pytest.raises(NotFoundError):
        await orgo.computers.delete("0000-missing")
    await orgo.computers.delete("0000-missing", missing_ok=True)


async def test_get_list_find_delete(orgo: Orgo, workspace: Workspace, emulator: Emulator) -> None:
    a = await orgo.computers.create(workspace_id=workspace.id, name="a")
    b = await orgo.computers.create(workspace_id=workspace.id, name="b")
    other = await orgo.workspaces.create("other")
    await orgo.computers.create(workspace_id=other.id, name="a")
    assert (await orgo.computers.get(a.id)).name == "a"
    assert {c.id for c in await orgo.computers.list(workspace.id)} == {a.id, b.id}
    assert len(await orgo.computers.list()) == 3
    found = await orgo.computers.find(workspace.id, "b")
    assert found is not None and found.id == b.id
    assert await orgo.computers.find(workspace.id, "zzz") is None
    await orgo.computers.delete(a)
    with pytest.raises(NotFoundError):
        await orgo.computers.get(a.id)
    assert emulator.counters.live == 2


async def test_stop_start_restart_rotate_the_password(orgo: Orgo, workspace: Workspace) -> None:
    launched = await orgo.computers.launch(workspace_id=workspace.id, name="life")
    c = launched.computer
    assert await orgo.computers.stop(c) == ComputerStatus.STOPPING
    with pytest.raises(ConflictError):
        await orgo.computers.stop(c)
    await orgo.computers._wait_for_status(c, ComputerStatus.STOPPED, 5.0, None)
    before = (await orgo.computers.vnc_password(c)).password
    assert await orgo.computers.start(c) == ComputerStatus.STARTING
    with pytest.raises(ConflictError):
        await orgo.computers.start(c)
    after_start = await orgo.computers.get(c)
    assert after_start.vnc_password != before
    await orgo.computers.wait_ready(after_start, timeout=5)
    assert await orgo.computers.restart(c) == ComputerStatus.RESTARTING
    creds = await orgo.computers.vnc_password(c)
    assert creds.password not in (before, after_start.vnc_password)
    assert creds.desktop_api_token
    assert creds.password not in repr(creds)


async def test_restart_falls_back_to_stop_then_start_on_405(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.legacy_restart = True
    c = (await orgo.computers.launch(workspace_id=workspace.id, name="legacy")).computer
    status = await orgo.computers.restart(c, stop_timeout=5)
    assert status == ComputerStatus.STARTING
    routes = emulator.counters.requests
    assert routes["POST /api/computers/{computer_id}/restart"] == 1
    assert routes["POST /api/computers/{computer_id}/stop"] == 1
    assert routes["POST /api/computers/{computer_id}/start"] == 1
    fresh = await orgo.computers.get(c)
    assert fresh.vnc_password != c.vnc_password
    await orgo.computers.wait_ready(fresh, timeout=5)


async def test_clone_move(orgo: Orgo, workspace: Workspace) -> None:
    c = await orgo.computers.create(workspace_id=workspace.id, name="src")
    with pytest.raises(InvalidRequestError) as info:
        await orgo.computers.clone(c)  # not running yet
    assert info.value.code == "NOT_CLONABLE"
    await orgo.computers.wait_ready(c, timeout=5)
    clone = await orgo.computers.clone(c)
    assert clone.name == "src (clone)" and clone.id != c.id
    named = await orgo.computers.clone(c, name="copy")
    assert named.name == "copy"
    with pytest.raises(ValueError, match="name"):
        await orgo.computers.clone(c, name="")
    target = await orgo.workspaces.create("target")
    await orgo.computers.move(named, workspace_id=target.id)
    assert [x.name for x in await orgo.computers.list(target.id)] == ["copy"]
    with pytest.raises(InvalidRequestError):
        await orgo.computers.move(named, workspace_id=target.id)


async def test_resize(orgo: Orgo, workspace: Workspace, emulator: Emulator) -> None:
    c = (await orgo.computers.launch(workspace_id=workspace.id, name="big")).computer
    with pytest.raises(ValueError, match="at least one"):
        await orgo.computers.resize(c)
    with pytest.raises(ValueError, match="vcpus must be one of 1, 2, 4, 8, 16"):
        await orgo.computers.resize(c, vcpus=3)
    with pytest.raises(ValueError, match="mem_gb must be one of 4, 8, 16, 32"):
        await orgo.computers.resize(c, mem_gb=64)
    result = await orgo.computers.resize(c, disk_size_gb=16)
    assert result.disk_size_gb == 16 and not result.partial
    assert result.results["disk_size_gb"].ok
    result = await orgo.computers.resize(c, vcpus=4, mem_gb=8)
    assert (result.vcpus, result.mem_gb) == (4, 8)
    fresh = await orgo.computers.get(c)
    assert (fresh.cpu, fresh.ram) == (4, 8)
    assert fresh.vnc_password != c.vnc_password  # a CPU/memory change restarts it
    with pytest.raises(ConflictError):
        await orgo.computers.resize(c, vcpus=2)  # restarting, not running


async def test_auto_stop(orgo: Orgo, workspace: Workspace) -> None:
    c = await orgo.computers.create(workspace_id=workspace.id, name="auto")
    assert (await orgo.computers.get_auto_stop(c)).auto_stop_minutes is None
    assert (await orgo.computers.set_auto_stop(c, 30)).auto_stop_minutes == 30
    assert (await orgo.computers.get_auto_stop(c)).auto_stop_minutes == 30
    with pytest.raises(ValueError, match="minutes must be a whole number >= 0"):
        await orgo.computers.set_auto_stop(c, -5)


async def test_drifted_answers_still_work(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.omit_instance_id = True
    c = await orgo.computers.create(workspace_id=workspace.id, name="drift")
    assert c.instance_id  # from fly_instance_id
    info = await orgo.computers.wait_ready(c, timeout=5)
    assert info.ready - info.since >= TEST_BOOT * 0.5


# -- launch -------------------------------------------------------------------------


async def test_launch_hands_over_a_running_computer_with_its_timing(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    launched = await orgo.computers.launch(workspace_id=workspace.id, name="l", ram=8)
    computer, timing = launched.computer, launched.timing
    # Seen ready: the object says so (it was "creating" in the create's answer).
    assert computer.status is ComputerStatus.RUNNING and computer.ram == 8
    assert timing.request_sent <= timing.create_answered <= timing.ready_detected
    assert timing.ready_detected >= emulator.counters.healthy_at[computer.id]
    assert timing.probes == emulator.counters.health_probes[computer.id] >= 1
    shown = repr(timing)
    assert "create=" in shown and "ready=" in shown and "ms" in shown


async def test_a_launch_that_never_gets_ready_is_deleted(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(30.0)
    with pytest.raises(ReadyTimeout):
        await orgo.computers.launch(workspace_id=workspace.id, name="slow", ready_timeout=0.3)
    assert emulator.counters.live == 0
    with pytest.raises(ValueError, match="ready_timeout must be a number of seconds > 0"):
        await orgo.computers.launch(workspace_id=workspace.id, name="x", ready_timeout=-1)
    assert emulator.counters.creates == 1  # the bad one sent nothing


@pytest.mark.parametrize("where", ["create in flight", "create answered", "probing"])
async def test_a_cancelled_launch_leaves_no_computer(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, where: str
) -> None:
    # The create takes 0.2 s to answer, the boot 0.3 s: cancel inside each phase.
    emulator.faults.add(FaultRule(kind="delay", delay=0.2, method="POST", path=r"/computers$"))
    emulator.config.boot = BootTime.fixed(0.3)
    at = {"create in flight": 0.1, "create answered": 0.21, "probing": 0.35}[where]
    launches = [
        asyncio.create_task(orgo.computers.launch(workspace_id=workspace.id, name=f"c{n}"))
        for n in range(20)
    ]
    await asyncio.sleep(at)
    for task in launches:
        task.cancel()
    results = await asyncio.gather(*launches, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    # Every create landed (or will, shielded); none may be left alive.
    await eventually(lambda: emulator.counters.creates == 20)
    await eventually(lambda: emulator.counters.live == 0)
