"""The event-loop lag monitor: its samples, their summary in the counters, and their reset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from orgo_async.emulator import Emulator, EmulatorConfig
from orgo_async.emulator.loop_lag import LoopLagMonitor

from ..conftest import eventually
from .rest import FAST_BOOT, Api

# Long enough that the sampler never records during a test: the samples are the test's.
NEVER = 3600.0


def test_summary_is_nearest_rank_in_ms() -> None:
    monitor = LoopLagMonitor(0.005)
    assert monitor.summary() == {
        "interval_ms": 5.0,
        "samples": 0,
        "p50": None,
        "p99": None,
        "max": None,
    }
    for ms in range(100, 0, -1):  # 100 .. 1 ms, out of order
        monitor.record(ms / 1000)
    assert monitor.summary() == {
        "interval_ms": 5.0,
        "samples": 100,
        "p50": 50.0,
        "p99": 99.0,
        "max": 100.0,
    }
    monitor.reset()
    assert monitor.summary()["samples"] == 0


def test_the_buffer_is_bounded_and_keeps_the_latest() -> None:
    monitor = LoopLagMonitor(0.005, max_samples=3)
    for seconds in (0.009, 0.001, 0.002, 0.003):
        monitor.record(seconds)
    assert monitor.summary()["samples"] == 3
    assert monitor.summary()["max"] == 3.0


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
def test_the_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        LoopLagMonitor(interval)


async def test_the_sampler_records_until_stopped() -> None:
    monitor = LoopLagMonitor(0.001)
    monitor.start()
    monitor.start()  # idempotent: one sampler
    try:
        await eventually(lambda: monitor.summary()["samples"] >= 3)
    finally:
        await monitor.stop()
    summary = monitor.summary()
    assert summary["p50"] >= 0 and summary["p50"] <= summary["p99"] <= summary["max"]
    await monitor.stop()  # idempotent
    kept = summary["samples"]
    await asyncio.sleep(0.005)
    assert monitor.summary()["samples"] == kept  # nothing samples any more


async def test_off_by_default(api: Api) -> None:
    assert api.emu.config.loop_lag_interval is None
    assert api.emu.counters.loop_lag is None
    reply = await api.call("GET", "/_emulator/counters")
    assert reply.body["loop_lag_ms"] is None


@pytest.fixture
async def monitored() -> AsyncIterator[Api]:
    config = EmulatorConfig(boot=FAST_BOOT, loop_lag_interval=NEVER)
    async with Emulator(config) as emu, aiohttp.ClientSession() as session:
        yield Api(emu, session)


async def test_the_counters_show_the_monitor_and_reset_it(monitored: Api) -> None:
    monitor = monitored.emu.counters.loop_lag
    assert monitor is not None
    for seconds in (0.001, 0.002, 0.010):
        monitor.record(seconds)
    reply = await monitored.call("GET", "/_emulator/counters")
    assert reply.body["loop_lag_ms"] == {
        "interval_ms": NEVER * 1000,
        "samples": 3,
        "p50": 2.0,
        "p99": 10.0,
        "max": 10.0,
    }
    assert (await monitored.call("DELETE", "/_emulator/counters")).status == 200
    reply = await monitored.call("GET", "/_emulator/counters")
    assert reply.body["loop_lag_ms"]["samples"] == 0
    assert reply.body["loop_lag_ms"]["p99"] is None


async def test_a_monitored_emulator_samples_its_loop_and_stops_with_it() -> None:
    async with Emulator(EmulatorConfig(loop_lag_interval=0.001)) as emu:
        monitor = emu.counters.loop_lag
        assert monitor is not None
        await eventually(lambda: emu.counters.to_dict()["loop_lag_ms"]["samples"] >= 3)
    # Closed: the sampler is gone with the server (no task left behind).
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "emulator loop-lag monitor"]
