"""SIGTERM and SIGHUP stop a command as Ctrl-C does: its cleanup runs, nothing is left behind.

Each test runs ``python -m orgo_async`` as a child process against an emulator
served in this process on port 0, sends the child a signal at a chosen moment,
then reads the emulator's own books (``emu.counters.live``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from orgo_async.emulator import BootTime, Emulator, EmulatorConfig, FaultRule

from ..conftest import eventually, gone
from .conftest import env

KEY = "sk_signal_test_0123456789"
EXIT = 60.0  # seconds a child may take to exit once signalled
STOPPING = [signal.SIGTERM, signal.SIGHUP]


@contextlib.asynccontextmanager
async def _emulator(boot: float) -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(api_key=KEY, boot=BootTime.fixed(boot))) as emu:
        yield emu


class _Cli:
    """``python -m orgo_async ARGS`` as a child process; its output is collected as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out = b""
        self.err = b""
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = asyncio.gather(
            self._collect(proc.stdout, "out"), self._collect(proc.stderr, "err")
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def run(
        cls, *args: str, emu: Emulator | None = None, ignoring: int | None = None
    ) -> AsyncIterator[_Cli]:
        """Start it (with the signal ``ignoring`` ignored from the start, as ``nohup`` does)."""
        extra = {} if emu is None else {"ORGO_BASE_URL": emu.base_url, "ORGO_API_KEY": KEY}
        command = ["-m", "orgo_async"] if ignoring is None else ["-c", _IGNORING.format(ignoring)]
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, *command, *args),
            stdin=subprocess.PIPE,  # kept open and silent: a terminal that nobody types in
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env(**extra),
        )
        cli = cls(proc)
        try:
            yield cli
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            assert proc.stdin is not None
            proc.stdin.close()
            await cli._readers

    async def _collect(self, stream: asyncio.StreamReader, name: str) -> None:
        while chunk := await stream.read(65536):
            setattr(self, name, getattr(self, name) + chunk)

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Wait for ``condition``; fail, saying ``what`` and showing stderr, if the child ends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            assert self.proc.returncode is None, (what, self.proc.returncode, self.err)
            assert loop.time() < deadline, (what, "timed out", self.err)
            await asyncio.sleep(0.005)

    async def stderr_shows(self, pattern: str) -> re.Match[bytes]:
        await self.until(lambda: re.search(pattern.encode(), self.err) is not None, pattern)
        found = re.search(pattern.encode(), self.err)
        assert found is not None
        return found

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    async def exit_code(self) -> int:
        """The child's exit status, once it has exited.

        Not ``proc.wait()``: that also waits for the pipes to close, which a
        leaked grandchild holding them would put off for ever.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EXIT
        while self.proc.returncode is None:
            assert loop.time() < deadline, ("no exit", self.err)
            await asyncio.sleep(0.005)
        return self.proc.returncode

    async def output(self) -> tuple[bytes, bytes]:
        """All of stdout and stderr, once their pipes have closed."""
        await asyncio.wait_for(asyncio.shield(self._readers), EXIT)
        return self.out, self.err

    async def last_line(self) -> str:
        """The last line on stderr, once all of it has come."""
        _, err = await self.output()
        return err.decode().strip().splitlines()[-1]


_IGNORING = """
import signal, sys
signal.signal({}, signal.SIG_IGN)
from orgo_async.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _stopped(signum: int) -> str:
    return f"orgo-async: stopped by {signal.Signals(signum).name}"


@pytest.mark.parametrize("signum", STOPPING, ids=lambda s: signal.Signals(s).name)
async def test_a_signal_stops_a_launch_and_its_computers_are_deleted(signum: int) -> None:
    async with _emulator(boot=5.0) as emu, _Cli.run("launch", "--count", "20", emu=emu) as cli:
        await cli.until(lambda: emu.counters.live > 0, "computers on the emulator")
        cli.signal(signum)
        assert await cli.exit_code() == 128 + signum, cli.err
        assert emu.counters.live == 0
        assert emu.counters.deletes > 0
        assert await cli.last_line() == _stopped(signum)
        assert cli.out == b""  # no report: the launch did not finish


@pytest.mark.parametrize("signum", STOPPING, ids=lambda s: signal.Signals(s).name)
async def test_a_signal_deletes_the_computer_of_bash_new(signum: int) -> None:
    async with (
        _emulator(boot=0.03) as emu,
        _Cli.run("bash", "new", "--", "sleep 60", emu=emu) as cli,
    ):
        await cli.until(lambda: emu.counters.bash_runs > 0, "the command running")
        cli.signal(signum)
        assert await cli.exit_code() == 128 + signum, cli.err
        assert emu.counters.live == 0
        assert await cli.last_line() == _stopped(signum)


@pytest.mark.parametrize("signum", STOPPING, ids=lambda s: signal.Signals(s).name)
async def test_a_signal_deletes_the_computer_of_terminal_new(signum: int) -> None:
    async with _emulator(boot=0.03) as emu, _Cli.run("terminal", "new", emu=emu) as cli:
        await cli.until(
            lambda: emu.counters.ws_connections.get("terminal", 0) > 0, "the terminal open"
        )
        cli.signal(signum)
        assert await cli.exit_code() == 128 + signum, cli.err
        assert emu.counters.live == 0
        assert await cli.last_line() == _stopped(signum)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")


async def test_sigterm_stops_the_emulator_that_emulator_launch_started() -> None:
    args = ["-v", "--emulator", "launch", "--count", "20", "--boot-ms", "5000"]
    async with _Cli.run(*args) as cli:
        await cli.stderr_shows(r"POST /api/computers -> 201")
        [child] = _children(cli.proc.pid)
        try:
            assert "orgo_async.emulator" in _cmdline(child)
            cli.signal(signal.SIGTERM)
            assert await cli.exit_code() == 128 + signal.SIGTERM, cli.err
            await eventually(lambda: gone(child))
        finally:
            if not gone(child):
                os.kill(child, signal.SIGKILL)
        assert await cli.last_line() == _stopped(signal.SIGTERM)


async def _launch_until_cleanup(emu: Emulator, cli: _Cli) -> None:
    """Signal the launch once computers exist, and wait until it deletes them."""
    await cli.until(lambda: emu.counters.live > 0, "computers on the emulator")
    cli.signal(signal.SIGTERM)
    await cli.until(
        lambda: emu.counters.requests.get("DELETE /api/computers/{computer_id}", 0) > 0,
        "the cleanup deleting",
    )


async def test_a_second_signal_does_not_abort_the_cleanup() -> None:
    async with _emulator(boot=5.0) as emu, _Cli.run("launch", "--count", "20", emu=emu) as cli:
        emu.faults.add(FaultRule(kind="delay", method="DELETE", delay=1.0))
        await _launch_until_cleanup(emu, cli)
        cli.signal(signal.SIGTERM)
        await cli.stderr_shows("still cleaning up")
        assert await cli.exit_code() == 128 + signal.SIGTERM, cli.err
        assert emu.counters.live == 0
        assert await cli.last_line() == _stopped(signal.SIGTERM)


async def test_a_third_signal_abandons_the_cleanup() -> None:
    async with _emulator(boot=5.0) as emu, _Cli.run("launch", "--count", "20", emu=emu) as cli:
        # The deletes would answer long after this test is over.
        emu.faults.add(FaultRule(kind="delay", method="DELETE", delay=120.0))
        await _launch_until_cleanup(emu, cli)
        cli.signal(signal.SIGTERM)
        await cli.stderr_shows("still cleaning up")
        cli.signal(signal.SIGTERM)
        assert await cli.exit_code() == 128 + signal.SIGTERM, cli.err
        assert "cleanup abandoned" in await cli.last_line()
        assert emu.counters.live > 0  # what the abandoned cleanup did not delete


async def test_a_signal_ignored_from_the_start_stays_ignored() -> None:
    command = ["bash", "new", "--", "sleep 0.5; echo done"]
    async with (
        _emulator(boot=0.03) as emu,
        _Cli.run(*command, emu=emu, ignoring=signal.SIGHUP) as cli,
    ):
        await cli.until(lambda: emu.counters.bash_runs > 0, "the command running")
        cli.signal(signal.SIGHUP)
        assert await cli.exit_code() == 0, cli.err
        assert await cli.output() == (b"done\n", b"")
        assert emu.counters.live == 0
