"""Small asyncio helpers shared by the launch, fleet and connectors."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def run_shielded(aw: Awaitable[T]) -> T:
    """Run ``aw`` to completion even if the caller is cancelled meanwhile.

    Cleanup must not stop half way: a cancellation that arrives while ``aw``
    runs is held back until ``aw`` is done, then re-raised.
    """
    task = asyncio.ensure_future(aw)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
        raise asyncio.CancelledError
    return task.result()


def signal_child(process: asyncio.subprocess.Process, signum: int) -> None:
    """Send ``signum`` to a child that asyncio still counts as running, without reaping it.

    Not ``process.kill()``/``terminate()``: they poll the child first, and a poll
    that finds it already exited reaps it under asyncio's child watcher, which
    then logs "Unknown child process pid ..." and reports 255 for its status.
    Only the watcher reaps the child, and ``returncode`` is set on the loop soon
    after; in that short window the pid is free, but Linux hands out pids in
    sequence, so it is not taken again that soon.
    """
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)
