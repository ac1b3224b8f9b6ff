"""A fleet's first burst: its oldest boots probe for the first boot, the others hold until then."""

from __future__ import annotations

import asyncio
import gc
import statistics

import pytest

from orgo_async import BootModel, Orgo, Workspace
from orgo_async._boot_model import (
    DEFAULT_BOOT_SECONDS,
    HOLD_BOOTS,
    PRIOR_FAR_SPACING,
    PRIOR_SPACING,
    SCOUTS,
)
from orgo_async.emulator import BootTime, Emulator
from orgo_async.health import DENSE_RATE, ProbeBudget, ProbePlan, RttEstimator

BURST = 256
STARTS = [n * 0.0005 for n in range(BURST)]  # created over 128 ms, oldest first


def burst() -> BootModel:
    model = BootModel()
    for t0 in STARTS:
        model.running(t0)
    return model


def plans(model: BootModel, *, scouting: bool = True) -> list[ProbePlan]:
    return [
        ProbePlan(t0=t0, model=model, rtt=RttEstimator(), phase=n / BURST, scouting=scouting)
        for n, t0 in enumerate(STARTS)
    ]


def test_before_a_fleets_first_boot_only_its_oldest_boots_probe() -> None:
    model = burst()
    fleet = plans(model)
    dues = [plan.next_due(plan.t0) - plan.t0 for plan in fleet]
    # The 32 oldest probe from the prior window's start (a tenth of Orgo's 300 ms)...
    scouts, held = dues[:SCOUTS], dues[SCOUTS:]
    assert max(scouts) < 0.1 * DEFAULT_BOOT_SECONDS + BURST / DENSE_RATE
    assert not any(plan.sparse for plan in fleet[:SCOUTS])
    # ...the others hold, until the first boot is seen or they are 600 ms old.
    # (Aimed half a round trip early, as every probe is.)
    hold = HOLD_BOOTS * DEFAULT_BOOT_SECONDS - RttEstimator().one_way
    assert held == pytest.approx([hold] * (BURST - SCOUTS))
    assert all(plan.sparse for plan in fleet[SCOUTS:])  # so the first boot wakes them
    # Outside a fleet nothing would wake them: every boot probes from the window's start.
    alone = plans(burst(), scouting=False)
    assert max(plan.next_due(plan.t0) - plan.t0 for plan in alone) == pytest.approx(max(scouts))


def test_the_scouts_probe_at_the_pace_of_32_not_of_the_crowd() -> None:
    model = burst()
    scout, crowd = plans(model)[0], plans(model, scouting=False)[0]
    gaps = []
    for plan in (scout, crowd):
        first = plan.next_due(0.0)
        plan.sending(first)
        gaps.append(plan.next_due(first, first + 0.001) - first)
    # A scout probes every 10 ms (a boot younger than half of Orgo's time); spread over
    # the whole burst of 256, the same fleet rate leaves 80 ms between each one's probes.
    assert gaps == pytest.approx([PRIOR_FAR_SPACING, min(PRIOR_SPACING, PRIOR_FAR_SPACING * 8)])


def test_the_first_boot_wakes_the_held_boots_from_the_age_it_was_seen_at() -> None:
    model = burst()
    fleet = plans(model)
    for plan in fleet:
        plan.next_due(plan.t0)
    model.observe(0.29)  # a scout's boot, seen at 290 ms
    first = model.first_boots()
    now = 0.36  # the held boots are 233 to 344 ms old: both sides of the first boot's age
    dense = BURST / DENSE_RATE  # the crowd's spacing, wider than the window's 10 ms
    old, young = [], []
    for plan in fleet[SCOUTS:]:
        plan.woken(now)
        due = plan.next_due(now)
        if now - plan.t0 >= first + dense:
            # Old enough: at once, each at its phase of one spacing, not all together.
            assert due == pytest.approx(now + plan.phase * dense)
            old.append(due)
        else:
            # Younger: its first probe waits for the age at which the first boot ended
            # (aimed half a round trip early).
            assert due - plan.t0 >= first - plan.rtt.one_way
            young.append(due)
        # Placed by the first boot, not the window: if it wins, nothing is learned.
        assert plan.after_first_boot
    assert old and young
    assert not fleet[0].after_first_boot  # a scout's first probe was placed by the window


def test_as_the_oldest_boots_end_the_next_oldest_scout() -> None:
    model = burst()
    assert not model.scout(STARTS[SCOUTS])
    model.done(STARTS[0])  # it failed, or was cancelled, before any boot was seen
    assert model.scout(STARTS[SCOUTS]) and not model.scout(STARTS[SCOUTS + 1])
    plan = plans(model)[SCOUTS]
    assert not plan.sparse and plan.next_due(plan.t0) - plan.t0 < 0.1


async def test_the_first_boot_any_fleet_sees_wakes_every_fleets_held_probes() -> None:
    model = BootModel()
    one, other = ProbeBudget(64), ProbeBudget(64)
    model.wake_on_first_boot(one)
    model.wake_on_first_boot(other)
    far = asyncio.get_running_loop().time() + 60
    held = [asyncio.create_task(budget.wait_until(far, sparse=True)) for budget in (one, other)]
    await asyncio.sleep(0)
    # The first winner read too late to teach anything: the fleets are woken (and placed
    # again from what is known), and stay registered for the next one.
    model.first_boot_seen()
    assert await asyncio.wait_for(asyncio.gather(*held), 5) == [False, False]
    again = asyncio.create_task(other.wait_until(far, sparse=True))
    await asyncio.sleep(0)
    model.observe(0.3)
    model.first_boot_seen()
    assert await asyncio.wait_for(again, 5) is False
    # Once a boot is known, nothing holds for the first one: nothing is registered.
    model.wake_on_first_boot(ProbeBudget(8))
    assert list(model._sleepers) == []


def test_a_fleet_waiting_for_the_first_boot_is_held_weakly() -> None:
    model = BootModel()
    budget = ProbeBudget(8)
    model.wake_on_first_boot(budget)
    assert list(model._sleepers) == [budget]
    del budget
    gc.collect()
    assert list(model._sleepers) == []


async def test_a_burst_finds_its_first_boot_with_its_oldest_computers(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    # 96 at once: before the scouts (the 32 oldest) saw a boot, the other 64 sent
    # nothing; after, each probed from the age the first boot ended at. Spread over all
    # 96, the same fleet rate would have probed each from 30 ms on, every 21-30 ms.
    emulator.config.boot = BootTime.fixed(0.3, jitter=0.02)
    async with orgo.fleet(workspace.id, 96, prefix="scout", concurrency=96) as fleet:
        probes = sorted([launched.timing.probes async for launched in fleet])
    assert len(probes) == 96 and fleet.failures == []
    held = probes[: 96 - SCOUTS]
    assert statistics.median(held) <= 4 and max(held) <= 10
