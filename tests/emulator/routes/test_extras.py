"""The emulator's streams, screens, resume/ensure-running/fork, events catalog and limits."""

from __future__ import annotations

import base64
import struct
from typing import Any

from orgo_async.emulator import Emulator
from orgo_async.emulator.routes.extras import EVENT_CATALOG
from orgo_async.protocol.events import EVENT_TYPES

from ..rest import Api, FakeClock, Pc


def _png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_stream_state_machine(api: Api, ws: dict[str, Any]) -> None:
    pc = await api.running_pc(ws)
    status = await api.call("GET", pc.path("platform", "stream/status"))
    assert (status.status, status.body) == (200, {"status": "idle"})
    started = await api.call("POST", pc.path("platform", "stream/start"), {"connection_name": "t"})
    assert started.status == 200 and started.body["status"] == "streaming"
    live = (await api.call("GET", pc.path("platform", "stream/status"))).body
    assert (
        live["status"] == "streaming" and live["pid"] == started.body["pid"] and live["start_time"]
    )
    again = await api.call("POST", pc.path("platform", "stream/start"), {"connection_name": "t"})
    assert (again.status, again.body["code"]) == (409, "stream_active")
    for _ in range(2):  # a stop when idle is idempotent
        stop = await api.call("POST", pc.path("platform", "stream/stop"))
        assert stop.status == 200 and stop.body["success"] is True
    assert (await api.call("GET", pc.path("platform", "stream/status"))).body["status"] == "idle"


async def test_a_stream_needs_a_connection_name(api: Api, ws: dict[str, Any]) -> None:
    pc = await api.running_pc(ws)
    reply = await api.call("POST", pc.path("platform", "stream/start"), {})
    assert reply.status == 400 and "connection_name" in reply.body["error"]


async def test_a_stopped_computer_cannot_stream_and_a_stop_terminates(
    fapi: Api, clock: FakeClock
) -> None:
    ws = await fapi.workspace()
    pc = Pc(await fapi.computer(ws["id"]))
    clock.advance(1.0)
    await fapi.call("POST", pc.path("platform", "stream/start"), {"connection_name": "t"})
    await fapi.call("POST", f"/api/computers/{pc.id}/stop")
    status = (await fapi.call("GET", pc.path("platform", "stream/status"))).body
    assert status["status"] == "terminated" and "terminated" in status["message"]
    clock.advance(1.0)
    reply = await fapi.call("POST", pc.path("platform", "stream/start"), {"connection_name": "t"})
    assert reply.status == 409 and reply.body["code"] == "not_running"
    assert "status: stopped" in reply.body["error"]


async def test_screens_have_their_own_sizes(api: Api, ws: dict[str, Any]) -> None:
    pc = await api.running_pc(ws, resolution="640x480x24")
    made = await api.call("POST", pc.path("platform", "screens"), {"width": 300, "height": 200})
    assert made.status == 201
    assert made.body == {
        "id": "screen-100",
        "display": ":100",
        "width": 300,
        "height": 200,
        "default": False,
        "vnc_port": 5901,
        "ws_port": 6081,
    }
    listed = (await api.call("GET", pc.path("platform", "screens"))).body["screens"]
    assert [(s["id"], s["width"], s["height"]) for s in listed] == [
        ("default", 640, 480),
        ("screen-100", 300, 200),
    ]
    shot = await api.call(
        "GET",
        pc.path("platform", "screenshot"),
        params={"screen": "screen-100", "response_format": "base64"},
    )
    assert (shot.body["width"], shot.body["height"]) == (300, 200)
    assert _png_size(base64.b64decode(shot.body["image"])) == (300, 200)
    proxied = await api.call("GET", pc.path("proxy", "screenshot"), params={"screen": "screen-100"})
    assert (proxied.body["width"], proxied.body["height"]) == (300, 200)
    patched = await api.call("PATCH", pc.path("platform", "screens/screen-100"), {"height": 100})
    assert (patched.body["width"], patched.body["height"]) == (300, 100)


async def test_bad_screen_input_names_the_field_or_the_screen(api: Api, ws: dict[str, Any]) -> None:
    pc = await api.running_pc(ws)
    for body, field in (
        ({"width": -5}, "width"),
        ({"height": 0}, "height"),
        ({"width": "x"}, "width"),
    ):
        reply = await api.call("POST", pc.path("platform", "screens"), body)
        assert reply.status == 400 and reply.body["error"].startswith(field), reply.body
    reply = await api.call("PATCH", pc.path("platform", "screens/default"), {})
    assert reply.status == 400 and "width or height" in reply.body["error"]
    for method in ("PATCH", "DELETE"):
        reply = await api.call(method, pc.path("platform", "screens/screen-9"), {"width": 10})
        assert (reply.status, reply.body["code"]) == (404, "screen_not_found")
    shot = await api.call("GET", pc.path("platform", "screenshot"), params={"screen": "screen-9"})
    assert shot.status == 404 and "screen-9" in shot.body["error"]
    reply = await api.call("DELETE", pc.path("platform", "screens/default"))
    assert (reply.status, reply.body["code"]) == (400, "default_screen")


async def test_resume_and_ensure_running(fapi: Api, clock: FakeClock) -> None:
    ws = await fapi.workspace()
    pc = Pc(await fapi.computer(ws["id"]))
    clock.advance(1.0)
    await fapi.call("POST", f"/api/computers/{pc.id}/stop")
    stopping = await fapi.call("POST", pc.path("platform", "resume"))
    assert (stopping.status, stopping.body["code"]) == (409, "stop_in_progress")
    assert stopping.headers["Retry-After"] == "1"
    clock.advance(1.0)
    woke = await fapi.call("POST", pc.path("platform", "resume"))
    assert (woke.status, woke.body) == (
        202,
        {"waking": True, "pending": True, "expected_seconds": 1.0},
    )
    clock.advance(1.0)
    awake = await fapi.call("POST", pc.path("platform", "resume"))
    assert awake.body == {"waking": False, "pending": False, "expected_seconds": 0.0}
    await fapi.call("POST", f"/api/computers/{pc.id}/stop")
    clock.advance(1.0)
    ensured = await fapi.call("POST", pc.path("platform", "ensure-running"))
    assert ensured.status == 200 and ensured.body["status"] == "starting"
    assert ensured.body["id"] == pc.id


async def test_fork_and_the_plan_limit(api: Api, emu: Emulator, ws: dict[str, Any]) -> None:
    pc = await api.running_pc(ws)
    emu.config.max_computers = 2
    fork = await api.call("POST", pc.path("platform", "fork"))
    assert fork.status == 201 and fork.body["name"] == "c1 (fork)" and fork.body["id"] != pc.id
    limits = (await api.call("GET", "/api/billing/compute-limits")).body
    assert limits == {"max_computers": 2, "computers_used": 2, "computers_available": 0}
    refused = await api.call("POST", pc.path("platform", "fork"))
    assert (refused.status, refused.body["code"]) == (403, "plan_limit")


async def test_the_events_catalog_covers_every_event_type(api: Api, ws: dict[str, Any]) -> None:
    assert set(EVENT_CATALOG) == set(EVENT_TYPES)
    computer = await api.computer(ws["id"])
    reply = await api.call("GET", f"/api/computers/{computer['id']}/events")
    assert reply.status == 200
    assert {t["type"] for t in reply.body["event_types"]} == set(EVENT_TYPES)


async def test_actions_take_a_screen_on_both_routes(api: Api, ws: dict[str, Any]) -> None:
    pc = await api.running_pc(ws, resolution="640x480x24")
    await api.call("POST", pc.path("platform", "screens"), {"width": 900, "height": 100})
    on_side = {"screen": "screen-100", "response_format": "base64"}

    async def side_image() -> str:
        shot = await api.call("GET", pc.path("platform", "screenshot"), params=on_side)
        return str(shot.body["image"])

    blank = await side_image()
    for route in ("platform", "proxy"):
        reply = await api.call(
            "POST", pc.path(route, "click"), {"x": 850, "y": 50}, params={"screen": "screen-100"}
        )
        assert reply.status == 200 and reply.body["details"]["x"] == 850
        reply = await api.call(
            "POST", pc.path(route, "click"), {"x": 10, "y": 150}, params={"screen": "screen-100"}
        )
        assert reply.status == 400 and "y" in reply.body["error"]  # past the screen's height
        reply = await api.call(
            "POST", pc.path(route, "key"), {"key": "a"}, params={"screen": "screen-7"}
        )
        assert (reply.status, reply.body["code"]) == (404, "screen_not_found")
    typed = await api.call(
        "POST", pc.path("platform", "type"), {"text": "hi", "delay_ms": 0},
        params={"screen": "screen-100"},
    )  # fmt: skip
    assert typed.status == 200 and await side_image() != blank
