"""Streams, screens, resume/ensure-running/fork, the events catalog and compute limits."""

from __future__ import annotations

import logging

import pytest

from orgo_async import (
    CapacityError,
    Computer,
    ComputerStatus,
    ConflictError,
    ConnectorError,
    InvalidRequestError,
    NotFoundError,
    Orgo,
    PermissionDeniedError,
    Workspace,
)
from orgo_async.emulator import Emulator, FaultRule
from orgo_async.protocol.events import EVENT_TYPES


async def _running(orgo: Orgo, workspace: Workspace, name: str = "x") -> Computer:
    return (await orgo.computers.launch(workspace_id=workspace.id, name=name)).computer


async def _stopped(orgo: Orgo, workspace: Workspace, name: str = "x") -> Computer:
    c = await _running(orgo, workspace, name)
    await orgo.computers.stop(c)
    await orgo.computers._wait_for_status(c, ComputerStatus.STOPPED, 5.0, None)
    return c


# --------------------------------------------------------------------------- streams


async def test_a_stream_goes_idle_live_idle(orgo: Orgo, workspace: Workspace) -> None:
    c = await _running(orgo, workspace)
    assert (await orgo.computers.stream_status(c)).status == "idle"
    started = await orgo.computers.start_stream(c, "twitch")
    assert started.streaming and isinstance(started.pid, int)
    status = await orgo.computers.stream_status(c)
    assert status.streaming and status.pid == started.pid and status.start_time is not None
    with pytest.raises(ConflictError, match="already"):
        await orgo.computers.start_stream(c, "twitch")
    await orgo.computers.stop_stream(c)
    assert (await orgo.computers.stream_status(c)).status == "idle"
    await orgo.computers.stop_stream(c)  # idempotent


async def test_a_stream_on_a_stopped_computer_is_a_clear_409(
    orgo: Orgo, workspace: Workspace
) -> None:
    c = await _stopped(orgo, workspace)
    with pytest.raises(ConflictError, match=r"not running \(status: stopped\)") as info:
        await orgo.computers.start_stream(c, "twitch")
    assert info.value.code == "not_running"


async def test_a_restart_terminates_the_stream(orgo: Orgo, workspace: Workspace) -> None:
    c = await _running(orgo, workspace)
    await orgo.computers.start_stream(c, "twitch")
    await orgo.computers.restart(c)
    status = await orgo.computers.stream_status(c)
    assert status.status == "terminated" and status.message


async def test_an_unknown_stream_connection_is_404(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.extras.stream_connections = {"youtube"}
    c = await _running(orgo, workspace)
    with pytest.raises(NotFoundError, match="twitch"):
        await orgo.computers.start_stream(c, "twitch")
    assert (await orgo.computers.start_stream(c, "youtube")).streaming


@pytest.mark.parametrize("name", ["", "x" * 101, None])
async def test_a_bad_connection_name_is_refused_before_sending(
    orgo: Orgo, emulator: Emulator, name: object
) -> None:
    before = sum(emulator.counters.requests.values())
    with pytest.raises(ValueError, match="connection_name"):
        await orgo.computers.start_stream("c1", name)  # type: ignore[arg-type]
    assert sum(emulator.counters.requests.values()) == before


# --------------------------------------------------------------------------- screens


async def test_screens_crud_and_a_screenshot_per_screen(orgo: Orgo, workspace: Workspace) -> None:
    c = await orgo.computers.create(workspace_id=workspace.id, name="s", resolution="800x600x24")
    await orgo.wait_ready(c)
    (default,) = await orgo.screens.list(c)
    assert default.default and (default.width, default.height) == (800, 600)
    added = await orgo.screens.create(c, width=320, height=200)
    assert not added.default and added.id != "default"
    tall = await orgo.screens.create(c, height=300)
    assert (tall.width, tall.height) == (800, 300)  # the missing side is the boot size
    desktop = orgo.desktop(c)
    shot = await desktop.screenshot(screen=added.id)
    assert (shot.width, shot.height) == (320, 200)
    assert (await desktop.screenshot()).width == 800
    resized = await orgo.screens.update(c, added.id, width=640)
    assert (resized.width, resized.height) == (640, 200)
    assert (await desktop.screenshot(screen=added.id)).width == 640
    await orgo.screens.delete(c, tall.id)
    assert [s.id for s in await orgo.screens.list(c)] == ["default", added.id]
    with pytest.raises(NotFoundError, match="Screen not found: nope"):
        await desktop.screenshot(screen="nope")
    with pytest.raises(NotFoundError, match="Screen not found"):
        await orgo.screens.delete(c, tall.id)
    with pytest.raises(InvalidRequestError, match="default screen"):
        await orgo.screens.delete(c, "default")


async def test_screens_are_capped_and_do_not_survive_a_restart(
    orgo: Orgo, workspace: Workspace
) -> None:
    c = await _running(orgo, workspace)
    for _ in range(3):
        await orgo.screens.create(c)
    with pytest.raises(ConflictError, match="at most 4 screens"):
        await orgo.screens.create(c)
    await orgo.computers.restart(c)
    await orgo.wait_ready(await orgo.computers.get(c))
    assert len(await orgo.screens.list(c)) == 1


async def test_screens_of_a_stopped_computer_are_a_conflict(
    orgo: Orgo, workspace: Workspace
) -> None:
    c = await _stopped(orgo, workspace)
    with pytest.raises(ConflictError, match="not running"):
        await orgo.screens.list(c)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"width": -1}, "width"), ({"height": 0}, "height"), ({"width": 9000}, "width")],
)
async def test_bad_screen_sizes_are_refused_before_sending(
    orgo: Orgo, emulator: Emulator, kwargs: dict[str, int], field: str
) -> None:
    before = sum(emulator.counters.requests.values())
    with pytest.raises(ValueError, match=field):
        await orgo.screens.create("c1", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=field):
        await orgo.screens.update("c1", "screen-100", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="width or height"):
        await orgo.screens.update("c1", "screen-100")
    with pytest.raises(ValueError, match="screen"):
        await orgo.desktop(Computer(id="c1")).screenshot(screen="a/b")
    assert sum(emulator.counters.requests.values()) == before


# --------------------------------------------------------------------------- lifecycle extras


async def test_resume_wakes_a_stopped_computer(orgo: Orgo, workspace: Workspace) -> None:
    c = await _stopped(orgo, workspace)
    woke = await orgo.computers.resume(c)
    assert woke.waking and woke.pending and woke.expected_seconds is not None
    assert woke.expected_seconds > 0
    await orgo.wait_ready(await orgo.computers.get(c))
    again = await orgo.computers.resume(c)
    assert (again.waking, again.pending, again.expected_seconds) == (False, False, 0)


async def test_ensure_running_starts_and_waits(orgo: Orgo, workspace: Workspace) -> None:
    c = await _stopped(orgo, workspace)
    running = await orgo.computers.ensure_running(c)
    assert running.status == ComputerStatus.RUNNING
    assert running.vnc_password and running.vnc_password != c.vnc_password  # rotated
    same = await orgo.computers.ensure_running(running)
    assert same.status == ComputerStatus.RUNNING and same.vnc_password == running.vnc_password


async def test_fork_makes_a_new_computer(orgo: Orgo, workspace: Workspace) -> None:
    c = await orgo.computers.create(workspace_id=workspace.id, name="src", ram=8, cpu=2)
    await orgo.wait_ready(c)
    fork = await orgo.computers.fork(c)
    second = await orgo.computers.fork(c)
    assert fork.id != c.id and (fork.ram, fork.cpu) == (8, 2)
    assert (fork.name, second.name) == ("src (fork)", "src (fork 2)")
    assert {x.id for x in await orgo.computers.list(workspace.id)} == {c.id, fork.id, second.id}


async def test_fork_of_a_stopped_computer_is_refused(orgo: Orgo, workspace: Workspace) -> None:
    c = await _stopped(orgo, workspace)
    with pytest.raises(InvalidRequestError, match="forked") as info:
        await orgo.computers.fork(c)
    assert info.value.code == "NOT_FORKABLE"


# --------------------------------------------------------------------------- events catalog


async def test_event_types_is_the_events_sockets_catalog(orgo: Orgo, workspace: Workspace) -> None:
    c = await orgo.computers.create(workspace_id=workspace.id, name="e")
    types = await orgo.computers.event_types(c)
    assert {t.type for t in types} == set(EVENT_TYPES)
    by_type = {t.type: t for t in types}
    assert by_type["file_change"].data == ("path", "action")
    assert all(t.description for t in types)
    with pytest.raises(NotFoundError):
        await orgo.computers.event_types("no-such-computer")


# --------------------------------------------------------------------------- capacity


async def test_compute_limits_count_the_live_computers(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    assert (await orgo.compute_limits()).free is None  # no limit configured
    emulator.config.max_computers = 3
    await orgo.computers.create(workspace_id=workspace.id, name="a")
    limits = await orgo.compute_limits()
    assert (limits.max_computers, limits.computers_used, limits.free) == (3, 1, 2)


async def test_a_fleet_too_big_fails_fast_naming_the_numbers(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    emulator.config.max_computers = 4
    await orgo.computers.create(workspace_id=workspace.id, name="a")
    with pytest.raises(CapacityError, match="5 computers.*allows 4.*1 exist.*3 free") as info:
        await orgo.launch_fleet(workspace.id, 5)
    assert (info.value.requested, info.value.free) == (5, 3)
    assert emulator.counters.creates == 1  # nothing was created
    result = await orgo.launch_fleet(workspace.id, 3)
    assert len(result.ready) == 3


async def test_the_capacity_check_can_be_turned_off(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    # Unchecked, the launch runs into the plan limit on its third create instead.
    emulator.config.max_computers = 2
    with pytest.raises(PermissionDeniedError, match="plan"):
        await orgo.launch_fleet(workspace.id, 3, check_capacity=False, concurrency=1)
    assert emulator.counters.creates == 2


async def test_no_compute_limits_endpoint_skips_the_check(
    orgo: Orgo, workspace: Workspace, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.faults.add(FaultRule(kind="status", status=404, path="/api/billing/compute-limits"))
    with caplog.at_level(logging.DEBUG, logger="orgo_async"):
        result = await orgo.launch_fleet(workspace.id, 2)
    assert len(result.ready) == 2
    assert "capacity check skipped" in caplog.text


# --------------------------------------------------------------------------- screen= on actions


async def test_actions_on_an_added_screen_draw_there_only(
    orgo: Orgo, workspace: Workspace
) -> None:
    c = await orgo.computers.create(workspace_id=workspace.id, name="m", resolution="800x600x24")
    await orgo.wait_ready(c)
    desktop = orgo.desktop(c)
    side = await orgo.screens.create(c, width=1000, height=200)
    blank = (await desktop.screenshot(screen=side.id, response_format="base64")).data
    main = (await desktop.screenshot(response_format="base64")).data
    await desktop.click(900, 150, screen=side.id)  # inside the screen, past the default's width
    await desktop.type("hello", delay_ms=0, screen=side.id)
    await desktop.key("Return", screen=side.id)
    await desktop.drag(10, 10, 990, 190, duration=0, screen=side.id)
    await desktop.scroll("down", 2, x=950, y=100, screen=side.id)
    drawn = await desktop.screenshot(screen=side.id, response_format="base64")
    assert (drawn.width, drawn.height) == (1000, 200) and drawn.data != blank
    assert (await desktop.screenshot(response_format="base64")).data == main  # untouched
    await desktop.type("x", delay_ms=0, screen="default")  # the default screen, by its id
    assert (await desktop.screenshot(response_format="base64")).data != main
    with pytest.raises(InvalidRequestError, match="y"):
        await desktop.click(10, 250, screen=side.id)  # past the added screen's height
    with pytest.raises(NotFoundError, match="Screen not found: screen-9"):
        await desktop.key("a", screen="screen-9")
    # A resized screen is drawn afresh at its new size, and takes actions there.
    await orgo.screens.update(c, side.id, height=300)
    await desktop.click(10, 250, screen=side.id)
    resized = await desktop.screenshot(screen=side.id, response_format="base64")
    assert (resized.width, resized.height) == (1000, 300)


async def test_a_bad_screen_on_an_action_is_refused_before_sending(
    orgo: Orgo, emulator: Emulator
) -> None:
    desktop = orgo.desktop(Computer(id="c1", resolution="800x600x24"))
    before = sum(emulator.counters.requests.values())
    for act in (
        desktop.click(1, 1, screen="a/b"),
        desktop.drag(1, 1, 2, 2, screen=""),
        desktop.scroll(screen=" s"),
        desktop.type("t", screen="."),
        desktop.key("a", screen="a/b"),
    ):
        with pytest.raises(ValueError, match="screen"):
            await act
    assert sum(emulator.counters.requests.values()) == before


async def test_vnc_shows_an_added_screen_of_its_own(orgo: Orgo, workspace: Workspace) -> None:
    c = await orgo.computers.create(workspace_id=workspace.id, name="v", resolution="800x600x24")
    await orgo.wait_ready(c)
    side = await orgo.screens.create(c, width=480, height=320)
    connection = orgo.connect(c, keepalive=None)
    async with connection.vnc(screen=side.id) as vnc, connection.vnc() as main:
        assert (vnc.width, vnc.height) == (480, 320) and (main.width, main.height) == (800, 600)
        before = await vnc.screenshot()
        main_before = await main.screenshot()
        version = vnc.version
        await orgo.desktop(c).type("over rest", delay_ms=0, screen=side.id)
        await vnc.wait_for_change(timeout=5, since_version=version)
        assert await vnc.screenshot() != before  # the screen's own desktop, live over VNC
        assert await main.screenshot() == main_before  # the default screen is untouched
    with pytest.raises(ConnectorError, match="Screen not found"):
        async with connection.vnc(screen="screen-9"):
            pass
    with pytest.raises(ValueError, match="screen"):
        connection.vnc(screen="a/b")
