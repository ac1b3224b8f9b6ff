"""How many health probes a second one client sends, and how long each waits, by probes in flight.

    python benchmarks/probe_capacity.py                                  # table
    python benchmarks/probe_capacity.py --computers 64,128 --limits 8,16,32,64,128 --json

The emulator runs in a child process with a boot so long that every probe
answers 503. ``--computers`` computers are created; then, for each count and
each in-flight limit, every computer is probed in a loop of its own (the next
probe as soon as the previous one answers: the most a fleet could ask for) for
``--seconds``, with at most ``limit`` probes in flight across all of them (an
``asyncio.Semaphore``), through the lean probe transport (``Session.probe``)
and through aiohttp (``Session.send``), one after the other in the same run.
What is measured: probes answered a second, each computer's period (probe to
probe), the round trip of a probe from its slot to its answer (p50, p90; the
lean transport holds at most 64 connections, so past 64 in flight that
includes waiting for one), its wait for a slot (p50), and the CPU load of the
client (``time.process_time()`` per wall second) and of the emulator (its
``process_cpu_seconds`` per ``seconds_since_reset``, reset before each row).

Where the client is the limit, its rate is the same at every limit and only
the round trip moves: the probes beyond what it can serve just queue, in the
sockets or in the semaphore. See ``benchmarks/README.md``.
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
from orgo_async.cli._bench_run import _Books
from orgo_async.cli._format import cell
from orgo_async.cli._spawn import emulator_process
from orgo_async.health import probe_timeouts

TIMEOUT = 10.0


def _ms(values: list[float], q: float) -> float:
    return round(sorted(values)[int(q * (len(values) - 1))] * 1000, 2)


async def _measure(
    session: Session,
    books: _Books,
    paths: list[str],
    transport: str,
    limit: int,
    seconds: float,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(limit)
    timeouts = probe_timeouts(TIMEOUT)
    trips: list[float] = []
    waits: list[float] = []
    stop = loop.time() + seconds

    async def probe_until_stop(path: str) -> None:
        while loop.time() < stop:
            asked = loop.time()
            async with slots:
                sent = loop.time()
                if transport == "aiohttp":
                    status = (await session.send("GET", path, timeouts=timeouts)).status
                else:
                    status = await session.probe(path, timeout=TIMEOUT)
                trips.append(loop.time() - sent)
            waits.append(sent - asked)
            if status != 503:
                raise SystemExit(f"{transport}: a probe answered {status}, not 503")

    await books.reset()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(probe_until_stop(p) for p in paths))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    records = await books.read()
    server = records.cpu if records is not None else None
    return {
        "probes_per_s": round(len(trips) / wall),
        "period_ms": round(len(paths) * wall / len(trips) * 1000, 2),
        "rtt_ms": {"p50": _ms(trips, 0.5), "p90": _ms(trips, 0.9)},
        "slot_wait_ms_p50": _ms(waits, 0.5),
        "client_cpu_load": round(cpu / wall, 3),
        "emulator_cpu_load": None if server is None else round(server[0] / server[1], 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    most = max(args.computers)
    async with (
        emulator_process(boot_ms=3_600_000, boot_jitter_ms=0) as emu,
        Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo,
        _Books(emu.base_url, emu.api_key, None) as books,
    ):
        session = orgo._session
        workspace = await orgo.workspaces.create("bench-capacity")
        try:
            created = await asyncio.gather(
                *(
                    orgo.computers.create(workspace_id=workspace.id, name=f"probed-{i}")
                    for i in range(most)
                )
            )
            paths = [f"/desktops/{c.id}/proxy/health" for c in created]
            for count in args.computers:
                for limit in (n for n in args.limits if n <= count):
                    row: dict[str, Any] = {"computers": count, "limit": limit}
                    for transport in ("probe", "aiohttp"):
                        row[transport] = await _measure(
                            session, books, paths[:count], transport, limit, args.seconds
                        )
                    rows.append(row)
        finally:
            await orgo.workspaces.delete(workspace.id)
    return {"seconds": args.seconds, "target": "emulator", "rows": rows}


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"{'computers':>9} {'limit':>5}  {'transport':9} {'probes/s':>8} {'period ms':>9} "
        f"{'rtt p50':>7} {'rtt p90':>7} {'wait p50':>8} {'CPU load':>8} {'emu load':>8}"
    ]
    for row in result["rows"]:
        for transport in ("probe", "aiohttp"):
            m = row[transport]
            lines.append(
                f"{row['computers']:>9} {row['limit']:>5}  {transport:9} {m['probes_per_s']:>8} "
                f"{m['period_ms']:>9.1f} {m['rtt_ms']['p50']:>7.1f} {m['rtt_ms']['p90']:>7.1f} "
                f"{m['slot_wait_ms_p50']:>8.1f} {m['client_cpu_load']:>8.2f} "
                f"{cell(m['emulator_cpu_load']):>8}"
            )
    lines.append(f"each row: {result['seconds']:g} s of closed-loop probing; times in ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--computers", default="64,128", help="comma-separated")
    parser.add_argument("--limits", default="8,16,32,64,128", help="in flight, comma-separated")
    parser.add_argument("--seconds", type=float, default=1.0, help="per row and transport")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.computers = [int(c) for c in args.computers.split(",") if c]
    args.limits = [int(c) for c in args.limits.split(",") if c]
    if not args.computers or not args.limits or min(args.computers + args.limits) < 1:
        parser.error("every --computers and --limits value must be >= 1")
    if not args.seconds > 0:
        parser.error("--seconds must be > 0")
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
