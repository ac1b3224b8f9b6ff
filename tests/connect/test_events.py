"""The events connector: nothing before subscribe, typed events, resumed after a reconnect."""

from __future__ import annotations

import asyncio

import pytest

from orgo_async import (
    Computer,
    DesktopEvent,
    FileChange,
    Orgo,
    ProcessStart,
    ProcessStop,
    WindowOpen,
)
from orgo_async.emulator import Emulator

from ..conftest import eventually


async def next_event(stream: object, timeout: float = 10.0) -> DesktopEvent:
    async with asyncio.timeout(timeout):
        return await anext(aiter(stream))  # type: ignore[call-overload, no-any-return]


async def test_nothing_arrives_before_subscribe(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    desktop = emulator.workdir(computer.id) / "Desktop"
    async with orgo.connect(computer).events() as events:
        (desktop / "before.txt").write_text("x")
        await asyncio.sleep(0.4)  # long enough for the emulator's file poller to notice
        await events.subscribe("file_change")
        (desktop / "after.txt").write_text("y")
        event = await next_event(events)
    assert isinstance(event, FileChange)
    assert (event.path, event.action) == ("Desktop/after.txt", "created")


async def test_file_changes_in_order(orgo: Orgo, computer: Computer, emulator: Emulator) -> None:
    path = emulator.workdir(computer.id) / "Desktop" / "notes.txt"
    async with orgo.connect(computer).events("file_change") as events:
        path.write_text("1")
        assert (await next_event(events)).action == "created"  # type: ignore[attr-defined]
        path.write_text("22")
        assert (await next_event(events)).action == "modified"  # type: ignore[attr-defined]
        path.unlink()
        assert (await next_event(events)).action == "deleted"  # type: ignore[attr-defined]


async def test_processes_started_in_the_terminal(orgo: Orgo, computer: Computer) -> None:
    conn = orgo.connect(computer)
    async with conn.events("process_start", "process_stop") as events, conn.terminal() as term:
        await term.run("sleep 0.4")
        seen: list[DesktopEvent] = []
        async with asyncio.timeout(10):
            async for event in events:
                seen.append(event)
                if isinstance(event, ProcessStop) and event.name == "sleep":
                    break
    starts = [e for e in seen if isinstance(e, ProcessStart) and e.name == "sleep"]
    assert starts and starts[0].pid


async def test_subscriptions_survive_a_reconnect(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    async with orgo.connect(computer).events("window_open") as events:
        assert events.subscriptions == {"window_open"}
        emulator.drop_sockets(computer.id)
        await eventually(lambda: events.reconnects == 1)
        await eventually(
            lambda: (
                emulator.publish_event(
                    computer.id, "window_open", {"window_id": 9, "title": "xterm"}
                )
                > 0
            )
        )
        event = await next_event(events)
    assert isinstance(event, WindowOpen) and (event.window_id, event.title) == (9, "xterm")


async def test_unsubscribe_and_unknown_types(orgo: Orgo, computer: Computer) -> None:
    async with orgo.connect(computer).events("idle", "active") as events:
        await events.unsubscribe("idle")
        assert events.subscriptions == {"active"}
        with pytest.raises(ValueError, match="unknown event type"):
            await events.subscribe("bogus")
