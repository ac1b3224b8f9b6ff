"""The real-desktop example works, and a window opened on a computer shows in its screenshots.

Both need the ``xvnc`` backend's sandboxed desktop (Xvnc, bubblewrap, openbox,
xterm, xdotool): they skip where a program is missing, but fail under
``CI=true``. They skip when not run as root, where no terminal can start.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orgo_async import Desktop, Orgo
from orgo_async.emulator import BootTime, Emulator, EmulatorConfig
from orgo_async.protocol.png import DecodedPNG, decode_png

from .emulator.test_emulator_vnc import need

EXAMPLES = Path(__file__).parent.parent / "examples"
DESKTOP = ("Xvnc", "vncpasswd", "bwrap", "openbox", "xterm", "xdotool")


def need_desktop(*programs: str) -> None:
    """Skip unless the sandboxed desktop can show a terminal here (see ``need`` for CI)."""
    need(*DESKTOP, *programs)
    if os.geteuid() != 0:
        # Not an install to fix: a sandbox is then a user namespace, where xterm cannot start.
        pytest.skip("a terminal window on a sandboxed desktop needs the emulator to run as root")


def test_desktop_agent_runs_against_a_real_local_desktop() -> None:
    need_desktop()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "desktop_agent.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("turn ") == 2
    assert "of the terminal's top third changed -> ok" in done.stdout
    assert "bash says: 'orgo-" in done.stdout
    assert done.stdout.rstrip().endswith("-> ok")


# --------------------------------------------------------------------------- a window of its own


@pytest.fixture
async def desktop() -> AsyncIterator[Desktop]:
    """A running 1280x720 computer on the ``xvnc`` backend, in its sandbox."""
    need_desktop("xwininfo")
    config = EmulatorConfig(boot=BootTime.fixed(0.02), desktop_backend="xvnc", sandbox="on")
    async with Emulator(config) as emu:
        async with Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo:
            workspace = await orgo.workspaces.create("probe")
            launched = await orgo.computers.launch(workspace_id=workspace.id, name="probe")
            yield orgo.desktop(launched.computer)


async def shell(desktop: Desktop, command: str) -> str:
    result = await desktop.bash(command, timeout=20)
    assert result.exit_code == 0, result
    return result.output


def fields(text: str, separator: str) -> dict[str, str]:
    """``name<separator>value`` lines as a dict (``xdotool --shell``, ``xwininfo``)."""
    pairs = (line.split(separator, 1) for line in text.splitlines() if separator in line)
    return {name.strip(): value.strip() for name, value in pairs}


def differ(a: DecodedPNG, b: DecodedPNG, x0: int, y0: int, w: int, h: int) -> float:
    """The share of the pixels of a rectangle that differ between two screens."""
    pixels = [(x, y) for y in range(y0, y0 + h) for x in range(x0, x0 + w)]
    return sum(a.pixel(x, y) != b.pixel(x, y) for x, y in pixels) / len(pixels)


async def test_a_window_opened_from_the_terminal_appears_in_the_screenshot(
    desktop: Desktop,
) -> None:
    before = decode_png((await desktop.screenshot()).data)
    assert (before.width, before.height) == (1280, 720)
    await shell(desktop, "xterm -title probe-window -geometry 40x10+600+300 >/dev/null 2>&1 &")
    found = await shell(desktop, "xdotool search --sync --onlyvisible --name probe-window")
    window = found.split()[0]
    geometry = fields(await shell(desktop, f"xdotool getwindowgeometry --shell {window}"), "=")
    w, h = int(geometry["WIDTH"]), int(geometry["HEIGHT"])
    # xdotool (3.20160805) counts the window manager's frame offset twice in X and Y
    # (here 602, 340 for a window at 601, 320): xwininfo's corner is the true one.
    info = fields(await shell(desktop, f"xwininfo -id {window}"), ":")
    x, y = int(info["Absolute upper-left X"]), int(info["Absolute upper-left Y"])
    assert 600 <= x <= int(geometry["X"]) and 300 <= y <= int(geometry["Y"]), (info, geometry)
    assert w > 100 and h > 50, geometry

    # Mapped is not yet drawn: the screenshot catches up within a deadline. (Not every
    # pixel changes: the window's left edge covers the Terminal, white on white.)
    async with asyncio.timeout(10):
        while True:
            after = decode_png((await desktop.screenshot()).data)
            if differ(before, after, x, y, w, h) > 0.6:
                break
            await asyncio.sleep(0.05)
    # The rest of the screen is as it was: the bottom-left corner, and beside the window.
    assert differ(before, after, 0, 720 - 100, 200, 100) == 0
    assert differ(before, after, x + w + 40, y, 100, h) == 0
