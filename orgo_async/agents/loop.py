"""A built-in agent loop: an instruction in, a model driving the computer, a typed run out.

:func:`run_agent` is this SDK's counterpart of the official SDK's
``Computer.prompt()``, asynchronous and bounded::

    run = await run_agent(
        orgo, computer, "Open a terminal and print the date",
        provider="anthropic", model="claude-sonnet-4-5", confirm=ask, record="runs/1",
    )
    print(run.outcome, len(run.steps), run.final_text)

The model is driven by its vendor's own loop: Anthropic's through the anthropic
SDK's tool runner with :func:`~orgo_async.agents.anthropic_toolset`, OpenAI's
through the Agents SDK's ``Runner`` with a ``ComputerTool`` on
:func:`~orgo_async.agents.openai_computer`. Each desktop action is a
:class:`~orgo_async.agents.trajectory.Step`, recorded as it happens (to disk
with ``record=``), handed to ``on_step``, and counted against ``max_steps``.

How a run ends is its :attr:`AgentRun.outcome`, never an exception of the
model's or the desktop's: ``done`` (the model answered without asking for an
action), ``max_steps`` (the next action would have been one too many; it is not
performed), ``timeout`` (the deadline passed), ``error`` (the model API failed,
``on_step`` raised, or, with OpenAI, an action failed: the Agents SDK cannot
return a tool error to the model, so the failing step is recorded with its
error and the run ends there). With Anthropic a failing action is a tool
error the model reads, and the run goes on. A cancellation propagates, after
the toolset and the client are closed and the recording ends (``cancelled``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import math
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from .._checks import check_choice, check_int, check_seconds, check_text, optional
from .trajectory import Step, StepLog, TrajectoryRecorder

if TYPE_CHECKING:
    from .._client import Orgo
    from ..models import Computer
    from ._anthropic import OrgoComputerToolset
    from ._openai import OrgoAsyncComputer

__all__ = ["AgentRun", "Outcome", "Provider", "run_agent"]

Provider = Literal["anthropic", "openai"]
Outcome = Literal["done", "max_steps", "timeout", "error"]
OnStep = Callable[[Step], object]

MAX_TOKENS: Final = 4096
"""The ``max_tokens`` of each Anthropic model turn."""
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"


@attrs.frozen(kw_only=True)
class AgentRun:
    """How a :func:`run_agent` run went.

    Attributes:
        outcome: ``done``, ``max_steps``, ``timeout`` or ``error``.
        steps: Every desktop action performed, in order.
        final_text: The model's last words (``done``), else ``None``.
        error: What ended the run, with ``error``; otherwise ``None``.
        seconds: The whole run, wall clock.
        model_seconds: Time spent waiting for the model.
        desktop_seconds: Time spent performing the actions.
        trajectory_dir: Where the trajectory was written (``record=``), or ``None``.
    """

    outcome: Outcome
    steps: tuple[Step, ...]
    final_text: str | None = None
    error: BaseException | None = attrs.field(default=None, eq=False)
    seconds: float = 0.0
    model_seconds: float = 0.0
    desktop_seconds: float = 0.0
    trajectory_dir: Path | None = None


class _StepLimit(Exception):
    """The model asked for one action more than ``max_steps``."""


class _Steps:
    """The run's steps: recorded (to disk when a recorder is given), handed to ``on_step``."""

    def __init__(
        self, recorder: TrajectoryRecorder | None, on_step: OnStep | None, max_steps: int
    ) -> None:
        self.recorder = recorder
        self.on_step = on_step
        self.max_steps = max_steps
        self.steps: list[Step] = []
        self.model_seconds = 0.0
        self._log = StepLog() if recorder is None else None

    def model_turn(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.model_seconds += seconds
        if self.recorder is not None:
            self.recorder.model_turn(seconds)
        else:
            assert self._log is not None
            self._log.model_turn(seconds)

    def check_room(self) -> None:
        """Raise :class:`_StepLimit` if one more action would pass ``max_steps``."""
        if len(self.steps) >= self.max_steps:
            raise _StepLimit

    async def add(
        self,
        action: str,
        input: dict[str, Any],
        *,
        error: str | None,
        output: str | None,
        png: bytes | None,
        desktop_seconds: float,
        started_at: float,
    ) -> None:
        if png is not None and not png.startswith(_PNG_MAGIC):
            png = None  # a JPEG screenshot is not kept as a frame
        if self.recorder is not None:
            step = await self.recorder.action(
                action,
                input,
                error=error,
                output=output,
                screenshot_png=png,
                desktop_seconds=desktop_seconds,
                started_at=started_at,
            )
        else:
            assert self._log is not None
            step = self._log.action(
                action,
                input,
                error=error,
                output=output,
                desktop_seconds=desktop_seconds,
                started_at=started_at,
            )
        self.steps.append(step)
        if self.on_step is not None:
            answer = self.on_step(step)
            if inspect.isawaitable(answer):
                await answer


async def run_agent(
    orgo: Orgo,
    computer: Computer,
    instruction: str,
    *,
    provider: Provider,
    model: str,
    client: Any = None,
    max_steps: int = 50,
    timeout: float | None = 600,
    on_step: OnStep | None = None,
    record: str | os.PathLike[str] | None = None,
    transport: Literal["auto", "vnc", "rest"] = "auto",
    confirm: Any = None,
    system: str | None = None,
    max_tokens: int = MAX_TOKENS,
) -> AgentRun:
    """Have a model carry out ``instruction`` on ``computer``; returns how it went.

    Args:
        orgo: The session.
        computer: A running computer.
        instruction: The task, as the user's message.
        provider: ``"anthropic"`` (the ``anthropic`` extra) or ``"openai"``
            (the ``openai`` extra).
        model: The model's name.
        client: Anthropic: an ``anthropic.AsyncAnthropic`` (default: one from the
            environment, closed after the run). OpenAI: an ``openai.AsyncOpenAI``
            for the Agents SDK's Responses model (default: the Agents SDK's
            default client). A client passed in is not closed.
        max_steps: The most desktop actions; the model asking for one more ends
            the run with ``max_steps``.
        timeout: Seconds for the whole run (``None``: no deadline).
        on_step: Called (and awaited, when it returns an awaitable) with each
            step, in order, once it is recorded; an exception in it ends the run
            with ``error``.
        record: A directory to write the trajectory to
            (:class:`~orgo_async.agents.trajectory.TrajectoryRecorder`); without
            it the steps are kept in memory only.
        transport: How the desktop is driven (see the two adapters).
        confirm: Anthropic only: the toolset's ``confirm`` (the anthropic SDK
            refuses ``type``/``key``/``hold_key`` without one).
        system: A system prompt (Anthropic) or the agent's instructions (OpenAI).
        max_tokens: Anthropic: the ``max_tokens`` of each turn.

    Raises:
        ValueError: a bad argument, before any I/O.
        ImportError: the provider's extra is missing (the message says which).
        asyncio.CancelledError: the run was cancelled (after cleaning up).
    """
    check_text("instruction", instruction)
    check_choice("provider", provider, ("anthropic", "openai"))
    check_text("model", model)
    check_int("max_steps", max_steps, minimum=1)
    optional(check_seconds)("timeout", timeout, inclusive=False)
    check_choice("transport", transport, ("auto", "vnc", "rest"))
    optional(check_text)("system", system)
    check_int("max_tokens", max_tokens, minimum=1)
    if confirm is not None and provider != "anthropic":
        raise ValueError("confirm applies to provider='anthropic' only")
    if on_step is not None and not callable(on_step):
        raise ValueError(f"on_step must be callable; got {on_step!r}")
    if provider == "anthropic":
        from . import _anthropic  # noqa: F401 - the extra's install hint, before any I/O
    else:
        from . import _openai  # noqa: F401

    started = time.monotonic()
    recorder = (
        None
        if record is None
        else TrajectoryRecorder(record, instruction=instruction, computer=computer)
    )
    steps = _Steps(recorder, on_step, max_steps)
    outcome: Outcome = "done"
    final_text: str | None = None
    error: BaseException | None = None
    async with contextlib.AsyncExitStack() as stack:
        if recorder is not None:
            await stack.enter_async_context(recorder)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                run = _Run(
                    orgo=orgo,
                    computer=computer,
                    instruction=instruction,
                    steps=steps,
                    model=model,
                    client=client,
                    transport=transport,
                    confirm=confirm,
                    system=system,
                    max_tokens=max_tokens,
                )
                runner = _run_anthropic if provider == "anthropic" else _run_openai
                final_text = await runner(run)
        except _StepLimit:
            outcome = "max_steps"
        except TimeoutError as exc:
            if deadline.expired():
                outcome = "timeout"
            else:
                outcome, error = "error", exc
        except Exception as exc:
            outcome, error = "error", _unwrapped(exc)
            if isinstance(error, _StepLimit):
                outcome, error = "max_steps", None
        if recorder is not None:
            recorder.outcome = outcome
            if error is not None:
                recorder.error = f"{type(error).__name__}: {error}"
    return AgentRun(
        outcome=outcome,
        steps=tuple(steps.steps),
        final_text=final_text if outcome == "done" else None,
        error=error,
        seconds=time.monotonic() - started,
        model_seconds=steps.model_seconds,
        desktop_seconds=math.fsum(step.desktop_seconds for step in steps.steps),
        trajectory_dir=None if record is None else Path(record),
    )


def _unwrapped(exc: Exception) -> Exception:
    """The exception a vendor loop wrapped one of ours in (the step limit), else ``exc``."""
    seen: Exception | None = exc
    while seen is not None:
        if isinstance(seen, _StepLimit):
            return seen
        cause = seen.__cause__ or seen.__context__
        seen = cause if isinstance(cause, Exception) else None
    return exc


@attrs.frozen(kw_only=True)
class _Run:
    """What a vendor's loop is given: :func:`run_agent`'s checked arguments and its steps."""

    orgo: Orgo
    computer: Computer
    instruction: str
    steps: _Steps
    model: str
    client: Any
    transport: Literal["auto", "vnc", "rest"]
    confirm: Any
    system: str | None
    max_tokens: int


# -- Anthropic: the anthropic SDK's tool runner ----------------------------------------------


async def _run_anthropic(run: _Run) -> str | None:
    import anthropic

    from ._anthropic import anthropic_toolset

    steps = run.steps
    async with contextlib.AsyncExitStack() as stack:
        client = run.client
        if client is None:
            client = await stack.enter_async_context(anthropic.AsyncAnthropic())
        tools: OrgoComputerToolset = await stack.enter_async_context(
            anthropic_toolset(run.orgo, run.computer, confirm=run.confirm, transport=run.transport)
        )
        mark = time.monotonic()

        async def observe(tool_use: Any, call: Callable[[], Awaitable[Any]]) -> Any:
            nonlocal mark
            steps.check_room()
            started_at, clock = time.time(), time.monotonic()
            result = await call()
            seconds = time.monotonic() - clock
            texts, png = _anthropic_content(result.get("content"))
            error = (" ".join(texts) or "the action failed") if result.get("is_error") else None
            await steps.add(
                tool_use.name,
                dict(tool_use.input) if isinstance(tool_use.input, dict) else {},
                error=error,
                output=None if error is not None or not texts else " ".join(texts),
                png=png,
                desktop_seconds=seconds,
                started_at=started_at,
            )
            mark = time.monotonic()
            return result

        tools.around_call = observe
        params: dict[str, Any] = {}
        if run.system is not None:
            params["system"] = run.system
        runner = client.beta.messages.tool_runner(
            model=run.model,
            max_tokens=run.max_tokens,
            messages=[{"role": "user", "content": run.instruction}],
            tools=[tools],
            **params,
        )
        last = None
        try:
            async for message in runner:
                steps.model_turn(time.monotonic() - mark)
                last = message
        finally:
            tools.around_call = None
            await runner.close()
        if last is None:
            return None
        texts = [block.text for block in last.content if getattr(block, "type", "") == "text"]
        return "\n".join(texts) if texts else None


def _anthropic_content(content: object) -> tuple[list[str], bytes | None]:
    """The texts and the (last) image of a tool result's content."""
    if isinstance(content, str):
        return [content], None
    texts: list[str] = []
    png: bytes | None = None
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                png = base64.b64decode(source.get("data", ""))
    return texts, png


# -- OpenAI: the Agents SDK's Runner ---------------------------------------------------------


async def _run_openai(run: _Run) -> str | None:
    from agents import Agent, ComputerTool, MaxTurnsExceeded, OpenAIResponsesModel, Runner
    from agents.lifecycle import RunHooks
    from agents.run import RunConfig

    from ._openai import openai_computer

    class Timing(RunHooks[Any]):
        """Model time, from the Agents SDK's own hooks."""

        clock = 0.0

        async def on_llm_start(self, *args: Any) -> None:
            self.clock = time.monotonic()

        async def on_llm_end(self, *args: Any) -> None:
            steps.model_turn(time.monotonic() - self.clock)

    steps, model = run.steps, run.model
    async with openai_computer(run.orgo, run.computer, transport=run.transport) as desktop:
        agent: Agent[Any] = Agent(
            name="orgo-operator",
            instructions=run.system,
            tools=[ComputerTool(_observed(desktop, steps))],
            model=model
            if run.client is None
            else OpenAIResponsesModel(model, openai_client=run.client),
        )
        try:
            result = await Runner.run(
                agent,
                run.instruction,
                # Each turn asks for at least one action, and the last for none.
                max_turns=steps.max_steps + 1,
                hooks=Timing(),
                # The trajectory is the record of the run; no trace leaves for OpenAI.
                run_config=RunConfig(tracing_disabled=True),
            )
        except MaxTurnsExceeded:
            raise _StepLimit from None
    output = result.final_output
    return None if output is None else str(output)


def _observed(desktop: OrgoAsyncComputer, steps: _Steps) -> Any:
    """``desktop`` with each member call recorded as a step (the Agents SDK's computer)."""
    from agents import AsyncComputer
    from agents.computer import Button, Environment

    async def act(name: str, input: dict[str, Any], call: Callable[[], Awaitable[Any]]) -> Any:
        steps.check_room()
        started_at, clock = time.time(), time.monotonic()
        error: str | None = None
        value: Any = None
        try:
            value = await call()
        except Exception as exc:
            # No error channel to the model: the step keeps the error, the run ends on it.
            error = f"{type(exc).__name__}: {exc}"
            failure: Exception | None = exc
        else:
            failure = None
        png = base64.b64decode(value) if name == "screenshot" and value else None
        await steps.add(
            name,
            input,
            error=error,
            output=None,
            png=png,
            desktop_seconds=time.monotonic() - clock,
            started_at=started_at,
        )
        if failure is not None:
            raise failure
        return value

    def keyed(input: dict[str, Any], keys: list[str] | None) -> dict[str, Any]:
        return {**input, "keys": list(keys)} if keys else input

    class Observed(AsyncComputer):
        @property
        def environment(self) -> Environment:
            return desktop.environment

        @property
        def dimensions(self) -> tuple[int, int]:
            return desktop.dimensions

        async def screenshot(self) -> str:
            value: str = await act("screenshot", {}, desktop.screenshot)
            return value

        async def click(
            self, x: int, y: int, button: Button = "left", *, keys: list[str] | None = None
        ) -> None:
            await act(
                "click",
                keyed({"x": x, "y": y, "button": button}, keys),
                lambda: desktop.click(x, y, button, keys=keys),
            )

        async def double_click(self, x: int, y: int, *, keys: list[str] | None = None) -> None:
            await act(
                "double_click",
                keyed({"x": x, "y": y}, keys),
                lambda: desktop.double_click(x, y, keys=keys),
            )

        async def scroll(
            self, x: int, y: int, scroll_x: int, scroll_y: int, *, keys: list[str] | None = None
        ) -> None:
            await act(
                "scroll",
                keyed({"x": x, "y": y, "scroll_x": scroll_x, "scroll_y": scroll_y}, keys),
                lambda: desktop.scroll(x, y, scroll_x, scroll_y, keys=keys),
            )

        async def type(self, text: str) -> None:
            await act("type", {"text": text}, lambda: desktop.type(text))

        async def wait(self) -> None:
            await act("wait", {}, desktop.wait)

        async def move(self, x: int, y: int, *, keys: list[str] | None = None) -> None:
            await act("move", keyed({"x": x, "y": y}, keys), lambda: desktop.move(x, y, keys=keys))

        async def keypress(self, keys: list[str]) -> None:
            await act("keypress", {"keys": list(keys)}, lambda: desktop.keypress(keys))

        async def drag(self, path: list[tuple[int, int]], *, keys: list[str] | None = None) -> None:
            await act(
                "drag",
                keyed({"path": [list(point) for point in path]}, keys),
                lambda: desktop.drag(path, keys=keys),
            )

    return Observed()
