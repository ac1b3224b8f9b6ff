"""Terminal benchmarks: echo round trip against a raw websockets client, and idle-socket memory.

    python benchmarks/terminal.py                       # both, against a spawned emulator
    python benchmarks/terminal.py --rounds 2000 --idle 1000 --json

Round trip: type a unique marker into a PTY shell and wait until it is echoed
back, through ``Terminal`` and through a hand-written ``websockets`` client
speaking the same JSON protocol on the same emulator, alternately, so both
meet the same machine at the same moment. Memory: the client's RSS before and
after opening ``--idle`` terminal sockets (spread over a few computers), which
then sit idle with their keepalive running.

The emulator runs in its own process; only the client is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
from urllib.parse import urlencode

from websockets.asyncio.client import connect

from orgo_async import Computer, Orgo, Terminal
from orgo_async.cli._spawn import emulator_process


def rss_mb() -> float:
    """This process's resident set size, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def sdk_rtt(term: Terminal, marker: str) -> float:
    seen = ""
    start = time.perf_counter()
    await term.send(marker)
    async for chunk in term:
        seen += chunk
        if marker in seen:
            return time.perf_counter() - start
    raise RuntimeError("terminal ended")


async def raw_rtt(ws: object, marker: str) -> float:
    seen = ""
    start = time.perf_counter()
    await ws.send(json.dumps({"type": "input", "data": marker}))  # type: ignore[attr-defined]
    while True:
        message = json.loads(await ws.recv())  # type: ignore[attr-defined]
        if message.get("type") == "output":
            seen += message["data"]
            if marker in seen:
                return time.perf_counter() - start


async def echo(orgo: Orgo, computer: Computer, rounds: int) -> dict[str, object]:
    url = (computer.connection_url or "").replace("http://", "ws://") + "/ws/terminal?" + (
        urlencode({"token": computer.vnc_password or ""})
    )
    sdk: list[float] = []
    raw: list[float] = []
    async with orgo.connect(computer).terminal() as term, connect(
        url, compression=None, ping_interval=None, proxy=None
    ) as ws:
        # Clear the shells' first prompt, and let both warm up.
        for n in range(20):
            await sdk_rtt(term, f"w{n}")
            await raw_rtt(ws, f"w{n}")
        for n in range(rounds):
            # Alternate who goes first, so drift hits both alike.
            if n % 2:
                sdk.append(await sdk_rtt(term, f"s{n}x"))
                raw.append(await raw_rtt(ws, f"r{n}x"))
            else:
                raw.append(await raw_rtt(ws, f"r{n}x"))
                sdk.append(await sdk_rtt(term, f"s{n}x"))
            if n % 200 == 199:
                # Keep the shells' input lines short: Ctrl-U clears them.
                await term.send("\x15")
                await ws.send(json.dumps({"type": "input", "data": "\x15"}))
    return {
        "rounds": rounds,
        "sdk_us": {k: round(pct(sdk, q) * 1e6, 1) for k, q in _QS.items()},
        "raw_websockets_us": {k: round(pct(raw, q) * 1e6, 1) for k, q in _QS.items()},
        "ratio_p50": round(statistics.median(sdk) / statistics.median(raw), 3),
        "ratio_mean": round(statistics.fmean(sdk) / statistics.fmean(raw), 3),
    }


_QS = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


async def idle(orgo: Orgo, computers: list[Computer], count: int) -> dict[str, object]:
    gc.collect()
    before = rss_mb()
    terms: list[Terminal] = []
    try:
        for n in range(count):
            term = orgo.connect(computers[n % len(computers)]).terminal()
            await term.open()
            terms.append(term)
        gc.collect()
        opened = rss_mb()
        await asyncio.sleep(2.0)  # idle, keepalive tasks parked
        after_idle = rss_mb()
    finally:
        await asyncio.gather(*(t.close() for t in terms), return_exceptions=True)
    return {
        "sockets": len(terms),
        "rss_before_mb": round(before, 1),
        "rss_open_mb": round(opened, 1),
        "rss_after_idle_mb": round(after_idle, 1),
        "client_rss_growth_mb": round(max(opened, after_idle) - before, 1),
        "per_socket_kb": round((max(opened, after_idle) - before) * 1024 / max(1, len(terms)), 1),
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--computers", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    async with emulator_process(boot_ms=50, extra_args=["--boot-jitter-ms", "0"]) as emu:
        async with Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo:
            ws = await orgo.workspaces.create("bench-terminal")
            launched = await orgo.launch_fleet(ws.id, args.computers, prefix="term")
            computers = [x.computer for x in launched.ready]
            result: dict[str, object] = {
                "python": sys.version.split()[0],
                "machine": platform.platform(),
            }
            if args.rounds:
                result["echo"] = await echo(orgo, computers[0], args.rounds)
            if args.idle:
                result["idle"] = await idle(orgo, computers, args.idle)
            await orgo.workspaces.delete(ws.id)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
