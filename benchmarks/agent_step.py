"""Agent step overhead: a screenshot and one left click through the computer toolset, VNC vs REST.

    python benchmarks/agent_step.py                       # xvnc and synthetic, 1 and 100 loops
    python benchmarks/agent_step.py --backend xvnc --loops 1,16 --steps 20 --json

What an agent loop pays the desktop per step, the model's time left out: one
``screenshot`` and one ``left_click`` at a point, called on the Anthropic
toolset (``anthropic_toolset(...).call(context, name, input)``, the entry point
the SDK's tool runner uses) with ``transport="vnc"`` (the screenshot is the
local framebuffer mirror, PNG-encoded here; the click is RFB pointer events)
and with ``transport="rest"`` (``GET .../screenshot`` and ``POST .../click``).
At 1280x720 the screenshot fits the model's image limits, so no scaling either
way.

The emulator runs in a child process, so ``time.process_time()`` is the
client's CPU alone; its backend is ``xvnc`` (a real TigerVNC Xvnc per computer,
screenshots captured and PNG-encoded by the emulator, clicks by xdotool in the
computer's sandbox) or ``synthetic`` (a drawn framebuffer, each REST screenshot
taking ``--screenshot-ms`` by setting). For each backend and each ``--loops``
L, L computers are launched; then, ``--rounds`` times, each transport gets a
phase in which L loops, one per computer, run ``--warmup`` steps and then
``--steps`` timed ones concurrently. The order of the two phases alternates
from round to round, so both meet the same machine. Each phase opens its
toolsets (over VNC: the socket and the first full frame) before it starts and
closes them after; that is not timed.

Figures per (backend, loops, transport): step p50/p99 in ms (nearest rank over
every timed step of every loop), the client's CPU per step (the process's CPU
over the timed part of the phases divided by the steps), the emulator
process's CPU per step (its Xvnc servers and xdotool runs not included),
``new_screen_pct``: the share of timed steps whose screenshot differed from the
loop's previous one (over VNC an unchanged screen is the cached PNG of the one
before, no copy and no encode), and ``vnc_rest_p50`` = VNC p50 / REST p50.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from anthropic.tools import BetaToolsetCallContext

from orgo_async import Computer, Orgo
from orgo_async.agents import OrgoComputerToolset, Transport, anthropic_toolset
from orgo_async.cli._spawn import emulator_process
from orgo_async.protocol.png import decode_png

WIDTH, HEIGHT = 1280, 720
TRANSPORTS: tuple[Transport, Transport] = ("vnc", "rest")
XVNC_NEEDS = ("Xvnc", "vncpasswd", "xdotool")


def pct(values: Sequence[float], p: float) -> float:
    """Nearest rank: the value of rank ceil(p/100 * n) among the sorted values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def emulator_cpu(pid: int) -> float:
    """The emulator process's user + system CPU seconds, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def yes(context: object) -> bool:
    return True


async def step(
    tools: OrgoComputerToolset, context: BetaToolsetCallContext, rng: random.Random
) -> bytes:
    """One step: the screenshot the model would read, then a left click somewhere on the screen."""
    shot = await tools.call(context, "screenshot", {})
    point = [rng.randrange(100, WIDTH - 100), rng.randrange(100, HEIGHT - 100)]
    await tools.call(context, "left_click", {"coordinate": point})
    return _png_of(shot)


def _png_of(content: Any) -> bytes:
    """The PNG bytes of a screenshot member's result (one image block)."""
    blocks = content if isinstance(content, list) else [content]
    for block in blocks:
        source = block.get("source") if isinstance(block, dict) else None
        if source and source.get("type") == "base64":
            return base64.b64decode(source["data"])
    raise AssertionError(f"the screenshot gave no image: {str(content)[:200]}")


async def run_loop(
    tools: OrgoComputerToolset,
    seed: int,
    count: int,
    durations: list[float] | None,
    changed: list[bool] | None = None,
) -> None:
    context = BetaToolsetCallContext()
    rng = random.Random(seed)
    last = b""
    for _ in range(count):
        start = time.perf_counter()
        png = await step(tools, context, rng)
        if durations is not None:
            durations.append(time.perf_counter() - start)
        if changed is not None:
            changed.append(png != last)
        last = png


async def phase(
    orgo: Orgo,
    computers: Sequence[Computer],
    transport: Transport,
    args: argparse.Namespace,
    emulator_pid: int,
    seed: int,
) -> tuple[list[float], float, float, list[bool]]:
    """One phase: timed step durations, client CPU seconds, emulator CPU seconds, and for
    each timed step whether its screenshot differed from the loop's one before."""
    async with contextlib.AsyncExitStack() as stack:
        toolsets = [
            await stack.enter_async_context(
                anthropic_toolset(orgo, computer, confirm=yes, transport=transport)
            )
            for computer in computers
        ]
        # The first screenshot of each is checked: the whole 1280x720 screen.
        context = BetaToolsetCallContext()
        for tools in toolsets:
            image = decode_png(await step(tools, context, random.Random(seed)))
            if (image.width, image.height) != (WIDTH, HEIGHT):
                raise AssertionError(f"a {transport} screenshot is {image.width}x{image.height}")
        await asyncio.gather(
            *(run_loop(t, seed + i, args.warmup, None) for i, t in enumerate(toolsets))
        )
        durations: list[float] = []
        changed: list[bool] = []
        cpu0, emu0 = time.process_time(), emulator_cpu(emulator_pid)
        await asyncio.gather(
            *(
                run_loop(t, seed + i, args.steps, durations, changed)
                for i, t in enumerate(toolsets)
            )
        )
        cpu = time.process_time() - cpu0
        emu = emulator_cpu(emulator_pid) - emu0
    return durations, cpu, emu, changed


async def run_backend(backend: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    extra = ["--desktop-backend", backend, "--screenshot-ms", str(args.screenshot_ms)]
    if backend == "xvnc":
        extra += ["--desktop-pool", str(min(max(args.loops), 8))]
    rows: list[dict[str, Any]] = []
    async with emulator_process(
        boot_ms=50, boot_jitter_ms=0, extra_args=extra, stop_timeout=60
    ) as emu:
        async with Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo:
            workspace = await orgo.workspaces.create(f"bench-agent-step-{backend}")
            try:
                launched = await orgo.launch_fleet(
                    workspace.id, max(args.loops), prefix="step", concurrency=16
                )
                if launched.failures:
                    first = launched.failures[0]
                    raise RuntimeError(f"{len(launched.failures)} launches failed: {first}")
                computers = [x.computer for x in launched.ready]
                for loops in args.loops:
                    durations: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
                    changed: dict[str, list[bool]] = {t: [] for t in TRANSPORTS}
                    cpu = dict.fromkeys(TRANSPORTS, 0.0)
                    emu_cpu = dict.fromkeys(TRANSPORTS, 0.0)
                    for round_ in range(args.rounds):
                        order = TRANSPORTS if round_ % 2 == 0 else TRANSPORTS[::-1]
                        for transport in order:
                            took, used, emu_used, new = await phase(
                                orgo, computers[:loops], transport, args, emu.pid, 1000 * round_
                            )
                            durations[transport] += took
                            changed[transport] += new
                            cpu[transport] += used
                            emu_cpu[transport] += emu_used
                    p50 = {t: pct(durations[t], 50) for t in TRANSPORTS}
                    for transport in TRANSPORTS:
                        n = len(durations[transport])
                        rows.append(
                            {
                                "backend": backend,
                                "loops": loops,
                                "transport": transport,
                                "steps": n,
                                "p50_ms": round(p50[transport] * 1000, 2),
                                "p99_ms": round(pct(durations[transport], 99) * 1000, 2),
                                "client_cpu_ms_per_step": round(cpu[transport] * 1000 / n, 2),
                                "emulator_cpu_ms_per_step": round(emu_cpu[transport] * 1000 / n, 2),
                                "new_screen_pct": round(100 * sum(changed[transport]) / n, 1),
                                "vnc_rest_p50": round(p50["vnc"] / p50["rest"], 3),
                            }
                        )
            finally:
                await orgo.workspaces.delete(workspace.id)
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        "backend    loops transport  steps   p50 ms   p99 ms  client CPU ms/step"
        "  emulator CPU ms/step  new screen %  VNC/REST p50"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['backend']:<10} {r['loops']:>5} {r['transport']:<9} {r['steps']:>6} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['client_cpu_ms_per_step']:>19.2f} "
            f"{r['emulator_cpu_ms_per_step']:>21.2f} {r['new_screen_pct']:>13.1f}"
            f" {r['vnc_rest_p50']:>13.3f}"
        )
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"want positive integers separated by commas: {text!r}")
    return values


def _count(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"want an integer of at least {least}: {text!r}")
        return value

    return parse


def _backends(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - {"xvnc", "synthetic"})
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"backends are xvnc and synthetic: {text!r}")
    return names


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--backend", type=_backends, default=["xvnc", "synthetic"])
    parser.add_argument(
        "--loops", type=_ints, default=[1, 100], help="concurrent loops, e.g. 1,100"
    )
    parser.add_argument("--steps", type=_count(1), default=20, help="timed steps a loop, a phase")
    parser.add_argument("--warmup", type=_count(0), default=3, help="untimed steps a loop, a phase")
    parser.add_argument("--rounds", type=_count(1), default=2, help="phases per transport")
    parser.add_argument("--screenshot-ms", type=float, default=20.0, help="synthetic capture")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "screen": f"{WIDTH}x{HEIGHT}",
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "screenshot_ms": args.screenshot_ms,
        "rows": [],
        "skipped": {},
    }
    for backend in args.backend:
        missing = [tool for tool in XVNC_NEEDS if shutil.which(tool) is None]
        if backend == "xvnc" and missing:
            result["skipped"][backend] = f"not installed: {', '.join(missing)}"
            print(f"skipping xvnc: not installed: {', '.join(missing)}", file=sys.stderr)
            continue
        result["rows"] += await run_backend(backend, args)
    if args.json:
        print(json.dumps(result))
    else:
        print(table(result["rows"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
