"""The Anthropic computer toolset on emulated computers, driven through the SDK's entry points."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")

from anthropic.tools import (  # noqa: E402
    BetaToolsetCallContext,
    ToolError,
    ToolsetConfigError,  # noqa: E402
)

import orgo_async.connect.vnc as vnc_module  # noqa: E402
from orgo_async import Computer, Orgo  # noqa: E402
from orgo_async.agents import REST_UNSERVED, OrgoComputerToolset, anthropic_toolset  # noqa: E402
from orgo_async.agents._images import fit  # noqa: E402
from orgo_async.emulator import Emulator  # noqa: E402
from orgo_async.emulator.scripted_model import ScriptedModel  # noqa: E402
from orgo_async.emulator.synthetic import SyntheticDesktop  # noqa: E402
from orgo_async.protocol.png import decode_png, encode_png  # noqa: E402

from ..conftest import eventually  # noqa: E402

RED, GREEN, AMBER, DRAG = (220, 40, 40), (40, 170, 70), (230, 170, 20), (200, 60, 200)
CONTEXT = BetaToolsetCallContext()
TYPE_ROUTE = "POST /api/computers/{computer_id}/type"


def yes(context: object) -> bool:
    return True


async def launch(orgo: Orgo, **fields: Any) -> Computer:
    workspace = await orgo.workspaces.create("agents")
    return (await orgo.computers.launch(workspace_id=workspace.id, name="agent", **fields)).computer


def screen_of(emulator: Emulator, computer: Computer) -> SyntheticDesktop:
    return emulator.desktops.framebuffer(emulator.state.get_computer(computer.id))


async def call(toolset: OrgoComputerToolset, name: str, **input: Any) -> list[Any]:
    return list(await toolset.call(CONTEXT, name, input))


async def refused(toolset: OrgoComputerToolset, name: str, **input: Any) -> str:
    with pytest.raises(ToolError) as caught:
        await toolset.call(CONTEXT, name, input)
    content = caught.value.content
    assert isinstance(content, list)
    return " ".join(block["text"] for block in content)


def image_of(content: list[Any]) -> Any:
    (block,) = [b for b in content if b["type"] == "image"]
    return decode_png(base64.b64decode(block["source"]["data"]))


@pytest.fixture
async def computer(orgo: Orgo) -> Computer:
    return await launch(orgo)


def test_importing_the_package_imports_no_vendor_library() -> None:
    code = (
        "import sys, orgo_async.agents\n"
        "assert 'anthropic' not in sys.modules and 'agents' not in sys.modules\n"
        "assert callable(orgo_async.agents.anthropic_toolset)\n"
        "assert 'anthropic' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_every_member_over_vnc_has_its_effect(
    orgo: Orgo, emulator: Emulator, computer: Computer
) -> None:
    screen = screen_of(emulator, computer)
    async with anthropic_toolset(orgo, computer, confirm=yes) as tools:
        assert tools.to_dict().get("configs") is None  # every member served
        assert tools.screen_size == tools.image_size == (1280, 720)
        await eventually(lambda: screen.pointer == (640, 360))  # put at the centre on entry

        assert (await call(tools, "cursor_position"))[0]["text"] == "X=640,Y=360"
        await call(tools, "mouse_move", coordinate=[100, 200])
        await eventually(lambda: screen.pointer == (100, 200))
        assert (await call(tools, "cursor_position"))[0]["text"] == "X=100,Y=200"

        await call(tools, "left_mouse_down")
        await call(tools, "mouse_move", coordinate=[160, 200])  # the button stays down: a line
        await eventually(lambda: screen.buttons == {"left"})
        await call(tools, "left_mouse_up")
        await eventually(lambda: not screen.buttons and screen.pointer == (160, 200))
        assert screen.pixel(130, 200) == DRAG

        await call(tools, "left_click", coordinate=[300, 300])
        await eventually(lambda: screen.pixel(300, 300) == RED)
        await call(tools, "right_click", coordinate=[330, 300])
        await eventually(lambda: screen.pixel(330, 300) == GREEN)
        await call(tools, "middle_click", coordinate=[360, 300])
        await eventually(lambda: screen.pixel(360, 300) == AMBER)
        await call(tools, "double_click", coordinate=[400, 300])
        await eventually(lambda: "double left 400,300" in screen._status_line)
        await call(tools, "triple_click", coordinate=[450, 300])
        await eventually(lambda: "left 450,300" in screen._status_line)
        assert screen.pixel(450, 300) == RED
        await call(tools, "left_click_drag", start_coordinate=[500, 400], coordinate=[600, 400])
        await eventually(lambda: screen.pointer == (600, 400))
        assert screen.pixel(550, 400) == DRAG

        await call(tools, "scroll", scroll_direction="down", scroll_amount=3)
        await eventually(lambda: "scroll 3" in screen._status_line)
        await call(tools, "scroll", scroll_direction="right", scroll_amount=2, coordinate=[20, 30])
        await eventually(lambda: "scroll 3,2" in screen._status_line and screen.pointer == (20, 30))

        await call(tools, "type", text="hello")
        await call(tools, "key", text="Return")
        await call(tools, "key", text="x", repeat=2)
        await eventually(lambda: screen.text == "hello\nxx")
        await call(tools, "hold_key", text="y", duration=0)
        await eventually(lambda: screen.text == "hello\nxxy")
        await call(tools, "key", text="ctrl+a")
        await eventually(lambda: screen.text == "")
        # A modifier held during a click reaches the desktop as a combo around it.
        await call(tools, "left_click", coordinate=[700, 300], text="ctrl")
        await call(tools, "type", text="z")
        await eventually(lambda: screen.text == "z")

        assert await call(tools, "wait", duration=0) == [{"type": "text", "text": "Waited 0s."}]
        # Beyond Latin-1, "auto" types over REST (xdotool maps any character).
        typed = emulator.counters.requests.get(TYPE_ROUTE, 0)
        await call(tools, "type", text="→é")
        await eventually(lambda: screen.text == "z→é")
        assert emulator.counters.requests.get(TYPE_ROUTE, 0) == typed + 1
        await call(tools, "key", text="ctrl+a")
        await eventually(lambda: screen.text == "")

        await call(tools, "left_click", coordinate=[300, 300])
        await eventually(lambda: screen.pixel(300, 300) == RED)
        async with asyncio.timeout(10):  # the mirror follows the desktop: until it caught up
            while (shot := image_of(await call(tools, "screenshot"))).pixels != screen.pixels:  # noqa: ASYNC110, E501
                await asyncio.sleep(0.02)
        assert (shot.width, shot.height) == (1280, 720)
        assert shot.pixel(300, 300)[:3] == RED
        zoomed = image_of(await call(tools, "zoom", region=[280, 280, 320, 320]))
        assert (zoomed.width, zoomed.height) == fit(40, 40, grow=True)
        assert zoomed.pixel(zoomed.width // 2, zoomed.height // 2)[:3] == RED


async def test_rest_serves_what_it_can_and_disables_the_rest(
    orgo: Orgo, emulator: Emulator, computer: Computer
) -> None:
    screen = screen_of(emulator, computer)
    async with anthropic_toolset(orgo, computer, confirm=yes, transport="rest") as tools:
        configs = tools.to_dict().get("configs") or {}
        disabled = {name for name, entry in configs.items() if entry == {"enabled": False}}
        assert disabled == REST_UNSERVED
        assert computer.vnc_password and computer.vnc_password not in repr(tools)
        assert "not available" in await refused(tools, "mouse_move", coordinate=[1, 1])
        assert "not available" in await refused(tools, "middle_click")

        await call(tools, "left_click", coordinate=[300, 300])
        assert screen.pixel(300, 300) == RED
        await call(tools, "right_click")  # where the last action left the pointer
        assert "right 300,300" in screen._status_line
        await call(tools, "double_click", coordinate=[400, 300])
        assert "double left 400,300" in screen._status_line
        await call(tools, "left_click_drag", start_coordinate=[500, 400], coordinate=[600, 400])
        assert screen.pixel(550, 400) == DRAG
        await call(tools, "scroll", scroll_direction="down", scroll_amount=2, coordinate=[10, 20])
        assert "scroll 2" in screen._status_line and screen.pointer == (10, 20)
        assert "not available over REST" in await refused(
            tools, "scroll", scroll_direction="left", scroll_amount=1
        )
        assert "not available over REST" in await refused(
            tools, "left_click", coordinate=[5, 5], text="shift"
        )
        await call(tools, "type", text="rest")
        await call(tools, "key", text="enter")
        await call(tools, "key", text="shift+a")
        assert screen.text == "rest\nA"
        await call(tools, "wait", duration=0)
        shot = image_of(await call(tools, "screenshot"))
        assert shot.pixels == decode_png(screen.to_png()).pixels
        zoomed = image_of(await call(tools, "zoom", region=[0, 0, 640, 360]))
        assert (zoomed.width, zoomed.height) == fit(640, 360, grow=True)


async def test_an_unchanged_screen_is_not_encoded_again(
    orgo: Orgo, emulator: Emulator, computer: Computer, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> bytes:
        encoded.append(1)
        return encode_png(*args, **kwargs)

    monkeypatch.setattr(vnc_module, "encode_png", counting)
    screen = screen_of(emulator, computer)
    async with anthropic_toolset(orgo, computer, confirm=yes, transport="vnc") as tools:
        async with asyncio.timeout(10):  # until the mirror shows the desktop as it is
            while image_of(await call(tools, "screenshot")).pixels != screen.pixels:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        before = len(encoded)
        first = await call(tools, "screenshot")
        assert await call(tools, "screenshot") == first
        assert len(encoded) == before  # the screen did not change: nothing was encoded
        await call(tools, "left_click", coordinate=[300, 300])
        await eventually(lambda: screen.pixel(300, 300) == RED)
        async with asyncio.timeout(10):  # the click's change comes back as a new image
            while image_of(shot := await call(tools, "screenshot")).pixel(300, 300)[:3] != RED:  # noqa: ASYNC110, E501
                await asyncio.sleep(0.02)
        assert shot != first and len(encoded) > before


async def test_a_large_screen_is_scaled_both_ways(orgo: Orgo, emulator: Emulator) -> None:
    computer = await launch(orgo, resolution="1920x1080x24")
    screen = screen_of(emulator, computer)
    for transport in ("vnc", "rest"):
        async with anthropic_toolset(orgo, computer, confirm=yes, transport=transport) as tools:
            assert tools.screen_size == (1920, 1080)
            assert tools.image_size == (1429, 804)
            shot = image_of(await call(tools, "screenshot"))
            assert (shot.width, shot.height) == (1429, 804)
            await call(tools, "left_click", coordinate=[1428, 803])
            await eventually(lambda: screen.pointer == (1919, 1079))
            await call(tools, "left_click", coordinate=[714, 402])
            await eventually(lambda: screen.pointer == (960, 540))
            assert "outside the screen" in await refused(
                tools, "left_click", coordinate=[1429, 0]
            )
    async with anthropic_toolset(orgo, computer, confirm=yes) as tools:
        await call(tools, "mouse_move", coordinate=[714, 402])
        assert (await call(tools, "cursor_position"))[0]["text"] == "X=714,Y=402"


async def test_bad_input_is_a_tool_error_and_the_toolset_goes_on(
    orgo: Orgo, emulator: Emulator, computer: Computer
) -> None:
    screen = screen_of(emulator, computer)
    async with anthropic_toolset(orgo, computer, confirm=yes) as tools:
        assert "outside the screen" in await refused(tools, "left_click", coordinate=[1280, 5])
        assert "outside the screen" in await refused(tools, "mouse_move", coordinate=[-1, 5])
        assert "unknown key name 'notakey'" in await refused(tools, "key", text="ctrl+notakey")
        assert "unknown key name" in await refused(tools, "hold_key", text="nope", duration=1)
        assert "at most 10000" in await refused(tools, "type", text="a" * 10_001)
        assert "repeat" in await refused(tools, "key", text="a", repeat=1000)
        assert "duration" in await refused(tools, "wait", duration=3600)
        assert "region" in await refused(tools, "zoom", region=[10, 10, 5, 20])
        assert "invalid input" in await refused(tools, "left_click", coordinate=[1, 2, 3])
        await call(tools, "type", text="still here")
        await eventually(lambda: screen.text == "still here")
        await orgo.computers.delete(computer)
        for transport_gone in ("type", "left_click"):
            message = await refused(tools, transport_gone, text="x", coordinate=[1, 1])
            assert "closed" in message or "gone" in message
    async with anthropic_toolset(orgo, computer, confirm=yes, transport="rest") as rest:
        assert "gone" in await refused(rest, "left_click", coordinate=[1, 1])
        assert "gone" in await refused(rest, "screenshot")


async def test_confirm_and_configs_pass_through(orgo: Orgo, computer: Computer) -> None:
    with pytest.raises(ToolsetConfigError, match="confirm"):
        async with anthropic_toolset(orgo, computer):
            pass
    off = {name: {"enabled": False} for name in ("type", "key", "hold_key")}
    async with anthropic_toolset(orgo, computer, configs=off) as tools:
        assert "not permitted" in await refused(tools, "type", text="no")
    seen: list[str] = []

    async def refuse_keys(context: Any) -> bool:
        seen.append(context.member)
        return context.member != "key"

    async with anthropic_toolset(orgo, computer, confirm=refuse_keys) as tools:
        assert "did not grant permission" in await refused(tools, "key", text="a")
        await call(tools, "left_click", coordinate=[1, 1])
    assert seen == ["key", "left_click"]
    with pytest.raises(ValueError, match="transport"):
        async with anthropic_toolset(orgo, computer, transport="ftp"):  # type: ignore[arg-type]
            pass


# -- the full loop: the real client and tool runner against a scripted model ----------------


SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("screenshot", {}),
    ("left_click", {"coordinate": [200, 250]}),
    ("type", {"text": "orgo"}),
    ("key", {"text": "Return"}),
    ("zoom", {"region": [0, 0, 640, 360]}),
]


@pytest.fixture
async def model() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A Messages API that answers with SCRIPT's tool_use blocks, one a turn, then ends."""
    script = [{"action": name, **input} for name, input in SCRIPT]
    async with ScriptedModel(script) as server:
        yield server.base_url, server.requests


async def test_the_sdk_tool_runner_drives_the_desktop(
    orgo: Orgo,
    emulator: Emulator,
    computer: Computer,
    model: tuple[str, list[dict[str, Any]]],
) -> None:
    base_url, requests = model
    screen = screen_of(emulator, computer)
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=base_url, max_retries=0)
    async with client, anthropic_toolset(orgo, computer, confirm=yes) as tools:
        runner = client.beta.messages.tool_runner(
            model="claude-test",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Type orgo in the text area."}],
            tools=[tools],
        )
        last = None
        async for message in runner:
            last = message
    assert last is not None and last.stop_reason == "end_turn"
    assert len(requests) == len(SCRIPT) + 1
    assert requests[0]["tools"] == [{"type": "computer_toolset_20260801"}]
    # Each tool_use was answered with its result, images for the screen members.
    for step, (name, _) in enumerate(SCRIPT):
        answer = requests[step + 1]["messages"][-1]
        (result,) = [b for b in answer["content"] if b.get("tool_use_id") == f"toolu_{step:02d}_0"]
        assert not result.get("is_error"), json.dumps(result)[:300]
        kinds = {block["type"] for block in result["content"]}
        assert kinds == ({"image"} if name in ("screenshot", "zoom") else {"text"})
    await eventually(lambda: screen.text == "orgo\n")
    assert screen.pixel(200, 250) == RED
