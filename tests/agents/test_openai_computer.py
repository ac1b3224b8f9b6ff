"""openai_computer: every AsyncComputer member on the emulator, through the Agents SDK's own path.

Each test runs the Agents SDK's ``Runner`` with a ``ComputerTool`` and an
``OpenAIResponsesModel`` whose client points at a scripted Responses API
(:mod:`.scripted_openai`): the SDK parses the ``computer_call`` items, calls
our computer, and sends the screenshots back. The effects are read off the
emulator's synthetic desktop (text, pointer, marker colours, the status
bar), and on the ``xvnc`` backend off the X server itself.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
import pytest
from agents import Agent, ComputerTool, OpenAIResponsesModel, RunConfig, Runner
from openai import AsyncOpenAI

from orgo_async import Computer, Orgo, RetryPolicy
from orgo_async.agents import openai_computer
from orgo_async.agents._openai import MAX_TEXT, OrgoAsyncComputer
from orgo_async.emulator import Emulator
from orgo_async.emulator.synthetic import SyntheticDesktop
from orgo_async.errors import ConnectionClosedError, NotFoundError
from orgo_async.protocol.png import decode_png

from ..conftest import eventually
from ..vnc.conftest import x11
from .scripted_openai import Item, ScriptedResponses, computer_call

RED = (220, 40, 40)  # the synthetic desktop's left-click marker
GREEN = (40, 170, 70)  # right
AMBER = (230, 170, 20)  # middle
DRAG = (200, 60, 200)  # a drag's line

BOTH = pytest.mark.parametrize("transport", ["vnc", "rest"])


@pytest.fixture
async def pc(orgo: Orgo) -> Computer:
    workspace = await orgo.workspaces.create("agents")
    return (await orgo.computers.launch(workspace_id=workspace.id, name="operator")).computer


def screen(emulator: Emulator, computer: Computer) -> SyntheticDesktop:
    return emulator.desktops.framebuffer(emulator.state.get_computer(computer.id))


async def run_script(
    computer: OrgoAsyncComputer, turns: Sequence[Sequence[Item]], *, model: str = "gpt-5.4"
) -> ScriptedResponses:
    """Run the Agents SDK's Runner against the scripted model; returns the server (requests)."""
    async with (
        ScriptedResponses(turns) as server,
        AsyncOpenAI(base_url=server.base_url, api_key="sk-scripted", max_retries=0) as client,
    ):
        agent = Agent(
            name="operator",
            instructions="Operate the desktop.",
            tools=[ComputerTool(computer)],
            model=OpenAIResponsesModel(model=model, openai_client=client),
        )
        result = await Runner.run(
            agent, "Do the task.", run_config=RunConfig(tracing_disabled=True), max_turns=20
        )
    assert result.final_output == "done"
    return server


async def act(computer: OrgoAsyncComputer, *actions: dict[str, Any]) -> ScriptedResponses:
    """One computer_call holding ``actions``, then the model says done."""
    return await run_script(computer, [[computer_call(1, *actions)]])


async def settled(emulator: Emulator, pc: Computer, condition: Any) -> SyntheticDesktop:
    """The synthetic desktop once ``condition(desktop)`` holds (VNC events land a moment later)."""
    desktop = screen(emulator, pc)
    await eventually(lambda: bool(condition(desktop)), timeout=5)
    return desktop


def rgb(desktop: SyntheticDesktop, x: int, y: int) -> tuple[int, int, int]:
    return desktop.pixel(x, y)


# -- members, each through the SDK's computer path -----------------------------------------


@BOTH
async def test_screenshot_is_the_screen(
    orgo: Orgo, emulator: Emulator, pc: Computer, transport: Any
) -> None:
    async with openai_computer(orgo, pc, transport=transport) as computer:
        assert computer.transport == transport
        assert computer.environment == "linux"
        assert computer.dimensions == (1280, 720)
        server = await act(computer, {"type": "screenshot"})
    (shot,) = server.screenshots()
    assert (shot.width, shot.height) == (1280, 720)
    assert shot.pixels == bytes(screen(emulator, pc).pixels)


@BOTH
async def test_left_and_right_clicks_leave_their_markers(
    orgo: Orgo, emulator: Emulator, pc: Computer, transport: Any
) -> None:
    async with openai_computer(orgo, pc, transport=transport) as computer:
        await act(
            computer,
            {"type": "click", "x": 400, "y": 300, "button": "left"},
            {"type": "click", "x": 500, "y": 300, "button": "right"},
        )
    desktop = await settled(emulator, pc, lambda d: d.pixel(500, 300) == GREEN)
    assert rgb(desktop, 400, 300) == RED
    assert desktop.pointer == (500, 300)


async def test_the_wheel_button_is_a_middle_click_over_vnc(
    orgo: Orgo, emulator: Emulator, pc: Computer
) -> None:
    async with openai_computer(orgo, pc, transport="vnc") as computer:
        await act(computer, {"type": "click", "x": 420, "y": 310, "button": "wheel"})
    await settled(emulator, pc, lambda d: d.pixel(420, 310) == AMBER)


@pytest.mark.parametrize(
    ("transport", "button"), [("vnc", "back"), ("vnc", "forward"), ("rest", "wheel")]
)
async def test_a_button_the_desktop_cannot_take_is_a_clear_error(
    orgo: Orgo, emulator: Emulator, pc: Computer, transport: Any, button: str
) -> None:
    before = screen(emulator, pc).version
    async with openai_computer(orgo, pc, transport=transport) as computer:
        with pytest.raises(ValueError, match=f"button must be one of .*got '{button}'"):
            await act(computer, {"type": "click", "x": 10, "y": 200, "button": button})
    assert screen(emulator, pc).version == before  # nothing was clicked


@BOTH
async def test_double_click_draws_the_ring(
    orgo: Orgo, emulator: Emulator, pc: Computer, transport: Any
) -> None:
    async with openai_computer(orgo, pc, transport=transport) as computer:
        await act(
            computer,
            {"type": "double_click", "x": 300, "y": 400},
            {"type": "click", "x": 600, "y": 400, "button": "left"},
        )
    desktop = await settled(emulator, pc, lambda d: d.pixel(600, 400) == RED)
    assert rgb(desktop, 300, 400) == RED
    assert rgb(desktop, 309, 400) == RED  # the ring of a double click
    assert rgb(desktop, 609, 400) != RED  # a single click has none


@BOTH
async def test_scroll_turns_the_wheel_at_the_point(
    orgo: Orgo, emulator: Emulator, pc: Computer, transport: Any
) -> None:
    async with openai_computer(orgo, pc, transport=transport) as computer:
        await act(computer, {"type": "scroll", "x": 640, "y": 360, "scroll_x": 0, "scroll_y": 300})
    reference = SyntheticDesktop(1280, 720, title=pc.name)
    reference.scroll("down", 3, 640, 360)  # 300 pixels at 100 a click
    bar = reference.status_bar
    desktop = await settled(emulator, pc, lambda d: d.region(*bar) == reference.region(*bar))
    assert desktop.pointer == (640, 360)


async def test_horizontal_scroll_over_vnc(orgo: Orgo, emulator: Emulator, pc: Computer) -> None:
    async with openai_computer(orgo, pc, transport="vnc", pixels_per_click=1) as computer:
        await act(computer, {"type": "scroll", "x": 100, "y": 200, "scroll_x": -2, "scroll_y": -1})
    reference = SyntheticDesktop(1280, 720, title=pc.name)
    reference.scroll("up", 1, 100, 200)
    reference.scroll("left", 2, 100, 200)
    bar = reference.status_bar
    await settled(emulator, pc, lambda d: d.region(*bar) == reference.region(*bar))


async def test_rest_cannot_scroll_sideways(orgo: Orgo, pc: Computer) -> None:
    async with openai_computer(orgo, pc, transport="rest") as computer:
        with pytest.raises(ValueError, match="scroll_x: REST desktop actions scroll up and down"):
            await act(computer, {"type": "scroll", "x": 1, "y": 1, "scroll_x": 50, "scroll_y": 0})


@BOTH
async def test_type_and_keypress_edit_the_text(
    orgo: Orgo, emulator: Emulator, pc: Computer, transport: Any
) -> None:
    async with openai_computer(orgo, pc, transport=transport) as computer:
        await act(
            computer,
            {"type": "type", "text": "junk"},
            {"type": "keypress", "keys": ["CTRL", "A"]},  # the synthetic desktop clears
            {"type": "type", "text": "hello"},
            {"type": "keypress", "keys": ["ENTER"]},
            {"type": "type", "text": "worlds"},
            {"type": "keypress", "keys": ["BACKSPACE"]},
            {"type": "keypress", "keys": ["space"]},
            {"type": "keypress", "keys": ["+"]},
        )
    await settled(emulator, pc, lambda d: d.text == "hello\nworld +")


@BOTH
async def test_wait_waits(orgo: Orgo, pc: Computer, transport: Any) -> None:
    async with openai_computer(orgo, pc, transport=transport, wait_seconds=0.3) as computer:
        started = time.monotonic()
        await act(computer, {"type": "wait"})
        assert time.monotonic() - started >= 0.3


async def test_move_puts_the_pointer_over_vnc(
    orgo: Orgo, emulator: Emulator, pc: Computer
) -> None:
    async with openai_computer(orgo, pc, transport="vnc") as computer:
        await act(computer, {"type": "move", "x": 777, "y": 222})
    await settled(emulator, pc, lambda d: d.pointer == (777, 222))


async def test_rest_has_no_move(orgo: Orgo, emulator: Emulator, pc: Computer) -> None:
    async with openai_computer(orgo, pc, transport="rest") as computer:
        with pytest.raises(ValueError, match="move: REST desktop actions cannot move"):
            await act(computer, {"type": "move", "x": 5, "y": 5})


async def test_drag_follows_the_path_over_vnc(
    orgo: Orgo, emulator: Emulator, pc: Computer
) -> None:
    path = [{"x": 100, "y": 200}, {"x": 300, "y": 200}, {"x": 300, "y": 400}]
    async with openai_computer(orgo, pc, transport="vnc") as computer:
        await act(computer, {"type": "drag", "path": path})
    desktop = await settled(emulator, pc, lambda d: not d.buttons and d.pointer == (300, 400))
    assert rgb(desktop, 200, 200) == DRAG
    assert rgb(desktop, 300, 300) == DRAG
    assert rgb(desktop, 200, 300) != DRAG  # not a straight line from start to end


async def test_drag_over_rest_is_a_straight_line(
    orgo: Orgo, emulator: Emulator, pc: Computer
) -> None:
    async with openai_computer(orgo, pc, transport="rest") as computer:
        await act(computer, {"type": "drag", "path": [{"x": 100, "y": 250}, {"x": 300, "y": 250}]})
        with pytest.raises(ValueError, match="path: REST desktop actions drag in a straight"):
            await act(
                computer,
                {
                    "type": "drag",
                    "path": [{"x": 1, "y": 200}, {"x": 2, "y": 200}, {"x": 3, "y": 3}],
                },
            )
    assert rgb(screen(emulator, pc), 200, 250) == DRAG


async def test_keys_held_during_a_click_are_released(
    orgo: Orgo, emulator: Emulator, pc: Computer
) -> None:
    async with openai_computer(orgo, pc, transport="vnc") as computer:
        await act(
            computer,
            {"type": "type", "text": "xy"},
            {"type": "click", "x": 400, "y": 300, "button": "left", "keys": ["CTRL"]},
            # Were Control still down, "a" would be ctrl+a, which clears the text.
            {"type": "type", "text": "a"},
        )
    desktop = await settled(emulator, pc, lambda d: d.text == "xya")
    assert rgb(desktop, 400, 300) == RED


async def test_rest_cannot_hold_keys(orgo: Orgo, pc: Computer) -> None:
    async with openai_computer(orgo, pc, transport="rest") as computer:
        with pytest.raises(ValueError, match="keys: REST desktop actions cannot hold keys"):
            await act(
                computer, {"type": "click", "x": 9, "y": 200, "button": "left", "keys": ["SHIFT"]}
            )


# -- bad input ---------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"type": "click", "x": 1280, "y": 5, "button": "left"}, "x must be a whole number"),
        ({"type": "move", "x": 5, "y": -1}, "y must be a whole number"),
        ({"type": "double_click", "x": 5, "y": 720}, "y must be a whole number from 0 to 719"),
        ({"type": "keypress", "keys": ["CTRL", "NOPE"]}, "keys: unknown key name 'NOPE'"),
        ({"type": "keypress", "keys": []}, "keys must name at least one key"),
        ({"type": "type", "text": "x" * (MAX_TEXT + 1)}, f"at most {MAX_TEXT} characters"),
        (
            {"type": "drag", "path": [{"x": 5, "y": 5}, {"x": 5000, "y": 5}]},
            r"path\[1\]\.x must be a whole number",
        ),
        ({"type": "drag", "path": [{"x": 5, "y": 5}]}, "path must be a list of at least 2"),
        (
            {"type": "scroll", "x": 5, "y": 5, "scroll_x": 0, "scroll_y": 10_000_000},
            r"scroll_y must be at most \d+ pixels either way",
        ),
    ],
)
async def test_bad_input_is_a_clear_error_and_sends_nothing(
    orgo: Orgo,
    emulator: Emulator,
    pc: Computer,
    transport: Any,
    action: dict[str, Any],
    message: str,
) -> None:
    if transport == "rest" and action["type"] == "move":
        message = "y must be a whole number"  # checked before the transport's own refusal
    before = screen(emulator, pc).version
    async with openai_computer(orgo, pc, transport=transport) as computer:
        with pytest.raises(ValueError, match=message):
            async with asyncio.timeout(10):
                await act(computer, action)
    await asyncio.sleep(0.05)
    assert screen(emulator, pc).version == before


@BOTH
async def test_a_deleted_computer_fails_fast(orgo: Orgo, pc: Computer, transport: Any) -> None:
    async with openai_computer(orgo, pc, transport=transport, action_timeout=3) as computer:
        await orgo.computers.delete(pc)
        started = time.monotonic()
        # REST answers 404; the VNC socket drops, and re-dialling finds the computer gone.
        with pytest.raises((NotFoundError, ConnectionClosedError), match="[Cc]omputer not found"):
            await act(computer, {"type": "click", "x": 10, "y": 200, "button": "left"})
        assert time.monotonic() - started < 8


async def test_arguments_are_checked_before_any_io(orgo: Orgo, pc: Computer) -> None:
    for kwargs, message in [
        ({"transport": "ssh"}, "transport must be one of"),
        ({"wait_seconds": -1}, "wait_seconds must be"),
        ({"pixels_per_click": 0}, "pixels_per_click must be"),
        ({"action_timeout": 0}, "action_timeout must be"),
    ]:
        with pytest.raises(ValueError, match=message):
            async with openai_computer(orgo, pc, **kwargs):
                pass


async def test_auto_uses_vnc_and_falls_back_to_rest(
    orgo: Orgo, emulator: Emulator, pc: Computer, caplog: pytest.LogCaptureFixture
) -> None:
    async with openai_computer(orgo, pc) as computer:
        assert computer.transport == "vnc"
    # A computer without a connection URL has no VNC: auto answers with REST, vnc refuses.
    bare = attrs.evolve(pc, connection_url=None)
    with caplog.at_level(logging.INFO, logger="orgo_async.agents"):
        async with openai_computer(orgo, bare) as computer:
            assert computer.transport == "rest"
            await act(computer, {"type": "click", "x": 30, "y": 200, "button": "left"})
    assert rgb(screen(emulator, pc), 30, 200) == RED
    with pytest.raises(ValueError, match="no connection_url"):
        async with openai_computer(orgo, bare, transport="vnc"):
            pass
    assert "using REST desktop actions" in caplog.text


def test_importing_the_package_does_not_import_the_agents_sdk() -> None:
    code = (
        "import sys, orgo_async.agents\n"
        "assert 'agents' not in sys.modules\n"
        "assert 'openai' not in sys.modules\n"
        "orgo_async.agents.openai_computer\n"
        "assert 'agents' in sys.modules\n"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


# -- the whole loop ----------------------------------------------------------------------


async def test_a_full_run_leaves_the_expected_desktop(
    orgo: Orgo, emulator: Emulator, pc: Computer
) -> None:
    turns = [
        [computer_call(1, {"type": "screenshot"}, batched=False)],
        [computer_call(2, {"type": "click", "x": 200, "y": 150, "button": "left"}, batched=False)],
        [computer_call(3, {"type": "type", "text": "uname -a"}, batched=False)],
        [computer_call(4, {"type": "keypress", "keys": ["ENTER"]}, batched=False)],
        [computer_call(5, {"type": "type", "text": "ok"}, batched=False)],
        [computer_call(6, {"type": "wait"}, batched=False)],
    ]
    async with openai_computer(orgo, pc, wait_seconds=0.05) as computer:
        server = await run_script(computer, turns, model="computer-use-preview")
    # The preview tool carries the environment and the screen size.
    (tool,) = server.requests[0]["tools"]
    assert tool == {
        "type": "computer_use_preview",
        "environment": "linux",
        "display_width": 1280,
        "display_height": 720,
    }
    assert len(server.requests) == len(turns) + 1
    desktop = screen(emulator, pc)
    assert desktop.text == "uname -a\nok"
    assert rgb(desktop, 200, 150) == RED
    shots = server.screenshots()
    assert len(shots) == len(turns)
    assert shots[0].pixels != shots[-1].pixels
    assert shots[-1].pixels == bytes(desktop.pixels)  # the model saw the final screen


# -- a real X server -----------------------------------------------------------------------


@pytest.fixture
async def xvnc_orgo(xvnc_emulator: Emulator) -> AsyncIterator[tuple[Emulator, Orgo]]:
    emu = xvnc_emulator
    retry = RetryPolicy(max_attempts=3)
    async with Orgo(api_key=emu.api_key, base_url=emu.base_url, retry=retry) as orgo:
        yield emu, orgo


async def pointer_at(env: dict[str, str], x: int, y: int) -> None:
    async with asyncio.timeout(10):
        # The X server applies pointer events as it reads them: poll the oracle.
        where = f"x:{x} y:{y} "
        while not (await x11(env, "xdotool", "getmouselocation")).startswith(where):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_members_on_a_real_x_server(xvnc_orgo: tuple[Emulator, Orgo]) -> None:
    emu, orgo = xvnc_orgo
    workspace = await orgo.workspaces.create("agents-x")
    computer = (await orgo.computers.launch(workspace_id=workspace.id, name="x")).computer
    env = {**os.environ, "DISPLAY": await emu.desktop_display(computer.id)}
    await x11(env, "xsetroot", "-solid", "#204060")
    async with openai_computer(orgo, computer, transport="vnc") as desktop:
        server = await act(desktop, {"type": "move", "x": 321, "y": 123})
        await pointer_at(env, 321, 123)
        (shot,) = server.screenshots()
        assert shot.pixel(640, 360)[:3] == (0x20, 0x40, 0x60)
        await act(desktop, {"type": "click", "x": 50, "y": 60, "button": "left"})
        await pointer_at(env, 50, 60)
        await act(desktop, {"type": "drag", "path": [{"x": 10, "y": 10}, {"x": 90, "y": 70}]})
        await pointer_at(env, 90, 70)
        await act(desktop, {"type": "scroll", "x": 400, "y": 300, "scroll_x": 0, "scroll_y": 100})
        await pointer_at(env, 400, 300)
        await act(desktop, {"type": "double_click", "x": 401, "y": 301})
        await pointer_at(env, 401, 301)
    async with openai_computer(orgo, computer, transport="rest") as desktop:
        server = await act(desktop, {"type": "click", "x": 70, "y": 80, "button": "right"})
        await pointer_at(env, 70, 80)
        (shot,) = server.screenshots()
        png = base64.b64decode(await desktop.screenshot())
        assert decode_png(png).pixel(640, 360)[:3] == (0x20, 0x40, 0x60)
        assert (shot.width, shot.height) == (1280, 720)
    await orgo.workspaces.delete(workspace.id)


@pytest.mark.parametrize(
    ("keys", "names"),
    [
        (["CTRL", "C"], ["Control_L", "c"]),
        (["ctrl", "shift", "t"], ["Control_L", "Shift_L", "t"]),
        (["ENTER"], ["Return"]),
        (["ESC"], ["Escape"]),
        (["ArrowLeft"], ["Left"]),
        (["PageDown"], ["Page_Down"]),
        (["CMD", "space"], ["Super_L", "space"]),
        (["ALT", "F4"], ["Alt_L", "F4"]),
        (["CapsLock"], ["Caps_Lock"]),
        (["+"], ["plus"]),
        (["/"], ["slash"]),
        (["7"], ["7"]),
    ],
)
def test_model_key_names_go_through_the_keysym_table(keys: list[str], names: list[str]) -> None:
    from orgo_async.agents._openai import _key_names

    assert _key_names("keys", keys) == names
