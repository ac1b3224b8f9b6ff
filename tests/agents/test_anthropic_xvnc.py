"""The Anthropic computer toolset on a real X desktop (the emulator's xvnc backend).

A Tk window on the computer's display reports what reached it (clicks,
wheel, drags, the text of its entry), and ``xdotool getmouselocation`` where
the X pointer is: X-side oracles, not the toolset's own view.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

pytest.importorskip("anthropic")

from anthropic.tools import BetaToolsetCallContext  # noqa: E402

from orgo_async import Orgo, RetryPolicy  # noqa: E402
from orgo_async.agents import anthropic_toolset  # noqa: E402
from orgo_async.emulator import BootTime, Emulator, EmulatorConfig  # noqa: E402

from ..vnc.conftest import TkApp, require  # noqa: E402

_TK_APP = os.path.join(os.path.dirname(__file__), "..", "vnc", "_tk_app.py")


def yes(context: object) -> bool:
    return True


def _is(kind: str, **fields: object) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == kind and all(e.get(k) == v for k, v in fields.items())


@pytest.fixture
async def xvnc_emulator() -> AsyncIterator[Emulator]:
    require("Xvnc", "vncpasswd", "xdotool")
    if importlib.util.find_spec("_tkinter") is None:
        pytest.skip("this Python has no tkinter (the input oracle window)")
    config = EmulatorConfig(
        api_key="sk_agents_xvnc_key",
        boot=BootTime.fixed(0.05),
        desktop_backend="xvnc",
        sandbox="off",  # the test runs X clients of its own on the display
    )
    async with Emulator(config) as emu:
        yield emu


async def pointer(env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        "xdotool", "getmouselocation", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return out.decode()


async def test_members_reach_an_x_application(xvnc_emulator: Emulator) -> None:
    emu = xvnc_emulator
    context = BetaToolsetCallContext()
    async with Orgo(
        api_key=emu.api_key, base_url=emu.base_url, retry=RetryPolicy(max_attempts=3)
    ) as orgo:
        workspace = await orgo.workspaces.create("xvnc-agents")
        computer = (await orgo.computers.launch(workspace_id=workspace.id, name="x")).computer
        env = {**os.environ, "DISPLAY": await emu.desktop_display(computer.id)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            _TK_APP,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        app = TkApp(proc)
        try:
            await app.expect(lambda e: e["event"] == "ready", timeout=20)
            async with anthropic_toolset(orgo, computer, confirm=yes) as tools:

                async def call(name: str, **input: Any) -> None:
                    await tools.call(context, name, input)

                await call("type", text="hi")
                await app.expect(_is("text", text="hi"))
                await call("key", text="BackSpace")
                await app.expect(_is("text", text="h"))
                await call("hold_key", text="a", duration=0)
                await app.expect(_is("text", text="ha"))

                await call("mouse_move", coordinate=[321, 123])
                async with asyncio.timeout(10):
                    while not (await pointer(env)).startswith("x:321 y:123"):  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                await call("left_click", coordinate=[300, 250])
                await app.expect(_is("release", button=1, x=300, y=250))
                await call("middle_click", coordinate=[310, 260])
                await app.expect(_is("release", button=2, x=310, y=260))
                await call("right_click", coordinate=[320, 270])
                await app.expect(_is("release", button=3, x=320, y=270))
                await call("double_click", coordinate=[330, 280])
                await app.expect(_is("double", x=330, y=280))
                await call("scroll", scroll_direction="down", scroll_amount=1)
                await app.expect(_is("press", button=5, x=330, y=280))
                await call("mouse_move", coordinate=[200, 300])
                await call("left_mouse_down")
                await app.expect(_is("press", button=1, x=200, y=300))
                await call("mouse_move", coordinate=[250, 320])
                await app.expect(_is("drag", x=250, y=320))
                await call("left_mouse_up")
                await app.expect(_is("release", button=1, x=250, y=320))
                await call("left_click_drag", start_coordinate=[210, 310], coordinate=[260, 330])
                await app.expect(_is("release", button=1, x=260, y=330))
            # Over REST the same actions go through xdotool on the display.
            async with anthropic_toolset(orgo, computer, confirm=yes, transport="rest") as tools:
                await tools.call(context, "left_click", {"coordinate": [305, 255]})
                await app.expect(_is("release", button=1, x=305, y=255))
                assert (await pointer(env)).startswith("x:305 y:255")
        finally:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
        await orgo.workspaces.delete(workspace.id)
