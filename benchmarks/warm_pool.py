"""Warm pool claim latency against a cold launch, same run, same server.

    python benchmarks/warm_pool.py                                  # in-process emulator
    python benchmarks/warm_pool.py --sizes 1,4,16 --claims 40 --boot-ms 300
    python benchmarks/warm_pool.py --base-url http://127.0.0.1:8000/api   # key in ORGO_API_KEY

For each pool size: ``--claims`` cold launches (``orgo.computers.launch``: a
create, then the readiness race), then ``--claims`` claims from a warm pool
of that size (``orgo.pool(...).claim()``, each one made once the pool is full
again). Every computer is deleted as soon as it is timed; the workspace is
deleted at the end. Prints a table (``--json`` prints one JSON object).
See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from orgo_async import Orgo, Pool
from orgo_async.cli._format import ms, percentiles
from orgo_async.emulator import BootTime, Emulator, EmulatorConfig


@asynccontextmanager
async def _target(args: argparse.Namespace) -> AsyncIterator[tuple[str, str]]:
    """The API root and key: ``--base-url`` with ``ORGO_API_KEY``, else an emulator here."""
    if args.base_url:
        key = os.environ.get("ORGO_API_KEY")
        if not key:
            raise SystemExit("--base-url needs ORGO_API_KEY")
        yield args.base_url, key
        return
    boot = BootTime.fixed(args.boot_ms / 1000, args.boot_jitter_ms / 1000)
    config = EmulatorConfig(api_key="sk_bench_" + secrets.token_hex(8), boot=boot)
    async with Emulator(config) as emulator:
        yield emulator.base_url, emulator.api_key


async def _full(pool: Pool) -> None:
    while pool.stats.ready < pool.size:  # noqa: ASYNC110 - a benchmark's own polling
        await asyncio.sleep(0.005)


async def _cold(orgo: Orgo, workspace_id: str, claims: int) -> list[float]:
    times = []
    for n in range(claims):
        t0 = time.perf_counter()
        launched = await orgo.computers.launch(workspace_id=workspace_id, name=f"cold-{n}")
        times.append(time.perf_counter() - t0)
        await orgo.computers.delete(launched.computer)
    return times


async def _warm(orgo: Orgo, workspace_id: str, size: int, claims: int) -> list[float]:
    times = []
    async with orgo.pool(workspace_id, size=size, name_prefix="bench-pool") as pool:
        for _ in range(claims):
            await _full(pool)
            t0 = time.perf_counter()
            computer = await pool.claim()
            times.append(time.perf_counter() - t0)
            await orgo.computers.delete(computer)
    return times


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    async with _target(args) as (base_url, key), Orgo(api_key=key, base_url=base_url) as orgo:
        workspace = await orgo.workspaces.create(f"bench-pool-{secrets.token_hex(3)}")
        try:
            for size in args.sizes:
                cold = percentiles(await _cold(orgo, workspace.id, args.claims))
                warm = percentiles(await _warm(orgo, workspace.id, size, args.claims))
                cold_ms = {k: ms(v) if isinstance(v, float) else v for k, v in cold.items()}
                warm_ms = {k: ms(v) if isinstance(v, float) else v for k, v in warm.items()}
                ratio = warm_ms["p50"] / cold_ms["p50"] if cold_ms["p50"] else None
                rows.append(
                    {"size": size, "cold_ms": cold_ms, "warm_ms": warm_ms, "p50_ratio": ratio}
                )
            leftover = len(await orgo.computers.list(workspace.id))
        finally:
            await orgo.workspaces.delete(workspace.id)
    return {
        "claims": args.claims,
        "boot_ms": None if args.base_url else args.boot_ms,
        "target": "base-url" if args.base_url else "emulator",
        "leftover": leftover,
        "sizes": rows,
    }


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"{'size':>5}  {'cold p50 ms':>11}  {'cold p99 ms':>11}  "
        f"{'warm p50 ms':>11}  {'warm p99 ms':>11}  {'warm/cold p50':>13}"
    ]
    for row in result["sizes"]:
        c, w, r = row["cold_ms"], row["warm_ms"], row["p50_ratio"]
        lines.append(
            f"{row['size']:>5}  {c['p50']:>11.2f}  {c['p99']:>11.2f}  "
            f"{w['p50']:>11.4f}  {w['p99']:>11.4f}  {r:>13.6f}"
        )
    lines.append(f"claims per size: {result['claims']}; leftover computers: {result['leftover']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="the API root (default: an in-process emulator)")
    parser.add_argument("--sizes", default="1,4,16", help="pool sizes, comma-separated")
    parser.add_argument("--claims", type=int, default=20, help="timed claims per size and side")
    parser.add_argument("--boot-ms", type=float, default=300.0, help="the emulator's boot time")
    parser.add_argument("--boot-jitter-ms", type=float, default=20.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.claims < 1 or not args.sizes or min(args.sizes) < 1:
        parser.error("--claims and every --sizes value must be >= 1")
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0 if result["leftover"] == 0 else 7


if __name__ == "__main__":
    sys.exit(main())
