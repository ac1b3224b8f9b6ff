"""How a command's coroutine runs: on a new event loop, stopped cleanly by a signal.

:func:`run_command` is the ``asyncio.run`` of every command that acts on a
target. SIGINT, SIGTERM and SIGHUP (Ctrl-C, ``kill``, ``timeout``, ``docker
stop``, a CI cancel, a closed terminal) all do what Ctrl-C does under
``asyncio.run``: the first cancels the command's main task, so that its
cleanup runs (a fleet deletes what it made, a computer launched for ``new``
is deleted, a spawned emulator is stopped, a terminal is restored); then
:func:`run_command` raises :class:`~orgo_async.cli._output.Stopped`, which
the command line turns into the exit code 128 + the signal's number (130,
143, 129), whatever the command's own codes are.

That cleanup is shielded: a second signal does not cut it short (stderr says
it is still running). A third abandons it: stderr says so, the processes
registered with :func:`stop_if_abandoned` get SIGTERM, and the process exits
at once with 128 + that signal, leaving behind whatever was not cleaned up
yet (``rm --prefix`` reaps it).

A signal that is ignored when the command starts (``nohup`` ignores SIGHUP,
a shell ignores SIGINT in background jobs) stays ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, Final, TypeVar

from ._output import PROG, Stopped, error, log

__all__ = ["run_command", "stop_if_abandoned"]

T = TypeVar("T")

_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_ABANDON_AT: Final = 3
"""The signal that abandons the cleanup (the first starts it, the second is told to wait)."""

_stop_when_abandoned: set[int] = set()


def run_command(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a new event loop, as ``asyncio.run`` does, and return its result.

    Raises:
        Stopped: a signal stopped it (after its cleanup ran).
        Exception: whatever ``main`` raised.
    """
    return asyncio.run(_guarded(main))


@contextlib.contextmanager
def stop_if_abandoned(pid: int) -> Iterator[None]:
    """While the block runs, abandoning the cleanup sends SIGTERM to the process ``pid`` first.

    For a child the cleanup would have stopped (a spawned emulator): it must
    not outlive a command that exits without cleaning up.
    """
    _stop_when_abandoned.add(pid)
    try:
        yield
    finally:
        _stop_when_abandoned.discard(pid)


class _Signals:
    """What the signals received so far have done to the main task."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self.first: int | None = None
        self._count = 0

    def __call__(self, signum: int) -> None:
        self._count += 1
        name = signal.Signals(signum).name
        if self.first is None:
            self.first = signum
            log.debug("%s: cancelling the command, then cleaning up", name)
            self._task.cancel()
        elif self._count < _ABANDON_AT:
            error(f"{PROG}: {name}: still cleaning up; a third signal abandons the cleanup")
        else:
            _abandon(signum)


def _abandon(signum: int) -> None:
    error(
        f"{PROG}: {signal.Signals(signum).name}: cleanup abandoned; what it did not delete "
        f"is left behind ('{PROG} rm --prefix PREFIX' reaps it)"
    )
    for pid in _stop_when_abandoned:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    sys.stdout.flush()
    os._exit(128 + signum)


async def _guarded(main: Coroutine[Any, Any, T]) -> T:
    task = asyncio.current_task()
    if task is None or threading.current_thread() is not threading.main_thread():
        return await main  # signals reach the main thread only
    loop = asyncio.get_running_loop()
    signals = _Signals(task)
    handled = [s for s in _SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    for signum in handled:
        loop.add_signal_handler(signum, signals, signum)
    try:
        result = await main
    except BaseException as exc:
        if signals.first is not None:
            raise Stopped(signals.first) from exc
        raise
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
    if signals.first is not None:
        # The command finished its work before the cancellation reached it.
        raise Stopped(signals.first)
    return result
