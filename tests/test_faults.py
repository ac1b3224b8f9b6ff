"""Faults lose nothing: 429 storms, wake codes, dropped connections, lost create answers."""

from __future__ import annotations

import pytest

from orgo_async import (
    APIConnectionError,
    CreateOutcomeUnknown,
    NotFoundError,
    Orgo,
    RateLimitError,
    RetryPolicy,
    Timeouts,
    Workspace,
)
from orgo_async.emulator import Emulator, FaultRule

from .conftest import RecordedSleeps


async def test_a_429_storm_is_ridden_out_honouring_retry_after(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, sleeps: RecordedSleeps
) -> None:
    emulator.faults.add(
        FaultRule(
            kind="status",
            status=429,
            code="rate_limited",
            retry_after=2.5,
            times=5,
            method="POST",
            path=r"^/api/computers$",
        )
    )
    c = await orgo.computers.create(workspace_id=workspace.id, name="patient")
    assert sleeps.delays == [2.5] * 5  # the server's wait, each time, not our backoff
    assert emulator.counters.responses_by_status[429] == 5
    assert emulator.counters.creates == 1
    assert (await orgo.computers.get(c.id)).name == "patient"


async def test_rate_limit_beyond_the_budget_surfaces_with_its_data(
    emulator: Emulator, workspace: Workspace, sleeps: RecordedSleeps
) -> None:
    emulator.faults.add(
        FaultRule(kind="status", status=429, retry_after=1.0, path="/api/workspaces")
    )
    async with Orgo(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        retry=RetryPolicy(max_attempts=3, sleep=sleeps),
    ) as orgo:
        with pytest.raises(RateLimitError) as info:
            await orgo.workspaces.list()
    assert info.value.retry_after == 1.0 and info.value.retryable
    assert info.value.request_id
    assert len(sleeps.delays) == 2


async def test_wake_codes_are_retried(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, sleeps: RecordedSleeps
) -> None:
    emulator.faults.add(
        FaultRule(kind="status", status=409, code="computer_waking", retry_after=3, times=1)
    )
    emulator.faults.add(FaultRule(kind="status", status=503, code="resuming", times=1))
    assert (await orgo.workspaces.get(workspace.id)).id == workspace.id
    assert sleeps.delays[0] == 3.0
    assert len(sleeps.delays) == 2  # the 503 without Retry-After got a jittered backoff


async def test_a_dropped_get_is_retried(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, sleeps: RecordedSleeps
) -> None:
    rule = emulator.faults.add(FaultRule(kind="drop", method="GET", times=3))
    assert (await orgo.workspaces.get(workspace.id)).name == "tests"
    assert rule.fired == 3
    # aiohttp itself re-sends an idempotent request once when a reused connection
    # drops, so some drops cost no wait of ours.
    assert 1 <= len(sleeps.delays) <= 3


async def test_a_dropped_non_idempotent_post_is_not_replayed(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    c = await orgo.computers.create(workspace_id=workspace.id, name="c")
    await orgo.computers.wait_ready(c, timeout=5)
    emulator.faults.add(FaultRule(kind="lose_response", method="POST", path="/clone$", times=1))
    with pytest.raises(APIConnectionError) as info:
        await orgo.computers.clone(c)
    assert info.value.sent
    assert emulator.counters.clones == 1  # one clone made; the SDK did not make a second


async def test_a_lost_create_answer_yields_exactly_one_computer(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.faults.add(
        FaultRule(kind="lose_response", method="POST", path=r"^/api/computers$", times=1)
    )
    c = await orgo.computers.create(workspace_id=workspace.id, name="once")
    assert emulator.counters.create_attempts == 1  # found by name, not created again
    assert [x.id for x in await orgo.computers.list(workspace.id)] == [c.id]
    assert c.vnc_password  # a full record, fit to connect with


async def test_a_dropped_create_request_is_created_once(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    # Dropped before the handler ran: the lookup finds nothing, so it is sent again.
    emulator.faults.add(FaultRule(kind="drop", method="POST", path=r"^/api/computers$", times=1))
    c = await orgo.computers.create(workspace_id=workspace.id, name="again")
    assert [x.id for x in await orgo.computers.list(workspace.id)] == [c.id]
    assert emulator.counters.creates == 1


async def test_a_late_create_makes_the_replay_conflict_and_is_looked_up(
    emulator: Emulator, workspace: Workspace, sleeps: RecordedSleeps
) -> None:
    # The first create is slow: the client times out (outcome unknown), looks the
    # name up (not there yet) and re-sends. The first then lands, so the replay
    # answers 409 name_exists, which sends the client back to the lookup.
    # Timeline (s): POST1 0 -> made at 2.0; timeout 1.2; lookup; POST2 1.2 -> 409 at 2.2.
    emulator.faults.add(
        FaultRule(kind="delay", delay=2.0, method="POST", path=r"^/api/computers$", times=1)
    )
    emulator.faults.add(
        FaultRule(kind="delay", delay=1.0, method="POST", path=r"^/api/computers$", times=1)
    )
    async with Orgo(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        timeouts=Timeouts(read=1.2),
        retry=RetryPolicy(sleep=sleeps),
    ) as orgo:
        c = await orgo.computers.create(workspace_id=workspace.id, name="late")
        assert [x.id for x in await orgo.computers.list(workspace.id)] == [c.id]
    assert emulator.counters.create_attempts == 2
    assert emulator.counters.creates == 1
    assert emulator.counters.responses_by_status[409] == 1


async def test_outcome_unknown_only_when_it_cannot_be_resolved(
    emulator: Emulator, workspace: Workspace, sleeps: RecordedSleeps
) -> None:
    emulator.faults.add(
        FaultRule(kind="lose_response", method="POST", path=r"^/api/computers$", times=1)
    )
    emulator.faults.add(FaultRule(kind="drop", method="GET"))  # every lookup fails
    async with Orgo(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        retry=RetryPolicy(max_attempts=2, sleep=sleeps),
    ) as orgo:
        with pytest.raises(CreateOutcomeUnknown) as info:
            await orgo.computers.create(workspace_id=workspace.id, name="limbo")
    assert info.value.name == "limbo" and info.value.workspace_id == workspace.id
    assert isinstance(info.value.__cause__, APIConnectionError)
    emulator.faults.clear()
    assert emulator.counters.creates == 1  # it did exist: "unknown" was honest


async def test_a_delete_whose_answer_was_lost_is_done_not_not_found(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, sleeps: RecordedSleeps
) -> None:
    # The first DELETE is carried out but its answer is lost; the retry finds nothing
    # to delete. That is success, not NotFoundError.
    c = await orgo.computers.create(workspace_id=workspace.id, name="gone")
    emulator.faults.add(FaultRule(kind="lose_response", method="DELETE", times=2))
    await orgo.computers.delete(c)
    assert emulator.counters.deletes == 1
    assert len(sleeps.delays) >= 1
    with pytest.raises(NotFoundError):  # a plain 404 without a lost attempt still raises
        await orgo.computers.delete(c)
