"""The desktop proxy's health probe (200 exactly at ready_at) and its other endpoints."""

from __future__ import annotations

import asyncio
import time

from orgo_async.emulator import FaultRule

from ..rest import Api, FakeClock, Pc


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


async def test_desktop_proxy_other_endpoints(fapi: Api, clock: FakeClock) -> None:
    ws = await fapi.workspace()
    computer = await fapi.computer(ws["id"])
    booting = await fapi.call("POST", f"/api/desktops/{computer['instance_id']}/proxy/click", {})
    assert (booting.status, booting.body["code"]) == (503, "desktop_unavailable")
    clock.advance(1.0)
    unknown = await fapi.call("GET", f"/api/desktops/{computer['instance_id']}/proxy/nothing")
    assert unknown.status == 404


async def test_proxy_unknown_endpoint_and_wrong_method(api: Api, pc: Pc) -> None:
    assert (await api.call("GET", pc.path("proxy", "nothing"))).status == 404
    wrong = await api.call("GET", pc.path("proxy", "click"))
    assert (wrong.status, wrong.headers["Allow"]) == (405, "POST")
    assert (await api.call("POST", pc.path("proxy", "screenshot"))).status == 405
    assert (await api.call("GET", pc.path("platform", "click"))).status == 405


async def test_probes_in_flight_at_once_are_counted_per_computer(api: Api) -> None:
    ws = await api.workspace()
    slow = await api.computer(ws["id"], "slow")
    other = await api.computer(ws["id"], "other")
    counters = api.emu.counters
    # Two probes held by a server delay overlap: both are in flight at once.
    api.emu.faults.add(FaultRule(kind="delay", path=r"/proxy/health$", delay=0.5, times=2))
    # By instance id and by UUID: the same computer either way.
    await asyncio.gather(api.health(slow["instance_id"]), api.health(slow["id"]))
    await api.health(other["instance_id"])
    await api.health(other["instance_id"])
    assert counters.health_inflight_max == {slow["id"]: 2, other["id"]: 1}
    snapshot = await api.call("GET", "/_emulator/counters")
    assert snapshot.body["health_inflight_max"] == {slow["id"]: 2, other["id"]: 1}

    # Reset with the other counters; the earlier probes have ended, so one is one.
    await api.call("DELETE", "/_emulator/counters")
    assert counters.health_inflight_max == {}
    await api.health(slow["id"])
    assert counters.health_inflight_max == {slow["id"]: 1}


async def test_a_probe_a_fault_answers_was_in_flight_too(api: Api) -> None:
    ws = await api.workspace()
    computer = await api.computer(ws["id"])
    api.emu.faults.add(FaultRule(kind="status", status=503, path=r"/proxy/health$", times=1))
    assert (await api.health(computer["id"])).status == 503
    assert api.emu.counters.health_inflight_max == {computer["id"]: 1}
    assert api.emu.counters.health_probes == {computer["id"]: 1}
    # An unknown computer has nothing to count.
    assert (await api.health("nobody")).status == 404
    assert api.emu.counters.health_inflight_max == {computer["id"]: 1}
