"""The emulator driven by plain aiohttp requests (no SDK), on an ephemeral port.

Lifecycle tests that need exact timing use a fake clock injected into the
emulator; the others use a real clock with a 20 ms boot and poll health.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs
import pytest

import orgo_async.emulator as emulator_pkg
from orgo_async.emulator import BootTime, Counters, Emulator, EmulatorConfig, FaultRule, Faults
from orgo_async.emulator.__main__ import add_arguments, config_from_args, faults_from_args

FAST_BOOT = BootTime.fixed(0.02)
REPO_ROOT = Path(emulator_pkg.__file__).resolve().parents[2]
HEX8 = re.compile(r"^[0-9a-f]{8}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


# --------------------------------------------------------------------------- harness


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.frozen
class Reply:
    status: int
    body: Any
    headers: Any


class Api:
    """A raw aiohttp session against one emulator, with the right key by default."""

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session
        self.auth = {"Authorization": f"Bearer {emu.api_key}"}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        data: str | bytes | None = None,
    ) -> Reply:
        async with self.session.request(
            method,
            self.emu.origin + path,
            json=body,
            data=data,
            headers=self.auth if headers is None else headers,
        ) as resp:
            payload = await resp.json() if resp.content_type == "application/json" else None
            return Reply(resp.status, payload, resp.headers)

    async def workspace(self, name: str = "ws") -> dict[str, Any]:
        reply = await self.call("POST", "/api/workspaces", {"name": name})
        assert reply.status == 201, reply.body
        body: dict[str, Any] = reply.body
        return body

    async def computer(self, workspace_id: str, name: str = "c1", **fields: Any) -> dict[str, Any]:
        reply = await self.call(
            "POST", "/api/computers", {"workspace_id": workspace_id, "name": name, **fields}
        )
        assert reply.status == 201, reply.body
        body: dict[str, Any] = reply.body
        return body

    async def health(self, key: str) -> Reply:
        return await self.call("GET", f"/api/desktops/{key}/proxy/health")

    async def wait_running(self, computer: dict[str, Any], timeout: float = 5.0) -> int:
        """Poll health until 200; returns the number of probes."""
        probes = 0
        async with asyncio.timeout(timeout):
            while True:
                probes += 1
                if (await self.health(computer["id"])).status == 200:
                    return probes
                await asyncio.sleep(0.003)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(boot=FAST_BOOT, stop_seconds=0.01, seed=7)) as emulator:
        yield emulator


@pytest.fixture
async def api(emu: Emulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(emu, session)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def femu(clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator on a fake clock: boots take exactly 1 s, stops 0.5 s."""
    config = EmulatorConfig(boot=BootTime.fixed(1.0), stop_seconds=0.5)
    async with Emulator(config, clock=clock) as emulator:
        yield emulator


@pytest.fixture
async def fapi(femu: Emulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(femu, session)


async def running_computer(
    fapi: Api, clock: FakeClock, name: str = "c1", **fields: Any
) -> dict[str, Any]:
    ws = await fapi.workspace(f"ws-{name}")
    computer = await fapi.computer(ws["id"], name, **fields)
    clock.advance(1.0)
    return computer


# --------------------------------------------------------------------------- surface


def test_public_surface() -> None:
    assert sorted(emulator_pkg.__all__) == [
        "BootTime",
        "Counters",
        "Emulator",
        "EmulatorConfig",
        "FaultRule",
        "Faults",
    ]


async def test_urls_and_exit_leave_nothing_behind() -> None:
    async with Emulator(EmulatorConfig(boot=FAST_BOOT)) as emu:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api", emu.base_url)
        assert emu.base_url == emu.origin + "/api"
        assert emu.port > 0
        async with aiohttp.ClientSession() as session:
            api = Api(emu, session)
            ws = await api.workspace()
            await api.computer(ws["id"])
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(RuntimeError):
        await emu.start()


# --------------------------------------------------------------------------- auth


async def test_auth_required(api: Api) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {api.emu.api_key}"},
        {"Authorization": "Bearer sk_émulator"},
    ):
        reply = await api.call("GET", "/api/workspaces", headers=headers)
        assert reply.status == 401
        assert reply.body["error"] == "Invalid API key"
        assert reply.body["code"] == "invalid_api_key"
        assert reply.body["request_id"] == reply.headers["X-Request-Id"]
    # Health, unknown /api paths and admin routes need the key as well.
    assert (await api.call("GET", "/api/desktops/x/proxy/health", headers={})).status == 401
    assert (await api.call("GET", "/api/nowhere", headers={})).status == 401
    assert (await api.call("GET", "/_emulator/counters", headers={})).status == 401


async def test_request_ids_and_json_errors_everywhere(api: Api) -> None:
    ok = await api.call("GET", "/api/workspaces")
    assert re.fullmatch(r"req_[0-9a-f]{16}", ok.headers["X-Request-Id"])
    missing = await api.call("GET", "/api/nowhere")
    assert missing.status == 404
    assert missing.body["code"] == "not_found"
    assert missing.body["request_id"] == missing.headers["X-Request-Id"]
    wrong_verb = await api.call("PUT", "/api/computers")
    assert wrong_verb.status == 405
    assert wrong_verb.body["code"] == "method_not_allowed"
    assert ok.headers["X-Request-Id"] != missing.headers["X-Request-Id"]


# --------------------------------------------------------------------------- workspaces


async def test_workspace_crud(api: Api) -> None:
    created = await api.call(
        "POST", "/api/workspaces", {"name": "prod", "icon_url": "https://x/i.png"}
    )
    assert created.status == 201
    ws = created.body
    assert UUID.match(ws["id"]) and UUID.match(ws["user_id"])
    assert ws["name"] == "prod" and ws["status"] == "active"
    assert ws["icon_url"] == "https://x/i.png" and ws["desktops"] == []
    assert ISO_Z.match(ws["created_at"]) and ISO_Z.match(ws["updated_at"])

    duplicate = await api.call("POST", "/api/workspaces", {"name": "prod"})
    assert (duplicate.status, duplicate.body["code"]) == (400, "name_exists")
    for body in ({}, {"name": ""}, {"name": 3}):
        reply = await api.call("POST", "/api/workspaces", body)
        assert (reply.status, reply.body["code"]) == (400, "name_required")
    bad_status = await api.call("POST", "/api/workspaces", {"name": "x", "status": "paused"})
    assert (bad_status.status, bad_status.body["code"]) == (400, "invalid_status")
    bad_json = await api.call("POST", "/api/workspaces", data="{nope", headers=api.auth)
    assert (bad_json.status, bad_json.body["code"]) == (400, "invalid_json")
    inactive = await api.call("POST", "/api/workspaces", {"name": "idle", "status": "inactive"})
    assert inactive.body["status"] == "inactive"

    computer = await api.computer(ws["id"], "agent")
    one = await api.call("GET", f"/api/workspaces/{ws['id']}")
    assert one.status == 200
    assert [d["id"] for d in one.body["desktops"]] == [computer["id"]]
    listing = await api.call("GET", "/api/workspaces")
    assert sorted(w["name"] for w in listing.body["workspaces"]) == ["idle", "prod"]
    item = next(w for w in listing.body["workspaces"] if w["id"] == ws["id"])
    assert item["desktops"][0]["id"] == computer["id"]

    deleted = await api.call("DELETE", f"/api/workspaces/{ws['id']}")
    assert (deleted.status, deleted.body) == (200, {"success": True})
    gone = await api.call("GET", f"/api/workspaces/{ws['id']}")
    assert (gone.status, gone.body["code"]) == (404, "workspace_not_found")
    assert (await api.call("GET", f"/api/computers/{computer['id']}")).status == 404
    assert api.emu.counters.live == 0


async def test_projects_alias(api: Api) -> None:
    created = await api.call("POST", "/api/projects", {"name": "my team/α"})
    assert created.status == 201
    pid = created.body["id"]
    assert (await api.call("GET", f"/api/projects/{pid}")).body["name"] == "my team/α"
    assert [p["id"] for p in (await api.call("GET", "/api/projects")).body["workspaces"]] == [pid]

    by_name = await api.call("GET", "/api/projects/by-name/" + quote("my team/α", safe=""))
    assert by_name.status == 200 and by_name.body["project"]["id"] == pid
    missing = await api.call("GET", "/api/projects/by-name/nobody")
    assert (missing.status, missing.body["code"]) == (404, "workspace_not_found")

    not_allowed = await api.call("DELETE", f"/api/projects/{pid}")
    assert (not_allowed.status, not_allowed.body["code"]) == (405, "method_not_allowed")
    deleted = await api.call("POST", f"/api/projects/{pid}/delete")
    assert (deleted.status, deleted.body) == (200, {"success": True})
    assert (await api.call("GET", f"/api/projects/{pid}")).status == 404


async def test_list_key_projects(api: Api) -> None:
    await api.workspace("a")
    api.emu.config.list_key = "projects"
    for path in ("/api/workspaces", "/api/projects"):
        body = (await api.call("GET", path)).body
        assert list(body) == ["projects"] and body["projects"][0]["name"] == "a"


async def test_workspaces_path_missing(api: Api) -> None:
    api.emu.config.workspaces_path_missing = True
    for method, path in (
        ("GET", "/api/workspaces"),
        ("POST", "/api/workspaces"),
        ("GET", "/api/workspaces/x"),
    ):
        reply = await api.call(method, path, {"name": "a"} if method == "POST" else None)
        assert (reply.status, reply.body["code"]) == (404, "not_found")
    assert (await api.call("POST", "/api/projects", {"name": "a"})).status == 201
    assert (await api.call("GET", "/api/projects")).status == 200
    # Still 401 first: a bad key never learns anything.
    assert (await api.call("GET", "/api/workspaces", headers={})).status == 401


# --------------------------------------------------------------------------- create


async def test_create_computer_fields(api: Api) -> None:
    ws = await api.workspace("production")
    reply = await api.call(
        "POST",
        "/api/computers",
        {
            "workspace_id": ws["id"],
            "name": "agent-1",
            "os": "linux",
            "ram": 8,
            "cpu": 2.0,
            "disk_size_gb": 20,
            "resolution": "1920x1080x24",
            "auto_stop_minutes": 0,
            "template_ref": "system/claude-code@1.0.0",
            "gpu": "none",
            "image": "registry.fly.io/whatever:latest",
            "something_new": True,
        },
    )
    assert reply.status == 201
    c = reply.body
    origin, hostport = api.emu.origin, api.emu.hostport
    assert UUID.match(c["id"])
    assert c["name"] == "agent-1"
    assert c["workspace_id"] == c["project_id"] == ws["id"]
    assert c["project_name"] == "production"
    assert (c["os"], c["ram"], c["cpu"], c["disk_size_gb"]) == ("linux", 8, 2, 20)
    assert c["resolution"] == "1920x1080x24"
    assert c["status"] == "creating"
    assert c["auto_stop_minutes"] == 0
    assert c["url"] == f"{origin}/workspaces/{ws['id']}/computers/{c['id']}"
    assert ISO_Z.match(c["created_at"])
    assert HEX8.match(c["instance_id"]) and c["fly_instance_id"] == c["instance_id"]
    assert c["hostname"] == hostport
    assert c["connection_url"] == f"http://{hostport}/desktops/{c['instance_id']}"
    assert HEX16.match(c["vnc_password"])
    assert c["template_ref"] == "system/claude-code@1.0.0"


async def test_create_defaults_and_project_id_alias(api: Api) -> None:
    ws = await api.workspace()
    reply = await api.call("POST", "/api/computers", {"project_id": ws["id"], "name": "a"})
    assert reply.status == 201
    c = reply.body
    assert (c["os"], c["ram"], c["cpu"], c["disk_size_gb"]) == ("linux", 4, 1, 8)
    assert c["resolution"] == "1280x720x24"
    assert c["auto_stop_minutes"] is None
    assert c["template_ref"] is None
    assert c["workspace_id"] == ws["id"]


async def test_omit_instance_id_drift(api: Api) -> None:
    api.emu.config.omit_instance_id = True
    ws = await api.workspace()
    created = await api.computer(ws["id"])
    fetched = (await api.call("GET", f"/api/computers/{created['id']}")).body
    listed = (await api.call("GET", f"/api/workspaces/{ws['id']}")).body["desktops"][0]
    for body in (created, fetched, listed):
        assert "instance_id" not in body
        assert HEX8.match(body["fly_instance_id"])
        assert body["connection_url"].endswith("/desktops/" + body["fly_instance_id"])
    assert (await api.health(created["fly_instance_id"])).status in (200, 503)


async def test_computer_routes_accept_the_instance_id(fapi: Api, clock: FakeClock) -> None:
    computer = await running_computer(fapi, clock)
    iid = computer["instance_id"]
    assert (await fapi.call("GET", f"/api/computers/{iid}")).body["id"] == computer["id"]
    stop = await fapi.call("POST", f"/api/computers/{iid}/stop")
    assert stop.body == {"success": True, "status": "stopping"}
    assert (await fapi.call("DELETE", f"/api/computers/{iid}")).status == 200
    assert (await fapi.call("GET", f"/api/computers/{computer['id']}")).status == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", 5),
        ("os", "windows"),
        ("ram", 5),
        ("ram", True),
        ("ram", "4"),
        ("cpu", 3),
        ("cpu", True),
        ("cpu", 1.5),
        ("disk_size_gb", 0),
        ("disk_size_gb", -8),
        ("disk_size_gb", "8"),
        ("disk_size_gb", 100000),
        ("resolution", "big"),
        ("resolution", "1280x720"),
        ("resolution", "0x720x24"),
        ("resolution", "9000x720x24"),
        ("resolution", "1280x720x12"),
        ("resolution", 1280),
        ("auto_stop_minutes", -1),
        ("auto_stop_minutes", False),
        ("auto_stop_minutes", "30"),
        ("template_ref", 1),
        ("gpu", "h100"),
    ],
)
async def test_create_validation(api: Api, field: str, value: Any) -> None:
    ws = await api.workspace()
    body = {"workspace_id": ws["id"], "name": "ok", field: value}
    reply = await api.call("POST", "/api/computers", body)
    assert reply.status == 400, reply.body
    assert reply.body["code"] == "invalid_field"
    assert field in reply.body["error"]
    assert api.emu.counters.live == 0


async def test_create_validation_messages_name_allowed_values(api: Api) -> None:
    ws = await api.workspace()
    ram = await api.call(
        "POST", "/api/computers", {"workspace_id": ws["id"], "name": "a", "ram": 5}
    )
    assert "4, 8, 16, 32, 64" in ram.body["error"] and "5" in ram.body["error"]
    cpu = await api.call(
        "POST", "/api/computers", {"workspace_id": ws["id"], "name": "a", "cpu": True}
    )
    assert "1, 2, 4, 8, 16" in cpu.body["error"] and "true" in cpu.body["error"]


async def test_create_body_and_workspace_errors(api: Api) -> None:
    for data in ("[1, 2]", "not json", ""):
        reply = await api.call("POST", "/api/computers", data=data, headers=api.auth)
        assert (reply.status, reply.body["code"]) == (400, "invalid_json")
    missing = await api.call("POST", "/api/computers", {"name": "a"})
    assert (missing.status, missing.body["code"]) == (400, "invalid_field")
    assert "workspace_id" in missing.body["error"]
    unknown = await api.call(
        "POST",
        "/api/computers",
        {"workspace_id": "00000000-0000-4000-8000-000000000000", "name": "a"},
    )
    assert (unknown.status, unknown.body["code"]) == (404, "workspace_not_found")
    assert api.emu.counters.create_attempts == 5
    assert api.emu.counters.creates == 0


async def test_duplicate_name_is_409_per_workspace(api: Api) -> None:
    ws1, ws2 = await api.workspace("one"), await api.workspace("two")
    first = await api.computer(ws1["id"], "agent")
    dup = await api.call("POST", "/api/computers", {"workspace_id": ws1["id"], "name": "agent"})
    assert (dup.status, dup.body["code"]) == (409, "name_exists")
    await api.computer(ws2["id"], "agent")  # unique per workspace only
    # Freed again once deleted.
    await api.call("DELETE", f"/api/computers/{first['id']}")
    await api.computer(ws1["id"], "agent")


async def test_unknown_computer_is_404(api: Api) -> None:
    for method, suffix in (
        ("GET", ""),
        ("DELETE", ""),
        ("POST", "/start"),
        ("POST", "/stop"),
        ("POST", "/restart"),
        ("POST", "/clone"),
        ("GET", "/resize"),
        ("GET", "/auto-stop"),
        ("GET", "/vnc-password"),
    ):
        reply = await api.call(method, f"/api/computers/nope{suffix}")
        assert (reply.status, reply.body["code"]) == (404, "computer_not_found"), suffix
    health = await api.health("deadbeef")
    assert (health.status, health.body["code"]) == (404, "computer_not_found")


# --------------------------------------------------------------------------- readiness


async def test_health_flips_exactly_at_ready_at(api: Api) -> None:
    ws = await api.workspace()
    computer = await api.computer(ws["id"])
    ready_at = api.emu.counters.ready_at[computer["id"]]
    assert ready_at == api.emu.state.computers[computer["id"]].ready_at
    seen_503 = False
    async with asyncio.timeout(5):
        while True:
            sent = time.monotonic()
            reply = await api.health(computer["instance_id"])
            received = time.monotonic()
            if reply.status == 200:
                assert received >= ready_at
                assert reply.body == {"status": "ok"}
                break
            # A probe sent after ready_at must already see 200: no late timer.
            assert sent < ready_at
            assert reply.status == 503
            assert reply.body["error"] == "Could not reach the desktop"
            assert reply.body["code"] == "desktop_unavailable"
            assert reply.body["upstream_status"] == 502
            seen_503 = True
    assert seen_503
    assert api.emu.counters.healthy_at[computer["id"]] == ready_at
    # The computer UUID works in place of the instance id.
    assert (await api.health(computer["id"])).status == 200


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


async def test_legacy_restart_405(fapi: Api, clock: FakeClock) -> None:
    computer = await running_computer(fapi, clock)
    fapi.emu.config.legacy_restart = True
    reply = await fapi.call("POST", f"/api/computers/{computer['id']}/restart")
    assert (reply.status, reply.body["code"]) == (405, "method_not_allowed")
    assert (await fapi.call("GET", f"/api/computers/{computer['id']}")).body["status"] == "running"


async def test_delete_computer(api: Api) -> None:
    ws = await api.workspace()
    computer = await api.computer(ws["id"])
    reply = await api.call("DELETE", f"/api/computers/{computer['id']}")
    assert (reply.status, reply.body) == (200, {"success": True})
    assert (await api.call("GET", f"/api/computers/{computer['id']}")).status == 404
    assert (await api.health(computer["instance_id"])).status == 404
    assert (await api.call("GET", f"/api/workspaces/{ws['id']}")).body["desktops"] == []
    assert api.emu.counters.deletes == 1
    assert api.emu.counters.live == 0


# --------------------------------------------------------------------------- clone / move


async def test_clone(fapi: Api, clock: FakeClock) -> None:
    ws = await fapi.workspace()
    source = await fapi.computer(
        ws["id"],
        "src",
        ram=16,
        cpu=4,
        disk_size_gb=30,
        resolution="1024x768x16",
        auto_stop_minutes=9,
    )
    early = await fapi.call("POST", f"/api/computers/{source['id']}/clone")
    assert (early.status, early.body["code"]) == (400, "NOT_CLONABLE")
    clock.advance(1.0)

    reply = await fapi.call("POST", f"/api/computers/{source['id']}/clone")
    assert reply.status == 201
    clone = reply.body
    assert clone["name"] == "src (clone)"
    assert clone["workspace_id"] == ws["id"]
    assert clone["id"] != source["id"]
    assert clone["instance_id"] != source["instance_id"]
    assert clone["vnc_password"] != source["vnc_password"]
    for field in ("ram", "cpu", "disk_size_gb", "resolution"):
        assert clone[field] == source[field]
    assert clone["auto_stop_minutes"] is None
    assert clone["status"] == "creating"
    clock.advance(1.0)
    assert (await fapi.health(clone["instance_id"])).status == 200

    dup = await fapi.call("POST", f"/api/computers/{source['id']}/clone")
    assert (dup.status, dup.body["code"]) == (409, "name_exists")
    named = await fapi.call("POST", f"/api/computers/{source['id']}/clone", {"name": "twin"})
    assert (named.status, named.body["name"]) == (201, "twin")
    assert fapi.emu.counters.clones == 2


async def test_move(fapi: Api, clock: FakeClock) -> None:
    a, b = await fapi.workspace("a"), await fapi.workspace("b")
    computer = await fapi.computer(a["id"], "mover")
    await fapi.computer(b["id"], "taken")
    path = f"/api/computers/{computer['id']}/move"

    same = await fapi.call("PATCH", path, {"workspace_id": a["id"]})
    assert (same.status, same.body["code"]) == (400, "same_workspace")
    unknown = await fapi.call("PATCH", path, {"workspace_id": "nope"})
    assert (unknown.status, unknown.body["code"]) == (404, "workspace_not_found")
    missing = await fapi.call("PATCH", path, {})
    assert missing.status == 400

    taken = await fapi.computer(a["id"], "taken")
    conflict = await fapi.call(
        "PATCH", f"/api/computers/{taken['id']}/move", {"project_id": b["id"]}
    )
    assert (conflict.status, conflict.body["code"]) == (409, "name_exists")

    moved = await fapi.call("PATCH", path, {"project_id": b["id"]})
    assert moved.status == 200
    assert moved.body == {"success": True, "workspace_id": b["id"], "project_id": b["id"]}
    after = (await fapi.call("GET", f"/api/computers/{computer['id']}")).body
    assert (after["workspace_id"], after["project_name"]) == (b["id"], "b")
    names_a = [
        d["name"] for d in (await fapi.call("GET", f"/api/workspaces/{a['id']}")).body["desktops"]
    ]
    assert names_a == ["taken"]
    # The name is free again in the source workspace.
    await fapi.computer(a["id"], "mover")


# --------------------------------------------------------------------------- resize etc.


async def test_resize(fapi: Api, clock: FakeClock) -> None:
    computer = await running_computer(fapi, clock, disk_size_gb=20)
    path = f"/api/computers/{computer['id']}/resize"

    view = await fapi.call("GET", path)
    assert view.body == {
        "vcpus": 1,
        "mem_gb": 4,
        "disk_size_gb": 20,
        "current_disk_gb": 20,
        "max_disk_gb": 256,
        "bandwidth_limit_mbps": view.body["bandwidth_limit_mbps"],
        "auto_stop_minutes": None,
    }

    ignored = await fapi.call("PATCH", path, {"cpu": 8, "ram": 32})
    assert ignored.status == 200
    assert ignored.body["results"] == {} and ignored.body["partial"] is False
    current = (await fapi.call("GET", f"/api/computers/{computer['id']}")).body
    assert (current["cpu"], current["ram"], current["status"]) == (1, 4, "running")

    grown = await fapi.call(
        "PATCH", path, {"vcpus": 4, "disk_size_gb": 40, "auto_stop_minutes": 15}
    )
    assert grown.status == 200
    assert grown.body["vcpus"] == 4 and grown.body["disk_size_gb"] == 40
    assert grown.body["auto_stop_minutes"] == 15
    assert grown.body["results"]["vcpus"] == {
        "requested": 4,
        "applied": 4,
        "ok": True,
        "error": None,
    }
    assert grown.body["partial"] is False
    after = (await fapi.call("GET", f"/api/computers/{computer['id']}")).body
    assert (after["cpu"], after["disk_size_gb"], after["status"]) == (4, 40, "restarting")
    assert after["vnc_password"] != computer["vnc_password"]

    busy = await fapi.call("PATCH", path, {"vcpus": 2})
    assert (busy.status, busy.body["code"]) == (409, "not_running")
    clock.advance(1.0)

    partial = await fapi.call("PATCH", path, {"vcpus": 2, "mem_gb": 64})
    assert partial.status == 207
    assert partial.body["partial"] is True
    assert partial.body["results"]["vcpus"]["ok"] is True
    assert partial.body["results"]["mem_gb"]["ok"] is False
    assert "32" in partial.body["results"]["mem_gb"]["error"]
    assert partial.body["mem_gb"] == 4
    clock.advance(1.0)

    failed = await fapi.call("PATCH", path, {"mem_gb": 64, "vcpus": 3})
    assert failed.status == 422
    assert failed.body["code"] == "resize_failed" and failed.body["partial"] is False
    assert not failed.body["results"]["mem_gb"]["ok"] and not failed.body["results"]["vcpus"]["ok"]
    assert (await fapi.call("GET", f"/api/computers/{computer['id']}")).body["status"] == "running"

    mem = await fapi.call("PATCH", path, {"mem_gb": 16})
    assert mem.status == 200 and mem.body["mem_gb"] == 16
    after_mem = (await fapi.call("GET", f"/api/computers/{computer['id']}")).body
    assert (after_mem["ram"], after_mem["status"]) == (16, "restarting")
    clock.advance(1.0)

    shrink = await fapi.call("PATCH", path, {"disk_size_gb": 10})
    assert (shrink.status, shrink.body["code"]) == (400, "disk_shrink")
    bad_type = await fapi.call("PATCH", path, {"vcpus": True})
    assert (bad_type.status, bad_type.body["code"]) == (400, "invalid_field")
    assert "vcpus" in bad_type.body["error"]
    same = await fapi.call("PATCH", path, {"vcpus": 2})
    assert same.status == 200
    assert (await fapi.call("GET", f"/api/computers/{computer['id']}")).body["status"] == "running"


async def test_auto_stop(api: Api) -> None:
    ws = await api.workspace()
    computer = await api.computer(ws["id"], auto_stop_minutes=30)
    path = f"/api/computers/{computer['id']}/auto-stop"
    assert (await api.call("GET", path)).body == {"auto_stop_minutes": 30, "configurable": True}
    patched = await api.call("PATCH", path, {"auto_stop_minutes": 0})
    assert (patched.status, patched.body) == (
        200,
        {"auto_stop_minutes": 0, "auto_suspend_after": "0s"},
    )
    assert (await api.call("GET", path)).body["auto_stop_minutes"] == 0
    for bad in (
        {},
        {"auto_stop_minutes": -1},
        {"auto_stop_minutes": "5"},
        {"auto_stop_minutes": True},
    ):
        reply = await api.call("PATCH", path, bad)
        assert (reply.status, reply.body["code"]) == (400, "invalid_field"), bad


async def test_vnc_password_route(fapi: Api, clock: FakeClock) -> None:
    computer = await running_computer(fapi, clock)
    path = f"/api/computers/{computer['id']}/vnc-password"
    first = (await fapi.call("GET", path)).body
    assert first["password"] == computer["vnc_password"]
    assert re.fullmatch(r"[0-9a-f]{32}", first["desktop_api_token"])
    assert (await fapi.call("GET", path)).body == first
    await fapi.call("POST", f"/api/computers/{computer['id']}/restart")
    second = (await fapi.call("GET", path)).body
    assert second["password"] != first["password"]
    assert second["desktop_api_token"] != first["desktop_api_token"]


async def test_desktop_proxy_other_endpoints(fapi: Api, clock: FakeClock) -> None:
    ws = await fapi.workspace()
    computer = await fapi.computer(ws["id"])
    booting = await fapi.call("POST", f"/api/desktops/{computer['instance_id']}/proxy/click", {})
    assert (booting.status, booting.body["code"]) == (503, "desktop_unavailable")
    clock.advance(1.0)
    unknown = await fapi.call("GET", f"/api/desktops/{computer['instance_id']}/proxy/nothing")
    assert unknown.status == 404


# --------------------------------------------------------------------------- faults


async def test_fault_status_429_with_retry_after(api: Api) -> None:
    rule = api.emu.faults.add(
        FaultRule(kind="status", method="post", path=r"^/api/workspaces$", times=1, retry_after=1.5)
    )
    reply = await api.call("POST", "/api/workspaces", {"name": "a"})
    assert reply.status == 429
    assert reply.headers["Retry-After"] == "2"
    assert reply.body["retry_after"] == 1.5
    assert reply.body["code"] == "rate_limited"
    assert reply.body["request_id"] == reply.headers["X-Request-Id"]
    assert rule.fired == 1 and rule.exhausted
    assert (await api.call("GET", "/api/workspaces")).body["workspaces"] == []  # handler never ran
    assert (await api.call("POST", "/api/workspaces", {"name": "a"})).status == 201
    assert api.emu.counters.faults_injected == 1


async def test_fault_status_503_code_and_method_filter(api: Api) -> None:
    api.emu.faults.add(FaultRule(kind="status", method="GET", status=503, code="resuming"))
    assert (await api.call("POST", "/api/workspaces", {"name": "a"})).status == 201
    reply = await api.call("GET", "/api/workspaces")
    assert (reply.status, reply.body["code"]) == (503, "resuming")
    assert "Retry-After" not in reply.headers and "retry_after" not in reply.body
    api.emu.faults.clear()
    assert (await api.call("GET", "/api/workspaces")).status == 200


async def test_faults_apply_after_auth_and_not_to_admin(api: Api) -> None:
    api.emu.faults.add(FaultRule(kind="status", status=503))
    assert (await api.call("GET", "/api/workspaces", headers={})).status == 401
    assert (await api.call("GET", "/_emulator/counters")).status == 200
    assert (await api.call("GET", "/api/workspaces")).status == 503


async def test_fault_drop_disconnects_promptly(api: Api) -> None:
    ws = await api.workspace()
    api.emu.faults.add(FaultRule(kind="drop", method="POST", path=r"^/api/computers$", times=1))
    async with asyncio.timeout(5):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.call("POST", "/api/computers", {"workspace_id": ws["id"], "name": "a"})
    assert api.emu.counters.live == 0  # dropped before handling
    assert api.emu.counters.create_attempts == 0
    # The server is fine afterwards, on a new connection.
    await api.computer(ws["id"], "a")


async def test_fault_drop_on_get_is_a_connection_error(api: Api) -> None:
    # aiohttp's client silently retries an idempotent request once on a reused
    # connection, so an unlimited rule is needed to surface the error on GET.
    await api.call("GET", "/api/workspaces")  # warm a pooled connection
    api.emu.faults.add(FaultRule(kind="drop", method="GET", path=r"^/api/workspaces$"))
    async with asyncio.timeout(5):
        with pytest.raises(aiohttp.ClientConnectionError):
            await api.call("GET", "/api/workspaces")


async def test_fault_lose_response_creates_anyway(api: Api) -> None:
    ws = await api.workspace()
    api.emu.faults.add(
        FaultRule(kind="lose_response", method="POST", path=r"^/api/computers$", times=1)
    )
    async with asyncio.timeout(5):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.call("POST", "/api/computers", {"workspace_id": ws["id"], "name": "lost"})
    desktops = (await api.call("GET", f"/api/workspaces/{ws['id']}")).body["desktops"]
    assert [d["name"] for d in desktops] == ["lost"]
    assert api.emu.counters.creates == 1
    # Retrying the create reveals it by name, as an SDK reconciliation would.
    again = await api.call("POST", "/api/computers", {"workspace_id": ws["id"], "name": "lost"})
    assert (again.status, again.body["code"]) == (409, "name_exists")


async def test_fault_delay(api: Api) -> None:
    api.emu.faults.add(FaultRule(kind="delay", path=r"^/api/workspaces$", delay=0.1, times=1))
    started = time.monotonic()
    reply = await api.call("GET", "/api/workspaces")
    assert reply.status == 200
    assert time.monotonic() - started >= 0.1
    assert api.emu.faults.rules[0].exhausted


async def test_delayed_create_lands_after_the_client_gave_up(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await api.workspace()
    api.emu.faults.add(FaultRule(kind="delay", method="POST", path=r"^/api/computers$", delay=0.2))
    body = {"workspace_id": ws["id"], "name": "late"}
    with pytest.raises(TimeoutError):
        await api.session.post(
            api.emu.base_url + "/computers",
            json=body,
            headers=api.auth,
            timeout=aiohttp.ClientTimeout(total=0.05),
        )
    assert api.emu.counters.live == 0
    async with asyncio.timeout(5):
        while True:  # poll as a client would: the create lands after the delay
            desktops = (await api.call("GET", f"/api/workspaces/{ws['id']}")).body["desktops"]
            if desktops:
                break
            await asyncio.sleep(0.01)
    assert [d["name"] for d in desktops] == ["late"]
    assert api.emu.counters.creates == 1
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_pending_delay_does_not_hold_up_exit() -> None:
    async with aiohttp.ClientSession() as session:
        async with Emulator(EmulatorConfig(boot=FAST_BOOT)) as emu:
            emu.faults.add(FaultRule(kind="delay", delay=60))
            api = Api(emu, session)
            request = asyncio.create_task(api.call("GET", "/api/workspaces"))
            await asyncio.sleep(0.05)
            started = time.monotonic()
        assert time.monotonic() - started < 2
        async with asyncio.timeout(2):
            await asyncio.gather(request, return_exceptions=True)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_fault_probability_and_rule_order(api: Api) -> None:
    never = api.emu.faults.add(FaultRule(kind="status", status=500, probability=0.0))
    second = api.emu.faults.add(FaultRule(kind="status", status=502, times=2))
    third = api.emu.faults.add(FaultRule(kind="status", status=504))
    statuses = [(await api.call("GET", "/api/workspaces")).status for _ in range(3)]
    assert statuses == [502, 502, 504]
    assert (never.fired, second.fired, third.fired) == (0, 2, 1)
    assert api.emu.faults.remove(third) and not api.emu.faults.remove(third.id)
    assert (await api.call("GET", "/api/workspaces")).status == 200


async def test_fault_on_health_counts_the_probe(api: Api) -> None:
    ws = await api.workspace()
    computer = await api.computer(ws["id"])
    api.emu.faults.add(
        FaultRule(kind="status", status=503, code="resuming", path="/health$", times=1)
    )
    assert (await api.health(computer["instance_id"])).body["code"] == "resuming"
    await api.wait_running(computer)
    assert api.emu.counters.health_probes[computer["id"]] >= 2


def test_fault_rule_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        FaultRule(kind="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="probability"):
        FaultRule(kind="drop", probability=1.5)
    with pytest.raises(ValueError, match="path"):
        FaultRule(kind="drop", path="(unclosed")
    with pytest.raises(ValueError, match="status"):
        FaultRule(kind="status", status=200)
    with pytest.raises(ValueError, match="times"):
        FaultRule(kind="drop", times=-1)
    with pytest.raises(ValueError, match="retry_after"):
        FaultRule(kind="status", retry_after=-1)
    with pytest.raises(ValueError, match="delay"):
        FaultRule(kind="delay", delay=True)
    with pytest.raises(ValueError, match="unknown"):
        FaultRule.from_dict({"kind": "drop", "bogus": 1})
    rule = FaultRule.from_dict({"kind": "status", "status": 503, "method": "get"})
    assert (rule.method, rule.error_code) == ("GET", "service_unavailable")
    assert FaultRule.from_dict(rule.to_dict()).id == rule.id
    faults = Faults(random.Random(1))
    faults.add(rule)
    with pytest.raises(ValueError, match="already exists"):
        faults.add(rule)
    assert faults.match("GET", "/api/x") is rule and faults.match("POST", "/api/x") is None


# --------------------------------------------------------------------------- limits


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


# --------------------------------------------------------------------------- counters / admin


async def test_counters(api: Api) -> None:
    counters = api.emu.counters
    ws = await api.workspace()
    computer = await api.computer(ws["id"])
    await api.call("POST", "/api/computers", {"workspace_id": ws["id"], "name": "c1"})  # 409
    probes = await api.wait_running(computer)
    await api.call("DELETE", f"/api/computers/{computer['id']}")
    api.emu.faults.add(FaultRule(kind="status", times=1))
    await api.call("GET", "/api/workspaces")

    assert counters.creates == 1
    assert counters.create_attempts == 2
    assert counters.deletes == 1
    assert counters.live == 0
    assert counters.health_probes == {computer["id"]: probes}
    assert counters.healthy_at == {computer["id"]: counters.ready_at[computer["id"]]}
    assert counters.requests["POST /api/computers"] == 2
    assert counters.requests["GET /api/desktops/{instance_id}/proxy/health"] == probes
    assert counters.requests["DELETE /api/computers/{computer_id}"] == 1
    assert counters.responses_by_status[201] == 2
    assert counters.responses_by_status[409] == 1
    assert counters.responses_by_status[429] == 1
    assert counters.faults_injected == 1

    snapshot = await api.call("GET", "/_emulator/counters")
    assert snapshot.status == 200
    assert snapshot.body["creates"] == 1
    assert snapshot.body["responses_by_status"]["201"] == 2
    assert snapshot.body["healthy_at"] == {computer["id"]: counters.ready_at[computer["id"]]}
    assert snapshot.body["clock"] <= time.monotonic()
    # Admin calls are not counted as API traffic.
    assert "GET /_emulator/counters" not in counters.requests

    reset = await api.call("DELETE", "/_emulator/counters")
    assert reset.status == 200
    assert (counters.creates, counters.requests, counters.healthy_at) == (0, {}, {})


def test_counters_standalone_reset() -> None:
    counters = Counters()
    counters.creates = 3
    counters.health_probes["x"] = 2
    counters.reset()
    assert (counters.creates, counters.health_probes, counters.live) == (0, {}, 0)


async def test_admin_faults_over_http(api: Api) -> None:
    added = await api.call(
        "POST",
        "/_emulator/faults",
        {"kind": "status", "status": 503, "code": "resuming", "retry_after": 0.25, "times": 1},
    )
    assert added.status == 201
    listed = await api.call("GET", "/_emulator/faults")
    assert [f["id"] for f in listed.body["faults"]] == [added.body["id"]]
    reply = await api.call("GET", "/api/workspaces")
    assert (reply.status, reply.headers["Retry-After"], reply.body["retry_after"]) == (
        503,
        "1",
        0.25,
    )
    bad = await api.call("POST", "/_emulator/faults", {"kind": "nope"})
    assert (bad.status, bad.body["code"]) == (400, "invalid_field")
    await api.call("POST", "/_emulator/faults", {"kind": "status"})
    cleared = await api.call("DELETE", "/_emulator/faults")
    assert cleared.body == {"success": True, "cleared": 2}
    assert (await api.call("GET", "/api/workspaces")).status == 200
    assert (await api.call("DELETE", "/_emulator/faults/flt_missing")).status == 404


async def test_admin_config(api: Api) -> None:
    patched = await api.call(
        "PATCH",
        "/_emulator/config",
        {
            "boot": {"dist": "uniform", "low": 0.01, "high": 0.02},
            "boot_failure_rate": 0.5,
            "create_rate_limit": 50,
            "max_computers": 10,
            "legacy_restart": True,
            "stop_seconds": 0.2,
        },
    )
    assert patched.status == 200
    assert patched.body["boot"] == {"dist": "uniform", "low": 0.01, "high": 0.02}
    assert "api_key" not in patched.body
    config = api.emu.config
    assert config.boot == BootTime.uniform(0.01, 0.02)
    assert (config.boot_failure_rate, config.create_rate_limit) == (0.5, 50)
    assert (config.max_computers, config.legacy_restart, config.stop_seconds) == (10, True, 0.2)
    for bad in (
        {"boot_failure_rate": 2},
        {"boot": {"dist": "fixed"}},
        {"boot": {"dist": "gaussian", "seconds": 1}},
        {"legacy_restart": "yes"},
        {"api_key": "steal"},
        {"max_computers": -1},
    ):
        reply = await api.call("PATCH", "/_emulator/config", bad)
        assert (reply.status, reply.body["code"]) == (400, "invalid_field"), bad
    assert config.boot_failure_rate == 0.5  # a rejected patch changes nothing
    assert (await api.call("GET", "/_emulator/config")).body == patched.body


async def test_admin_computers(api: Api) -> None:
    ws = await api.workspace()
    computer = await api.computer(ws["id"])
    await api.wait_running(computer)
    reply = await api.call("GET", "/_emulator/computers")
    (item,) = reply.body["computers"]
    assert item["id"] == computer["id"]
    assert item["status"] == "running"
    assert item["ready_at"] == item["healthy_at"] == api.emu.counters.ready_at[computer["id"]]
    assert item["health_probes"] >= 1
    assert reply.body["clock"] >= item["ready_at"]


# --------------------------------------------------------------------------- config / BootTime


def test_boot_time_validation_names_the_argument() -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: BootTime.fixed(-1), "seconds"),
        (lambda: BootTime.fixed(0.3, jitter=-0.1), "jitter"),
        (lambda: BootTime.fixed(math.inf), "seconds"),
        (lambda: BootTime.uniform(-1, 1), "low"),
        (lambda: BootTime.uniform(2, 1), "high"),
        (lambda: BootTime.long_tail(0), "median"),
        (lambda: BootTime.long_tail(0.3, sigma=-1), "sigma"),
        (lambda: BootTime.long_tail(0.3, cap=0.1), "cap"),
        (lambda: BootTime.fixed(True), "seconds"),
    ]
    for build, name in cases:
        with pytest.raises(ValueError, match=name):
            build()


def test_boot_time_sampling() -> None:
    rng = random.Random(3)
    assert BootTime.fixed(0.3).sample(rng) == 0.3
    assert all(0.28 <= BootTime.fixed(0.3, jitter=0.02).sample(rng) <= 0.32 for _ in range(200))
    assert all(0.1 <= BootTime.uniform(0.1, 0.2).sample(rng) <= 0.2 for _ in range(200))
    samples = sorted(BootTime.long_tail(0.3, sigma=0.5, cap=2.0).sample(rng) for _ in range(2001))
    assert 0.25 < samples[1000] < 0.35 and samples[-1] <= 2.0
    a = [BootTime.long_tail(0.3).sample(random.Random(9)) for _ in range(3)]
    assert len(set(a)) == 1  # reproducible from a seed
    assert BootTime.from_dict(BootTime.long_tail(0.3, cap=1).to_dict()) == BootTime.long_tail(
        0.3, cap=1
    )
    assert repr(BootTime.fixed(0.3, jitter=0.02)) == "BootTime.fixed(seconds=0.3, jitter=0.02)"


def test_config_validation_and_secrecy() -> None:
    config = EmulatorConfig(api_key="sk_secret_value")
    assert "sk_secret_value" not in repr(config)
    with pytest.raises(ValueError, match="boot_failure_rate"):
        config.boot_failure_rate = 1.5
    with pytest.raises(ValueError, match="create_rate_limit"):
        EmulatorConfig(create_rate_limit=0)
    with pytest.raises(ValueError, match="port"):
        EmulatorConfig(port=70000)
    with pytest.raises(ValueError, match="api_key"):
        EmulatorConfig(api_key="")


async def test_seeded_boot_times_are_reproducible() -> None:
    async def boot_times() -> list[float]:
        config = EmulatorConfig(boot=BootTime.long_tail(0.3), seed=42)
        async with Emulator(config, clock=FakeClock()) as emu:
            ws = emu.state.create_workspace("w")
            return [emu.state.create_computer(ws, name=f"c{i}").boot_seconds for i in range(5)]

    assert await boot_times() == await boot_times()


# --------------------------------------------------------------------------- process mode


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_options_to_config() -> None:
    args = _parse(
        [
            "--api-key", "k", "--boot-ms", "500", "--boot-dist", "long-tail", "--boot-max-ms",
            "3000", "--boot-failure-rate", "0.1", "--create-rate", "20", "--max-computers", "7",
            "--legacy-restart", "--seed", "5", "--fault-429-rate", "0.2", "--fault-503-rate",
            "0.1", "--retry-after", "2",
        ]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.boot == BootTime.long_tail(0.5, sigma=0.5, cap=3.0)
    assert (config.api_key, config.boot_failure_rate, config.create_rate_limit) == ("k", 0.1, 20)
    assert (config.max_computers, config.legacy_restart, config.seed) == (7, True, 5)
    rules = faults_from_args(args)
    assert [(r.status, r.code, r.probability, r.retry_after) for r in rules] == [
        (429, "rate_limited", 0.2, 2.0),
        (503, "resuming", 0.1, 2.0),
    ]
    default = config_from_args(_parse([]))
    assert default.boot == BootTime.fixed(0.3, jitter=0.02)
    assert faults_from_args(_parse([])) == []
    with pytest.raises(ValueError, match="boot-max-ms"):
        config_from_args(_parse(["--boot-dist", "uniform"]))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_process_mode(signum: signal.Signals) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orgo_async.emulator",
        "--port",
        "0",
        "--api-key",
        "sk_proc",
        "--boot-ms",
        "20",
        "--boot-jitter-ms",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        match = re.fullmatch(rb"ORGO_BASE_URL=(http://127\.0\.0\.1:(\d+)/api)\n", line)
        assert match is not None, line
        base_url = match.group(1).decode()
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk_proc"}) as session:
            async with session.post(f"{base_url}/workspaces", json={"name": "w"}) as resp:
                assert resp.status == 201
                ws = await resp.json()
            async with session.post(
                f"{base_url}/computers", json={"workspace_id": ws["id"], "name": "c"}
            ) as resp:
                computer = await resp.json()
            async with asyncio.timeout(10):
                while True:
                    url = f"{base_url}/desktops/{computer['instance_id']}/proxy/health"
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            break
                    await asyncio.sleep(0.005)
            async with session.get(f"{base_url.removesuffix('/api')}/_emulator/counters") as resp:
                counters = await resp.json()
            # Same system-wide monotonic clock in both processes.
            assert counters["healthy_at"][computer["id"]] <= time.monotonic()
        proc.send_signal(signum)
        rest, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert rest == b""
    assert b"Traceback" not in stderr
    assert b"sk_proc" not in stderr
