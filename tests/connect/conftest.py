"""Fixtures for the connectors: a running computer on the emulator, and its connection."""

from __future__ import annotations

import pytest

from orgo_async import Computer, Orgo, Workspace


@pytest.fixture
async def computer(orgo: Orgo, workspace: Workspace) -> Computer:
    launched = await orgo.computers.launch(workspace_id=workspace.id, name="sockets")
    return launched.computer
