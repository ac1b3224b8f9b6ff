"""Fixtures of the emulator's tests: an emulator on port 0 and a raw REST client for it.

``emu`` is built from ``config``, which a module overrides to run its tests on
another configuration; ``femu`` / ``fapi`` run on a :class:`~.rest.FakeClock`
(``clock``), with boots of exactly 1 s and stops of 0.5 s. ``ws`` is a
workspace and ``pc`` a running 640x400 computer in it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from orgo_async.emulator import BootTime, Emulator, EmulatorConfig

from .rest import FAST_BOOT, Api, FakeClock, Pc


@pytest.fixture
def config() -> EmulatorConfig:
    return EmulatorConfig(boot=FAST_BOOT, stop_seconds=0.01, seed=7)


@pytest.fixture
async def emu(config: EmulatorConfig) -> AsyncIterator[Emulator]:
    async with Emulator(config) as emulator:
        yield emulator


@pytest.fixture
async def api(emu: Emulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(emu, session)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def femu(clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator on a fake clock: boots take exactly 1 s, stops 0.5 s."""
    config = EmulatorConfig(boot=BootTime.fixed(1.0), stop_seconds=0.5)
    async with Emulator(config, clock=clock) as emulator:
        yield emulator


@pytest.fixture
async def fapi(femu: Emulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(femu, session)


@pytest.fixture
async def ws(api: Api) -> dict[str, Any]:
    return await api.workspace()


@pytest.fixture
async def pc(api: Api, ws: dict[str, Any]) -> Pc:
    return await api.running_pc(ws, resolution="640x400x24")
