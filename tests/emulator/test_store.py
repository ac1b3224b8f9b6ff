"""The store's state machine: statuses, failed boots, stop/start/restart, limits, seeds.

Lifecycle tests that need exact timing use a fake clock injected into the
emulator; the others use a real clock with a 20 ms boot and poll health.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from orgo_async.emulator import BootTime, Emulator, EmulatorConfig
from orgo_async.emulator.store import ComputerSpec

from .rest import Api, FakeClock, running_computer


async def test_status_sequence_on_fake_clock(fapi: Api, clock: FakeClock) -> None:
    ws = await fapi.workspace()
    computer = await fapi.computer(ws["id"])
    cid, iid = computer["id"], computer["instance_id"]
    ready_at = fapi.emu.state.computers[cid].ready_at
    assert ready_at == clock.now + 1.0

    async def status() -> str:
        value: str = (await fapi.call("GET", f"/api/computers/{cid}")).body["status"]
        return value

    assert await status() == "creating"
    clock.advance(0.19)
    assert await status() == "creating"
    clock.advance(0.02)
    assert await status() == "starting"
    clock.now = ready_at - 1e-6
    assert (await fapi.health(iid)).status == 503
    assert fapi.emu.counters.healthy_at == {}
    clock.now = ready_at
    assert (await fapi.health(iid)).status == 200
    assert await status() == "running"
    assert fapi.emu.counters.healthy_at == {cid: ready_at}


async def test_boot_failure_rate(api: Api) -> None:
    api.emu.config.boot_failure_rate = 1.0
    ws = await api.workspace()
    computer = await api.computer(ws["id"])
    ready_at = api.emu.state.computers[computer["id"]].ready_at
    await asyncio.sleep(max(0.0, ready_at - time.monotonic()) + 0.01)
    for _ in range(3):
        assert (await api.health(computer["instance_id"])).status == 503
    get = await api.call("GET", f"/api/computers/{computer['id']}")
    assert get.body["status"] == "error"
    assert computer["id"] not in api.emu.counters.healthy_at
    # An errored computer can be started again; with failures off it comes up.
    api.emu.config.boot_failure_rate = 0.0
    start = await api.call("POST", f"/api/computers/{computer['id']}/start")
    assert start.body == {"success": True, "status": "starting"}
    await api.wait_running(computer)


async def test_stop_start_restart_transitions(fapi: Api, clock: FakeClock) -> None:
    computer = await running_computer(fapi, clock)
    cid = computer["id"]
    path = f"/api/computers/{cid}"

    async def status() -> str:
        value: str = (await fapi.call("GET", path)).body["status"]
        return value

    async def password() -> str:
        value: str = (await fapi.call("GET", path + "/vnc-password")).body["password"]
        return value

    assert await status() == "running"
    original = await password()
    assert original == computer["vnc_password"]

    not_stopped = await fapi.call("POST", path + "/start")
    assert (not_stopped.status, not_stopped.body["code"]) == (409, "not_stopped")

    stop = await fapi.call("POST", path + "/stop")
    assert (stop.status, stop.body) == (200, {"success": True, "status": "stopping"})
    assert await status() == "stopping"
    assert (await fapi.health(cid)).status == 503
    again = await fapi.call("POST", path + "/stop")
    assert (again.status, again.body["code"]) == (409, "not_running")
    clock.advance(0.5)
    assert await status() == "stopped"
    assert (await fapi.call("POST", path + "/stop")).status == 409
    restart_stopped = await fapi.call("POST", path + "/restart")
    assert (restart_stopped.status, restart_stopped.body["code"]) == (409, "not_running")

    start = await fapi.call("POST", path + "/start")
    assert (start.status, start.body) == (200, {"success": True, "status": "starting"})
    assert await status() == "starting"
    started_password = await password()
    assert started_password != original
    clock.advance(1.0)
    assert await status() == "running"

    restart = await fapi.call("POST", path + "/restart")
    assert (restart.status, restart.body) == (200, {"success": True, "status": "restarting"})
    assert await status() == "restarting"
    assert (await fapi.health(cid)).status == 503
    restarted = await fapi.call("GET", path)
    assert restarted.body["vnc_password"] not in (original, started_password)
    assert restarted.body["vnc_password"] == await password()
    assert restarted.body["instance_id"] == computer["instance_id"]  # stable across restarts
    clock.advance(1.0)
    assert await status() == "running"
    assert (await fapi.health(cid)).status == 200


async def test_stop_during_boot(fapi: Api, clock: FakeClock) -> None:
    ws = await fapi.workspace()
    computer = await fapi.computer(ws["id"])
    stop = await fapi.call("POST", f"/api/computers/{computer['id']}/stop")
    assert stop.status == 200
    clock.advance(5)
    assert (await fapi.call("GET", f"/api/computers/{computer['id']}")).body["status"] == "stopped"
    assert fapi.emu.counters.healthy_at == {}


async def test_create_rate_limit(fapi: Api, clock: FakeClock) -> None:
    fapi.emu.config.create_rate_limit = 2.0
    ws, other = await fapi.workspace("a"), await fapi.workspace("b")
    await fapi.computer(ws["id"], "c1")
    await fapi.computer(ws["id"], "c2")  # burst of 2
    limited = await fapi.call("POST", "/api/computers", {"workspace_id": ws["id"], "name": "c3"})
    assert (limited.status, limited.body["code"]) == (429, "rate_limited")
    assert limited.headers["Retry-After"] == "1"
    assert limited.body["retry_after"] == pytest.approx(0.5)
    await fapi.computer(other["id"], "c3")  # per workspace
    clock.advance(0.5)
    await fapi.computer(ws["id"], "c3")
    assert fapi.emu.counters.create_attempts == 5
    assert fapi.emu.counters.creates == 4

    fapi.emu.config.create_rate_limit = 0.25  # burst 1, one token every 4 s
    clock.advance(10)
    await fapi.computer(ws["id"], "c4")
    slow = await fapi.call("POST", "/api/computers", {"workspace_id": ws["id"], "name": "c5"})
    assert (slow.status, slow.headers["Retry-After"]) == (429, "4")


async def test_max_computers(fapi: Api, clock: FakeClock) -> None:
    fapi.emu.config.max_computers = 1
    computer = await running_computer(fapi, clock)
    over = await fapi.call(
        "POST", "/api/computers", {"workspace_id": computer["workspace_id"], "name": "c2"}
    )
    assert (over.status, over.body["code"]) == (403, "plan_limit")
    clone = await fapi.call("POST", f"/api/computers/{computer['id']}/clone")
    assert (clone.status, clone.body["code"]) == (403, "plan_limit")
    await fapi.call("DELETE", f"/api/computers/{computer['id']}")
    await fapi.computer(computer["workspace_id"], "c2")


async def test_seeded_boot_times_are_reproducible() -> None:
    async def boot_times() -> list[float]:
        config = EmulatorConfig(boot=BootTime.long_tail(0.3), seed=42)
        async with Emulator(config, clock=FakeClock()) as emu:
            ws = emu.state.create_workspace("w")
            specs = [ComputerSpec(name=f"c{i}") for i in range(5)]
            return [emu.state.create_computer(ws, spec).boot_seconds for spec in specs]

    assert await boot_times() == await boot_times()
