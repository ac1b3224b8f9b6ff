"""The small asyncio helpers: signalling a child without reaping it under asyncio's watcher."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest

from orgo_async._aio import signal_child


async def test_signal_child_sends_the_signal_without_polling_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(30)"
    )
    polls: list[int] = []
    poll = subprocess.Popen.poll

    def spy(self: subprocess.Popen[bytes]) -> int | None:
        polls.append(self.pid)
        return poll(self)

    # Popen's kill(), terminate() and send_signal() poll first: a poll that finds the child
    # exited reaps it, under asyncio's child watcher, which then reports 255 for its status.
    monkeypatch.setattr(subprocess.Popen, "poll", spy)
    signal_child(process, signal.SIGKILL)
    assert polls == []
    assert await process.wait() == -signal.SIGKILL
    signal_child(process, signal.SIGKILL)  # exited: nothing is sent, nothing raised
    assert polls == []
