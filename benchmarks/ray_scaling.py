"""Episodes per second in one process against a fleet sharded over Ray actors, same run.

    python benchmarks/ray_scaling.py                      # 3 rounds, 64 computers, 2 actors
    python benchmarks/ray_scaling.py --count 128 --decodes 6 --rounds 5 --json

The emulator runs in a separate process (``--boot-ms``, 50 ms by default) and
a local Ray is started once (``num_cpus`` = ``--actors``, no dashboard, worker
logs not forwarded). Each round runs, in an order that alternates:

* ``inproc-heavy``: the in-process fleet (``orgo.fleet``) in this process; each
  ready computer runs the CPU-heavy episode, ``--concurrency`` at a time: one
  REST screenshot, decoded ``--decodes`` times with the pure-Python PNG decoder
  (``orgo_async.protocol.png.decode_png``), as an agent loop spends its CPU.
* ``ray1-heavy`` and ``rayN-heavy``: the same through ``RayFleet.map`` over 1
  and ``--actors`` actors.
* ``inproc-light`` and ``ray1-light``: a light episode (one screenshot, no
  decode), to see what Ray adds per computer: (Ray wall - in-process wall) /
  count, actor start-up included.

Every mode launches ``--count`` computers, runs the episodes and deletes
everything (its wall covers all of it); episodes/s is episodes / wall. Prints
a table of medians and each round's figures (``--json``: one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ray

from orgo_async import Computer, Orgo
from orgo_async.cli._spawn import emulator_process
from orgo_async.protocol.png import decode_png
from orgo_async.ray import RayFleet

DECODES = 4


async def light(orgo: Orgo, computer: Computer) -> int:
    shot = await orgo.desktop(computer).screenshot()
    return len(shot.data)


def make_heavy(decodes: int) -> Callable[[Orgo, Computer], Awaitable[int]]:
    """One screenshot, decoded ``decodes`` times: the CPU of an agent step."""

    async def episode(orgo: Orgo, computer: Computer) -> int:
        shot = await orgo.desktop(computer).screenshot()
        pixels = 0
        for _ in range(decodes):
            pixels += len(decode_png(shot.data).pixels)
        return pixels

    return episode


async def in_process(
    key: str, url: str, workspace: str, args: argparse.Namespace, episode: Any
) -> tuple[float, int]:
    started = time.perf_counter()
    done = 0
    gate = asyncio.Semaphore(args.concurrency)

    async def run(orgo: Orgo, computer: Computer) -> None:
        nonlocal done
        async with gate:
            await episode(orgo, computer)
            done += 1
        await orgo.computers.delete(computer)

    async with Orgo(api_key=key, base_url=url) as orgo:
        async with orgo.fleet(workspace, args.count, prefix="inproc", concurrency=16) as fleet:
            async with asyncio.TaskGroup() as group:
                async for launched in fleet:
                    group.create_task(run(orgo, launched.computer))
    return time.perf_counter() - started, done


async def sharded(
    key: str, url: str, workspace: str, args: argparse.Namespace, episode: Any, actors: int
) -> tuple[float, int]:
    started = time.perf_counter()
    done = 0
    async with RayFleet(
        workspace, args.count, actors=actors, api_key=key, base_url=url, prefix="sharded"
    ) as fleet:
        async for result in fleet.map(episode, concurrency=args.concurrency):
            if result.error is not None:
                raise result.error
            done += 1
    return time.perf_counter() - started, done


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False)
    heavy_episode = make_heavy(args.decodes)
    modes: dict[str, Callable[[str, str, str], Awaitable[tuple[float, int]]]] = {
        "inproc-heavy": lambda k, u, w: in_process(k, u, w, args, heavy_episode),
        "ray1-heavy": lambda k, u, w: sharded(k, u, w, args, heavy_episode, 1),
        f"ray{args.actors}-heavy": lambda k, u, w: sharded(
            k, u, w, args, heavy_episode, args.actors
        ),
        "inproc-light": lambda k, u, w: in_process(k, u, w, args, light),
        "ray1-light": lambda k, u, w: sharded(k, u, w, args, light, 1),
    }
    rounds: list[dict[str, float]] = []
    try:
        async with emulator_process(boot_ms=args.boot_ms) as emu:
            async with Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo:
                workspace = await orgo.workspaces.create("ray-scaling")
                for n in range(args.rounds):
                    order = list(modes) if n % 2 == 0 else list(reversed(modes))
                    figures: dict[str, float] = {}
                    for name in order:
                        wall, done = await modes[name](emu.api_key, emu.base_url, workspace.id)
                        assert done == args.count, (name, done)
                        assert not await orgo.computers.list(workspace.id), name
                        figures[name] = wall
                    rounds.append(figures)
                    print(f"round {n + 1}: " + json.dumps(_round(figures, args)), file=sys.stderr)
    finally:
        ray.shutdown()
    median = {name: statistics.median(r[name] for r in rounds) for name in modes}
    return {
        "count": args.count,
        "actors": args.actors,
        "decodes": args.decodes,
        "concurrency": args.concurrency,
        "rounds": [_round(r, args) for r in rounds],
        "median": _round(median, args),
    }


def _round(walls: dict[str, float], args: argparse.Namespace) -> dict[str, float]:
    out = {f"{name}_eps": round(args.count / wall, 2) for name, wall in walls.items()}
    heavy_n = f"ray{args.actors}-heavy"
    out["scaling_x"] = round(walls["inproc-heavy"] / walls[heavy_n], 2)
    out["ray1_vs_inproc_heavy_x"] = round(walls["inproc-heavy"] / walls["ray1-heavy"], 2)
    overhead = (walls["ray1-light"] - walls["inproc-light"]) / args.count
    out["ray_overhead_ms_per_computer"] = round(overhead * 1000, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="In-process fleet vs Ray actors, episodes/s.")
    parser.add_argument("--count", type=int, default=64, help="computers per mode")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--decodes", type=int, default=DECODES, help="PNG decodes per episode")
    parser.add_argument("--concurrency", type=int, default=8, help="episodes at once, per actor")
    parser.add_argument("--boot-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{args.count} computers, {args.decodes} decodes an episode, median of {args.rounds}:")
    for name, value in summary["median"].items():
        print(f"  {name:<30} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
