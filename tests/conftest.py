"""Shared fixtures: the emulator on port 0, and sessions whose retry waits are recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
