"""The REST desktop actions: pointer, keys, wait, screenshots, availability and counters.

Every action is exercised on the platform route (``/api/computers/{id}/...``)
and through the proxy (``/api/desktops/{instance_id}/proxy/...``). Boots take
5 ms; the only longer waits are the ones a behaviour needs (a screenshot kept
in progress while a second one arrives).
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest

from orgo_async.emulator import BootTime, EmulatorConfig, FaultRule
from orgo_async.protocol.png import decode_png

from ...conftest import eventually
from ..rest import ROUTES, Api, Pc


@pytest.fixture
def config() -> EmulatorConfig:
    # Boots of 5 ms: these tests start many computers and wait for each.
    return EmulatorConfig(boot=BootTime.fixed(0.005), stop_seconds=0.005, seed=3)


@pytest.mark.parametrize("route", ROUTES)
async def test_every_action_answers_success_with_details(api: Api, pc: Pc, route: str) -> None:
    async def ok(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await api.act(pc, route, endpoint, body)
        assert reply.status == 200, reply.body
        assert reply.body["success"] is True
        answer: dict[str, Any] = reply.body
        return answer

    click = await ok("click", {"x": 10, "y": 399, "button": "right"})
    assert (click["action"], click["details"]) == (
        "click",
        {"x": 10, "y": 399, "button": "right", "double": False},
    )
    double = await ok("click", {"x": 0, "y": 0, "button": "right", "double": True})
    assert double["action"] == "double_click"
    assert double["details"]["button"] == "left"  # a double click ignores button
    drag = await ok("drag", {"start_x": 0, "start_y": 0, "end_x": 639, "end_y": 399, "duration": 0})
    assert drag["action"] == "drag" and drag["details"]["end_x"] == 639
    typed = await ok("type", {"text": "héllo", "delay_ms": 0})
    assert typed["action"] == "type" and typed["details"]["text_length"] == 5
    for name in ("Return", "ctrl+shift+t", "Page_Up", "+", "ctrl++", "a"):
        pressed = await ok("key", {"key": name})
        assert (pressed["action"], pressed["details"]) == ("key_press", {"key": name})
    scrolled = await ok("scroll", {"direction": "down", "amount": 3, "x": 5, "y": 6})
    assert scrolled["details"] == {"direction": "down", "amount": 3, "x": 5, "y": 6}
    where = await ok("scroll", {"direction": "up"})  # at the pointer, one notch
    assert where["details"] == {"direction": "up", "amount": 1, "x": 5, "y": 6}
    one_axis = await ok("scroll", {"direction": "up", "x": 7})  # Linux: missing axis is 0
    assert (one_axis["details"]["x"], one_axis["details"]["y"]) == (7, 0)
    waited = await ok("wait", {"seconds": 0})
    assert (waited["action"], waited["details"]) == ("wait", {"seconds": 0.0})
    assert (await ok("wait", {"duration": 0.01}))["details"] == {"seconds": 0.01}

    actions = api.emu.counters.actions
    assert (actions["click"], actions["key"], actions["scroll"], actions["wait"]) == (2, 6, 3, 2)
    assert (actions["drag"], actions["type"]) == (1, 1)


VALIDATION_CASES = [
    ("click", {"y": 1}, "x is required"),
    ("click", {"x": 640, "y": 1}, "x must be an integer from 0 to 639"),
    ("click", {"x": 1, "y": -1}, "y must be"),
    ("click", {"x": 1.5, "y": 1}, "x must be"),
    ("click", {"x": True, "y": 1}, "x must be"),
    ("click", {"x": 1, "y": 1, "button": "middle"}, "button must be one of left, right"),
    ("click", {"x": 1, "y": 1, "double": "yes"}, "double must be true or false"),
    ("drag", {"start_x": 0, "start_y": 0, "end_x": 0, "end_y": 400}, "end_y must be"),
    ("drag", {"start_x": 0, "start_y": 0, "end_x": 1, "end_y": 1, "duration": 11}, "duration"),
    ("type", {"text": ""}, "text is required"),
    ("type", {"text": "a", "delay_ms": 5000}, "delay_ms must be"),
    ("key", {"key": ""}, "key is required"),
    ("key", {"key": "ctrl+"}, "key must be X11 keysym names"),
    ("key", {"key": "hello world"}, "key must be"),
    ("scroll", {"amount": 1}, "direction is required"),
    ("scroll", {"direction": "left"}, "direction is required: up or down"),
    ("scroll", {"direction": "up", "amount": 0}, "amount must be"),
    ("scroll", {"direction": "up", "x": 9999, "y": 1}, "x must be"),
    ("wait", {}, "seconds is required"),
    ("wait", {"seconds": 61}, "seconds must be a number from 0 to 60"),
    ("wait", {"duration": -1}, "duration must be"),
    ("bash", {}, "command is required"),
    ("bash", {"command": "true", "timeout": 0}, "timeout must be an integer from 1 to 300"),
    ("bash", {"command": "true", "timeout": 301}, "timeout must be"),
    ("exec", {"code": 3}, "code is required"),
    ("exec", {"code": "1", "timeout": 0}, "timeout must be"),
]


@pytest.mark.parametrize("route", ROUTES)
async def test_validation_errors_name_the_field(api: Api, pc: Pc, route: str) -> None:
    for endpoint, body, message in VALIDATION_CASES:
        reply = await api.act(pc, route, endpoint, body)
        assert (reply.status, reply.body["code"]) == (400, "invalid_field"), (endpoint, body)
        assert message in reply.body["error"], (endpoint, reply.body)
    bad_json = await api.call("POST", pc.path(route, "click"), data=b"[1, 2]")
    assert (bad_json.status, bad_json.body["code"]) == (400, "invalid_json")
    for query in ({"scale": "0"}, {"scale": "1.5"}, {"scale": "nan"}, {"format": "gif"}):
        reply = await api.act(pc, route, "screenshot", params=query)
        assert reply.status == 400, query
        assert next(iter(query)) in reply.body["error"]
    assert (await api.act(pc, route, "screenshot", params={"response_format": "x"})).status == 400
    # Nothing invalid was counted or drawn.
    assert api.emu.counters.actions == {}
    assert not api.emu.desktops.framebuffer(api.emu.state.get_computer(pc.id)).version


async def test_the_type_action_takes_about_the_typing_time(api: Api, pc: Pc) -> None:
    started = time.monotonic()
    reply = await api.act(pc, "platform", "type", {"text": "abcd", "delay_ms": 60})
    assert reply.status == 200
    assert time.monotonic() - started >= 0.2  # 4 keystrokes x 60 ms, less rounding


async def test_a_long_text_is_typed_in_chunks(api: Api, pc: Pc) -> None:
    text = "0123456789" * 300
    reply = await api.act(pc, "platform", "type", {"text": text, "delay_ms": 0})
    assert reply.body["details"]["text_length"] == 3000
    fb = api.emu.desktops.framebuffer(api.emu.state.get_computer(pc.id))
    assert fb.text.replace("\n", "").endswith("456789")


async def test_screenshot_pixels_change_after_a_click_and_typed_text(api: Api, pc: Pc) -> None:
    reply, before = await api.shot(pc)
    assert (reply.body["width"], reply.body["height"], reply.body["mime_type"]) == (
        640,
        400,
        "image/png",
    )
    first = decode_png(before)
    assert (first.width, first.height) == (640, 400)

    await api.act(pc, "platform", "click", {"x": 320, "y": 300})
    _, after_click = await api.shot(pc)
    clicked = decode_png(after_click)
    assert clicked.pixel(320, 300) != first.pixel(320, 300)

    fb = api.emu.desktops.framebuffer(api.emu.state.get_computer(pc.id))
    area_x, area_y, area_w, area_h = fb.text_area
    await api.act(pc, "proxy", "type", {"text": "Hello, agent", "delay_ms": 0})
    _, after_type = await api.shot(pc, "proxy")
    typed = decode_png(after_type)
    changed = [
        (x, y)
        for y in range(area_y, area_y + 40)
        for x in range(area_x, area_x + 200)
        if typed.pixel(x, y) != clicked.pixel(x, y)
    ]
    assert changed, "typing drew nothing in the text area"
    assert api.emu.counters.screenshots == 3


async def test_screenshot_binary_url_scale_and_jpeg(api: Api, pc: Pc) -> None:
    binary = await api.act(pc, "platform", "screenshot", params={"response_format": "binary"})
    assert (binary.status, binary.headers["Content-Type"]) == (200, "image/png")
    assert (decode_png(binary.raw).width, decode_png(binary.raw).height) == (640, 400)

    scaled = await api.act(
        pc, "platform", "screenshot", params={"response_format": "binary", "scale": "0.5"}
    )
    assert (decode_png(scaled.raw).width, decode_png(scaled.raw).height) == (320, 200)

    # jpeg is answered with a PNG, labelled as one.
    jpeg, data = await api.shot(pc, format="jpeg", scale="0.25")
    assert jpeg.body["mime_type"] == "image/png" and data.startswith(b"\x89PNG")
    assert (jpeg.body["width"], jpeg.body["height"]) == (160, 100)

    url = await api.act(pc, "platform", "screenshot")  # the documented default: url
    assert url.status == 200
    meta = url.body["metadata"]
    assert url.body["success"] is True
    assert url.body["image"] == f"{api.emu.origin}/api/storage/{meta['storage_path']}"
    assert meta["storage_path"] == f"screenshots/{meta['id']}.png"
    assert meta["timestamp"].endswith("Z")
    assert (await api.call("GET", url.body["image"], auth=False)).status == 401
    fetched = await api.call("GET", url.body["image"])
    assert (fetched.status, fetched.headers["Content-Type"]) == (200, "image/png")
    assert len(fetched.raw) == meta["size"] and decode_png(fetched.raw).width == 640
    missing = await api.call("GET", "/api/storage/screenshots/nope.png")
    assert missing.status == 404


async def test_proxy_screenshot_has_the_direct_vm_shape(api: Api, pc: Pc) -> None:
    for response_format in ("base64", "binary", "url"):
        reply = await api.act(
            pc, "proxy", "screenshot", params={"response_format": response_format}
        )
        assert reply.status == 200
        assert set(reply.body) == {"image", "format", "encoding", "width", "height"}
        assert (reply.body["format"], reply.body["encoding"]) == ("png", "base64")
        image = decode_png(base64.b64decode(reply.body["image"]))
        assert (image.width, image.height) == (reply.body["width"], reply.body["height"])


async def test_overlapping_screenshots_of_one_computer_fail(
    api: Api, ws: dict[str, Any], pc: Pc
) -> None:
    api.emu.config.screenshot_seconds = 0.2  # long enough for a second request to arrive
    other = await api.running_pc(ws, "c2")
    for route, status in (("platform", 500), ("proxy", 409)):
        first = asyncio.create_task(api.shot(pc, route))
        await eventually(lambda: api.emu.desktops.capturing(pc.id))
        second = await api.act(pc, route, "screenshot", params={"response_format": "base64"})
        assert (second.status, second.body["code"]) == (status, "screenshot_in_progress")
        if route == "platform":
            assert second.body["error"] == "Screenshot failed"
            assert second.body["upstream_status"] == 409
        reply, _ = await first
        assert reply.status == 200

    # Different computers are captured at the same time.
    both = asyncio.gather(api.shot(pc), api.shot(other))
    await eventually(
        lambda: api.emu.desktops.capturing(pc.id) and api.emu.desktops.capturing(other.id)
    )
    assert [reply.status for reply, _ in await both] == [200, 200]


async def test_actions_need_a_running_computer(api: Api, ws: dict[str, Any], pc: Pc) -> None:
    api.emu.config.boot = BootTime.fixed(60)
    reply = await api.call("POST", "/api/computers", {"workspace_id": ws["id"], "name": "slow"})
    booting = Pc(reply.body)
    for endpoint in ("screenshot", "click", "bash", "wait"):
        platform = await api.act(booting, "platform", endpoint, {})
        assert (platform.status, platform.body["code"], platform.body["error"]) == (
            400,
            "desktop_unavailable",
            "Desktop instance not available",
        )
        proxied = await api.act(booting, "proxy", endpoint, {})
        assert (proxied.status, proxied.body["code"]) == (503, "desktop_unavailable")

    await api.call("POST", f"/api/computers/{pc.id}/stop")
    assert (await api.act(pc, "platform", "key", {"key": "a"})).status == 400
    assert (await api.act(pc, "proxy", "key", {"key": "a"})).status == 503

    unknown = await api.call("POST", "/api/computers/nope/click", {"x": 1, "y": 1})
    assert (unknown.status, unknown.body["code"]) == (404, "computer_not_found")
    unknown = await api.call("POST", "/api/desktops/nope/proxy/click", {"x": 1, "y": 1})
    assert (unknown.status, unknown.body["code"]) == (404, "computer_not_found")


async def test_actions_need_the_api_key_and_take_faults(api: Api, pc: Pc) -> None:
    no_key = await api.call("POST", pc.path("platform", "click"), {"x": 1, "y": 1}, auth=False)
    assert no_key.status == 401
    api.emu.faults.add(FaultRule(kind="status", status=503, path=r"/proxy/click$", times=1))
    assert (await api.act(pc, "proxy", "click", {"x": 1, "y": 1})).status == 503
    assert (await api.act(pc, "proxy", "click", {"x": 1, "y": 1})).status == 200
    assert api.emu.counters.requests["POST /api/desktops/{instance_id}/proxy/click"] == 2


async def test_the_desktop_is_reset_by_a_restart(api: Api, pc: Pc) -> None:
    _, fresh = await api.shot(pc)
    await api.act(pc, "platform", "click", {"x": 20, "y": 300})
    _, clicked = await api.shot(pc)
    assert clicked != fresh
    await api.call("POST", f"/api/computers/{pc.id}/restart")
    assert not api.emu.desktops.has_framebuffer(pc.id)
    await api.wait_running(pc.body)
    _, again = await api.shot(pc)
    assert decode_png(again).pixels == decode_png(fresh).pixels


async def test_counters_of_desktop_actions(api: Api, ws: dict[str, Any], pc: Pc) -> None:
    await api.shot(pc)
    await api.act(pc, "proxy", "bash", {"command": "true"})
    await api.act(pc, "platform", "exec", {"code": "pass"})
    await api.upload(b"x", "x.txt", project=ws["id"])
    snapshot = (await api.call("GET", "/_emulator/counters")).body
    assert snapshot["actions"] == {"screenshot": 1, "bash": 1, "exec": 1}
    assert (snapshot["screenshots"], snapshot["bash_runs"], snapshot["exec_runs"]) == (1, 1, 1)
    assert snapshot["uploads"] == 1
    api.emu.counters.reset()
    assert (api.emu.counters.actions, api.emu.counters.uploads) == ({}, 0)
    patched = await api.call("PATCH", "/_emulator/config", {"screenshot_seconds": 0.001})
    assert patched.body["screenshot_seconds"] == 0.001
