"""The emulator's REST desktop actions, commands and files, driven by plain aiohttp.

Every action is exercised on the platform route (``/api/computers/{id}/...``)
and through the proxy (``/api/desktops/{instance_id}/proxy/...``). Boots take
5 ms; the only longer waits are the ones a behaviour needs (a 1 s command
timeout, a screenshot kept in progress while a second one arrives).
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import attrs
import pytest

from orgo_async.emulator import BootTime, Emulator, EmulatorConfig, FaultRule
from orgo_async.emulator.commands import MAX_OUTPUT, exec_failure
from orgo_async.emulator.routes.files import MAX_UPLOAD_BYTES
from orgo_async.emulator.watch import scan_processes
from orgo_async.protocol.png import decode_png

ROUTES = ("platform", "proxy")


# --------------------------------------------------------------------------- harness


@attrs.frozen
class Reply:
    status: int
    body: Any
    headers: Any
    raw: bytes


class Api:
    """Raw requests against one emulator, with its API key unless told otherwise."""

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
        params: dict[str, str] | None = None,
        data: Any = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        url = path if path.startswith("http") else self.emu.origin + path
        async with self.session.request(
            method,
            url,
            json=body,
            params=params,
            data=data,
            headers={**(self.auth if auth else {}), **(headers or {})},
        ) as resp:
            raw = await resp.read()
            payload = await resp.json() if resp.content_type == "application/json" else None
            return Reply(resp.status, payload, resp.headers, raw)

    async def workspace(self, name: str = "ws") -> dict[str, Any]:
        reply = await self.call("POST", "/api/workspaces", {"name": name})
        assert reply.status == 201, reply.body
        body: dict[str, Any] = reply.body
        return body

    async def computer(self, workspace: dict[str, Any], name: str = "c1", **fields: Any) -> Pc:
        reply = await self.call(
            "POST", "/api/computers", {"workspace_id": workspace["id"], "name": name, **fields}
        )
        assert reply.status == 201, reply.body
        pc = Pc(reply.body)
        await self.wait_running(pc)
        return pc

    async def wait_running(self, pc: Pc) -> None:
        health = f"/api/desktops/{pc.instance_id}/proxy/health"
        async with asyncio.timeout(5):
            while True:
                if (await self.call("GET", health)).status == 200:
                    return
                await asyncio.sleep(0.002)

    async def act(
        self, pc: Pc, route: str, endpoint: str, body: Any = None, **kwargs: Any
    ) -> Reply:
        method = "GET" if endpoint == "screenshot" else "POST"
        return await self.call(method, pc.path(route, endpoint), body, **kwargs)

    async def shot(self, pc: Pc, route: str = "platform", **params: str) -> tuple[Reply, bytes]:
        """A base64 screenshot and its PNG bytes."""
        query = {"response_format": "base64", **params}
        reply = await self.act(pc, route, "screenshot", params=query)
        assert reply.status == 200, reply.body
        return reply, base64.b64decode(reply.body["image"])

    async def upload(
        self,
        content: bytes,
        filename: str,
        *,
        project: str | None,
        desktop: str | None = None,
        field: str = "projectId",
    ) -> Reply:
        form = aiohttp.FormData()
        form.add_field("file", content, filename=filename, content_type="text/plain")
        if project is not None:
            form.add_field(field, project)
        if desktop is not None:
            form.add_field("desktopId", desktop)
        return await self.call("POST", "/api/files/upload", data=form)


class Pc:
    """A computer as the create call answered it."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.id: str = body["id"]
        self.instance_id: str = body["instance_id"]

    def path(self, route: str, endpoint: str) -> str:
        if route == "proxy":
            return f"/api/desktops/{self.instance_id}/proxy/{endpoint}"
        return f"/api/computers/{self.id}/{endpoint}"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(boot=BootTime.fixed(0.005), stop_seconds=0.005, seed=3)
    async with Emulator(config) as emulator:
        yield emulator


@pytest.fixture
async def api(emu: Emulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(emu, session)


@pytest.fixture
async def ws(api: Api) -> dict[str, Any]:
    return await api.workspace()


@pytest.fixture
async def pc(api: Api, ws: dict[str, Any]) -> Pc:
    return await api.computer(ws, resolution="640x400x24")


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds (the emulator offers no event for these states)."""
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.002)


def live_processes_with(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for info in scan_processes().values():
        if not info.alive:
            continue
        try:
            cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(info.pid)
    return found


def sign_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# --------------------------------------------------------------------------- pointer and keys


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


# --------------------------------------------------------------------------- screenshots


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
    other = await api.computer(ws, "c2")
    for route, status in (("platform", 500), ("proxy", 409)):
        first = asyncio.create_task(api.shot(pc, route))
        await until(lambda: api.emu.desktops.capturing(pc.id))
        second = await api.act(pc, route, "screenshot", params={"response_format": "base64"})
        assert (second.status, second.body["code"]) == (status, "screenshot_in_progress")
        if route == "platform":
            assert second.body["error"] == "Screenshot failed"
            assert second.body["upstream_status"] == 409
        reply, _ = await first
        assert reply.status == 200

    # Different computers are captured at the same time.
    both = asyncio.gather(api.shot(pc), api.shot(other))
    await until(lambda: api.emu.desktops.capturing(pc.id) and api.emu.desktops.capturing(other.id))
    assert [reply.status for reply, _ in await both] == [200, 200]


# --------------------------------------------------------------------------- availability


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


async def test_proxy_unknown_endpoint_and_wrong_method(api: Api, pc: Pc) -> None:
    assert (await api.call("GET", pc.path("proxy", "nothing"))).status == 404
    wrong = await api.call("GET", pc.path("proxy", "click"))
    assert (wrong.status, wrong.headers["Allow"]) == (405, "POST")
    assert (await api.call("POST", pc.path("proxy", "screenshot"))).status == 405
    assert (await api.call("GET", pc.path("platform", "click"))).status == 405


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
    await api.wait_running(pc)
    _, again = await api.shot(pc)
    assert decode_png(again).pixels == decode_png(fresh).pixels


# --------------------------------------------------------------------------- bash and exec


@pytest.mark.parametrize("route", ROUTES)
async def test_bash_runs_in_the_computers_home_without_secrets(
    api: Api, pc: Pc, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The emulator's own environment must not reach the command.
    monkeypatch.setenv("ORGO_API_KEY", "sk_do_not_leak")
    command = 'echo out; echo err >&2; pwd; echo "home=$HOME"; env; exit 3'
    reply = await api.act(pc, route, "bash", {"command": command})
    assert reply.status == 200
    body = reply.body
    workdir = str(api.emu.workdir(pc.id))
    assert (body["success"], body["action"], body["command"]) == (True, "bash", command)
    assert body["exit_code"] == 3
    assert body["output"].startswith(f"out\nerr\n{workdir}\nhome={workdir}\n")
    assert "sk_do_not_leak" not in body["output"]
    assert api.emu.api_key not in body["output"]
    assert "timed_out" not in body and "truncated" not in body
    assert api.emu.counters.bash_runs == 1


async def test_bash_timeout_kills_the_whole_session(api: Api, pc: Pc) -> None:
    marker = f"1000.{os.getpid()}1"  # a unique duration to find the processes by
    command = f"echo before; sleep {marker} & sleep {marker}"
    reply = await api.act(pc, "platform", "bash", {"command": command, "timeout": 1})
    assert reply.status == 200
    body = reply.body
    assert (body["success"], body["exit_code"], body["timed_out"]) == (True, 124, True)
    assert body["output"] == "before\n"
    assert live_processes_with(marker) == []  # bash and both sleeps


async def test_bash_keeps_the_tail_of_a_long_output(api: Api, pc: Pc) -> None:
    command = "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo END"
    reply = await api.act(pc, "proxy", "bash", {"command": command})
    body = reply.body
    assert (body["exit_code"], body["truncated"]) == (0, True)
    assert len(body["output"]) == MAX_OUTPUT
    assert body["output"].endswith("a\nEND\n")


async def test_background_jobs_outlive_the_command_until_the_computer_stops(
    api: Api, pc: Pc
) -> None:
    marker = f"2000.{os.getpid()}"
    command = f"nohup sleep {marker} >/dev/null 2>&1 & echo started"
    reply = await api.act(pc, "platform", "bash", {"command": command})
    assert (reply.body["output"], reply.body["exit_code"]) == ("started\n", 0)
    assert live_processes_with(marker)  # still running, as on a real machine
    await api.call("POST", f"/api/computers/{pc.id}/stop")
    await until(lambda: not live_processes_with(marker))


async def test_a_command_dies_with_its_computer(api: Api, pc: Pc) -> None:
    marker = f"3000.{os.getpid()}"
    task = asyncio.create_task(api.act(pc, "platform", "bash", {"command": f"sleep {marker}"}))
    await until(lambda: bool(live_processes_with(marker)))
    await api.call("DELETE", f"/api/computers/{pc.id}")
    reply = await task
    assert (reply.status, reply.body["code"]) == (503, "desktop_unavailable")
    assert live_processes_with(marker) == []


@pytest.mark.parametrize("route", ROUTES)
async def test_exec_success_and_exceptions(api: Api, pc: Pc, route: str) -> None:
    ok = await api.act(pc, route, "exec", {"code": "import os\nprint(6 * 7, os.getcwd())"})
    assert ok.status == 200
    assert ok.body == {
        "output": f"42 {api.emu.workdir(pc.id)}\n",
        "success": True,
        "action": "exec",
        "timeout": False,
        "exit_code": 0,
    }

    raised = await api.act(pc, route, "exec", {"code": "print('before')\n1 / 0"})
    body = raised.body
    assert (body["success"], body["timeout"], body["exit_code"]) == (False, False, 1)
    assert body["error_type"] == "ZeroDivisionError"
    assert body["error"] == "ZeroDivisionError: division by zero"
    assert body["output"].startswith("before\nTraceback (most recent call last):")

    syntax = await api.act(pc, route, "exec", {"code": "1 +"})
    assert syntax.body["error_type"] == "SyntaxError"
    exited = await api.act(pc, route, "exec", {"code": "import sys; sys.exit(4)"})
    assert (exited.body["error_type"], exited.body["exit_code"]) == ("SystemExit", 4)
    assert api.emu.counters.exec_runs == 4


async def test_exec_timeout_kills_the_code(api: Api, pc: Pc) -> None:
    marker = f"4000.{os.getpid()}"
    code = (
        "import subprocess, time\n"
        f"subprocess.Popen(['sleep', '{marker}'])\n"
        "print('started')\n"
        "time.sleep(100)\n"
    )
    reply = await api.act(pc, "platform", "exec", {"code": code, "timeout": 1})
    body = reply.body
    assert (body["success"], body["timeout"], body["error_type"]) == (False, True, "TimeoutError")
    assert body["output"] == "started\n"
    assert live_processes_with(marker) == []  # the Python process and its child


def test_exec_failure_parsing() -> None:
    chained = (
        "Traceback (most recent call last):\n  x\nKeyError: 'a'\n\nDuring handling...\n\n"
        'Traceback (most recent call last):\n  File "<string>", line 3\n'
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n"
    )
    failure = exec_failure(chained, 1)
    assert failure is not None
    assert failure.error_type == "JSONDecodeError"
    assert failure.error.startswith("json.decoder.JSONDecodeError: Expecting value")
    assert exec_failure("fine\n", 0) is None
    killed = exec_failure("", 137)
    assert killed is not None and (killed.error_type, "SIGKILL" in killed.error) == (None, True)


async def test_closing_the_emulator_ends_commands_and_waits() -> None:
    marker = f"5000.{os.getpid()}"
    config = EmulatorConfig(boot=BootTime.fixed(0.005))
    async with aiohttp.ClientSession() as session:
        emu = Emulator(config)
        await emu.start()
        try:
            api = Api(emu, session)
            pc = await api.computer(await api.workspace())
            bash = asyncio.create_task(
                api.act(pc, "platform", "bash", {"command": f"sleep {marker}"})
            )
            wait = asyncio.create_task(api.act(pc, "proxy", "wait", {"seconds": 60}))
            await until(lambda: bool(live_processes_with(marker)))
            await until(lambda: "wait" in emu.counters.actions)
        finally:
            started = time.monotonic()
            await emu.close()
        assert time.monotonic() - started < 30  # the 60 s wait was cut short
        assert live_processes_with(marker) == []
        # Both requests end (an answer or a closed connection) instead of hanging.
        async with asyncio.timeout(5):
            results = await asyncio.gather(bash, wait, return_exceptions=True)
        for result in results:
            assert isinstance(result, Reply | aiohttp.ClientError), result


# --------------------------------------------------------------------------- files


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
    second = await api.computer(ws, "c2")
    stopped = await api.computer(ws, "c3")
    await api.call("POST", f"/api/computers/{stopped.id}/stop")
    elsewhere = await api.computer(await api.workspace("other"), "c4")
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


async def test_an_upload_over_10_mb_is_refused_while_it_streams(
    api: Api, ws: dict[str, Any], pc: Pc
) -> None:
    emu = api.emu
    boundary = "emulator-test-boundary"
    head = (
        "POST /api/files/upload HTTP/1.1\r\n"
        f"Host: {emu.hostport}\r\n"
        f"Authorization: Bearer {emu.api_key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
    )

    # A chunked body that never ends: the 413 must come while it is still being sent.
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    try:
        writer.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        part = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        block = b"\0" * (1 << 20)
        for data in [part] + [block] * (MAX_UPLOAD_BYTES // len(block) + 1):
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        async with asyncio.timeout(5):
            status, body = await _read_response(reader)
        assert status == 413
        assert b'"code": "file_too_large"' in body and b'"error": "File too large"' in body
    finally:
        writer.close()

    # A declared length over the limit is refused before any of the body is sent.
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    try:
        writer.write((head + f"Content-Length: {50 * MAX_UPLOAD_BYTES}\r\n\r\n").encode())
        async with asyncio.timeout(5):
            status, body = await _read_response(reader)
        assert status == 413
    finally:
        writer.close()

    assert list(emu.files.blob_dir.iterdir()) == []
    assert not (emu.workdir(pc.id) / "Desktop" / "big.bin").exists()
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
    for path in ("/etc/passwd", "/root/Desktop/d.txt", "../../../etc/passwd", "Desktop/link.txt"):
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


# --------------------------------------------------------------------------- counters


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
