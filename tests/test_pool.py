"""The warm pool: instant claims, refills, failed boots never handed out, nothing left behind."""

from __future__ import annotations

import asyncio

import pytest

from orgo_async import (
    MAX_POOL_SIZE,
    AdaptiveLimiter,
    ComputerStatus,
    Orgo,
    PaymentRequiredError,
    Pool,
    PoolStats,
    Workspace,
)
from orgo_async.emulator import BootTime, Emulator, FaultRule

from .conftest import client_tasks, eventually


def _requests(emulator: Emulator) -> int:
    return sum(emulator.counters.requests.values())


async def _warm(pool: Pool, timeout: float = 10.0) -> None:
    await eventually(
        lambda: pool.stats.ready == pool.size and pool.stats.launching == 0, timeout=timeout
    )


async def test_a_claim_from_a_warm_pool_sends_no_request(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    async with orgo.pool(workspace.id, size=3, name_prefix="warm", ram=8) as pool:
        await _warm(pool)
        assert emulator.counters.live == 3
        before = _requests(emulator)
        computer = await pool.claim()
        assert _requests(emulator) == before  # no request at all
        assert computer.status == ComputerStatus.RUNNING and computer.ram == 8
        assert computer.name.startswith(f"warm-{pool.run}-")
        assert emulator.counters.healthy_at[computer.id] > 0
        # The pool refills behind the claim.
        await _warm(pool)
        assert pool.stats == PoolStats(ready=3, launching=0, claimed=1, failures=0)
        assert emulator.counters.live == 4
    # Leaving deletes what the pool held, never what was claimed.
    assert emulator.counters.live == 1
    assert (await orgo.computers.get(computer.id)).status == ComputerStatus.RUNNING


async def test_a_claim_on_an_empty_pool_launches_one_more(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(0.3)
    async with orgo.pool(workspace.id, size=2) as pool:
        assert pool.stats.ready == 0 and pool.stats.launching == 2
        claim = asyncio.create_task(pool.claim())
        await eventually(lambda: emulator.counters.creates == 3)
        assert pool.stats.launching == 3
        computer = await claim
        assert computer.status == ComputerStatus.RUNNING
        await _warm(pool)
        assert pool.stats.claimed == 1 and emulator.counters.creates == 3
    assert emulator.counters.live == 1


async def test_claims_beyond_the_size_are_all_served(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    async with orgo.pool(workspace.id, size=2) as pool:
        claimed = await asyncio.gather(*(pool.claim() for _ in range(7)))
        assert len({c.id for c in claimed}) == 7
        await _warm(pool)
        assert pool.stats.claimed == 7
    assert emulator.counters.live == 7


async def test_failed_boots_are_deleted_and_never_handed_out(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot_failure_rate = 0.3
    async with orgo.pool(workspace.id, size=3) as pool:
        claimed = await asyncio.gather(*(pool.claim() for _ in range(5)))
        await _warm(pool, timeout=60)
        assert pool.stats.failures > 0
        failures = pool.stats.failures
    for computer in claimed:
        assert (await orgo.computers.get(computer.id)).status == ComputerStatus.RUNNING
    # Every failed boot was deleted, and so was what the pool held at the end.
    assert emulator.counters.creates == 5 + 3 + failures
    assert emulator.counters.live == 5


async def test_a_held_computer_that_died_is_not_handed_out(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    async with orgo.pool(workspace.id, size=2, recheck=None) as pool:
        await _warm(pool)
        first = pool._ready[0]
        await orgo.computers.stop(first)  # behind the pool's back
        computer = await pool.claim(verify=True)
        assert computer.id != first.id
        assert pool.stats.failures == 1
        await _warm(pool)
    assert emulator.counters.live == 1
    with pytest.raises(Exception, match="not found|404"):
        await orgo.computers.get(first.id)


async def test_held_computers_are_rechecked_and_replaced(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    async with orgo.pool(workspace.id, size=2, recheck=0.02) as pool:
        await _warm(pool)
        doomed = pool._ready[0]
        await orgo.computers.delete(doomed)  # behind the pool's back
        await eventually(lambda: pool.stats.failures == 1)
        await _warm(pool)
        assert doomed.id not in {c.id for c in pool._ready}
    assert emulator.counters.live == 0


async def test_429s_slow_the_refills_without_losing_any(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.faults.add(
        FaultRule(
            kind="status",
            status=429,
            code="rate_limited",
            retry_after=0.01,
            probability=0.5,
            method="POST",
            path=r"^/api/computers$",
        )
    )
    limiter = AdaptiveLimiter(rate=200.0, min_rate=50.0)
    async with orgo.pool(workspace.id, size=4, limiter=limiter) as pool:
        claimed = [await pool.claim() for _ in range(12)]
        await _warm(pool)
        assert pool.stats.failures == 0
    assert emulator.counters.responses_by_status[429] > 0
    assert limiter.rate_limited > 0 and limiter.rate is not None and limiter.rate < 200.0
    assert emulator.counters.creates == 16  # every create that landed was one computer
    assert emulator.counters.live == len(claimed) == 12


async def test_cancel_while_creates_are_in_flight_leaves_nothing(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.faults.add(FaultRule(kind="delay", delay=0.3, method="POST", path=r"^/api/computers$"))
    baseline = client_tasks()

    async def use() -> None:
        async with orgo.pool(workspace.id, size=4) as pool:
            await pool.claim()

    task = asyncio.create_task(use())
    await eventually(lambda: emulator.counters.requests.get("POST /api/computers", 0) >= 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert emulator.counters.creates == 5  # landed after the cancel: all deleted
    assert emulator.counters.live == 0
    assert client_tasks() == baseline


async def test_cancel_and_errors_keep_only_the_claimed(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.uniform(0.01, 0.4)
    baseline = client_tasks()
    kept: list[str] = []

    async def use() -> None:
        async with orgo.pool(workspace.id, size=3) as pool:
            kept.append((await pool.claim()).id)
            await asyncio.sleep(30)

    task = asyncio.create_task(use())
    await eventually(lambda: len(kept) == 1 and sum(emulator.counters.health_probes.values()) > 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert emulator.counters.live == 1

    with pytest.raises(KeyError):
        async with orgo.pool(workspace.id, size=3) as pool:
            kept.append((await pool.claim()).id)
            raise KeyError("boom")
    assert emulator.counters.live == 2
    assert {c.id for c in await orgo.computers.list(workspace.id)} == set(kept)
    assert client_tasks() == baseline


async def test_a_cancelled_claim_gives_its_computer_back(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(0.2)
    async with orgo.pool(workspace.id, size=1) as pool:
        with pytest.raises(TimeoutError):
            await pool.claim(timeout=0.01)
        await eventually(lambda: pool.stats.ready == 2 and pool.stats.launching == 0)
        assert pool.stats.claimed == 0
    assert emulator.counters.live == 0


async def test_a_fatal_error_reaches_every_claim(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.faults.add(
        FaultRule(kind="status", status=402, method="POST", path=r"^/api/computers$")
    )
    async with orgo.pool(workspace.id, size=2) as pool:
        with pytest.raises(PaymentRequiredError):
            await pool.claim()
        with pytest.raises(PaymentRequiredError):
            await pool.claim()
        await eventually(lambda: pool.stats.launching == 0)  # no refill after a fatal error
        assert pool.stats.ready == 0
    assert emulator.counters.live == 0


async def test_reap_finds_the_pool_computers_by_prefix(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    async with orgo.pool(workspace.id, size=2, name_prefix="crash") as pool:
        await pool.claim()
        await pool.claim()
    assert emulator.counters.live == 2
    reaped = await orgo.reap("crash", workspace_id=workspace.id)
    assert len(reaped) == 2 and emulator.counters.live == 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": MAX_POOL_SIZE + 1}, "size"),
        ({"size": True}, "size"),
        ({"size": 2, "name_prefix": ""}, "name_prefix"),
        ({"size": 2, "name_prefix": "p" * 200}, "name_prefix"),
        ({"size": 2, "ram": 5}, "ram"),
        ({"size": 2, "ready_timeout": 0}, "ready_timeout"),
        ({"size": 2, "recheck": -1}, "recheck"),
    ],
)
async def test_bad_options_fail_before_any_request(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, options: dict[str, object], field: str
) -> None:
    before = _requests(emulator)
    with pytest.raises(ValueError, match=field):
        orgo.pool(workspace.id, **options)  # type: ignore[arg-type]
    assert _requests(emulator) == before


async def test_claim_outside_the_block_is_refused(orgo: Orgo, workspace: Workspace) -> None:
    pool = orgo.pool(workspace.id, size=1)
    with pytest.raises(RuntimeError, match="async with"):
        await pool.claim()
    async with pool:
        pass
    with pytest.raises(RuntimeError):
        await pool.claim()


async def test_a_claim_still_waiting_when_the_pool_closes_is_told(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.boot = BootTime.fixed(30.0)
    async with orgo.pool(workspace.id, size=1) as pool:
        claim = asyncio.create_task(pool.claim())
        await eventually(lambda: emulator.counters.creates == 2)
    with pytest.raises(RuntimeError, match="closed"):
        await claim
    assert emulator.counters.live == 0
