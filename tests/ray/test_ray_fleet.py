"""orgo_async.ray against a local Ray and the emulator in its own process."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from orgo_async import Computer, Orgo, Workspace
from tests.conftest import eventually
from tests.ray.conftest import EmulatorChild

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.timeout(60)]

CREATE = r"^/api/computers$"


def fleet(emu: EmulatorChild, workspace: Workspace, count: int, **options: Any) -> Any:
    from orgo_async.ray import RayFleet

    return RayFleet(
        workspace.id,
        count,
        api_key=emu.api_key,
        base_url=emu.base_url,
        prefix="raytest",
        **options,
    )


async def alive(orgo: Orgo, workspace: Workspace) -> list[Computer]:
    return await orgo.computers.list(workspace.id)


def slow_creates(emu: EmulatorChild, seconds: float) -> None:
    """Every create is answered ``seconds`` late (and made even if its client is gone)."""
    emu.admin(
        "POST",
        "/_emulator/faults",
        {"kind": "delay", "method": "POST"} | {"path": CREATE, "delay": seconds},
    )


# Module level: the actors import them from this module.
_running = 0
_most = 0


async def episode(orgo: Orgo, computer: Computer) -> tuple[int, str, str, int]:
    """A terminal command and a screenshot; also the most episodes seen at once here."""
    global _running, _most
    if computer.name.endswith("-001"):
        raise RuntimeError(f"episode refused {computer.name}")
    _running += 1
    _most = max(_most, _running)
    try:
        desktop = orgo.desktop(computer)
        said = await desktop.bash("echo hello")
        shot = await desktop.screenshot()
        await asyncio.sleep(0.05)
    finally:
        _running -= 1
    return os.getpid(), computer.id, said.output.strip(), _most if shot.data else -1


async def test_a_sharded_launch_hands_over_as_ready_and_deletes_the_rest(
    emulator_child: EmulatorChild, remote_orgo: Orgo, remote_workspace: Workspace
) -> None:
    async with fleet(emulator_child, remote_workspace, 10, actors=2) as ray_fleet:
        assert ray_fleet.actors == 2
        taken = []
        async for handle in ray_fleet:
            taken.append(handle)
            if len(taken) == 4:
                break
    # Handed out: yours, and alive; the six others were deleted on every actor.
    left = await alive(remote_orgo, remote_workspace)
    assert sorted(c.id for c in left) == sorted(h.id for h in taken)
    for handle in taken:
        assert handle.name.startswith(f"{ray_fleet.prefix}-{handle.actor}-")
    async with fleet(emulator_child, remote_workspace, 6, actors=2) as whole:
        result = await whole.collect()
    assert len(result.ready) == 6 and not result.failures
    assert {h.actor for h in result.ready} == {0, 1}
    assert sorted(h.index for h in result.ready) == list(range(6))
    for computer in await alive(remote_orgo, remote_workspace):
        await remote_orgo.computers.delete(computer)


async def test_map_runs_each_episode_on_its_owning_actor_and_streams_results(
    emulator_child: EmulatorChild, remote_orgo: Orgo, remote_workspace: Workspace
) -> None:
    results = []
    async with fleet(emulator_child, remote_workspace, 8, actors=2) as ray_fleet:
        async for result in ray_fleet.map(episode, concurrency=2):
            results.append(result)
    assert len(results) == 8
    failed = [r for r in results if not r.ok]
    # One computer per shard is named ...-001: its episode raised, and came back typed.
    assert len(failed) == 2
    assert all(isinstance(r.error, RuntimeError) for r in failed)
    assert all("episode refused" in str(r.error) for r in failed)
    pids: dict[int, set[int]] = {}
    for r in results:
        if r.ok:
            pid, computer_id, said, most = r.value
            assert computer_id == r.computer.id and said == "hello"
            assert 1 <= most <= 2  # bounded per actor
            pids.setdefault(r.computer.actor, set()).add(pid)
    # Each actor is one process, not this one, and not the other actor's.
    assert len(pids) == 2 and all(len(p) == 1 for p in pids.values())
    assert os.getpid() not in pids[0] | pids[1] and pids[0] != pids[1]
    # map's computers stay the fleet's: leaving the block deleted them all.
    assert await alive(remote_orgo, remote_workspace) == []


async def test_a_429_storm_slows_every_shard_and_every_computer_comes_up(
    emulator_child: EmulatorChild, remote_orgo: Orgo, remote_workspace: Workspace
) -> None:
    emulator_child.admin(
        "POST",
        "/_emulator/faults",
        {"kind": "status", "status": 429, "method": "POST", "path": CREATE}
        | {"probability": 0.5, "times": 8, "retry_after": 0.1},
    )
    async with fleet(emulator_child, remote_workspace, 16, actors=2, rate=20.0) as ray_fleet:
        result = await ray_fleet.collect()
    assert len(result.ready) == 16 and not result.failures
    assert ray_fleet.rate_limited >= 1
    # Each shard started at 10/s; a 429 on either cut both (re-split), not only its own.
    assert ray_fleet.rate is not None and ray_fleet.rate < 20.0
    assert all(rate is not None and rate < 10.0 for rate in ray_fleet.shard_rates)
    for computer in await alive(remote_orgo, remote_workspace):
        await remote_orgo.computers.delete(computer)


async def test_an_actor_killed_mid_launch_loses_nothing_for_good(
    emulator_child: EmulatorChild, remote_orgo: Orgo, remote_workspace: Workspace
) -> None:
    import ray

    from orgo_async.ray import ActorLost

    # Slow creates: the kill lands while creates are in flight on the server. Each actor
    # has four batches of creates to make, so a driver slowed by a busy machine still
    # kills actor 0 before its launch is over.
    slow_creates(emulator_child, 0.3)
    results = []
    async with fleet(
        emulator_child, remote_workspace, 24, actors=2, concurrency=3, late_reap=1.0
    ) as ray_fleet:
        async for result in ray_fleet.map(episode):
            if not results:
                ray.kill(ray_fleet.actor_handles[0], no_restart=True)
            results.append(result)
    lost = [f for f in ray_fleet.failures if isinstance(f.error, ActorLost)]
    assert lost and all(f.error.actor == 0 for f in lost)
    assert any(r.computer.actor == 1 and r.ok for r in results)
    # Every computer is accounted for once: an episode's result, or a failure.
    indexes = [r.computer.index for r in results] + [f.index for f in ray_fleet.failures]
    assert sorted(indexes) == list(range(24))
    # Reaped right away and again after the creates in flight landed: nothing left.
    assert await alive(remote_orgo, remote_workspace) == []


async def test_cancelling_the_driver_leaves_nothing_on_any_actor(
    emulator_child: EmulatorChild, remote_orgo: Orgo, remote_workspace: Workspace
) -> None:
    import ray

    slow_creates(emulator_child, 0.2)
    some_ready = asyncio.Event()
    handles: list[Any] = []

    async def drive() -> None:
        async with fleet(emulator_child, remote_workspace, 16, actors=2, concurrency=2) as f:
            handles.extend(f.actor_handles)
            async for _result in f.map(episode):
                some_ready.set()

    task = asyncio.create_task(drive())
    await asyncio.wait_for(some_ready.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await alive(remote_orgo, remote_workspace) == []
    for handle in handles:  # the actors are gone too
        with pytest.raises(ray.exceptions.RayActorError):
            await handle.report.remote(0, 0, 0.0)


async def test_creates_in_flight_when_an_actor_dies_are_reaped_when_they_land(
    emulator_child: EmulatorChild, remote_orgo: Orgo, remote_workspace: Workspace
) -> None:
    import ray

    from orgo_async.ray import ActorLost

    # The creates land a second after the actor is gone, after the driver has left the
    # block: only the reap one late_reap after the death catches them.
    slow_creates(emulator_child, 1.0)
    async with fleet(emulator_child, remote_workspace, 3, actors=1, late_reap=2.0) as ray_fleet:
        # Until the three creates are in flight (another process: nothing to await).
        await eventually(
            lambda: emulator_child.admin("GET", "/_emulator/faults")["faults"][0]["fired"] >= 3
        )
        ray.kill(ray_fleet.actor_handles[0], no_restart=True)
        async for _handle in ray_fleet:
            pass
        failures = ray_fleet.failures
    assert len(failures) == 3 and all(isinstance(f.error, ActorLost) for f in failures)
    assert await alive(remote_orgo, remote_workspace) == []
