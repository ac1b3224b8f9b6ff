"""The counters: what a run of requests leaves in them, over HTTP and in process."""

from __future__ import annotations

import gc
import time

from orgo_async.emulator import Counters, FaultRule

from .rest import Api


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

    # The process's CPU since the counters' reset (here, since they were made), and how long ago.
    cpu, since = snapshot.body["process_cpu_seconds"], snapshot.body["seconds_since_reset"]
    assert 0 < cpu and 0 < since

    reset = await api.call("DELETE", "/_emulator/counters")
    assert reset.status == 200
    assert (counters.creates, counters.requests, counters.healthy_at) == (0, {}, {})
    after = counters.to_dict()
    assert after["process_cpu_seconds"] < cpu and after["seconds_since_reset"] < since


def test_counters_count_the_process_full_collections_since_their_reset() -> None:
    gc.disable()  # only the collections made here
    try:
        counters = Counters()
        before = counters.to_dict()["gc_full_collections"]
        gc.collect()
        gc.collect()
        assert counters.to_dict()["gc_full_collections"] == before + 2
        counters.reset()
        assert counters.to_dict()["gc_full_collections"] == 0
        gc.collect(1)  # a younger generation's collection is not a full one
        assert counters.to_dict()["gc_full_collections"] == 0
        assert counters.to_dict()["gc_frozen_objects"] == gc.get_freeze_count()
    finally:
        gc.enable()


def test_counters_standalone_reset() -> None:
    counters = Counters()
    counters.creates = 3
    counters.health_probes["x"] = 2
    counters.reset()
    assert (counters.creates, counters.health_probes, counters.live) == (0, {}, 0)


def test_probes_in_flight_survive_a_reset_but_their_maximum_does_not() -> None:
    counters = Counters()
    counters.probe_started("a")
    counters.probe_started("a")
    counters.probe_started("b")
    counters.probe_ended("a")
    assert counters.health_inflight_max == {"a": 2, "b": 1}
    counters.reset()
    assert counters.health_inflight_max == {}
    # One "a" probe is still in flight: the next one makes two.
    counters.probe_started("a")
    assert counters.health_inflight_max == {"a": 2}
    for _ in range(3):
        counters.probe_ended("a")  # more ends than starts never goes below zero
    counters.probe_started("a")
    assert counters.health_inflight_max == {"a": 2}
    assert counters.to_dict()["health_inflight_max"] == {"a": 2}
