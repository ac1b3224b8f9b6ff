"""run_agent: both vendors' own loops, against the emulator and the scripted model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
pytest.importorskip("agents")

from orgo_async import Computer, Orgo  # noqa: E402
from orgo_async.agents import AgentRun, run_agent  # noqa: E402
from orgo_async.agents.trajectory import Step, load_trajectory  # noqa: E402
from orgo_async.emulator import Emulator  # noqa: E402
from orgo_async.emulator.scripted_model import DEFAULT_SCRIPT, ScriptedModel  # noqa: E402
from orgo_async.emulator.synthetic import SyntheticDesktop  # noqa: E402

from ..conftest import eventually  # noqa: E402

KEY = "sk-scripted-secret-0123456789"
RED = (220, 40, 40)
TYPED = "hello from the agent\n"
# The Agents SDK captures the screen after each batch that does not end with one.
STEPS = {
    "anthropic": ["screenshot", "left_click", "type", "key"],
    "openai": ["screenshot", "click", "screenshot", "type", "screenshot", "keypress", "screenshot"],
}
PROVIDERS = pytest.mark.parametrize("provider", ["anthropic", "openai"])


def yes(context: object) -> bool:
    return True


@pytest.fixture
async def computer(orgo: Orgo) -> Computer:
    workspace = await orgo.workspaces.create("run-agent")
    return (await orgo.computers.launch(workspace_id=workspace.id, name="agent")).computer


def screen_of(emulator: Emulator, computer: Computer) -> SyntheticDesktop:
    return emulator.desktops.framebuffer(emulator.state.get_computer(computer.id))


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with ScriptedModel() as server:
        yield server


async def run(
    orgo: Orgo, computer: Computer, provider: str, server: ScriptedModel, **options: Any
) -> AgentRun:
    client: Any
    if provider == "anthropic":
        client = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.base_url, max_retries=0)
        options.setdefault("confirm", yes)
    else:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url + "/v1", max_retries=0)
    async with client:
        return await run_agent(
            orgo,
            computer,
            "Type a line in the text area.",
            provider=provider,  # type: ignore[arg-type]
            model="claude-test" if provider == "anthropic" else "gpt-5.4",
            client=client,
            **options,
        )


@PROVIDERS
async def test_a_run_ends_done_with_its_effect_and_its_steps(
    orgo: Orgo, emulator: Emulator, computer: Computer, model: ScriptedModel, provider: str
) -> None:
    result = await run(orgo, computer, provider, model)
    assert result.outcome == "done", result.error
    assert result.final_text == "done" and result.error is None
    assert [step.action for step in result.steps] == STEPS[provider]
    assert [step.index for step in result.steps] == list(range(len(STEPS[provider])))
    assert all(step.ok for step in result.steps)
    assert result.trajectory_dir is None and all(step.frame is None for step in result.steps)
    # One model turn per scripted turn plus the last; a turn's time is on its first step,
    # and the run's total also counts the last turn, which asked for no action.
    assert len(model.requests) == len(DEFAULT_SCRIPT) + 1
    assert result.steps[-1].turn == len(DEFAULT_SCRIPT) - 1
    assert result.model_seconds >= sum(s.model_seconds for s in result.steps) > 0
    screen = screen_of(emulator, computer)
    await eventually(lambda: screen.text == TYPED)
    assert screen.pixel(200, 250) == RED


@PROVIDERS
async def test_max_steps_stops_before_one_action_too_many(
    orgo: Orgo, emulator: Emulator, computer: Computer, model: ScriptedModel, provider: str
) -> None:
    result = await run(orgo, computer, provider, model, max_steps=2)
    assert result.outcome == "max_steps" and result.final_text is None
    assert [step.action for step in result.steps] == STEPS[provider][:2]
    await asyncio.sleep(0.1)
    assert screen_of(emulator, computer).text == ""  # the type action was never performed


@PROVIDERS
async def test_a_stalled_model_ends_with_timeout(
    orgo: Orgo, computer: Computer, provider: str, tmp_path: Path
) -> None:
    async with ScriptedModel(delay=30) as slow:
        result = await run(orgo, computer, provider, slow, timeout=0.5, record=tmp_path)
    assert result.outcome == "timeout" and result.error is None and result.steps == ()
    assert load_trajectory(tmp_path).outcome == "timeout"


def _vendor_or_loop_tasks() -> list[asyncio.Task[Any]]:
    mine = asyncio.current_task()
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        where = code.co_filename if code is not None else ""
        if task is not mine and any(
            part in where for part in ("orgo_async/agents", "/anthropic/", "/agents/", "/openai/")
        ):
            found.append(task)
    return found


@PROVIDERS
async def test_cancelling_a_run_cleans_up_and_flushes_the_trajectory(
    orgo: Orgo, computer: Computer, provider: str, tmp_path: Path
) -> None:
    first = asyncio.Event()

    async with ScriptedModel() as server:
        original = server.delay

        def on_step(step: Step) -> None:
            server.delay = 30  # the model stalls from its next answer on
            first.set()

        task = asyncio.create_task(
            run(orgo, computer, provider, server, on_step=on_step, record=tmp_path)
        )
        await asyncio.wait_for(first.wait(), 20)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        server.delay = original
    await eventually(lambda: not _vendor_or_loop_tasks(), timeout=5)
    trajectory = load_trajectory(tmp_path)
    assert trajectory.outcome == "cancelled"
    assert [step.action for step in trajectory.steps] == STEPS[provider][:1]


@PROVIDERS
async def test_a_computer_gone_mid_run_is_a_step_error_not_a_crash(
    orgo: Orgo, computer: Computer, model: ScriptedModel, provider: str
) -> None:
    async def delete_after_the_first(step: Step) -> None:
        if step.index == 0:
            await orgo.computers.delete(computer)

    result = await run(
        orgo, computer, provider, model, on_step=delete_after_the_first, transport="rest"
    )
    first, second = result.steps[:2]
    assert first.ok and not second.ok
    assert second.error is not None and "not found" in second.error.lower()
    if provider == "anthropic":
        # The model reads the tool error and goes on to the end of its script.
        assert result.outcome == "done"
        assert [step.action for step in result.steps] == STEPS["anthropic"]
        assert not any(step.ok for step in result.steps[1:])
    else:
        # The Agents SDK cannot hand the model a tool error: the run ends on it.
        assert result.outcome == "error" and result.error is not None
        assert len(result.steps) == 2 and result.final_text is None


@PROVIDERS
async def test_on_step_sees_each_step_in_order_and_its_exception_ends_the_run(
    orgo: Orgo, computer: Computer, provider: str
) -> None:
    seen: list[int] = []

    async def collect(step: Step) -> None:
        seen.append(step.index)

    async with ScriptedModel() as server:
        result = await run(orgo, computer, provider, server, on_step=collect)
    assert result.outcome == "done"
    assert seen == [step.index for step in result.steps] == list(range(len(result.steps)))

    class Stop(Exception):
        pass

    def stop_at_the_second(step: Step) -> None:
        if step.index == 1:
            raise Stop("enough")

    async with ScriptedModel() as server:
        result = await run(orgo, computer, provider, server, on_step=stop_at_the_second)
    assert result.outcome == "error" and isinstance(result.error, Stop)
    assert len(result.steps) == 2


@PROVIDERS
async def test_record_writes_a_trajectory_that_reads_back_equal(
    orgo: Orgo, computer: Computer, model: ScriptedModel, provider: str, tmp_path: Path
) -> None:
    result = await run(orgo, computer, provider, model, record=tmp_path / "run")
    assert result.trajectory_dir == tmp_path / "run"
    trajectory = load_trajectory(tmp_path / "run")
    assert trajectory.outcome == "done" and trajectory.computer_id == computer.id
    assert trajectory.steps == result.steps
    shots = [step for step in trajectory.steps if step.action == "screenshot"]
    assert shots and all(step.frame is not None for step in shots)
    for step in shots:
        path = trajectory.frame_path(step)
        assert path is not None and path.read_bytes().startswith(b"\x89PNG")


@PROVIDERS
async def test_a_model_api_error_is_an_error_outcome_without_the_key(
    orgo: Orgo, computer: Computer, provider: str, tmp_path: Path
) -> None:
    async with ScriptedModel(fail=401) as server:
        result = await run(orgo, computer, provider, server, record=tmp_path)
    assert result.outcome == "error" and result.error is not None
    assert KEY not in str(result.error) and KEY not in repr(result.error)
    assert KEY not in (tmp_path / "trajectory.jsonl").read_text()
    assert load_trajectory(tmp_path).outcome == "error"


async def test_arguments_are_checked_before_any_io(orgo: Orgo, computer: Computer) -> None:
    for options, message in [
        ({"provider": "gemini"}, "provider must be one of"),
        ({"max_steps": 0}, "max_steps must be"),
        ({"timeout": 0}, "timeout must be"),
        ({"transport": "ssh"}, "transport must be one of"),
        ({"provider": "openai", "confirm": yes}, "confirm applies"),
        ({"on_step": 42}, "on_step must be callable"),
    ]:
        arguments: dict[str, Any] = {"provider": "anthropic", "model": "m", **options}
        with pytest.raises(ValueError, match=message):
            await run_agent(orgo, computer, "task", **arguments)
    with pytest.raises(ValueError, match="instruction"):
        await run_agent(orgo, computer, " ", provider="anthropic", model="m")
