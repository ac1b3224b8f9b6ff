"""Client CPU per health probe: the aiohttp transport against the lean probe transport.

    python benchmarks/probe_transport.py                          # table
    python benchmarks/probe_transport.py --concurrency 1,16,64,256 --probes 4000 --json

The emulator runs in a child process (its CPU is not counted here) with a boot
so long that every probe answers 503. One computer is created; then, for each
concurrency, ``--probes`` probes of its ``/desktops/{id}/proxy/health`` are sent
by that many loops through ``Session.send`` (aiohttp) and through
``Session.probe`` (the raw asyncio transport), side by side in the same run,
the order of the two alternating between rounds. What is measured is
``time.process_time()`` of this process per probe (microseconds), plus the
probes per second. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from orgo_async import Orgo
from orgo_async._session import Session
from orgo_async.cli._spawn import emulator_process
from orgo_async.health import probe_timeouts

TIMEOUT = 10.0


async def _loops(session: Session, path: str, mode: str, concurrency: int, probes: int) -> int:
    """``probes`` probes by ``concurrency`` loops; the count of 503 answers."""
    per_loop, extra = divmod(probes, concurrency)
    timeouts = probe_timeouts(TIMEOUT)
    unavailable = 0

    async def loop(n: int) -> None:
        nonlocal unavailable
        for _ in range(n):
            if mode == "aiohttp":
                status = (await session.send("GET", path, timeouts=timeouts)).status
            else:
                status = await session.probe(path, timeout=TIMEOUT)
            unavailable += status == 503

    await asyncio.gather(*(loop(per_loop + (i < extra)) for i in range(concurrency)))
    return unavailable


async def _measure(
    session: Session, path: str, mode: str, concurrency: int, probes: int
) -> dict[str, float]:
    await _loops(session, path, mode, concurrency, min(probes, 2 * concurrency))  # warm
    cpu0, wall0 = time.process_time(), time.perf_counter()
    unavailable = await _loops(session, path, mode, concurrency, probes)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if unavailable != probes:
        raise SystemExit(f"{mode}: {probes - unavailable} probes did not answer 503")
    return {"cpu_us_per_probe": cpu / probes * 1e6, "probes_per_s": probes / wall}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    most = max(args.concurrency)
    async with (
        emulator_process(boot_ms=3_600_000, boot_jitter_ms=0) as emu,
        Orgo(api_key=emu.api_key, base_url=emu.base_url, max_connections=most) as orgo,
    ):
        session = orgo._session
        workspace = await orgo.workspaces.create("bench-probe")
        try:
            computer = await orgo.computers.create(workspace_id=workspace.id, name="probed")
            path = f"/desktops/{computer.id}/proxy/health"
            for concurrency in args.concurrency:
                runs: dict[str, list[dict[str, float]]] = {"aiohttp": [], "probe": []}
                for round_ in range(args.rounds):
                    order = ("aiohttp", "probe") if round_ % 2 == 0 else ("probe", "aiohttp")
                    for mode in order:
                        runs[mode].append(
                            await _measure(session, path, mode, concurrency, args.probes)
                        )
                best = {
                    mode: min(r, key=lambda m: m["cpu_us_per_probe"]) for mode, r in runs.items()
                }
                ratio = best["probe"]["cpu_us_per_probe"] / best["aiohttp"]["cpu_us_per_probe"]
                rows.append(
                    {
                        "concurrency": concurrency,
                        "aiohttp": best["aiohttp"],
                        "probe": best["probe"],
                        "cpu_ratio": ratio,
                    }
                )
        finally:
            await orgo.workspaces.delete(workspace.id)
    return {"probes": args.probes, "rounds": args.rounds, "target": "emulator", "rows": rows}


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"{'conc':>5}  {'aiohttp us':>10}  {'probe us':>9}  {'probe/aiohttp':>13}  "
        f"{'aiohttp /s':>10}  {'probe /s':>9}"
    ]
    for row in result["rows"]:
        a, p = row["aiohttp"], row["probe"]
        lines.append(
            f"{row['concurrency']:>5}  {a['cpu_us_per_probe']:>10.1f}  "
            f"{p['cpu_us_per_probe']:>9.1f}  {row['cpu_ratio']:>13.3f}  "
            f"{a['probes_per_s']:>10.0f}  {p['probes_per_s']:>9.0f}"
        )
    lines.append(
        f"client CPU per probe (best of {result['rounds']} rounds of {result['probes']} probes)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,16,64,256", help="comma-separated")
    parser.add_argument("--probes", type=int, default=4000, help="timed probes per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per side (the best counts)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    if args.probes < 1 or args.rounds < 1 or not args.concurrency or min(args.concurrency) < 1:
        parser.error("--probes, --rounds and every --concurrency value must be >= 1")
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
