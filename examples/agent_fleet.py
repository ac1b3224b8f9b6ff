"""Many agent loops at once: a fleet of computers, a model driving each one.

    python examples/agent_fleet.py --emulator --count 8 --concurrency 4 --provider anthropic
    ORGO_API_KEY=... ANTHROPIC_API_KEY=... python examples/agent_fleet.py --count 8 \\
        --provider anthropic --model claude-sonnet-4-5 --task "Open a terminal and run uname -a"

Computers are launched as a fleet; each one is handed to its own agent loop
(``run_agent``, with its own toolset) as soon as it is ready. One model client
is shared, and a semaphore in its HTTP transport bounds how many model requests
are in flight at once (``--concurrency``), however many loops wait on the
model. Each run prints one line (computer, outcome, steps, seconds), then a
summary. Every computer is deleted at the end, on error and on Ctrl-C.

With ``--emulator`` everything runs offline: a built-in emulator of the Orgo
API and a scripted model (``orgo_async.emulator.scripted_model``) that clicks
into the text area and types a line. Without it, it needs ``ORGO_API_KEY`` and
the vendor's key (``ANTHROPIC_API_KEY`` or ``OPENAI_API_KEY``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2  # the HTTP library of both vendor SDKs

from orgo_async import Computer, Orgo
from orgo_async.agents import AgentRun, run_agent
from orgo_async.errors import OrgoError

MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-5.4"}
TASK = "Click into the text area and type: hello from the agent, then press Enter."
SCRIPTED_KEY = "scripted"  # the scripted model takes any key


class BoundedTransport(httpx2.AsyncHTTPTransport):
    """At most ``limit`` model requests in flight, shared by every loop using the client."""

    def __init__(self, limit: asyncio.Semaphore) -> None:
        super().__init__()
        self._limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        async with self._limit:
            response = await super().handle_async_request(request)
            await response.aread()  # the answer is whole before the slot is freed
            return response


def approve(context: Any) -> bool:
    """The toolset asks before typing and pressing keys; an unattended fleet approves.

    Put your own policy here (refuse some members, some text...).
    """
    return True


@contextlib.asynccontextmanager
async def services(emulator: bool) -> AsyncIterator[tuple[Orgo, str | None]]:
    """The Orgo session and the model's base URL (``None``: the vendor's own API)."""
    if not emulator:
        async with Orgo() as orgo:
            yield orgo, None
        return
    from orgo_async.emulator import BootTime, Emulator, EmulatorConfig
    from orgo_async.emulator.scripted_model import ScriptedModel

    async with (
        Emulator(EmulatorConfig(boot=BootTime.fixed(0.2))) as emu,
        ScriptedModel() as model,
        Orgo(api_key=emu.api_key, base_url=emu.base_url) as orgo,
    ):
        yield orgo, model.base_url


def model_client(provider: str, base_url: str | None, concurrency: int) -> Any:
    http = httpx2.AsyncClient(
        transport=BoundedTransport(asyncio.Semaphore(concurrency)), timeout=600
    )
    key = {"api_key": SCRIPTED_KEY} if base_url else {}
    if provider == "anthropic":
        import anthropic

        return anthropic.AsyncAnthropic(base_url=base_url, http_client=http, **key)
    import openai

    url = None if base_url is None else base_url + "/v1"
    return openai.AsyncOpenAI(base_url=url, http_client=http, **key)


async def drive(
    orgo: Orgo, computer: Computer, args: argparse.Namespace, client: Any
) -> AgentRun | None:
    """One agent loop on ``computer``, which is deleted after it, whatever happens."""
    try:
        run = await run_agent(
            orgo,
            computer,
            args.task,
            provider=args.provider,
            model=args.model or MODELS[args.provider],
            client=client,
            max_steps=args.max_steps,
            timeout=args.timeout,
            confirm=approve if args.provider == "anthropic" else None,
        )
        problem = f" ({type(run.error).__name__}: {run.error})" if run.error else ""
        print(
            f"{computer.name:<28} {run.outcome:<9} {len(run.steps):>3} steps "
            f"{run.seconds:6.2f} s{problem}",
            flush=True,
        )
        return run
    finally:
        # Shielded: a Ctrl-C arriving now still lets the delete finish.
        with contextlib.suppress(OrgoError):
            await asyncio.shield(orgo.computers.delete(computer))


async def main_async(args: argparse.Namespace) -> int:
    started = time.monotonic()
    runs: list[AgentRun] = []
    async with services(args.emulator) as (orgo, base_url):
        workspace = await orgo.workspaces.create("agent-fleet-example")
        client = model_client(args.provider, base_url, args.concurrency)
        try:
            async with client, asyncio.TaskGroup() as group:
                tasks = []
                async with orgo.fleet(workspace.id, args.count, prefix="agent") as fleet:
                    async for launched in fleet:
                        run = drive(orgo, launched.computer, args, client)
                        tasks.append(group.create_task(run))
                for failure in fleet.failures:
                    print(f"{failure.name:<28} not ready ({type(failure.error).__name__})")
            runs = [run for task in tasks if (run := task.result()) is not None]
        finally:
            with contextlib.suppress(OrgoError):
                await asyncio.shield(orgo.workspaces.delete(workspace.id))
    outcomes = collections.Counter(run.outcome for run in runs)
    steps = sum(len(run.steps) for run in runs)
    model = sum(run.model_seconds for run in runs)
    desktop = sum(run.desktop_seconds for run in runs)
    print(
        f"{len(runs)} runs in {time.monotonic() - started:.2f} s: "
        + ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
        + f"; {steps} steps, model {model:.2f} s, desktop {desktop:.2f} s"
    )
    return 0 if runs and outcomes["done"] == len(runs) == args.count else 1


def main() -> int:
    parser = argparse.ArgumentParser(description="Agent loops over a fleet of computers.")
    parser.add_argument(
        "--emulator", action="store_true", help="offline: an emulator and a scripted model"
    )
    parser.add_argument("--count", type=int, default=4, help="computers (and loops)")
    parser.add_argument("--concurrency", type=int, default=4, help="model requests in flight")
    parser.add_argument("--provider", choices=sorted(MODELS), default="anthropic")
    defaults = ", ".join(f"{provider} {model}" for provider, model in MODELS.items())
    parser.add_argument("--model", help=f"default: {defaults}")
    parser.add_argument("--task", default=TASK)
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    args = parser.parse_args()
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        print("interrupted: every computer was deleted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
