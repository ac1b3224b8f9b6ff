"""Shared fixtures: the emulator on port 0, and sessions whose retry waits are recorded."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import pytest

from orgo_async import Orgo, RetryPolicy, Workspace
from orgo_async.emulator import BootTime, Emulator, EmulatorConfig

# Boots in tests are short: the behaviour is the same, the suite stays fast.
TEST_BOOT = 0.03


class RecordedSleeps:
    """A RetryPolicy.sleep that records each delay instead of waiting it out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(
        api_key="sk_test_key_0123456789", boot=BootTime.fixed(TEST_BOOT), seed=7
    )
    async with Emulator(config) as emu:
        yield emu


@pytest.fixture
async def orgo(emulator: Emulator, sleeps: RecordedSleeps) -> AsyncIterator[Orgo]:
    async with Orgo(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        retry=RetryPolicy(sleep=sleeps, max_attempts=8),
    ) as session:
        yield session


@pytest.fixture
async def workspace(orgo: Orgo) -> Workspace:
    return await orgo.workspaces.create("tests")


# The in-process emulator's server side: accepting and handling connections.
_SERVER_SIDE = ("RequestHandler.", "BaseSelectorEventLoop._accept_connection")


def client_tasks() -> set[asyncio.Task[object]]:
    """The running tasks, less the in-process emulator's own connection handlers."""
    return {
        t
        for t in asyncio.all_tasks()
        if not t.get_coro().__qualname__.startswith(_SERVER_SIDE)  # type: ignore[union-attr]
    }


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds, checking every 5 ms; fail after ``timeout`` seconds.

    For state that has no event to await: counters, /proc, another process's view.
    """
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - there is nothing to await
            await asyncio.sleep(0.005)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer exists, or is a zombie that is not our child."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return True
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0] == "Z" and int(fields[1]) != os.getpid()
