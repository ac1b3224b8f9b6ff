"""The emulator server and its request pipeline: surface, URLs, exit, API key, request ids.

Driven by plain aiohttp requests (no SDK), on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest

import orgo_async.emulator as emulator_pkg
from orgo_async.emulator import Emulator, EmulatorConfig, FaultRule
from orgo_async.emulator.app import create_app
from orgo_async.emulator.routes import desktop, files, health

from .rest import FAST_BOOT, Api


def test_public_surface() -> None:
    assert sorted(emulator_pkg.__all__) == [
        "BootTime",
        "Counters",
        "Emulator",
        "EmulatorConfig",
        "FaultRule",
        "Faults",
    ]


def test_route_order_and_the_names_the_pipeline_looks_for() -> None:
    # Each resource maps its own routes; create_app puts them in order.
    routes = list(create_app(Emulator()).router.routes())
    proxy = [
        r for r in routes if r.resource and r.resource.canonical.startswith(desktop.PROXY_PATH)
    ]
    # Routes match in order: the proxy's catch-all must follow every action and the probe,
    # and the probe, the busiest route, comes first of all.
    assert [r.handler for r in proxy if r.method == "*"] == [health.desktop_proxy]
    assert proxy[-1].handler is health.desktop_proxy
    assert routes[0].handler is health.desktop_health
    assert len(proxy) == len(desktop.ACTIONS) + 2
    names = {r.name: (r.method, r.handler) for r in routes if r.name}
    assert names == {
        health.HEALTH_ROUTE: ("GET", health.desktop_health),
        files.UPLOAD_ROUTE: ("POST", files.upload_file),
        files.SIGNED_ROUTE: ("GET", files.file_blob),
    }
    # No route is mapped twice (a second one would never be reached).
    assert len(routes) == len({(r.method, r.resource.canonical) for r in routes if r.resource})


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


async def test_auth_required(api: Api) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {api.emu.api_key}"},
        {"Authorization": "Bearer sk_émulator"},
    ):
        reply = await api.call("GET", "/api/workspaces", auth=False, headers=headers)
        assert reply.status == 401
        assert reply.body["error"] == "Invalid API key"
        assert reply.body["code"] == "invalid_api_key"
        assert reply.body["request_id"] == reply.headers["X-Request-Id"]
    # Health, unknown /api paths and admin routes need the key as well.
    assert (await api.call("GET", "/api/desktops/x/proxy/health", auth=False)).status == 401
    assert (await api.call("GET", "/api/nowhere", auth=False)).status == 401
    assert (await api.call("GET", "/_emulator/counters", auth=False)).status == 401


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
