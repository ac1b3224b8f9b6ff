"""The ``bash`` and ``exec`` actions, run as real processes.

Their home and environment, timeouts, long output, background jobs, and what
becomes of them when their computer or the emulator goes, on the platform
route and through the proxy. Boots take 5 ms; the only longer waits are the
ones a behaviour needs (a 1 s command timeout).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest

from orgo_async.emulator import BootTime, Emulator, EmulatorConfig
from orgo_async.emulator.commands import MAX_OUTPUT, exec_failure
from orgo_async.emulator.watch import scan_processes

from ..conftest import eventually
from .rest import ROUTES, Api, Pc, Reply


@pytest.fixture
def config() -> EmulatorConfig:
    # Boots of 5 ms: these tests start many computers and wait for each.
    return EmulatorConfig(boot=BootTime.fixed(0.005), stop_seconds=0.005, seed=3)


def live_processes_with(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for info in scan_processes().values():
        if not info.alive:
            continue
        try:
            cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(info.pid)
    return found


@pytest.mark.parametrize("route", ROUTES)
async def test_bash_runs_in_the_computers_home_without_secrets(
    api: Api, pc: Pc, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The emulator's own environment must not reach the command.
    monkeypatch.setenv("ORGO_API_KEY", "sk_do_not_leak")
    command = 'echo out; echo err >&2; pwd; echo "home=$HOME"; env; exit 3'
    reply = await api.act(pc, route, "bash", {"command": command})
    assert reply.status == 200
    body = reply.body
    workdir = api.emu.home(pc.id)
    assert (body["success"], body["action"], body["command"]) == (True, "bash", command)
    assert body["exit_code"] == 3
    assert body["output"].startswith(f"out\nerr\n{workdir}\nhome={workdir}\n")
    assert "sk_do_not_leak" not in body["output"]
    assert api.emu.api_key not in body["output"]
    assert "timed_out" not in body and "truncated" not in body
    assert api.emu.counters.bash_runs == 1


async def test_bash_timeout_kills_the_whole_session(api: Api, pc: Pc) -> None:
    marker = f"1000.{os.getpid()}1"  # a unique duration to find the processes by
    command = f"echo before; sleep {marker} & sleep {marker}"
    reply = await api.act(pc, "platform", "bash", {"command": command, "timeout": 1})
    assert reply.status == 200
    body = reply.body
    assert (body["success"], body["exit_code"], body["timed_out"]) == (True, 124, True)
    assert body["output"] == "before\n"
    assert live_processes_with(marker) == []  # bash and both sleeps


async def test_bash_keeps_the_tail_of_a_long_output(api: Api, pc: Pc) -> None:
    command = "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo END"
    reply = await api.act(pc, "proxy", "bash", {"command": command})
    body = reply.body
    assert (body["exit_code"], body["truncated"]) == (0, True)
    assert len(body["output"]) == MAX_OUTPUT
    assert body["output"].endswith("a\nEND\n")


async def test_background_jobs_outlive_the_command_until_the_computer_stops(
    api: Api, pc: Pc
) -> None:
    marker = f"2000.{os.getpid()}"
    command = f"nohup sleep {marker} >/dev/null 2>&1 & echo started"
    reply = await api.act(pc, "platform", "bash", {"command": command})
    assert (reply.body["output"], reply.body["exit_code"]) == ("started\n", 0)
    assert live_processes_with(marker)  # still running, as on a real machine
    await api.call("POST", f"/api/computers/{pc.id}/stop")
    await eventually(lambda: not live_processes_with(marker))


async def test_a_command_dies_with_its_computer(api: Api, pc: Pc) -> None:
    marker = f"3000.{os.getpid()}"
    task = asyncio.create_task(api.act(pc, "platform", "bash", {"command": f"sleep {marker}"}))
    await eventually(lambda: bool(live_processes_with(marker)))
    await api.call("DELETE", f"/api/computers/{pc.id}")
    reply = await task
    assert (reply.status, reply.body["code"]) == (503, "desktop_unavailable")
    assert live_processes_with(marker) == []


@pytest.mark.parametrize("route", ROUTES)
async def test_exec_success_and_exceptions(api: Api, pc: Pc, route: str) -> None:
    ok = await api.act(pc, route, "exec", {"code": "import os\nprint(6 * 7, os.getcwd())"})
    assert ok.status == 200
    assert ok.body == {
        "output": f"42 {api.emu.home(pc.id)}\n",
        "success": True,
        "action": "exec",
        "timeout": False,
        "exit_code": 0,
    }

    raised = await api.act(pc, route, "exec", {"code": "print('before')\n1 / 0"})
    body = raised.body
    assert (body["success"], body["timeout"], body["exit_code"]) == (False, False, 1)
    assert body["error_type"] == "ZeroDivisionError"
    assert body["error"] == "ZeroDivisionError: division by zero"
    assert body["output"].startswith("before\nTraceback (most recent call last):")

    syntax = await api.act(pc, route, "exec", {"code": "1 +"})
    assert syntax.body["error_type"] == "SyntaxError"
    exited = await api.act(pc, route, "exec", {"code": "import sys; sys.exit(4)"})
    assert (exited.body["error_type"], exited.body["exit_code"]) == ("SystemExit", 4)
    assert api.emu.counters.exec_runs == 4


async def test_exec_timeout_kills_the_code(api: Api, pc: Pc) -> None:
    marker = f"4000.{os.getpid()}"
    code = (
        "import subprocess, time\n"
        f"subprocess.Popen(['sleep', '{marker}'])\n"
        "print('started')\n"
        "time.sleep(100)\n"
    )
    reply = await api.act(pc, "platform", "exec", {"code": code, "timeout": 1})
    body = reply.body
    assert (body["success"], body["timeout"], body["error_type"]) == (False, True, "TimeoutError")
    assert body["output"] == "started\n"
    assert live_processes_with(marker) == []  # the Python process and its child


def test_exec_failure_parsing() -> None:
    chained = (
        "Traceback (most recent call last):\n  x\nKeyError: 'a'\n\nDuring handling...\n\n"
        'Traceback (most recent call last):\n  File "<string>", line 3\n'
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n"
    )
    failure = exec_failure(chained, 1)
    assert failure is not None
    assert failure.error_type == "JSONDecodeError"
    assert failure.error.startswith("json.decoder.JSONDecodeError: Expecting value")
    assert exec_failure("fine\n", 0) is None
    killed = exec_failure("", 137)
    assert killed is not None and (killed.error_type, "SIGKILL" in killed.error) == (None, True)


async def test_closing_the_emulator_ends_commands_and_waits() -> None:
    marker = f"5000.{os.getpid()}"
    config = EmulatorConfig(boot=BootTime.fixed(0.005))
    async with aiohttp.ClientSession() as session:
        emu = Emulator(config)
        await emu.start()
        try:
            api = Api(emu, session)
            pc = await api.running_pc(await api.workspace())
            bash = asyncio.create_task(
                api.act(pc, "platform", "bash", {"command": f"sleep {marker}"})
            )
            wait = asyncio.create_task(api.act(pc, "proxy", "wait", {"seconds": 60}))
            await eventually(lambda: bool(live_processes_with(marker)))
            await eventually(lambda: "wait" in emu.counters.actions)
        finally:
            started = time.monotonic()
            await emu.close()
        assert time.monotonic() - started < 30  # the 60 s wait was cut short
        assert live_processes_with(marker) == []
        # Both requests end (an answer or a closed connection) instead of hanging.
        async with asyncio.timeout(5):
            results = await asyncio.gather(bash, wait, return_exceptions=True)
        for result in results:
            assert isinstance(result, Reply | aiohttp.ClientError), result
