"""Real processes for the REST ``bash`` and ``exec`` actions.

:class:`CommandRunner` runs one command per call as a real child process:

- in the computer's working directory, with ``HOME`` set to it and an
  environment built from scratch (``PATH``, ``HOME``, ``LANG``...), so
  nothing of the emulator's own environment (an API key) leaks into it;
- as the leader of its own session (``start_new_session``), so the command,
  its children and its background jobs can be killed together;
- with stdout and stderr merged into one pipe, read by the event loop (the
  runner never blocks it), keeping at most :data:`MAX_OUTPUT` bytes: the
  *tail*, since the end of a long output is what explains how it ended.

A command is over when its process has exited and its output has ended, or
:data:`OUTPUT_LINGER` seconds after the exit when a background job still
holds the pipe open (``server &``): such jobs keep running, as on a real
machine, until the computer stops, restarts or is deleted, or the emulator
closes. On timeout the whole session is killed with ``SIGKILL``, children
included. A running command's process group is killed at once; the rest
of the session is found with :func:`~.shell.sessions` (a shared ``/proc``
scan in a worker thread), which also tells whether a finished command left
processes behind.

Nothing here knows about HTTP: :mod:`.routes.desktop` turns a :class:`CommandResult`
into Orgo's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Final

import attrs

from .sandbox import Place
from .shell import members, sessions, signal_all, user_name, wait_gone
from .store import Computer, Store, Transition

PlaceOf = Callable[[Computer], Awaitable[Place]]
"""Where a computer's processes run (``DesktopBackends.place``)."""
ArgvFor = Callable[[Place], Sequence[str]]
"""A command line made for where it runs (``exec`` needs the Python that is there)."""

__all__ = [
    "MAX_OUTPUT",
    "OUTPUT_LINGER",
    "TIMEOUT_EXIT_CODE",
    "ArgvFor",
    "CommandResult",
    "CommandRunner",
    "ExecFailure",
    "PlaceOf",
    "bash_argv",
    "command_env",
    "exec_argv",
    "exec_failure",
]

log = logging.getLogger("orgo_async.emulator")

MAX_OUTPUT: Final = 1 << 20
"""At most this many bytes of output are kept per command: the last ones."""

OUTPUT_LINGER: Final = 0.1
"""Seconds to wait for the end of the output once the command's process has exited."""

TIMEOUT_EXIT_CODE: Final = 124
"""The exit code reported for a command killed by its timeout (as GNU ``timeout``)."""

_READ_SIZE: Final = 65536
# A kill that races a fork may miss the new child: look again, a few times.
_KILL_ROUNDS: Final = 5
_KILL_WAIT: Final = 0.5


@attrs.frozen(kw_only=True)
class CommandResult:
    """How a command ended.

    ``exit_code`` is the process's exit status, ``128 + N`` after signal N,
    :data:`TIMEOUT_EXIT_CODE` when the timeout killed it, and None when it
    was killed because its computer stopped, restarted or was deleted, or
    the emulator closed (``interrupted``).
    """

    output: str
    exit_code: int | None
    timed_out: bool = False
    interrupted: bool = False
    truncated: bool = False
    """True when the head of the output was dropped to keep :data:`MAX_OUTPUT` bytes."""


@lru_cache(maxsize=1)
def _bash() -> str:
    return shutil.which("bash") or shutil.which("sh") or "/bin/sh"


def command_env(home: Path) -> dict[str, str]:
    """The environment of a command run in ``home``: built from scratch, no secrets."""
    user = user_name()
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "PWD": str(home),
        "LANG": "C.UTF-8",
        "USER": user,
        "LOGNAME": user,
        "SHELL": _bash(),
        "TERM": "dumb",
    }


def bash_argv(command: str) -> list[str]:
    """``bash -c command`` (``sh -c`` where there is no bash)."""
    return [_bash(), "-c", command]


def exec_argv(code: str, python: str = sys.executable) -> list[str]:
    """``python`` (the emulator's own by default) running ``code``, isolated and unbuffered.

    ``-I``: no ``PYTHON*`` variables, no user site directory, no script
    directory on ``sys.path``. ``-u``: stdout is not held back, so prints
    come before a traceback in the merged output, in the order they happened.
    """
    return [python, "-I", "-u", "-c", code]


# --------------------------------------------------------------------------- exec errors


@attrs.frozen
class ExecFailure:
    """Why Python code failed: the exception line and the exception's class name."""

    error: str
    error_type: str | None


# The line naming the exception: "pkg.mod.Name: message" or a bare "Name".
_EXCEPTION_LINE: Final = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::(?: (?P<message>.*))?)?$")
_TRACEBACK_HEAD: Final = "Traceback (most recent call last):"


def exec_failure(output: str, exit_code: int | None) -> ExecFailure | None:
    """The failure of a finished ``python -c`` run from its output, or None if it succeeded.

    An uncaught exception is read from the last traceback in the output
    (chained exceptions print several; the last one is what ended the
    program): the first unindented line after its header. A syntax error has
    no header: its exception line is the last line that looks like one. A
    non-zero exit without a traceback is ``SystemExit``; a death by signal
    has no type.
    """
    if exit_code == 0:
        return None
    if exit_code is not None and exit_code > 128:
        number = exit_code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return ExecFailure(f"Process killed by signal {number} ({name})", None)
    lines = output.splitlines()
    head = max((i for i, line in enumerate(lines) if line == _TRACEBACK_HEAD), default=-1)
    candidates: Sequence[str]
    if head >= 0:
        candidates = [line for line in lines[head + 1 :] if line and not line[0].isspace()][:1]
    else:
        candidates = [line for line in reversed(lines) if line and not line[0].isspace()]
    for line in candidates:
        match = _EXCEPTION_LINE.match(line)
        if match is not None and (head >= 0 or _looks_like_exception(match["type"])):
            return ExecFailure(line, match["type"].rsplit(".", 1)[-1])
    return ExecFailure(f"Process exited with code {exit_code}", "SystemExit")


def _looks_like_exception(name: str) -> bool:
    # Without a traceback header only a compile error prints an exception line.
    return name.rsplit(".", 1)[-1].endswith(("Error", "Exception"))


# --------------------------------------------------------------------------- output


class _Tail:
    """The last :data:`MAX_OUTPUT` bytes of a stream."""

    def __init__(self) -> None:
        self._data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        # Trim in big steps: one memmove per MAX_OUTPUT bytes read, not per chunk.
        if len(self._data) >= 2 * MAX_OUTPUT:
            self._trim()

    def _trim(self) -> None:
        excess = len(self._data) - MAX_OUTPUT
        if excess > 0:
            del self._data[:excess]
            self.dropped += excess

    def text(self) -> str:
        self._trim()
        data = bytes(self._data)
        if self.dropped:
            # The cut may have split a UTF-8 sequence: skip its continuation bytes.
            start = 0
            while start < min(3, len(data)) and 0x80 <= data[start] < 0xC0:
                start += 1
            data = data[start:]
        return data.decode("utf-8", "replace")


# --------------------------------------------------------------------------- killing


def _reaped(process: asyncio.subprocess.Process | None) -> bool:
    """Whether the session's leader is reaped (None: a session of a finished command)."""
    return process is None or process.returncode is not None


def _kill_group(session: int, process: asyncio.subprocess.Process | None) -> None:
    """SIGKILL the session's process group and its leader, while the leader is not reaped.

    Afterwards its pid, the group's id, may belong to another process: the
    group's members are then found by a scan (:func:`_kill_session`).
    """
    if not _reaped(process):
        # Until the child has run setsid() it is not yet a group leader: both.
        signal_all([session], signal.SIGKILL, group=session)


async def _kill_session(session: int, process: asyncio.subprocess.Process | None) -> None:
    """SIGKILL every process of the session and wait until they are gone; reap the leader."""
    for _ in range(_KILL_ROUNDS):
        _kill_group(session, process)
        reaped = _reaped(process)
        found = members(await sessions(), session, leader_reaped=reaped)
        if not found:
            break
        signal_all(found, signal.SIGKILL)
        await wait_gone(found, _KILL_WAIT)
    if process is not None:
        await process.wait()


# --------------------------------------------------------------------------- runner


class _PipeReader:
    """Reads a non-blocking pipe into a :class:`_Tail` from the event loop until EOF."""

    def __init__(self, fd: int, tail: _Tail) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._tail = tail
        self.ended: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        for _ in range(16):  # bounded: other callbacks get their turn
            try:
                chunk = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._loop.remove_reader(self._fd)
                if not self.ended.done():
                    self.ended.set_result(None)
                return
            self._tail.add(chunk)

    def close(self) -> None:
        """Stop reading and close the pipe (a writer left behind gets SIGPIPE)."""
        if not self.ended.done():
            self._loop.remove_reader(self._fd)
            self.ended.set_result(None)
        os.close(self._fd)


@attrs.define(eq=False)
class _Run:
    computer_id: str
    process: asyncio.subprocess.Process
    interrupted: bool = False


class CommandRunner:
    """Runs commands for the computers of one store; kills them when their computer goes.

    A lifecycle listener on the store kills (``SIGKILL``) the sessions of a
    computer that stops, restarts or is deleted: running commands end with
    ``interrupted`` set, background jobs left by earlier commands die.
    :meth:`shutdown` does the same for every computer. All methods run on
    the event loop.
    """

    def __init__(self, store: Store, *, place: PlaceOf | None = None) -> None:
        self.store = store
        self._place = place
        self._runs: set[_Run] = set()
        # Sessions of finished commands that left background jobs, per computer id.
        self._leftovers: dict[str, set[int]] = {}
        self._kills: set[asyncio.Task[None]] = set()
        self._closed = False
        store.add_listener(self._on_transition)

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has begun: :meth:`run` refuses new commands."""
        return self._closed

    def running(self, computer_id: str | None = None) -> int:
        """How many commands are running, for one computer (UUID) or all."""
        return sum(1 for r in self._runs if computer_id is None or r.computer_id == computer_id)

    async def run(
        self, computer: Computer, argv: Sequence[str] | ArgvFor, *, timeout: float
    ) -> CommandResult:
        """Run ``argv`` where the computer's processes run (its sandbox, else its
        working directory) until it ends or ``timeout``.

        ``argv`` may be a function of that :class:`~.sandbox.Place`. Cancelling
        the caller kills the command's session (the kill runs on in its own
        task). Raises ``RuntimeError`` after :meth:`shutdown` and ``OSError``
        (:class:`~.sandbox.SandboxError` included) when the process cannot be
        started.
        """
        if self._closed:
            raise RuntimeError("the emulator is closing")
        cwd = self.store.workdir(computer)
        if self._place is not None:
            place = await self._place(computer)
        else:
            place = Place(cwd=cwd, home=str(cwd))
        if callable(argv):
            argv = argv(place)
        env = command_env(cwd)
        env.update(place.env)
        if self._closed:
            raise RuntimeError("the emulator is closing")
        # Our own pipe rather than asyncio's: a background job may hold it open
        # long after the command ended, and we must be able to stop reading.
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *place.argv(argv),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        run = _Run(computer.id, process)
        self._runs.add(run)
        tail = _Tail()
        reader = _PipeReader(read_fd, tail)
        timed_out = False
        try:
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                timed_out = True
                await _kill_session(process.pid, process)
            # Output still in the pipe, unless a background job holds it open.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader.ended), OUTPUT_LINGER)
        except BaseException:
            # Cancelled: the command must not outlive its request.
            self._spawn_kill(process.pid, process)
            raise
        finally:
            self._runs.discard(run)
            reader.close()
        if not timed_out and not run.interrupted:
            # Tracked first, kept only if the scan finds something alive: cancelled
            # meanwhile, the session is still killed with its computer.
            self._leftovers.setdefault(computer.id, set()).add(process.pid)
        await self._prune_leftovers(computer.id)
        exit_code: int | None
        if run.interrupted:
            exit_code = None
        elif timed_out:
            exit_code = TIMEOUT_EXIT_CODE
        else:
            returncode = process.returncode
            assert returncode is not None
            # asyncio reports death by signal N as -N; shells report 128 + N.
            exit_code = 128 - returncode if returncode < 0 else returncode
        return CommandResult(
            output=tail.text(),
            exit_code=exit_code,
            timed_out=timed_out,
            interrupted=run.interrupted,
            truncated=tail.dropped > 0,
        )

    def _spawn_kill(self, session: int, process: asyncio.subprocess.Process | None) -> None:
        # A running command's group gets SIGKILL now, synchronously: a deleted computer's
        # directory is removed right after the listeners return. The task then finds
        # the rest of the session (all of it for a finished command's jobs) and waits
        # the processes out.
        _kill_group(session, process)
        task = asyncio.get_running_loop().create_task(
            _kill_session(session, process), name=f"orgo-emulator-kill-command-{session}"
        )
        self._kills.add(task)
        task.add_done_callback(self._kill_done)

    def _kill_done(self, task: asyncio.Task[None]) -> None:
        self._kills.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("killing a command failed: %s", task.exception())

    async def _prune_leftovers(self, computer_id: str) -> None:
        """Forget the computer's sessions that have nothing alive left."""
        if not self._leftovers.get(computer_id):
            return
        live = await sessions()
        kept = self._leftovers.get(computer_id)  # as it is now, after the scan
        if kept is not None:
            # Their leaders were reaped when their commands ended.
            kept.difference_update([s for s in kept if not members(live, s, leader_reaped=True)])
            if not kept:
                del self._leftovers[computer_id]

    def kill_computer(self, computer_id: str) -> int:
        """Kill every command and background job of a computer (UUID); how many sessions."""
        sessions = self._leftovers.pop(computer_id, set())
        runs = [r for r in self._runs if r.computer_id == computer_id]
        for run in runs:
            run.interrupted = True
            self._spawn_kill(run.process.pid, run.process)
        for session in sessions:
            self._spawn_kill(session, None)
        return len(runs) + len(sessions)

    def _on_transition(self, computer: Computer, transition: Transition) -> None:
        if transition != "start":
            self.kill_computer(computer.id)

    async def shutdown(self) -> None:
        """Kill every command and background job, and wait until they are gone."""
        self._closed = True
        for computer_id in {r.computer_id for r in self._runs} | set(self._leftovers):
            self.kill_computer(computer_id)
        while self._kills:
            await asyncio.gather(*self._kills, return_exceptions=True)
