"""The readiness race: seen after boot and never before, against one deadline, failing fast."""

from __future__ import annotations

import asyncio

import pytest

from orgo_async import (
    BootModel,
    Computer,
    ComputerFailedError,
    ComputerStatus,
    Orgo,
    ReadyTimeout,
    Workspace,
)
from orgo_async.emulator import BootTime, Emulator, FaultRule
from orgo_async.health import _schedule

from .conftest import client_tasks


async def test_ready_is_seen_after_boot_and_never_before(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.uniform(0.05, 0.15)
    for n in range(8):
        c = await orgo.computers.create(workspace_id=workspace.id, name=f"r{n}")
        info = await orgo.computers.wait_ready(c, timeout=10)
        healthy_at = emulator.counters.healthy_at[c.id]
        assert info.ready >= healthy_at  # loop.time() and the emulator share time.monotonic()
        assert info.first_probe is not None and info.first_probe >= info.since
        assert 1 <= emulator.counters.health_probes[c.id] <= info.probes
        assert (await orgo.computers.get(c)).status == ComputerStatus.RUNNING
    assert "samples=8" in repr(orgo.boot_model)


async def test_the_deadline_wins_with_its_data(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(30.0)
    c = await orgo.computers.create(workspace_id=workspace.id, name="slow")
    with pytest.raises(ReadyTimeout) as info:
        await orgo.wait_ready(c, timeout=0.6)
    err = info.value
    assert err.computer_id == c.id
    assert err.probes >= 1 and err.probes == emulator.counters.health_probes[c.id]
    assert err.last_status == "503"
    assert err.elapsed >= 0.6
    assert isinstance(err, TimeoutError)


async def test_a_failed_boot_fails_fast(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot_failure_rate = 1.0
    c = await orgo.computers.create(workspace_id=workspace.id, name="broken")
    with pytest.raises(ComputerFailedError) as info:
        await orgo.wait_ready(c, timeout=60)  # raised long before this deadline
    assert info.value.status == "error" and info.value.computer_id == c.id


async def test_known_failed_status_needs_no_request(orgo: Orgo, emulator: Emulator) -> None:
    before = dict(emulator.counters.requests)
    dead = Computer(id="x", instance_id="i", status=ComputerStatus.STOPPED)
    with pytest.raises(ComputerFailedError, match="stopped"):
        await orgo.wait_ready(dead)
    assert emulator.counters.requests == before


async def test_a_computer_deleted_while_waiting(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(30.0)
    c = await orgo.computers.create(workspace_id=workspace.id, name="gone")
    waiter = asyncio.create_task(orgo.wait_ready(c, timeout=20))
    await asyncio.sleep(0.05)
    await orgo.computers.delete(c)
    with pytest.raises(ComputerFailedError, match="deleted"):
        await waiter


async def test_a_slow_probe_does_not_delay_the_next(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(0.1)
    slow = emulator.faults.add(
        FaultRule(kind="delay", delay=5.0, method="GET", path="/proxy/health$", times=2)
    )
    loop = asyncio.get_running_loop()
    c = await orgo.computers.create(workspace_id=workspace.id, name="overlap")
    started = loop.time()
    info = await orgo.wait_ready(c, timeout=10)
    assert slow.fired == 2
    assert info.probes >= 3
    assert loop.time() - started < 2.5  # did not sit behind the 5 s probes


async def test_cancelling_leaves_no_probe_behind(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(30.0)
    c = await orgo.computers.create(workspace_id=workspace.id, name="cancel")
    baseline = client_tasks()
    waiter = asyncio.create_task(orgo.wait_ready(c, timeout=20))
    await asyncio.sleep(0.5)  # well into the probing
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert client_tasks() == baseline


def test_boot_model_learns_a_tight_window() -> None:
    model = BootModel()
    start, end, spacing = model.window()
    assert start < 0.3 < end  # Orgo's published boot time is inside the default window
    for n in range(100):
        model.observe(0.5 + (n % 10) * 0.002)  # 500..518 ms
    start, end, spacing = model.window()
    assert 0.49 <= start <= 0.5 and 0.518 <= end <= 0.53
    assert spacing <= model.max_spacing
    for _ in range(300):
        model.observe(0.2)  # old samples age out
    start, end, _ = model.window()
    assert end < 0.25


def test_schedule_is_dense_across_the_window_then_backs_off_with_status_checks() -> None:
    steps = _schedule(0.3, 0.34, 0.01, immediate=False)
    offsets = [next(steps) for _ in range(40)]
    times = [t for t, _ in offsets]
    assert times[:4] == pytest.approx([0.3, 0.31, 0.32, 0.33])
    assert offsets[4] == (pytest.approx(0.34), True)  # the status check at the window's end
    # Late boots are usually only a little late: the pace holds for another window.
    assert [b - a for a, b in zip(times[4:8], times[5:9], strict=True)] == pytest.approx(
        [0.01] * 4
    )
    gaps = [b - a for a, b in zip(times[8:], times[9:], strict=False)]
    assert all(b >= a - 1e-9 for a, b in zip(gaps, gaps[1:], strict=False))  # never shorter
    assert gaps[0] > 0.01 and max(gaps) <= 1.0 + 1e-9
    assert sum(check for _, check in offsets[5:]) >= 2  # periodic status checks
    assert next(_schedule(0.3, 0.34, 0.01, immediate=True)) == (0.0, False)
