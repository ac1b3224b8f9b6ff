"""The emulator's desktop WebSockets, driven by plain WebSocket clients (no SDK).

Computers boot in 20 ms; readiness is awaited by polling the health route.
Every wait is a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import re
from array import array
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close

from orgo_async.emulator import BootTime, Emulator, EmulatorConfig, sockets
from orgo_async.emulator.__main__ import add_arguments, config_from_args
from orgo_async.emulator.sockets import SOCKET_SERVERS, SocketHub
from orgo_async.emulator.store import Store
from orgo_async.protocol.terminal import strip_ansi

from ..conftest import eventually, gone
from .rest import SocketApi as Api

FAST_BOOT = BootTime.fixed(0.02)
SOCKETS = ("terminal", "audio", "events")
ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# --------------------------------------------------------------------------- harness


def own_children() -> set[int]:
    """The pids of this process's children, zombies included, from /proc."""
    me, pids = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
                ppid = int(stat.read().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == me:
            pids.add(int(entry))
    return pids


def open_fds(target: str) -> int:
    """How many of this process's descriptors point at ``target`` (e.g. /dev/ptmx)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                count += 1
        except OSError:
            pass
    return count


def url(
    emu: Emulator, computer: dict[str, Any], name: str, token: str | None = None, **query: Any
) -> str:
    params = dict(query)
    if token is not None:
        params["token"] = token
    base = f"ws://{emu.hostport}/desktops/{computer['instance_id']}/ws/{name}"
    return f"{base}?{urlencode(params, quote_via=quote)}" if params else base


def dial(target: str, headers: dict[str, str] | None = None) -> connect:
    return connect(
        target,
        additional_headers=headers,
        compression=None,
        ping_interval=None,
        open_timeout=5,
        close_timeout=2,
    )


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                data: dict[str, Any] = json.loads(message)
                return data


async def close_frame(ws: ClientConnection, timeout: float = 5.0) -> Close | None:
    """Read until the server closes; the close frame it sent (None: no frame, 1006)."""
    async with asyncio.timeout(timeout):
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
    return info.value.rcvd


async def refused_with(target: str, headers: dict[str, str] | None = None) -> Close | None:
    async with dial(target, headers) as ws:
        return await close_frame(ws)


class Term:
    """A terminal socket: typed input, accumulated ANSI-stripped output, the exit code."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.text = ""
        self.exit_code: int | None = None
        self.pongs = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def type(self, keys: str) -> None:
        await self.send({"type": "input", "data": keys})

    async def _read_one(self) -> None:
        message = json.loads(await self.ws.recv())
        if message["type"] == "output":
            self.text += strip_ansi(message["data"])
        elif message["type"] == "exit":
            self.exit_code = message["code"]
        elif message["type"] == "pong":
            self.pongs += 1

    async def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Read output until ``pattern`` matches; later expects only see later output."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout):
                while (match := regex.search(self.text)) is None:
                    await self._read_one()
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} in {timeout} s; output: {self.text!r}") from None
        self.text = self.text[match.end() :]
        return match

    async def shell_pid(self) -> int:
        # $(( )) keeps the marker out of the echo of the typed line.
        await self.type("echo PID-$((0+$$))-END\r")
        return int((await self.expect(r"PID-(\d+)-END")).group(1))


@pytest.fixture
def config() -> EmulatorConfig:
    # Unsandboxed: these tests follow the shells' processes by their host pids (a
    # sandboxed shell's $$ is a pid of its own namespace); test_sandbox.py runs the
    # terminal in a sandbox.
    return EmulatorConfig(boot=FAST_BOOT, stop_seconds=0.01, seed=7, sandbox="off")


@pytest.fixture
async def api(emu: Emulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(emu, session)


@pytest.fixture
async def computer(api: Api) -> dict[str, Any]:
    return await api.running()


@pytest.fixture
async def term(emu: Emulator, computer: dict[str, Any]) -> AsyncIterator[Term]:
    async with dial(url(emu, computer, "terminal", computer["vnc_password"])) as ws:
        yield Term(ws)


async def first_reply(name: str, ws: ClientConnection) -> dict[str, Any]:
    """Prove a socket is live: audio announces its format, the others answer a ping."""
    if name != "audio":
        await ws.send(json.dumps({"type": "ping"}))
    while True:
        reply = await recv_json(ws)
        if reply["type"] != "output":  # the terminal may print its prompt first
            return reply


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("name", SOCKETS)
async def test_token_in_query_or_bearer_header(
    emu: Emulator, computer: dict[str, Any], name: str
) -> None:
    password = computer["vnc_password"]
    expected = {"type": "started", "sample_rate": 24000, "channels": 1}
    if name != "audio":
        expected = {"type": "pong"}
    async with dial(url(emu, computer, name, password)) as ws:
        assert await first_reply(name, ws) == expected
    bearer = {"Authorization": f"Bearer {password}"}
    async with dial(url(emu, computer, name), bearer) as ws:
        assert await first_reply(name, ws) == expected
    # The UUID works in place of the instance id.
    by_uuid = f"ws://{emu.hostport}/desktops/{computer['id']}/ws/{name}?token={password}"
    async with dial(by_uuid) as ws:
        assert await first_reply(name, ws) == expected
    assert emu.counters.ws_connections == {name: 3}


@pytest.mark.parametrize("name", SOCKETS)
async def test_bad_missing_or_wrong_scheme_token_closes_4401(
    emu: Emulator, computer: dict[str, Any], name: str
) -> None:
    password = computer["vnc_password"]
    for target, headers in (
        (url(emu, computer, name), None),
        (url(emu, computer, name, "0" * 16), None),
        (url(emu, computer, name, password + "x"), None),
        (url(emu, computer, name), {"Authorization": "Bearer nope"}),
        (url(emu, computer, name), {"Authorization": f"Basic {password}"}),
        (url(emu, computer, name, "é"), None),
    ):
        frame = await refused_with(target, headers)
        assert frame is not None
        assert (frame.code, frame.reason) == (4401, "Invalid or missing token")
    assert emu.counters.ws_rejections == {4401: 6}
    assert emu.counters.ws_connections == {}


async def test_token_is_url_decoded(emu: Emulator, computer: dict[str, Any]) -> None:
    # A password with reserved characters must arrive intact through ?token=.
    stored = emu.state.get_computer(computer["id"])
    stored.vnc_password = "a+b/c=d&e f%"
    async with dial(url(emu, computer, "events", stored.vnc_password)) as ws:
        assert await first_reply("events", ws) == {"type": "pong"}


async def http_status(target: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with dial(target, headers):
            pass
    return info.value.response.status_code


async def test_ws_auth_reject_refuses_the_upgrade(emu: Emulator, computer: dict[str, Any]) -> None:
    emu.config.ws_auth = "reject"
    password = computer["vnc_password"]
    for name in SOCKETS:
        assert await http_status(url(emu, computer, name)) == 401
        assert await http_status(url(emu, computer, name, "stale")) == 401
        async with dial(url(emu, computer, name, password)) as ws:
            await first_reply(name, ws)
        async with dial(url(emu, computer, name), {"Authorization": f"Bearer {password}"}) as ws:
            await first_reply(name, ws)
    assert emu.counters.ws_rejections == {401: 6}


async def test_ws_auth_query_only_and_header_only(emu: Emulator, computer: dict[str, Any]) -> None:
    password = computer["vnc_password"]
    bearer = {"Authorization": f"Bearer {password}"}
    emu.config.ws_auth = "query_only"  # the new metal image
    assert await http_status(url(emu, computer, "terminal"), bearer) == 401
    async with dial(url(emu, computer, "terminal", password)) as ws:
        assert await first_reply("terminal", ws) == {"type": "pong"}
    emu.config.ws_auth = "header_only"  # the old image
    assert await http_status(url(emu, computer, "terminal", password)) == 401
    async with dial(url(emu, computer, "terminal"), bearer) as ws:
        assert await first_reply("terminal", ws) == {"type": "pong"}


async def test_admin_config_patches_socket_settings(api: Api) -> None:
    status, body = await api.call(
        "PATCH", "/_emulator/config", {"ws_auth": "query_only", "idle_seconds": 2}
    )
    assert status == 200 and body["ws_auth"] == "query_only" and body["idle_seconds"] == 2
    status, body = await api.call("PATCH", "/_emulator/config", {"ws_auth": "maybe"})
    assert status == 400
    assert api.emu.config.ws_auth == "query_only"


async def test_admin_views_and_unserved_names(
    emu: Emulator, api: Api, computer: dict[str, Any]
) -> None:
    async with dial(url(emu, computer, "events", computer["vnc_password"])) as ws:
        await first_reply("events", ws)
        status, listing = await api.call("GET", "/_emulator/computers")
        assert status == 200 and listing["computers"][0]["sockets"] == 1
    await refused_with(url(emu, computer, "events"))
    status, counters = await api.call("GET", "/_emulator/counters")
    assert counters["ws_connections"] == {"events": 1}
    assert counters["ws_rejections"] == {"4401": 1}
    assert counters["ws_events_dropped"] == 0
    # Desktop sockets are not REST responses.
    assert "101" not in counters["responses_by_status"]
    # Names Orgo does not document do not exist (websockify: test_emulator_vnc.py).
    assert await http_status(url(emu, computer, "rtc", computer["vnc_password"])) == 404
    assert emu.drop_sockets(computer["id"]) == 0
    status, _ = await api.call("POST", "/_emulator/computers/nope/drop-sockets")
    assert status == 404


# --------------------------------------------------------------------------- 4404


async def test_unknown_or_not_running_computer_closes_4404(emu: Emulator, api: Api) -> None:
    unknown = {"instance_id": "deadbeef", "id": "x"}
    for name in SOCKETS:
        frame = await refused_with(url(emu, unknown, name, "whatever"))
        assert frame is not None
        assert (frame.code, frame.reason) == (4404, "Computer not found or not running")

    emu.config.boot = BootTime.fixed(60)  # still creating for the whole test
    booting = await api.create("booting")
    frame = await refused_with(url(emu, booting, "terminal", booting["vnc_password"]))
    assert frame is not None and frame.code == 4404

    emu.config.boot = FAST_BOOT
    stopped = await api.running("stopped")
    assert (await api.call("POST", f"/api/computers/{stopped['id']}/stop"))[0] == 200
    for name in SOCKETS:
        frame = await refused_with(url(emu, stopped, name, stopped["vnc_password"]))
        assert frame is not None and frame.code == 4404
    assert emu.counters.ws_rejections == {4404: 7}


# --------------------------------------------------------------------------- 1001 / 1006


async def open_all(
    emu: Emulator, computer: dict[str, Any], password: str
) -> tuple[list[ClientConnection], int]:
    """Open the three sockets (closed by the caller's server action); the shell's pid."""
    sockets = []
    for name in SOCKETS:
        ws = await dial(url(emu, computer, name, password))
        sockets.append(ws)
        await first_reply(name, ws)
    term = Term(sockets[0])
    return sockets, await term.shell_pid()


async def assert_all_closed_1001(sockets: list[ClientConnection], shell_pid: int) -> None:
    for ws in sockets:
        frame = await close_frame(ws)
        assert frame is not None
        assert (frame.code, frame.reason) == (1001, "Computer stopping")
        await ws.close()
    await eventually(lambda: gone(shell_pid))


async def test_stop_closes_every_socket_1001_and_kills_the_shell(
    emu: Emulator, api: Api, computer: dict[str, Any]
) -> None:
    sockets, pid = await open_all(emu, computer, computer["vnc_password"])
    assert (await api.call("POST", f"/api/computers/{computer['id']}/stop"))[0] == 200
    await assert_all_closed_1001(sockets, pid)
    await eventually(lambda: not emu.sockets.sockets())


async def test_restart_closes_1001_and_the_old_token_gets_4401(
    emu: Emulator, api: Api, computer: dict[str, Any]
) -> None:
    old = computer["vnc_password"]
    sockets, pid = await open_all(emu, computer, old)
    assert (await api.call("POST", f"/api/computers/{computer['id']}/restart"))[0] == 200
    await assert_all_closed_1001(sockets, pid)

    frame = await refused_with(url(emu, computer, "terminal", old))
    assert frame is not None and frame.code == 4401
    await api.wait_running(computer)
    new = await api.password(computer)
    assert new != old
    async with dial(url(emu, computer, "terminal", new)) as ws:
        assert await first_reply("terminal", ws) == {"type": "pong"}


async def test_resize_that_reboots_closes_1001(
    emu: Emulator, api: Api, computer: dict[str, Any]
) -> None:
    sockets, pid = await open_all(emu, computer, computer["vnc_password"])
    status, _ = await api.call("PATCH", f"/api/computers/{computer['id']}/resize", {"vcpus": 2})
    assert status == 200
    await assert_all_closed_1001(sockets, pid)


async def test_delete_closes_1001_and_removes_the_workdir(
    emu: Emulator, api: Api, computer: dict[str, Any]
) -> None:
    workdir = emu.workdir(computer["id"])
    (workdir / "Desktop" / "note.txt").write_text("bye")
    sockets, pid = await open_all(emu, computer, computer["vnc_password"])
    assert (await api.call("DELETE", f"/api/computers/{computer['id']}"))[0] == 200
    await assert_all_closed_1001(sockets, pid)
    assert not workdir.exists()


async def test_drop_sockets_is_an_abnormal_closure(
    emu: Emulator, api: Api, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    async with aiohttp.ClientSession() as session:
        sockets = []
        for name in SOCKETS:
            ws = await session.ws_connect(url(emu, computer, name, password))
            sockets.append(ws)
        await sockets[0].send_json({"type": "input", "data": "echo PID-$((0+$$))-END\r"})
        text = ""
        while (match := re.search(r"PID-(\d+)-END", text)) is None:
            text += strip_ansi((await sockets[0].receive_json(timeout=5))["data"])
        pid = int(match.group(1))

        status, body = await api.call("POST", f"/_emulator/computers/{computer['id']}/drop-sockets")
        assert (status, body) == (200, {"dropped": 3})
        for ws in sockets:
            async with asyncio.timeout(5):
                while not ws.closed:
                    msg = await ws.receive()
                    assert msg.type is not aiohttp.WSMsgType.CLOSE  # no close frame
            assert ws.close_code == 1006
        await eventually(lambda: gone(pid))
    await eventually(lambda: not emu.sockets.sockets())
    assert emu.drop_sockets(computer["instance_id"]) == 0


async def test_close_sockets_with_a_chosen_code(
    emu: Emulator, api: Api, computer: dict[str, Any]
) -> None:
    async with dial(url(emu, computer, "events", computer["vnc_password"])) as ws:
        await first_reply("events", ws)
        assert emu.close_sockets(computer["id"], 4008, "idle") == 1
        frame = await close_frame(ws)
        assert frame is not None and (frame.code, frame.reason) == (4008, "idle")
    async with dial(url(emu, computer, "events", computer["vnc_password"])) as ws:
        await first_reply("events", ws)
        status, body = await api.call(
            "POST", f"/_emulator/computers/{computer['id']}/close-sockets", {"code": 1012}
        )
        assert (status, body) == (200, {"closed": 1})
        frame = await close_frame(ws)
        assert frame is not None and frame.code == 1012


# --------------------------------------------------------------------------- terminal


async def test_terminal_echo_round_trip_in_the_computers_directory(
    emu: Emulator, computer: dict[str, Any], term: Term
) -> None:
    await term.type("echo MARK-$((40+2))\r")
    await term.expect(r"MARK-42")
    await term.type("pwd; echo HOME=$HOME TERM=$TERM\r")
    workdir = emu.workdir(computer["id"])
    assert workdir.name == computer["instance_id"]
    assert emu.ws_url(computer["id"], "terminal") == (
        f"ws://{emu.hostport}/desktops/{computer['instance_id']}/ws/terminal"
    )
    assert (workdir / "Desktop").is_dir() and (workdir / "Downloads").is_dir()
    match = await term.expect(r"\s(/\S+)\s+HOME=(\S+) TERM=(\S+)")
    assert Path(match.group(1)) == workdir
    assert (Path(match.group(2)), match.group(3)) == (workdir, "xterm-256color")
    # Nothing of the emulator's environment leaks into the shell.
    await term.type("echo KEY=${ORGO_API_KEY:-none}-$((1+1))\r")
    await term.expect(r"KEY=none-2")
    # UTF-8 in and out.
    await term.type("echo 'héllo ✓'-$((2+2))\r")
    await term.expect(r"héllo ✓-4")
    await term.send({"type": "ping"})
    await eventually_read(term, lambda: term.pongs == 1)


async def eventually_read(term: Term, condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await term._read_one()


async def test_terminal_size_from_query_and_resize(emu: Emulator, computer: dict[str, Any]) -> None:
    target = url(emu, computer, "terminal", computer["vnc_password"], cols=100, rows=30)
    async with dial(target) as ws:
        term = Term(ws)
        await term.type("echo SIZE-$(stty size)-END\r")
        assert (await term.expect(r"SIZE-(\d+ \d+)-END")).group(1) == "30 100"
        await term.send({"type": "resize", "cols": 132, "rows": 43})
        await term.type("echo SIZE-$(stty size)-END\r")
        assert (await term.expect(r"SIZE-(\d+ \d+)-END")).group(1) == "43 132"


async def test_terminal_defaults_to_80x24(term: Term) -> None:
    await term.type("echo SIZE-$(stty size)-END\r")
    assert (await term.expect(r"SIZE-(\d+ \d+)-END")).group(1) == "24 80"


async def test_terminal_exit_sends_the_code_then_closes_1000(term: Term) -> None:
    pid = await term.shell_pid()
    await term.type("exit 3\r")
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(5):
            while True:
                await term._read_one()
    assert term.exit_code == 3
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000
    assert gone(pid)


async def test_closing_the_socket_kills_the_shell_and_its_jobs(
    emu: Emulator, computer: dict[str, Any]
) -> None:
    ptys = open_fds("/dev/ptmx")
    async with dial(url(emu, computer, "terminal", computer["vnc_password"])) as ws:
        term = Term(ws)
        pid = await term.shell_pid()
        # A job that ignores SIGHUP must not survive either.
        await term.type("nohup sleep 60 >/dev/null 2>&1 & echo JOB-$((0+$!))-END\r")
        job = int((await term.expect(r"JOB-(\d+)-END")).group(1))
        assert not gone(pid) and not gone(job)
        assert open_fds("/dev/ptmx") == ptys + 1
    await eventually(lambda: gone(pid) and gone(job))
    await eventually(lambda: not emu.sockets.shells())
    assert open_fds("/dev/ptmx") == ptys


def child_pids(pid: int) -> list[str]:
    """``pid``'s child processes."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return f.read().split()


def children(pid: int) -> list[str]:
    """The names of ``pid``'s child processes."""
    names = []
    for child in child_pids(pid):
        with open(f"/proc/{child}/comm") as comm:
            names.append(comm.read().strip())
    return names


def in_foreground(pid: int, name: str) -> bool:
    """Whether a child of ``pid`` called ``name`` holds the terminal (its job is the foreground).

    Until the shell has handed the terminal to the job it is starting, a ^C
    typed reaches the shell's process group, not the job.
    """
    for child in child_pids(pid):
        try:
            with open(f"/proc/{child}/comm") as comm, open(f"/proc/{child}/stat") as stat:
                named = comm.read().strip() == name
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # it ended meanwhile
            continue
        if named and fields[2] == fields[5]:  # its process group is the terminal's
            return True
    return False


async def test_terminal_control_c_interrupts_the_foreground_job(term: Term) -> None:
    pid = await term.shell_pid()
    await term.type("sleep 30; echo AFTER-$((1+1))\r")
    await eventually(lambda: in_foreground(pid, "sleep"))
    # ^C is a keystroke: the PTY turns it into SIGINT for the foreground job.
    await term.type("\x03")
    await term.expect(r"\^C\s*\S+@orgo-desktop:~# ")
    await term.type("echo BACK-$((2+1))\r")
    await term.expect(r"BACK-3")
    assert "AFTER-2" not in term.text
    assert children(pid) == []


async def test_terminal_bad_size_or_message_is_refused_1008(
    emu: Emulator, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    async with dial(url(emu, computer, "terminal", password, cols="wide")) as ws:
        assert (await recv_json(ws))["type"] == "error"
        frame = await close_frame(ws)
        assert frame is not None and frame.code == 1008 and "cols" in frame.reason
    async with dial(url(emu, computer, "terminal", password)) as ws:
        await ws.send(json.dumps({"type": "dance"}))
        while (reply := await recv_json(ws))["type"] == "output":
            pass
        assert reply == {"type": "error", "message": "Unknown message type: dance"}
        await ws.send("{not json")
        while (reply := await recv_json(ws))["type"] == "output":
            pass
        assert reply["type"] == "error" and reply["message"].startswith("Protocol error")
        frame = await close_frame(ws)
        assert frame is not None and frame.code == 1008


@pytest.mark.parametrize("name", SOCKETS)
async def test_deeply_nested_json_is_a_protocol_error_1008(
    emu: Emulator, computer: dict[str, Any], name: str
) -> None:
    async with dial(url(emu, computer, name, computer["vnc_password"])) as ws:
        await first_reply(name, ws)
        await ws.send('{"type":"ping","x":' + "[" * 100_000 + "]" * 100_000 + "}")
        while (reply := await recv_json(ws))["type"] == "output":
            pass
        assert reply["type"] == "error"
        assert reply["message"] == "Protocol error: message nested deeper than 64 levels"
        frame = await close_frame(ws)
        assert frame is not None and frame.code == 1008


async def test_shell_that_cannot_start_closes_4500(emu: Emulator, computer: dict[str, Any]) -> None:
    # A working directory that cannot be created makes the spawn fail.
    blocker = emu.state.workdir_root / computer["instance_id"]
    for child in blocker.iterdir() if blocker.exists() else ():
        child.rmdir()
    if blocker.exists():
        blocker.rmdir()
    blocker.write_text("not a directory")
    frame = await refused_with(url(emu, computer, "terminal", computer["vnc_password"]))
    assert frame is not None and frame.code == 4500
    assert emu.counters.ws_rejections == {4500: 1}
    blocker.unlink()


# --------------------------------------------------------------------------- audio


async def collect_audio(ws: ClientConnection, seconds: float) -> tuple[dict[str, Any], bytes]:
    started = await recv_json(ws)
    assert started["type"] == "started"
    frame_bytes = started["sample_rate"] // 50 * 2 * started["channels"]
    wanted = int(seconds * started["sample_rate"]) * 2 * started["channels"]
    pcm = bytearray()
    async with asyncio.timeout(seconds + 5):
        while len(pcm) < wanted:
            message = await ws.recv()
            assert isinstance(message, bytes)
            assert len(message) % frame_bytes == 0 and message  # whole 20 ms frames
            pcm += message
    return started, bytes(pcm)


def dominant_frequency(samples: array[int], rate: int) -> float:
    """From rising zero crossings, interpolated between samples."""
    crossings = [
        i + samples[i] / (samples[i] - samples[i + 1])
        for i in range(len(samples) - 1)
        if samples[i] < 0 <= samples[i + 1]
    ]
    return (len(crossings) - 1) * rate / (crossings[-1] - crossings[0])


async def test_audio_streams_the_configured_tone(emu: Emulator, computer: dict[str, Any]) -> None:
    async with dial(url(emu, computer, "audio", computer["vnc_password"])) as ws:
        started, pcm = await collect_audio(ws, 0.5)
    assert started == {"type": "started", "sample_rate": 24000, "channels": 1}
    samples = array("h", pcm)
    assert abs(dominant_frequency(samples, 24000) - 440.0) < 440.0 * 0.02
    assert 15000 < max(samples) <= 16384 and -16384 <= min(samples) < -15000


async def test_audio_48k_stereo_at_another_tone(emu: Emulator, computer: dict[str, Any]) -> None:
    emu.config.audio_tone_hz = 1000.0
    target = url(emu, computer, "audio", computer["vnc_password"], sample_rate=48000, channels=2)
    async with dial(target) as ws:
        started, pcm = await collect_audio(ws, 0.5)
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv_json(ws) == {"type": "pong"}
        await ws.send(json.dumps({"type": "stop"}))
        frame = await close_frame(ws)
        assert frame is not None and frame.code == 1000
    assert started == {"type": "started", "sample_rate": 48000, "channels": 2}
    samples = array("h", pcm)
    left, right = samples[0::2], samples[1::2]
    assert left == right
    assert abs(dominant_frequency(left, 48000) - 1000.0) < 1000.0 * 0.02


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ({"sample_rate": 44100}, "sample_rate"),
        ({"sample_rate": "x"}, "sample_rate"),
        ({"channels": 3}, "channels"),
    ],
)
async def test_audio_bad_format_is_refused(
    emu: Emulator, computer: dict[str, Any], query: dict[str, Any], word: str
) -> None:
    async with dial(url(emu, computer, "audio", computer["vnc_password"], **query)) as ws:
        error = await recv_json(ws)
        assert error["type"] == "error" and word in error["message"]
        frame = await close_frame(ws)
        assert frame is not None and frame.code == 1008 and word in frame.reason
    assert emu.counters.ws_connections == {}


# --------------------------------------------------------------------------- events


async def subscribe(ws: ClientConnection, *types: str) -> None:
    await ws.send(json.dumps({"type": "subscribe", "event_types": list(types)}))
    assert await recv_json(ws) == {"type": "subscribed", "message": "ok"}


async def next_event(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message = await recv_json(ws, timeout)
    assert message["type"] == "event", message
    event: dict[str, Any] = message["event"]
    assert ISO_MS_Z.match(event["timestamp"])
    return event


@pytest.fixture
async def events(emu: Emulator, computer: dict[str, Any]) -> AsyncIterator[ClientConnection]:
    async with dial(url(emu, computer, "events", computer["vnc_password"])) as ws:
        yield ws


async def test_file_changes_only_after_subscribing(
    emu: Emulator, computer: dict[str, Any], events: ClientConnection
) -> None:
    desktop = emu.workdir(computer["id"]) / "Desktop"
    (desktop / "before.txt").write_text("old news")
    await events.send(json.dumps({"type": "ping"}))
    assert await recv_json(events) == {"type": "pong"}  # nothing was queued before it
    await subscribe(events, "file_change")
    note = desktop / "notes.txt"
    note.write_text("one")
    assert (await next_event(events))["data"] == {"path": "Desktop/notes.txt", "action": "created"}
    with note.open("a") as f:
        f.write(" two")
    assert (await next_event(events))["data"] == {
        "path": "Desktop/notes.txt",
        "action": "modified",
    }
    note.unlink()
    assert (await next_event(events))["data"] == {"path": "Desktop/notes.txt", "action": "deleted"}
    downloads = emu.workdir(computer["id"]) / "Downloads"
    (downloads / "sub").mkdir()
    (downloads / "sub" / "file.bin").write_bytes(b"\0")
    event = await next_event(events)
    assert event["type"] == "file_change"
    assert event["data"] == {"path": "Downloads/sub/file.bin", "action": "created"}
    # Unsubscribing stops the poller.
    await events.send(json.dumps({"type": "unsubscribe", "event_types": ["file_change"]}))
    assert await recv_json(events) == {"type": "unsubscribed", "message": "ok"}
    assert not emu.sockets.files.running


async def test_process_events_for_a_command_typed_in_the_terminal(
    emu: Emulator, computer: dict[str, Any], events: ClientConnection
) -> None:
    await subscribe(events, "process_start", "process_stop")
    async with dial(url(emu, computer, "terminal", computer["vnc_password"])) as ws:
        term = Term(ws)
        shell_pid = await term.shell_pid()
        start = await next_event(events)
        assert start["type"] == "process_start"
        assert start["data"] == {"pid": shell_pid, "name": "bash"}
        await term.type("sleep 0.3\r")
        sleep_start = await next_event(events)
        assert sleep_start["type"] == "process_start" and sleep_start["data"]["name"] == "sleep"
        sleep_stop = await next_event(events)
        assert sleep_stop["type"] == "process_stop"
        assert sleep_stop["data"] == sleep_start["data"]
    stop = await next_event(events)
    assert (stop["type"], stop["data"]) == ("process_stop", {"pid": shell_pid, "name": "bash"})
    await eventually(lambda: not emu.sockets.processes.running)


async def test_published_events_and_unknown_types(
    emu: Emulator, api: Api, computer: dict[str, Any], events: ClientConnection
) -> None:
    await events.send(json.dumps({"type": "subscribe", "event_types": ["bogus", "window_open"]}))
    assert await recv_json(events) == {"type": "error", "message": "Unknown event type: bogus"}
    assert await recv_json(events) == {"type": "subscribed", "message": "ok"}
    # Not subscribed: not delivered.
    assert emu.publish_event(computer["id"], "clipboard", {"content": "x"}) == 0
    status, body = await api.call(
        "POST",
        f"/_emulator/computers/{computer['id']}/events",
        {"type": "window_open", "data": {"window_id": 7, "title": "Terminal"}},
    )
    assert (status, body) == (200, {"delivered": 1})
    event = await next_event(events)
    assert event["type"] == "window_open"
    assert event["data"] == {"window_id": 7, "title": "Terminal"}
    status, body = await api.call(
        "POST", f"/_emulator/computers/{computer['id']}/events", {"type": "nope"}
    )
    assert status == 400
    with pytest.raises(ValueError):
        emu.publish_event(computer["id"], "nope", {})


async def test_audio_stream_events(
    emu: Emulator, computer: dict[str, Any], events: ClientConnection
) -> None:
    await subscribe(events, "audio_stream_start", "audio_stream_stop", "screen_change")
    async with dial(url(emu, computer, "audio", computer["vnc_password"])) as ws:
        await recv_json(ws)
        assert (await next_event(events))["type"] == "audio_stream_start"
    assert (await next_event(events))["type"] == "audio_stream_stop"
    emu.publish_event(computer["instance_id"], "screen_change", {"width": 800, "height": 600})
    event = await next_event(events)
    assert (event["type"], event["data"]) == ("screen_change", {"width": 800, "height": 600})


async def test_idle_then_active(
    emu: Emulator, computer: dict[str, Any], events: ClientConnection, term: Term
) -> None:
    emu.config.idle_seconds = 0.2
    await term.shell_pid()
    await subscribe(events, "idle", "active")
    idle = await next_event(events)
    assert idle["type"] == "idle" and idle["data"]["idle_seconds"] >= 0.2
    await term.type("true\r")
    assert (await next_event(events))["type"] == "active"


async def test_a_slow_consumer_loses_the_oldest_events(
    emu: Emulator, computer: dict[str, Any], events: ClientConnection
) -> None:
    await subscribe(events, "clipboard")
    # Published without yielding: the sender cannot run, so the queue overflows.
    for n in range(300):
        emu.publish_event(computer["id"], "clipboard", {"content": str(n)})
    received = [(await next_event(events))["data"]["content"] for _ in range(256)]
    assert received == [str(n) for n in range(44, 300)]
    assert emu.counters.ws_events_dropped == 44
    await events.send(json.dumps({"type": "ping"}))
    assert await recv_json(events) == {"type": "pong"}


# --------------------------------------------------------------------------- shutdown


async def test_close_with_open_sockets_leaves_no_process_or_fd(tmp_path: Path) -> None:
    ptys = open_fds("/dev/ptmx")
    pidfds = open_fds("anon_inode:[pidfd]")
    before = own_children()  # servers other tests keep for the whole session
    config = EmulatorConfig(boot=FAST_BOOT, workdir_root=str(tmp_path / "work"), sandbox="off")
    emu = Emulator(config)
    async with emu, aiohttp.ClientSession() as session:
        api = Api(emu, session)
        computer = await api.running()
        sockets, pid = await open_all(emu, computer, computer["vnc_password"])
        term = Term(sockets[0])
        await term.type("sleep 60 & echo JOB-$((0+$!))-END\r")
        job = int((await term.expect(r"JOB-(\d+)-END")).group(1))
        await subscribe(sockets[2], "file_change", "process_start", "idle")
        workdir = emu.workdir(computer["id"])
        assert workdir.parent == tmp_path / "work"
        closing = asyncio.create_task(emu.close())
        for ws in sockets:
            frame = await close_frame(ws)
            assert frame is not None
            assert (frame.code, frame.reason) == (1001, "Server shutting down")
            await ws.close()
        await closing
    assert gone(pid) and gone(job)
    assert own_children() <= before  # none of the emulator's is left, not even a zombie
    assert open_fds("/dev/ptmx") == ptys
    assert open_fds("anon_inode:[pidfd]") == pidfds
    assert workdir.is_dir()  # a configured root is kept
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_temporary_workdir_root_is_removed_at_close() -> None:
    async with Emulator(EmulatorConfig(boot=FAST_BOOT)) as emu, aiohttp.ClientSession() as s:
        computer = await Api(emu, s).running()
        root = emu.workdir(computer["id"]).parent
        assert root.is_dir()
    assert not root.exists()


# --------------------------------------------------------------------------- servers


async def test_websockify_is_the_server_the_emulator_registers(emu: Emulator) -> None:
    assert emu.sockets.server("websockify") is not None
    hub = SocketHub(Store())
    assert hub.server("websockify") is None  # answered with HTTP 404
    assert all(hub.server(name) is SOCKET_SERVERS[name] for name in ("terminal", "audio", "events"))
    with pytest.raises(ValueError, match="name must be one of"):
        hub.add_server("bash", SOCKET_SERVERS["terminal"])


def test_the_socket_edge_imports_no_desktop_backend() -> None:
    # The websockify server imports this module (for its types); this module must not
    # import it back: the emulator hands the server to the hub instead.
    tree = ast.parse(Path(sockets.__file__).read_text())
    ours = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
    }
    assert ours == {"shell", "store", "watch"}


# --------------------------------------------------------------------------- command line


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--ws-auth",
            "header_only",
            "--audio-tone-hz",
            "1000",
            "--workdir-root",
            "/tmp/x",
            "--idle-seconds",
            "5",
        ]
    )
    config = config_from_args(args)
    assert (config.ws_auth, config.audio_tone_hz) == ("header_only", 1000.0)
    assert (config.workdir_root, config.idle_seconds) == ("/tmp/x", 5.0)
    defaults = config_from_args(parser.parse_args([]))
    assert (defaults.ws_auth, defaults.audio_tone_hz, defaults.idle_seconds) == (
        "close",
        440.0,
        30.0,
    )
    assert defaults.workdir_root is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--ws-auth", "sometimes"])


def test_config_validates_socket_fields() -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(ws_auth="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        EmulatorConfig(audio_tone_hz=0)
    with pytest.raises(ValueError):
        EmulatorConfig(audio_tone_hz=20000)
    with pytest.raises(ValueError):
        EmulatorConfig(idle_seconds=-1)
