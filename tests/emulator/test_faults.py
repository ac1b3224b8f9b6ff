"""Fault rules, and the faults the request pipeline injects: status, drop, delay, lost response."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import aiohttp
import pytest

from orgo_async.emulator import FaultRule, Faults

from .rest import Api


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
    assert (await api.call("GET", "/api/workspaces", auth=False)).status == 401
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
