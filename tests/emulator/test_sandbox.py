"""Each emulated computer's sandbox: what its processes can see, reach and leave behind.

Run against a real ``bwrap`` (Debian ``bubblewrap``); skipped where it is not
installed, failed under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from orgo_async.emulator import Emulator, EmulatorConfig
from orgo_async.emulator.sandbox import Sandbox, SandboxError, Sandboxes, sandbox_support
from orgo_async.emulator.store import Store
from orgo_async.protocol.png import decode_png

from ..conftest import eventually, gone
from .rest import FAST_BOOT, Api, Pc
from .test_emulator_vnc import need

pytestmark = pytest.mark.usefixtures("sandboxes_work")


@pytest.fixture
def sandboxes_work() -> None:
    need("bwrap", "nsenter", "prlimit", "setpriv")


@pytest.fixture
def config(tmp_path: Path) -> EmulatorConfig:
    return EmulatorConfig(
        boot=FAST_BOOT, stop_seconds=0.01, sandbox="on", workdir_root=str(tmp_path / "disks")
    )


async def bash(api: Api, pc: Pc, command: str) -> tuple[int, str]:
    reply = await api.act(pc, "platform", "bash", {"command": command, "timeout": 20})
    assert reply.status == 200, reply.body
    return reply.body["exit_code"], reply.body["output"]


def pids_with(marker: str) -> list[int]:
    """Host pids of live processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


# --------------------------------------------------------------------------- isolation


async def test_a_computer_sees_its_own_disk_at_root_and_nothing_of_the_host(
    api: Api, ws: dict[str, Any], tmp_path: Path
) -> None:
    pc = await api.running_pc(ws, "a")
    other = await api.running_pc(ws, "b")
    disk = api.emu.workdir(pc.id)
    other_disk = api.emu.workdir(other.id)
    (other_disk / "Desktop" / "theirs.txt").write_text("not yours")
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")

    code, out = await bash(
        api, pc, "id -u; echo $HOME; pwd; hostname; echo hi > /root/Desktop/mine.txt"
    )
    assert (code, out.split()) == (0, ["0", "/root", "/root", pc.body["instance_id"]])
    assert (disk / "Desktop" / "mine.txt").read_text() == "hi\n"
    # /home/user (Orgo's export path) is the same home.
    assert await bash(api, pc, "cat /home/user/Desktop/mine.txt") == (0, "hi\n")

    attempts = {
        "the host's copy of another computer's disk": f"cat {other_disk}/Desktop/theirs.txt",
        "another computer's disk through ..": (
            f"cat ../{other.body['instance_id']}/Desktop/theirs.txt"
        ),
        "a host file by its absolute path": f"cat {secret}",
        "a host file through a symlink": f"ln -s {secret} /root/l && cat /root/l",
        "the host's /tmp": f"ls {tmp_path}",
        "the emulator's own files": f"ls {Path(__file__).parent}",
        "a write to the system": "touch /usr/planted",
        "a write to /etc": "echo x >> /etc/hosts",
        "the password hashes": "cat /etc/shadow | grep -q root",
        "a kernel setting": "echo 1 > /proc/sys/vm/drop_caches",
        "a remount": "mount -o remount,rw /usr",
    }
    for what, command in attempts.items():
        code, out = await bash(api, pc, command)
        assert code != 0, f"{what} was reachable: {out!r}"
        assert "not yours" not in out and "host only" not in out, what
    assert not os.path.exists("/usr/planted")  # noqa: ASYNC240

    # Its /proc shows its own processes only: not the emulator, not the other computer's.
    code, out = await bash(api, pc, "sleep 30 & ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline")
    assert code == 0
    count, cmdline = out.split("\n", 1)
    assert int(count) < 10
    assert str(os.getpid()) not in out.split()
    assert "bwrap" in cmdline  # its own init
    code, out = await bash(api, pc, "ps -eo args")
    assert "pytest" not in out and "python" not in out


async def test_no_network_but_its_own_loopback(api: Api, pc: Pc) -> None:
    code, out = await bash(api, pc, "cat /proc/net/dev")
    assert code == 0
    interfaces = {line.split(":")[0].strip() for line in out.splitlines() if ":" in line}
    assert interfaces == {"lo"}
    # The emulator listens on the host's loopback: not this one.
    code, out = await bash(
        api, pc, f"exec 3<>/dev/tcp/127.0.0.1/{api.emu.port} && echo connected"
    )
    assert code != 0 and "connected" not in out


async def test_its_processes_are_gone_after_delete_and_stop(api: Api, ws: dict[str, Any]) -> None:
    pc = await api.running_pc(ws, "a")
    marker = f"4000.{os.getpid()}"
    code, _ = await bash(api, pc, f"nohup sleep {marker} >/dev/null 2>&1 & disown; echo ok")
    assert code == 0
    pids = pids_with(marker)
    assert pids
    sandbox = api.emu.sandboxes.current(api.emu.state.get_computer(pc.id))
    assert sandbox is not None and sandbox.init_pid is not None
    init = sandbox.init_pid
    disk = api.emu.workdir(pc.id)
    reply = await api.call("DELETE", f"/api/computers/{pc.id}")
    assert reply.status == 200
    await eventually(lambda: all(gone(p) for p in [*pids, init]))
    assert not disk.exists()

    # A stop kills too; a start boots a new sandbox on the same disk.
    pc = await api.running_pc(ws, "b")
    await bash(api, pc, f"echo kept > /root/kept.txt; echo gone > /tmp/t; sleep {marker}1 &")
    assert pids_with(f"{marker}1")
    assert (await api.call("POST", f"/api/computers/{pc.id}/stop")).status == 200
    await eventually(lambda: not pids_with(f"{marker}1"))
    computer = api.emu.state.get_computer(pc.id)
    await eventually(lambda: computer.status_at(api.emu.state.now()) == "stopped")
    assert (await api.call("POST", f"/api/computers/{pc.id}/start")).status == 200
    await api.wait_running(pc.body)
    assert await bash(api, pc, "cat /root/kept.txt; ls /tmp") == (0, "kept\n")


async def test_an_upload_lands_in_its_root_desktop(api: Api, ws: dict[str, Any]) -> None:
    pc = await api.running_pc(ws, "a")
    reply = await api.upload(b"uploaded bytes", "notes.txt", project=ws["id"], desktop=pc.id)
    assert reply.status == 200, reply.body
    assert await bash(api, pc, "cat /root/Desktop/notes.txt") == (0, "uploaded bytes")
    # Exported back from the path Orgo documents, and from /root.
    for path in ("/root/Desktop/notes.txt", "/home/user/Desktop/notes.txt"):
        reply = await api.call("POST", "/api/files/export", {"desktopId": pc.id, "path": path})
        assert reply.status == 200, (path, reply.body)


async def test_exec_runs_the_systems_python_inside(api: Api, pc: Pc) -> None:
    source = f"import os, sys; print(os.getcwd(), sys.prefix, os.path.exists({__file__!r}))"
    reply = await api.act(pc, "platform", "exec", {"code": source})
    assert reply.status == 200, reply.body
    cwd, prefix, sees_tests = reply.body["output"].split()
    assert (cwd, prefix.startswith("/usr"), sees_tests) == ("/root", True, "False")


async def test_the_terminal_runs_in_the_sandbox(api: Api, pc: Pc) -> None:
    url = api.emu.ws_url(pc.id, "terminal") + "?" + f"token={pc.body['vnc_password']}"
    output = ""
    async with connect(url) as socket:
        command = "echo H=$HOME; hostname; exit 3\r"
        await socket.send(json.dumps({"type": "input", "data": command}))
        async with asyncio.timeout(10):
            async for raw in socket:
                message = json.loads(raw)
                if message["type"] == "output":
                    output += message["data"]
                elif message["type"] == "exit":
                    assert message["code"] == 3
                    break
    assert "H=/root" in output and pc.body["instance_id"] in output


# --------------------------------------------------------------------------- the launcher


def _fake_bwrap(directory: Path, script: str) -> str:
    path = directory / "bwrap"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


async def test_a_missing_or_failing_bwrap_is_a_clear_reason(tmp_path: Path) -> None:
    missing = await sandbox_support(str(tmp_path / "no-such-bwrap"))
    assert missing is not None and "bubblewrap" in missing
    no_userns = _fake_bwrap(
        tmp_path,
        "echo 'bwrap: No permissions to create new namespace, likely because the kernel"
        " does not allow non-privileged user namespaces.' >&2; exit 1\n",
    )
    reason = await sandbox_support(no_userns)
    assert reason is not None and "user namespaces" in reason
    with pytest.raises(SandboxError, match="user namespaces"):
        await Sandboxes(Store(), mode="on", bwrap=no_userns).resolve()
    # auto: computers run unsandboxed, and say why.
    sandboxes = Sandboxes(Store(), bwrap=no_userns)
    assert await sandboxes.resolve() == reason and not sandboxes.enabled


async def test_a_sandbox_that_cannot_start_is_refused_cleanly(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "home", tmp_path / "run", name="x", bwrap=str(tmp_path / "nope"))
    with pytest.raises(SandboxError, match="cannot run"):
        await sandbox.start()
    await sandbox.stop()
    with pytest.raises(SandboxError, match="not running"):
        sandbox.enter(["true"])


async def test_auto_falls_back_to_synthetic_desktops_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A PATH where bwrap fails as on a kernel without user namespaces.
    fake = tmp_path / "bin"
    fake.mkdir()
    _fake_bwrap(fake, "echo 'bwrap: No permissions to create new namespace' >&2; exit 1\n")
    for program in ("nsenter", "prlimit", "setpriv", "Xvnc", "vncpasswd"):
        real = shutil.which(program)
        if real is not None:
            (fake / program).symlink_to(real)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    caplog.set_level(logging.WARNING, "orgo_async.emulator")
    config = EmulatorConfig(boot=FAST_BOOT, desktop_backend="auto")
    async with Emulator(config) as emu, aiohttp.ClientSession() as session:
        assert not emu.sandboxes.enabled and "namespace" in (emu.sandboxes.unavailable or "")
        lines = [r.getMessage() for r in caplog.records if "desktop backend auto" in r.getMessage()]
        assert len(lines) == 1 and "synthetic" in lines[0]
        api = Api(emu, session)
        pc = await api.running_pc(await api.workspace())
        assert emu.state.get_computer(pc.id).desktop_backend == "synthetic"
        # Unsandboxed, the computer still works, in its own directory.
        assert await bash(api, pc, "pwd") == (0, f"{emu.workdir(pc.id)}\n")
    with pytest.raises(SandboxError, match="namespace"):
        async with Emulator(EmulatorConfig(sandbox="on")):
            pass


# --------------------------------------------------------------------------- real desktops


@pytest.fixture
async def desktops(tmp_path: Path) -> AsyncIterator[Emulator]:
    need("Xvnc", "vncpasswd", "xdotool", "openbox", "xterm", "xprop")
    config = EmulatorConfig(
        boot=FAST_BOOT, desktop_backend="xvnc", sandbox="on", workdir_root=str(tmp_path / "d")
    )
    async with Emulator(config) as emulator:
        yield emulator


async def test_a_desktop_has_a_window_manager_a_terminal_and_display_everywhere(
    desktops: Emulator,
) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(desktops, session)
        pc = await api.running_pc(await api.workspace(), resolution="1024x768x24")
        code, out = await bash(
            api,
            pc,
            "echo $DISPLAY; xdotool search --onlyvisible --name '^Terminal$' | wc -l;"
            " xprop -root _NET_SUPPORTING_WM_CHECK",
        )
        display, terminals, wm = out.splitlines()
        assert (code, terminals) == (0, "1") and display.startswith(":") and "window id" in wm
        # Not the black root of a bare X server: the background and the terminal show.
        _reply, png = await api.shot(pc)
        image = decode_png(png)
        assert image.pixel(1000, 740) != (0, 0, 0)
        assert image.pixel(1000, 740) != image.pixel(200, 150)  # inside the terminal


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def namespace_pids(pid: int) -> list[int]:
    """Host pids of every process in the PID namespace of ``pid``."""
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    found.append(int(entry))
            except OSError:
                pass
    return found


DESKTOP_MEMORY_MB = 50
"""The most memory (PSS) one sandboxed desktop may use: README says about 30 MB."""


async def test_twenty_desktops_fit_the_stated_memory(desktops: Emulator) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(desktops, session)
        workspace = await api.workspace()
        computers = await asyncio.gather(
            *(api.computer(workspace["id"], f"d{n}") for n in range(20))
        )
        await asyncio.gather(*(api.wait_running(c, timeout=60) for c in computers))
        sizes = []
        for computer in computers:
            sandbox = desktops.sandboxes.current(desktops.state.get_computer(computer["id"]))
            assert sandbox is not None and sandbox.init_pid is not None
            sizes.append(sum(pss_kb(p) for p in namespace_pids(sandbox.init_pid)) / 1024)
        assert all(5 < size < DESKTOP_MEMORY_MB for size in sizes), sizes
        assert sum(sizes) < 20 * DESKTOP_MEMORY_MB


async def test_the_pool_hands_out_booted_desktops(tmp_path: Path) -> None:
    need("Xvnc", "vncpasswd", "xdotool", "openbox", "xterm", "xprop")
    config = EmulatorConfig(
        desktop_backend="xvnc", desktop_pool=1, workdir_root=str(tmp_path / "d"), sandbox="on"
    )
    async with Emulator(config) as emu, aiohttp.ClientSession() as session:
        manager = emu.desktops.backends.xvnc
        await eventually(lambda: manager.spares == 1, timeout=30)
        api = Api(emu, session)
        workspace = await api.workspace()
        pc = await api.running_pc(workspace)
        assert manager.pool_claims == 1
        # The computer's own password, its own disk; the pool refills behind it.
        code, _ = await bash(api, pc, "echo hi > /root/Desktop/x; xdotool search --name Terminal")
        assert code == 0
        assert (emu.workdir(pc.id) / "Desktop" / "x").read_text() == "hi\n"
        _reply, png = await api.shot(pc)
        assert png.startswith(b"\x89PNG")
        await eventually(lambda: manager.spares == 1, timeout=30)
        # A different screen size boots its own.
        other = await api.running_pc(workspace, "o", resolution="800x600x24")
        assert manager.pool_claims == 1
        assert decode_png((await api.shot(other))[1]).width == 800


_AS_NOBODY = """
import asyncio, json, tempfile
from pathlib import Path
from orgo_async.emulator.sandbox import Sandbox, sandbox_env, sandbox_support

async def main() -> None:
    assert await sandbox_support() is None, await sandbox_support()
    disk = Path(tempfile.mkdtemp())
    sandbox = Sandbox(disk / "home", disk / "run", name="nobody")
    await sandbox.start()
    try:
        command = "id -u; echo $HOME; touch /usr/x"
        print(json.dumps(await sandbox.run(["/bin/sh", "-c", command], env=sandbox_env())))
    finally:
        await sandbox.stop()

asyncio.run(main())
"""


def test_a_user_other_than_root_gets_a_user_namespace_sandbox() -> None:
    import subprocess
    import sys

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root, to run the check as another user")
    python = shutil.which("python3", path="/usr/bin:/bin")
    paths = [str(Path(__file__).parents[2]), *[p for p in sys.path if "site-packages" in p]]
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": ":".join(paths)}
    if python is None:
        pytest.skip("no system python3 to run as another user")
    probe = subprocess.run(
        [*nobody, python, "-c", "import orgo_async.emulator.sandbox"],
        env=env,
        capture_output=True,
        cwd="/",
    )
    if probe.returncode != 0:
        pytest.skip("this checkout or its packages are not readable by another user")
    done = subprocess.run(
        [*nobody, python, "-c", _AS_NOBODY], env=env, capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    code, output = json.loads(done.stdout)
    assert code == 1  # the touch failed: /usr is read-only there too
    assert output.startswith("0\n/root\n") and "Read-only file system" in output


async def test_process_events_of_a_sandboxed_terminal(api: Api, pc: Pc) -> None:
    from .test_sockets import Term, dial, next_event, subscribe, url

    token = pc.body["vnc_password"]
    async with dial(url(api.emu, pc.body, "events", token)) as events:
        await subscribe(events, "process_start", "process_stop")
        async with dial(url(api.emu, pc.body, "terminal", token)) as ws:
            term = Term(ws)
            start = await next_event(events)
            assert (start["type"], start["data"]["name"]) == ("process_start", "bash")
            await term.type("sleep 0.3\r")
            # The shell inside its sandbox is reported once, by the terminal: the next
            # process is the command.
            sleep_start = await next_event(events)
            assert (sleep_start["type"], sleep_start["data"]["name"]) == ("process_start", "sleep")
            sleep_stop = await next_event(events)
            assert (sleep_stop["type"], sleep_stop["data"]) == ("process_stop", sleep_start["data"])


def orphan_bwraps() -> set[int]:
    """Live bwrap processes adopted by init: sandboxes nobody will stop."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                name = Path(f"/proc/{entry}/comm").read_text().strip()
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if name == "bwrap" and fields[0] != "Z" and fields[1] == "1":
                found.add(int(entry))
    return found


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8, 13])
async def test_a_sandbox_stopped_while_starting_leaves_no_process(
    tmp_path: Path, steps: int
) -> None:
    before = orphan_bwraps()
    sandbox = Sandbox(tmp_path / "home", tmp_path / "run", name="halfway")
    start = asyncio.create_task(sandbox.start())
    for _ in range(steps):  # cancel at different points of the start
        await asyncio.sleep(0.0005)
    start.cancel()
    with contextlib.suppress(asyncio.CancelledError, SandboxError):
        await start
    await sandbox.stop()
    await asyncio.sleep(0.05)  # an orphan would be adopted by now
    assert orphan_bwraps() - before == set()
