"""The configuration: BootTime, EmulatorConfig validation, and the production drift switches."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from orgo_async.emulator import BootTime, EmulatorConfig

from .rest import HEX8, Api, FakeClock, running_computer


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
    assert (await api.call("GET", "/api/workspaces", auth=False)).status == 401


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


async def test_legacy_restart_405(fapi: Api, clock: FakeClock) -> None:
    computer = await running_computer(fapi, clock)
    fapi.emu.config.legacy_restart = True
    reply = await fapi.call("POST", f"/api/computers/{computer['id']}/restart")
    assert (reply.status, reply.body["code"]) == (405, "method_not_allowed")
    assert (await fapi.call("GET", f"/api/computers/{computer['id']}")).body["status"] == "running"
