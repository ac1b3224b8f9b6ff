"""The computer routes: create and its validation, get and delete, clone, move, resize.

Also auto-stop and the vnc-password route, and every route by UUID or
instance id.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ..rest import HEX8, HEX16, ISO_Z, UUID, Api, FakeClock, running_computer


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
        reply = await api.call("POST", "/api/computers", data=data)
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
