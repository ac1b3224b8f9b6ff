"""An agent loop against a real desktop: find the terminal on screen, type into it, check.

    python examples/desktop_agent.py         # a local Xvnc desktop in a sandbox, offline
    ORGO_API_KEY=... python examples/desktop_agent.py --base-url https://www.orgo.ai/api

Offline, the built-in emulator runs each computer's desktop for real: an
``Xvnc`` X server in a bubblewrap sandbox, with a window manager and one
terminal window. The "agent" is a stand-in for a model: it finds the terminal
in a screenshot (the large light rectangle on the coloured background), clicks
into it, types a shell command and presses Enter, then checks from the next
screenshot that text was drawn in it, and from ``bash`` that the command ran.
Swap ``decide`` for your model call and keep the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator

import attrs

from orgo_async import Desktop, Orgo, Screenshot
from orgo_async.protocol.png import DecodedPNG, decode_png

COMMAND = "echo orgo-$RANDOM > /root/Desktop/agent.txt; ls /root/Desktop"

# What the local desktop needs, and the Debian package of each program.
PACKAGES = {
    "Xvnc": "tigervnc-standalone-server",
    "vncpasswd": "tigervnc-tools",
    "xdotool": "xdotool",
    "bwrap": "bubblewrap",
    "openbox": "openbox",
    "xterm": "xterm",
}

Box = tuple[int, int, int, int]  # x, y, width, height


class Unavailable(Exception):
    """The local desktop cannot run here."""


@attrs.frozen
class Action:
    kind: str  # "click", "type" or "key"
    x: int = 0
    y: int = 0
    text: str = ""


def find_window(shot: Screenshot, *, step: int = 8) -> Box | None:
    """The bounding box of the largest light region of the screen, or None.

    Samples a grid every ``step`` pixels, keeps the light cells (every channel
    at least 200) and returns the biggest 4-connected group of them: a
    window's white body on a darker background.
    """
    image = decode_png(shot.data)
    light = {
        (x, y)
        for y in range(0, image.height, step)
        for x in range(0, image.width, step)
        if min(image.pixel(x, y)[:3]) >= 200
    }
    best: list[tuple[int, int]] = []
    while light:
        group, todo = [], [light.pop()]
        while todo:
            x, y = todo.pop()
            group.append((x, y))
            for cell in ((x + step, y), (x - step, y), (x, y + step), (x, y - step)):
                if cell in light:
                    light.remove(cell)
                    todo.append(cell)
        if len(group) > len(best):
            best = group
    if len(best) < 100:  # a few light pixels here and there are no window
        return None
    xs, ys = [x for x, _ in best], [y for _, y in best]
    return min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1


def changed_fraction(before: DecodedPNG, after: DecodedPNG, box: Box) -> float:
    """The share of the pixels inside ``box`` (every other row and column) that differ."""
    x0, y0, w, h = box
    points = [(x, y) for y in range(y0, y0 + h, 2) for x in range(x0, x0 + w, 2)]
    return sum(before.pixel(x, y) != after.pixel(x, y) for x, y in points) / len(points)


def decide(shot: Screenshot, turn: int) -> tuple[Box, list[Action]] | None:
    """The model's turn: find the terminal; click into it, then run a command in it.

    None when there is no terminal on the screen.
    """
    window = find_window(shot)
    if window is None:
        return None
    if turn == 1:
        x, y, w, h = window
        return window, [Action("click", x + w // 2, y + h // 2)]
    return window, [Action("type", text=COMMAND), Action("key", text="Return")]


async def act(desktop: Desktop, action: Action) -> None:
    if action.kind == "click":
        await desktop.click(action.x, action.y)
    elif action.kind == "type":
        await desktop.type(action.text, delay_ms=0)
    else:
        await desktop.key(action.text)


def describe(plan: list[Action]) -> str:
    return ", ".join(
        f"clicked ({a.x}, {a.y})" if a.kind == "click" else f"{a.kind} {a.text!r}" for a in plan
    )


async def until_changed(
    desktop: Desktop, before: Screenshot, box: Box, *, timeout: float = 5.0
) -> float:
    """Screenshots until pixels in ``box`` differ from ``before`` (the terminal draws
    after the keystrokes are in); the share that changed, 0.0 at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    start = decode_png(before.data)
    while True:
        share = changed_fraction(start, decode_png((await desktop.screenshot()).data), box)
        if share > 0 or loop.time() >= deadline:
            return share
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def local_orgo() -> AsyncIterator[Orgo]:
    """A client of a built-in emulator whose computers have real desktops."""
    from orgo_async.emulator import BootTime, Emulator, EmulatorConfig

    # sandbox="on": without a sandbox there is no desktop session, so no terminal.
    config = EmulatorConfig(desktop_backend="xvnc", sandbox="on", boot=BootTime.fixed(0.1))
    emu = Emulator(config)
    try:
        await emu.start()
    except Exception as exc:  # sandboxes do not work on this kernel, say
        raise Unavailable(str(exc)) from exc
    try:
        async with Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo:
            yield orgo
    finally:
        await emu.close()


async def run(base_url: str | None) -> int:
    async with Orgo(base_url=base_url) if base_url else local_orgo() as orgo:
        workspace = await orgo.workspaces.create("desktop-agent-example")
        try:
            launched = await orgo.computers.launch(workspace_id=workspace.id, name="agent")
            desktop = orgo.desktop(launched.computer)
            print(f"computer ready in {launched.timing.total_seconds * 1000:.0f} ms")

            # Two turns: the click moves the pointer and focuses the window, so the
            # screenshot that the typing is judged against is taken after it.
            for turn in (1, 2):
                before = await desktop.screenshot()
                decision = decide(before, turn)
                if decision is None:
                    print("no terminal window on the screen", file=sys.stderr)
                    return 1
                window, plan = decision
                for action in plan:
                    await act(desktop, action)
                x, y, w, h = window
                print(f"turn {turn}: terminal {w}x{h} px at ({x}, {y}); {describe(plan)}")

            # Judged in the top third, where a fresh terminal prints: not where the pointer
            # is (it was clicked in the middle, and xterm hides it once keys arrive).
            share = await until_changed(desktop, before, (x, y, w, h // 3))
            drawn = share > 0
            verdict = "ok" if drawn else "NO CHANGE"
            print(f"{share:.1%} of the terminal's top third changed -> {verdict}")

            # The terminal runs the command on its own time: wait for the file it writes.
            check = await desktop.bash(
                "for _ in $(seq 50); do test -s /root/Desktop/agent.txt && break; sleep 0.1; done;"
                " cat /root/Desktop/agent.txt",
                timeout=30,
            )
            wrote = check.exit_code == 0 and bool(re.fullmatch(r"orgo-\d+", check.output.strip()))
            print(
                f"bash says: {check.output.strip()!r} (exit {check.exit_code})"
                f" -> {'ok' if wrote else 'NOT WRITTEN'}"
            )
            return 0 if drawn and wrote else 1
        finally:
            await orgo.workspaces.delete(workspace.id)


def main() -> int:
    parser = argparse.ArgumentParser(description="An agent loop against a real desktop.")
    parser.add_argument("--base-url", help="a real API (default: a built-in emulator)")
    args = parser.parse_args()
    if not args.base_url:
        missing = [program for program in PACKAGES if shutil.which(program) is None]
        if missing:
            print(
                f"the local desktop needs {', '.join(missing)}; on Debian or Ubuntu:\n"
                f"  sudo apt-get install {' '.join(PACKAGES.values())}",
                file=sys.stderr,
            )
            return 2
        if os.geteuid() != 0:
            # Otherwise the sandbox is a user namespace, where xterm cannot start.
            print("the local desktop's terminal needs root (in a container, say)", file=sys.stderr)
            return 2
    try:
        return asyncio.run(run(args.base_url))
    except Unavailable as exc:
        print(f"the local desktop cannot run here: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
