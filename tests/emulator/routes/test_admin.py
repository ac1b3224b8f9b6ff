"""The emulator's ``/_emulator/`` routes: faults, config and computers over HTTP."""

from __future__ import annotations

from orgo_async.emulator import BootTime

from ..rest import Api


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


async def test_a_seed_set_again_repeats_the_boot_times(api: Api) -> None:
    await api.call(
        "PATCH", "/_emulator/config", {"boot": {"dist": "uniform", "low": 5.0, "high": 9.0}}
    )
    ws = await api.workspace()

    async def boots(seed: int, names: str) -> list[float]:
        reply = await api.call("PATCH", "/_emulator/config", {"seed": seed})
        assert (reply.status, reply.body["seed"]) == (200, seed)
        created = [await api.computer(ws["id"], name) for name in names]
        listed = (await api.call("GET", "/_emulator/computers")).body["computers"]
        seconds = {item["id"]: item["boot_seconds"] for item in listed}
        return [seconds[computer["id"]] for computer in created]

    first = await boots(7, "abc")
    assert len(set(first)) == 3
    assert await boots(7, "def") == first
    assert await boots(8, "ghi") != first
    for bad in ("7", True, 1.5):
        reply = await api.call("PATCH", "/_emulator/config", {"seed": bad})
        assert (reply.status, reply.body["code"]) == (400, "invalid_field"), bad
    assert api.emu.config.seed == 8
