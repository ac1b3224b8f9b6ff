"""A fleet sharded over Ray actors, an episode on every computer, nothing left behind.

    python examples/ray_fleet.py --emulator --count 200 --actors 2 --json
    ORGO_API_KEY=... python examples/ray_fleet.py --address auto --count 1000 --actors 8

Each Ray actor owns one Orgo session and a slice of the computers; the episode
(a terminal command and a screenshot) runs on the actor that owns its
computer, and only ids and results come back. Leaving the fleet deletes every
computer, on every actor, and the script counts what is still alive after.

With ``--emulator`` it starts a local Ray and the emulator of the Orgo API as a
separate process that every actor reaches. Without it, it needs
``ORGO_API_KEY``; ``--address`` joins an existing Ray cluster (``auto``, or
``ray://host:10001``), else a local Ray is started. Ray's worker logs are not
forwarded to this process. With ``--json`` the last line on stdout is one
JSON object: count, ready, failed, episodes, leftover, actors, wall_s (the
fleet, from launch to the last delete), startup_s (Ray and the emulator),
episodes_per_s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import ray

from orgo_async import Computer, Orgo
from orgo_async.ray import RayFleet


async def episode(orgo: Orgo, computer: Computer) -> int:
    """A terminal command and a screenshot; returns the screenshot's size in bytes."""
    desktop = orgo.desktop(computer)
    said = await desktop.bash("uname -s")
    if said.exit_code != 0:
        raise RuntimeError(f"uname exited with {said.exit_code}")
    shot = await desktop.screenshot()
    return len(shot.data)


@contextlib.asynccontextmanager
async def api(emulator: bool) -> AsyncIterator[tuple[str | None, str | None]]:
    """The key and base URL to use (``None``: the environment's)."""
    if not emulator:
        yield None, None
        return
    from orgo_async.cli._spawn import emulator_process

    async with emulator_process() as emu:
        yield emu.api_key, emu.base_url


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    ray.init(
        address=args.address,
        log_to_driver=False,
        include_dashboard=False,
        **({} if args.address else {"num_cpus": args.actors}),
    )
    try:
        async with api(args.emulator) as (api_key, base_url):
            async with Orgo(api_key=api_key, base_url=base_url) as orgo:
                workspace = await orgo.workspaces.create("ray-fleet-example")
                try:
                    startup = time.monotonic() - started
                    launched = time.monotonic()
                    ok = errors = 0
                    async with RayFleet(
                        workspace.id,
                        args.count,
                        actors=args.actors,
                        prefix="rayfleet",
                        api_key=api_key,
                        base_url=base_url,
                        concurrency=args.concurrency,
                    ) as fleet:
                        async for result in fleet.map(episode, concurrency=args.concurrency):
                            if result.ok:
                                ok += 1
                            else:
                                errors += 1
                                if not args.json:
                                    print(f"{result.computer.name}: {result.error}")
                    wall = time.monotonic() - launched
                    leftover = len(await orgo.computers.list(workspace.id))
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(orgo.workspaces.delete(workspace.id))
    finally:
        ray.shutdown()
    return {
        "count": args.count,
        "ready": ok + errors,
        "failed": len(fleet.failures) + errors,
        "episodes": ok,
        "leftover": leftover,
        "actors": fleet.actors,
        "rate_limited": fleet.rate_limited,
        "wall_s": round(wall, 3),
        "startup_s": round(startup, 3),
        "episodes_per_s": round(ok / wall, 1) if wall > 0 else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="A fleet sharded over Ray actors.")
    parser.add_argument(
        "--emulator", action="store_true", help="a local Ray and the emulator, offline"
    )
    parser.add_argument("--address", help="an existing Ray cluster (auto, ray://host:port)")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16, help="per actor")
    parser.add_argument("--json", action="store_true", help="one JSON line, last on stdout")
    args = parser.parse_args()
    try:
        summary = asyncio.run(main_async(args))
    except KeyboardInterrupt:
        print("interrupted: every computer was deleted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(
            f"{summary['episodes']} episodes on {summary['count']} computers over "
            f"{summary['actors']} actors in {summary['wall_s']} s "
            f"({summary['episodes_per_s']}/s); {summary['failed']} failed, "
            f"{summary['leftover']} left"
        )
    return 0 if summary["leftover"] == 0 and summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
