"""The fleet launcher: bounded, paced, typed per-item outcomes, and nothing left behind."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, cast

import pytest

from orgo_async import (
    AdaptiveLimiter,
    APITimeoutError,
    AuthenticationError,
    ComputerFailedError,
    ComputerFields,
    ComputerSpec,
    CreateWindow,
    FleetError,
    FleetOptions,
    Orgo,
    OrgoError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    Workspace,
)
from orgo_async.emulator import BootTime, Emulator, FaultRule
from orgo_async.fleet import create_shielded
from orgo_async.models import Computer

from .conftest import RecordedSleeps, client_tasks, eventually


async def test_every_computer_arrives_ready_with_its_timing(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    names = []
    async with orgo.fleet(workspace.id, 30, prefix="ok", concurrency=8, ram=8) as fleet:
        async for launched in fleet:
            c, t = launched.computer, launched.timing
            names.append(c.name)
            assert c.ram == 8 and c.name.startswith("ok-")
            assert t.request_sent <= t.create_answered <= t.ready_detected
            assert t.ready_detected >= emulator.counters.healthy_at[c.id]
            assert t.probes >= 1 and t.retries == 0
    assert len(set(names)) == 30 and fleet.failures == []
    assert emulator.counters.live == 30  # received, so kept


async def test_failures_and_a_429_storm_give_one_outcome_per_computer(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot_failure_rate = 0.1
    emulator.faults.add(
        FaultRule(
            kind="status",
            status=429,
            code="rate_limited",
            retry_after=0.02,
            probability=0.3,
            method="POST",
            path=r"^/api/computers$",
        )
    )
    result = await orgo.launch_fleet(workspace.id, 200, prefix="storm", concurrency=32)
    assert len(result.ready) + len(result.failures) == 200
    assert {f.index for f in result.failures}.isdisjoint(
        {int(r.computer.name.rsplit("-", 1)[1]) for r in result.ready}
    )
    errored = emulator.counters.responses_by_status[429]
    assert errored > 0
    assert all(isinstance(f.error, ComputerFailedError) for f in result.failures)
    assert all(f.error.status == "error" for f in result.failures)  # type: ignore[attr-defined]
    assert 5 <= len(result.failures) <= 40  # ~10 % of 200
    # Every healthy computer came back; every failed one was deleted.
    assert emulator.counters.live == len(result.ready)
    assert sum(r.timing.retries for r in result.ready) > 0


async def test_raise_on_failure_is_all_or_nothing(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot_failure_rate = 0.5
    with pytest.raises(FleetError) as info:
        await orgo.launch_fleet(workspace.id, 12, raise_on_failure=True)
    group = info.value
    assert isinstance(group, ExceptionGroup)
    assert group.exceptions and all(isinstance(e, ComputerFailedError) for e in group.exceptions)
    assert group.ready + len(group.exceptions) == 12
    assert emulator.counters.live == 0


async def _cancel_when(fleet_task: asyncio.Task[object], predicate: object) -> None:
    await eventually(predicate)
    fleet_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fleet_task


async def test_cancel_before_the_creates_answer(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.faults.add(FaultRule(kind="delay", delay=0.3, method="POST", path=r"^/api/computers$"))
    baseline = client_tasks()
    task = asyncio.create_task(orgo.launch_fleet(workspace.id, 10, concurrency=10))
    await _cancel_when(task, lambda: emulator.counters.requests.get("POST /api/computers", 0) >= 10)
    # The creates in flight were made by the server after the cancel: all deleted.
    assert emulator.counters.creates == 10
    assert emulator.counters.live == 0
    assert client_tasks() == baseline


async def test_cancel_during_health_polling(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(30.0)
    baseline = client_tasks()
    task = asyncio.create_task(orgo.launch_fleet(workspace.id, 10, concurrency=4))
    await _cancel_when(task, lambda: sum(emulator.counters.health_probes.values()) >= 8)
    assert emulator.counters.creates >= 4
    assert emulator.counters.live == 0
    assert client_tasks() == baseline


async def test_cancel_while_iterating_keeps_only_what_was_received(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.uniform(0.02, 0.5)
    received = []
    baseline = client_tasks()

    async def consume() -> None:
        async with orgo.fleet(workspace.id, 20, concurrency=20) as fleet:
            async for launched in fleet:
                received.append(launched.computer.id)
                if len(received) == 3:
                    await asyncio.sleep(30)  # the consumer is busy when it is cancelled

    task = asyncio.create_task(consume())
    await _cancel_when(task, lambda: len(received) == 3)
    assert emulator.counters.live == 3
    assert {c.id for c in await orgo.computers.list(workspace.id)} == set(received)
    assert client_tasks() == baseline


async def test_leaving_the_block_early_deletes_the_rest(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    async with orgo.fleet(workspace.id, 15, concurrency=15) as fleet:
        async for launched in fleet:
            first = launched.computer
            break
    assert [c.id for c in await orgo.computers.list(workspace.id)] == [first.id]


async def test_a_deadline_fails_what_is_unfinished(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(30.0)
    result = await orgo.launch_fleet(workspace.id, 6, deadline=0.5)
    assert result.ready == ()
    assert len(result.failures) == 6
    assert all(isinstance(f.error, APITimeoutError) for f in result.failures)
    assert {f.error.phase for f in result.failures} == {"fleet deadline"}  # type: ignore[attr-defined]
    assert emulator.counters.live == 0


async def test_a_fatal_error_ends_the_launch_and_cleans_up(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    # Some computers are ready and received by the collect-all form when the
    # plan limit strikes; others are still booting. None may survive.
    emulator.config.max_computers = 5
    emulator.config.boot = BootTime.uniform(0.01, 0.2)
    with pytest.raises(PermissionDeniedError, match="plan"):
        # (check_capacity would refuse the fleet up front: this is about mid-launch.)
        await orgo.launch_fleet(workspace.id, 12, concurrency=3, check_capacity=False)
    assert emulator.counters.creates == 5
    assert emulator.counters.live == 0


async def test_a_bad_key_is_fatal(emulator: Emulator, workspace: Workspace) -> None:
    async with Orgo(api_key="sk_nope", base_url=emulator.base_url) as orgo:
        with pytest.raises(AuthenticationError):
            await orgo.launch_fleet(workspace.id, 5)


async def test_the_limiter_adapts_to_the_servers_rate_limit(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, sleeps: RecordedSleeps
) -> None:
    emulator.config.create_rate_limit = 40.0
    async with orgo.fleet(workspace.id, 60, concurrency=60) as fleet:
        ready = [x async for x in fleet]
    assert len(ready) == 60 and fleet.failures == []
    # However fast this machine is, the emulator refused what went over 40/s, and
    # every 429 (retried inside its request) reached the fleet's limiter.
    refused = emulator.counters.responses_by_status.get(429, 0)
    assert fleet.limiter.rate_limited == refused
    if refused:
        assert fleet.limiter.rate is not None and fleet.limiter.rate < 60


async def test_a_429_retried_inside_its_request_slows_the_whole_fleet(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, sleeps: RecordedSleeps
) -> None:
    rule = emulator.faults.add(
        FaultRule(
            kind="status",
            status=429,
            retry_after=0.5,
            times=3,
            method="POST",
            path=r"^/api/computers$",
        )
    )
    async with orgo.fleet(workspace.id, 4, concurrency=4) as fleet:
        ready = [x async for x in fleet]
    assert len(ready) == 4 and rule.fired == 3
    # The creates' own retries absorbed the 429s (no create failed, none needed a
    # second round through the limiter), and the limiter heard each one.
    assert all(x.timing.retries <= 3 for x in ready) and sum(x.timing.retries for x in ready) == 3
    assert fleet.limiter.rate_limited == 3
    assert fleet.limiter.rate is not None and fleet.limiter.probes.cuts >= 1


async def test_rate_limit_exhaustion_inside_a_create_is_retried_by_the_fleet(
    emulator: Emulator, workspace: Workspace, sleeps: RecordedSleeps
) -> None:
    emulator.faults.add(
        FaultRule(
            kind="status",
            status=429,
            retry_after=0.01,
            times=4,
            method="POST",
            path=r"^/api/computers$",
        )
    )
    async with Orgo(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        retry=RetryPolicy(max_attempts=2, sleep=sleeps),
    ) as orgo:
        result = await orgo.launch_fleet(workspace.id, 1, limiter=AdaptiveLimiter(min_rate=1000.0))
    assert len(result.ready) == 1 and result.ready[0].timing.retries >= 2


async def test_explicit_specs_and_validation(orgo: Orgo, workspace: Workspace) -> None:
    specs = [ComputerSpec(workspace_id=workspace.id, name=n, cpu=2) for n in ("a", "b")]
    result = await orgo.launch_fleet(workspace.id, specs=specs)
    assert sorted(r.computer.name for r in result.ready) == ["a", "b"]
    with pytest.raises(ValueError, match="count must be a whole number >= 1"):
        orgo.fleet(workspace.id, 0)
    with pytest.raises(ValueError, match="own name"):
        orgo.fleet(workspace.id, specs=specs + specs[:1])
    with pytest.raises(ValueError, match="concurrency"):
        orgo.fleet(workspace.id, 2, concurrency=0)
    with pytest.raises(ValueError, match="ram must be one of"):
        orgo.fleet(workspace.id, 2, ram=3)
    with pytest.raises(ValueError, match="ready_timeout must be a number of seconds > 0"):
        orgo.fleet(workspace.id, 2, ready_timeout=-1)
    with pytest.raises(RuntimeError, match="async with"):
        await anext(aiter(orgo.fleet(workspace.id, 1)))


def test_fleet_options_are_the_fleets_keywords() -> None:
    # launch_fleet takes **FleetOptions and hands them to fleet(): the two must agree.
    params = inspect.signature(Orgo.fleet).parameters
    keywords = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY} | set(
        ComputerFields.__annotations__
    )
    assert set(FleetOptions.__annotations__) == keywords


async def test_every_computer_field_reaches_the_api_from_each_entry_point(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    fields: ComputerFields = {
        "os": "linux",
        "ram": 8,
        "cpu": 2,
        "disk_size_gb": 20,
        "resolution": "1024x768x24",
        "auto_stop_minutes": 5,
    }
    created = await orgo.computers.create(workspace_id=workspace.id, name="c", **fields)
    launched = await orgo.computers.launch(workspace_id=workspace.id, name="l", **fields)
    fleet = await orgo.launch_fleet(workspace.id, 1, **fields)
    for computer in (created, launched.computer, fleet.ready[0].computer):
        seen = await orgo.computers.get(computer)
        assert (seen.os, seen.ram, seen.cpu, seen.disk_size_gb) == ("linux", 8, 2, 20)
        assert (seen.resolution, seen.auto_stop_minutes) == ("1024x768x24", 5)


async def test_reap_deletes_a_crashed_runs_leftovers(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    await orgo.computers.create(workspace_id=workspace.id, name="keep-me")
    await orgo.computers.create(workspace_id=workspace.id, name="crash-x1")
    result = await orgo.launch_fleet(workspace.id, 5, prefix="crash")  # received, then "crashed"
    assert len(result.ready) == 5
    reaped = await orgo.reap("crash", workspace_id=workspace.id)
    assert len(reaped) == 6
    assert [c.name for c in await orgo.computers.list(workspace.id)] == ["keep-me"]


async def test_a_failure_names_the_computer_it_deleted(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot_failure_rate = 1.0
    result = await orgo.launch_fleet(workspace.id, 3)
    assert len(result.failures) == 3
    ids = {f.computer_id for f in result.failures}
    assert None not in ids and len(ids) == 3
    assert emulator.counters.deletes == 3 and emulator.counters.live == 0


async def test_a_rate_limit_that_never_ends_fails_the_computer_not_the_loop(
    emulator: Emulator, workspace: Workspace, sleeps: RecordedSleeps
) -> None:
    emulator.faults.add(
        FaultRule(
            kind="status", status=429, retry_after=0.001, method="POST", path=r"^/api/computers$"
        )
    )
    async with Orgo(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        retry=RetryPolicy(max_attempts=1, sleep=sleeps),
    ) as orgo:
        # A limiter whose floor is high keeps the test short; the default floor is 0.5/s.
        result = await orgo.launch_fleet(workspace.id, 2, limiter=AdaptiveLimiter(min_rate=1000.0))
    assert result.ready == () and len(result.failures) == 2
    assert all(isinstance(f.error, RateLimitError) for f in result.failures)
    assert emulator.counters.live == 0


# -- the create window -------------------------------------------------------------------


def _counting_creates(orgo: Orgo, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the fleet's creates in flight; returns ``[now, most]``, kept up to date."""
    seen = [0, 0]
    create = orgo.computers.create_from

    async def counted(*args: Any, **kwargs: Any) -> Computer:
        seen[0] += 1
        seen[1] = max(seen[1], seen[0])
        try:
            return await create(*args, **kwargs)
        finally:
            seen[0] -= 1

    monkeypatch.setattr(orgo.computers, "create_from", counted)
    return seen


@pytest.mark.parametrize("window", [None, 3])
async def test_the_create_window_bounds_the_creates_in_flight(
    orgo: Orgo,
    workspace: Workspace,
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    window: int | None,
) -> None:
    emulator.faults.add(
        FaultRule(kind="delay", delay=0.05, method="POST", path=r"^/api/computers$")
    )
    seen = _counting_creates(orgo, monkeypatch)
    limiter = AdaptiveLimiter()
    if window is not None:
        limiter.creates = CreateWindow(window, minimum=1, maximum=window)
    result = await orgo.launch_fleet(workspace.id, 12, concurrency=12, limiter=limiter)
    assert len(result.ready) == 12 and not result.failures
    # Unbounded by the default window (32), all twelve leave together; a window of 3 holds
    # them to 3, and every slot comes back.
    assert seen[1] == (12 if window is None else 3)
    assert limiter.creates.in_flight == 0 and limiter.creates.max_in_flight == seen[1]


async def test_a_cancelled_fleet_gives_back_its_create_slots_and_leaks_nothing(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.faults.add(FaultRule(kind="delay", delay=0.2, method="POST", path=r"^/api/computers$"))
    limiter = AdaptiveLimiter()
    limiter.creates = CreateWindow(2, minimum=1, maximum=2)
    baseline = client_tasks()
    task = asyncio.create_task(orgo.launch_fleet(workspace.id, 8, concurrency=8, limiter=limiter))
    # Two creates in flight, six waiting for a slot: cancel then.
    await _cancel_when(task, lambda: emulator.counters.requests.get("POST /api/computers", 0) >= 2)
    assert emulator.counters.creates == 2
    assert emulator.counters.live == 0
    assert limiter.creates.in_flight == 0
    assert client_tasks() == baseline


async def test_the_create_window_grows_while_answers_are_quick_and_shrinks_when_they_queue() -> (
    None
):
    window = CreateWindow(4, minimum=2, maximum=6)
    for _ in range(4):
        await window.acquire()
    fifth = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0)
    assert not fifth.done()  # the window is full
    window.release(0.001, now=1.0)  # quick, with the window in use: 5, and the fifth goes
    await asyncio.sleep(0)
    assert window.limit == 5 and fifth.done() and window.in_flight == 4
    window.release(None, now=1.0)  # a failed create: its slot back, nothing learned
    assert window.limit == 5 and window.in_flight == 3
    window.release(0.002, now=1.0)  # quick, but the window not in use: no growth
    assert window.limit == 5
    # Queued: 5 ms above the quickest (1 ms) is the most that counts as quick.
    window.release(0.007, now=1.0)
    assert window.limit == 5 * 0.75 and window.cuts == 1
    await window.acquire()
    window.release(0.007, now=1.005)  # within one answer time of the last cut: no second cut
    assert window.cuts == 1
    for _ in range(6):
        await window.acquire()
        window.release(0.5, now=10.0 + _)
    assert window.limit == 2  # never below the minimum


async def test_a_distant_servers_slow_answers_are_not_queueing() -> None:
    window = CreateWindow(2, minimum=1, maximum=8)
    for answered_in in (0.05, 0.09):  # 40 ms above the quickest, which is 50 ms
        await window.acquire()
        await window.acquire()
        window.release(answered_in, now=1.0)
        window.release(answered_in, now=1.0)
    assert window.cuts == 0 and window.limit > 2
    await window.acquire()
    window.release(0.11, now=2.0)  # more than twice the quickest: that is queueing
    assert window.cuts == 1


@pytest.mark.parametrize("retried", [False, True])
async def test_a_retried_create_teaches_the_window_nothing(retried: bool) -> None:
    window = CreateWindow(2, minimum=1, maximum=8)
    await window.acquire()
    window.release(0.001, now=0.0)  # the quickest create seen: 1 ms
    heard: list[float] = []

    class Holder:
        spec = ComputerSpec(workspace_id="w", name="n")
        create: asyncio.Task[Computer] | None = None

        def on_retry(self, failure: OrgoError, delay: float) -> None:
            heard.append(delay)

    class SlowCreates:  # answers 50 ms after the create left, after one retry or none
        async def create_from(self, spec: ComputerSpec, **options: Any) -> Computer:
            if retried:
                failure = RateLimitError(status=429, message="slow down", retry_after=0.05)
                options["observer"].on_retry(failure, 0.05)
            await asyncio.sleep(0.05)
            return Computer(id="c1", name=spec.name)

    computer, _ = await create_shielded(cast(Any, SlowCreates()), Holder(), RetryPolicy(), window)
    assert computer.id == "c1" and window.in_flight == 0
    # 50 ms against the quickest 1 ms is queueing, and cuts the window; unless the time
    # went on a retry's back-off. The holder hears the retry either way.
    assert window.cuts == (0 if retried else 1)
    assert heard == ([0.05] if retried else [])


async def test_a_create_slot_granted_as_its_waiter_is_cancelled_is_passed_on() -> None:
    window = CreateWindow(1, minimum=1, maximum=1)
    await window.acquire()
    second = asyncio.ensure_future(window.acquire())
    third = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0)
    window.release(None, now=0.0)  # granted to the second...
    second.cancel()  # ...which is cancelled before it runs: the slot goes to the third
    for _ in range(3):
        await asyncio.sleep(0)
    assert second.cancelled() and third.done() and window.in_flight == 1
    window.release(None, now=0.0)
    assert window.in_flight == 0


def test_a_create_window_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="maximum"):
        CreateWindow(8, maximum=4)
    with pytest.raises(ValueError, match="initial"):
        CreateWindow(0)
