"""An agent loop: look at the screen, decide, act, check the result.

    python examples/agent_loop.py            # against a built-in emulator, offline
    ORGO_API_KEY=... python examples/agent_loop.py --base-url https://www.orgo.ai/api

The "agent" here is a stand-in for a model: it looks for the largest region
of the screen whose pixels are all alike (on the emulator's desktop that is
the text area), clicks into it, types a note, and checks from the next
screenshot that the pixels there changed; then it asks the shell to confirm
through ``bash``. Swap ``decide`` for your model call and keep the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import attrs

from orgo_async import Desktop, Orgo, Screenshot
from orgo_async.protocol.png import decode_png


@attrs.frozen
class Action:
    kind: str  # "click" or "type"
    x: int = 0
    y: int = 0
    text: str = ""


def changed_fraction(
    before: Screenshot, after: Screenshot, box: tuple[int, int, int, int]
) -> float:
    """The share of pixels inside ``box`` (x, y, w, h) that differ between two screenshots."""
    a, b = decode_png(before.data), decode_png(after.data)
    x0, y0, w, h = box
    changed = sum(
        a.pixel(x, y) != b.pixel(x, y) for y in range(y0, y0 + h, 2) for x in range(x0, x0 + w, 2)
    )
    return changed / max(1, ((w + 1) // 2) * ((h + 1) // 2))


def decide(shot: Screenshot, step: int) -> list[Action]:
    """The model's turn: find a quiet, uniform area and write into it."""
    image = decode_png(shot.data)
    # Scan rows for the longest run of one colour: a text field, an empty canvas...
    best = (0, 0, 0)  # (length, x, y)
    for y in range(image.height // 4, image.height * 3 // 4, 8):
        run_start, run_colour = 0, image.pixel(0, y)
        for x in range(0, image.width, 4):
            colour = image.pixel(x, y)
            if colour != run_colour:
                run_start, run_colour = x, colour
            elif x - run_start > best[0]:
                best = (x - run_start, run_start + (x - run_start) // 2, y)
    _, x, y = best
    return [Action("click", x, y), Action("type", text=f"agent step {step} was here")]


async def act(desktop: Desktop, action: Action) -> None:
    if action.kind == "click":
        await desktop.click(action.x, action.y)
    else:
        await desktop.type(action.text, delay_ms=0)


@contextlib.asynccontextmanager
async def session(base_url: str | None) -> AsyncIterator[Orgo]:
    if base_url:
        async with Orgo(base_url=base_url) as orgo:
            yield orgo
        return
    from orgo_async.emulator import BootTime, Emulator, EmulatorConfig

    async with Emulator(EmulatorConfig(boot=BootTime.fixed(0.1))) as emu:
        async with Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo:
            yield orgo


async def run(base_url: str | None, steps: int) -> int:
    async with session(base_url) as orgo:
        workspace = await orgo.workspaces.create("agent-loop-example")
        try:
            launched = await orgo.computers.launch(workspace_id=workspace.id, name="agent")
            desktop = orgo.desktop(launched.computer)
            print(f"computer ready in {launched.timing.total_seconds * 1000:.0f} ms")
            failures = 0
            for step in range(1, steps + 1):
                before = await desktop.screenshot()
                plan = decide(before, step)
                for action in plan:
                    await act(desktop, action)
                after = await desktop.screenshot()
                target = plan[0]
                box = (max(0, target.x - 40), max(0, target.y - 20), 80, 40)
                share = changed_fraction(before, after, box)
                ok = share > 0.0
                failures += not ok
                print(
                    f"step {step}: clicked ({target.x}, {target.y}), typed; "
                    f"{share:.0%} of the pixels around it changed -> {'ok' if ok else 'NO CHANGE'}"
                )
            check = await desktop.bash("echo $((6 * 7)); uname -s")
            print(f"bash says: {check.output.split()} (exit {check.exit_code})")
            failures += check.exit_code != 0 or not check.output.startswith("42")
            return 1 if failures else 0
        finally:
            await orgo.workspaces.delete(workspace.id)


def main() -> int:
    parser = argparse.ArgumentParser(description="An agent loop against Orgo or its emulator.")
    parser.add_argument("--base-url", help="a real API (default: a built-in emulator)")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    return asyncio.run(run(args.base_url, args.steps))


if __name__ == "__main__":
    sys.exit(main())
