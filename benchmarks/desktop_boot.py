"""How long a real local desktop takes to boot, with and without the pool, side by side.

    python benchmarks/desktop_boot.py                       # 8 creates, one at a time
    python benchmarks/desktop_boot.py --count 12 --concurrency 4 --pool 2 --boot-ms 300

Starts an in-process emulator on the ``xvnc`` backend with sandboxes (needs Debian
``bubblewrap``, ``tigervnc-standalone-server``, ``tigervnc-tools``, ``xdotool``,
``openbox``, ``xterm``), then launches ``--count`` computers twice, through the SDK
(create, then wait until healthy), deleting each once it is up:

- **no pool**: each create boots its sandbox, Xvnc, window manager and terminal
  (the real local boot time, reported as ``desktop`` too: create to desktop on screen);
- **pool**: ``--pool`` desktops are booted ahead (Orgo's golden snapshots); a create
  takes one and reaches healthy in the configured ``--boot-ms``, while the pool refills
  behind it (one at a time: creates faster than that boot their own).

Prints one table; ``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import sys
import time
from typing import Any

from orgo_async import Orgo
from orgo_async.emulator import BootTime, Emulator, EmulatorConfig

NEEDED = ("bwrap", "Xvnc", "vncpasswd", "xdotool", "openbox", "xterm")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _run(args: argparse.Namespace, pool: int) -> dict[str, Any]:
    config = EmulatorConfig(
        boot=BootTime.fixed(args.boot_ms / 1000),
        desktop_backend="xvnc",
        desktop_pool=pool,
        sandbox="on",
    )
    async with Emulator(config) as emu:
        manager = emu.desktops.backends.xvnc
        if await manager.pool_filled() < pool:  # a full pool before the first create
            raise SystemExit(f"the pool did not fill: {manager.spares} of {pool}")
        async with Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo:
            workspace = await orgo.workspaces.create("desktop-boot")
            gate = asyncio.Semaphore(args.concurrency)
            healthy: list[float] = []
            desktop: list[float] = []

            async def one(n: int) -> None:
                async with gate:
                    launched = await orgo.computers.launch(
                        workspace_id=workspace.id, name=f"d{n}"
                    )
                    healthy.append(launched.timing.total_seconds * 1000)
                    state = emu.state.get_computer(launched.computer.id)
                    assert state.desktop_seconds is not None
                    desktop.append(state.desktop_seconds * 1000)
                    await orgo.computers.delete(launched.computer)

            started = time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(args.count)))
            wall = time.perf_counter() - started
            await orgo.workspaces.delete(workspace.id)
        return {
            "pool": pool,
            "claims": manager.pool_claims,
            "healthy_p50_ms": statistics.median(healthy),
            "healthy_p95_ms": _percentile(healthy, 0.95),
            "desktop_p50_ms": statistics.median(desktop),
            "wall_s": wall,
        }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    rows = [await _run(args, 0), await _run(args, args.pool)]
    return {
        "count": args.count,
        "concurrency": args.concurrency,
        "boot_ms": args.boot_ms,
        "runs": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=8, help="computers per run (default 8)")
    parser.add_argument("--concurrency", type=int, default=1, help="creates at once (default 1)")
    parser.add_argument("--pool", type=int, default=2, help="desktops booted ahead (default 2)")
    parser.add_argument("--boot-ms", type=float, default=300.0, help="configured boot (300)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    for name, value in (("--count", args.count), ("--concurrency", args.concurrency)):
        if value < 1:
            parser.error(f"{name} must be at least 1, got {value}")
    if args.pool < 1:
        parser.error(f"--pool must be at least 1, got {args.pool}")
    missing = [p for p in NEEDED if shutil.which(p) is None]
    if missing:
        print(
            f"missing {', '.join(missing)}: apt-get install bubblewrap tigervnc-standalone-server"
            " tigervnc-tools xdotool openbox xterm",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = asyncio.run(_main(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.count} creates, {args.concurrency} at once, configured boot {args.boot_ms:g} ms"
    )
    print(f"{'':10} {'healthy p50':>12} {'p95':>8} {'desktop p50':>12} {'claims':>7} {'wall':>7}")
    for row in result["runs"]:
        label = "no pool" if row["pool"] == 0 else f"pool {row['pool']}"
        print(
            f"{label:10} {row['healthy_p50_ms']:10.0f}ms {row['healthy_p95_ms']:6.0f}ms"
            f" {row['desktop_p50_ms']:10.0f}ms {row['claims']:7d} {row['wall_s']:6.2f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
