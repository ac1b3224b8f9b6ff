"""orgo.chat against the emulator: agent runs that act on the computer, threads, errors, secrets."""

from __future__ import annotations

import asyncio
import logging

import pytest

from orgo_async import (
    ChatCompletion,
    ChatCompletionStream,
    Computer,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    Orgo,
    PaymentRequiredError,
    Workspace,
)
from orgo_async.emulator import Emulator

RUN = [{"role": "user", "content": "run: echo hi; exit 3"}]
BYOK = "sk-ant-byok-secret-0123456789"


@pytest.fixture
async def computer(orgo: Orgo, workspace: Workspace) -> Computer:
    return (await orgo.computers.launch(workspace_id=workspace.id, name="agent")).computer


def chat_requests(emulator: Emulator) -> int:
    return emulator.counters.requests.get("POST /api/v1/chat/completions", 0)


async def test_a_run_executes_the_command_on_the_computer_and_answers_its_output(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    answer = await orgo.chat.completions.create(computer_id=computer.id, messages=RUN)
    assert isinstance(answer, ChatCompletion)
    assert answer.object == "chat.completion" and answer.model == "claude-sonnet-4.6"
    assert answer.content == "$ echo hi; exit 3\nhi\n[exit code 3]"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.id.startswith("chatcmpl-") and answer.request_id == answer.id
    assert answer.orgo is not None and answer.orgo.steps == 1
    assert answer.orgo.cost_cents == 2.0 and answer.orgo.credit_balance_cents == 9998.0
    assert answer.usage is not None and answer.usage.total_tokens > 0
    assert emulator.counters.bash_runs == 1
    # Real: a file the agent makes is on the computer's disk afterwards.
    await orgo.chat.completions.create(
        computer_id=computer.id,
        messages=[{"role": "user", "content": "Please:\n```sh\necho made > by-agent.txt\n```"}],
    )
    listing = await orgo.desktop(computer).bash("cat by-agent.txt")
    assert listing.output.strip() == "made"


async def test_a_streamed_run_yields_typed_chunks_up_to_done(
    orgo: Orgo, computer: Computer
) -> None:
    stream = await orgo.chat.completions.create(
        computer_id=computer.id, messages=RUN, stream=True, model="claude-opus-4.6"
    )
    assert isinstance(stream, ChatCompletionStream)
    assert stream.thread_id is not None and stream.request_id is not None
    async with stream:
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == "claude-opus-4.6" for c in chunks)
    assert "".join(c.content for c in chunks) == "$ echo hi; exit 3\nhi\n[exit code 3]"
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.orgo is not None and last.orgo.thread_id == stream.thread_id
    assert last.orgo.steps == 1
    thread = await orgo.chat.threads.get(stream.thread_id)
    assert [m.content for m in thread.messages][-1] == "$ echo hi; exit 3\nhi\n[exit code 3]"


async def test_a_stream_read_as_text_and_one_left_early(orgo: Orgo, computer: Computer) -> None:
    stream = await orgo.chat.completions.create(
        computer_id=computer.id,
        messages=[{"role": "user", "content": "screenshot"}],
        stream=True,
    )
    text = await stream.text()
    assert text.startswith("Took a screenshot of the screen: 1280x720 PNG, ")
    assert text.endswith(" bytes.")
    early = await orgo.chat.completions.create(computer_id=computer.id, messages=RUN, stream=True)
    async with early:
        async for _chunk in early:
            break
    # The session still works after a stream was abandoned half-way.
    help_text = await orgo.chat.completions.create(
        computer_id=computer.id, messages=[{"role": "user", "content": "hello"}]
    )
    assert help_text.content is not None and "run: <command>" in help_text.content
    assert help_text.orgo is not None and help_text.orgo.steps == 0


async def test_threads_continue_and_hold_every_message(orgo: Orgo, computer: Computer) -> None:
    first = await orgo.chat.completions.create(computer_id=computer.id, messages=RUN)
    assert first.thread_id is not None
    second = await orgo.chat.completions.create(
        computer_id=computer.id,
        messages=[{"role": "user", "content": "run: echo again"}],
        thread_id=first.thread_id,
        stream=False,
    )
    assert second.thread_id == first.thread_id
    thread = await orgo.chat.threads.get(first.thread_id)
    assert [m.role for m in thread.messages] == ["user", "assistant", "user", "assistant"]
    assert thread.messages[3].content == "$ echo again\nagain\n[exit code 0]"
    assert thread.desktop_id == computer.id and thread.status == "active"
    other = await orgo.chat.completions.create(computer_id=computer.id, messages=RUN)
    listed = await orgo.chat.threads.list(computer.id)
    assert [t.id for t in listed] == [other.thread_id, first.thread_id]


async def test_thread_crud(orgo: Orgo, computer: Computer) -> None:
    made = await orgo.chat.threads.create(computer.id, local_id="local-1")
    assert made.external_id == "local-1" and made.desktop_id == computer.id
    renamed = await orgo.chat.threads.update(made.id, title="Setup")
    assert renamed.title == "Setup" and renamed.messages == []
    archived = await orgo.chat.threads.update(made.id, archive=True)
    assert archived.status == "archived"
    assert (await orgo.chat.threads.update(made.id, archive=False)).status == "active"
    replaced = await orgo.chat.threads.update(
        made.id,
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    )
    assert [m.content for m in replaced.messages] == ["hi", "yo"]
    # A run continues a thread made by hand.
    run = await orgo.chat.completions.create(
        computer_id=computer.id, messages=RUN, thread_id=made.id
    )
    assert run.thread_id == made.id
    assert len((await orgo.chat.threads.get(made.id)).messages) == 4
    await orgo.chat.threads.delete(made.id)
    with pytest.raises(NotFoundError) as caught:
        await orgo.chat.threads.get(made.id)
    assert caught.value.code == "thread_not_found"
    with pytest.raises(ValueError, match="at least one"):
        await orgo.chat.threads.update(made.id)


async def test_errors_map_to_classes_with_their_codes(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    with pytest.raises(NotFoundError) as missing:
        await orgo.chat.completions.create(computer_id="no-such-computer", messages=RUN)
    assert missing.value.code == "computer_not_found" and missing.value.status == 404
    with pytest.raises(InvalidRequestError) as model:
        await orgo.chat.completions.create(computer_id=computer.id, messages=RUN, model="gpt-4o")
    assert model.value.code == "invalid_model" and "claude-sonnet-4.6" in model.value.message
    with pytest.raises(InvalidRequestError) as streamed:
        await orgo.chat.completions.create(
            computer_id=computer.id, messages=RUN, model="gpt-4o", stream=True
        )
    assert streamed.value.code == "invalid_model"
    with pytest.raises(NotFoundError) as thread:
        await orgo.chat.completions.create(
            computer_id=computer.id, messages=RUN, thread_id="no-such-thread"
        )
    assert thread.value.code == "thread_not_found"
    emulator.chat.credit_balance_cents = 0
    with pytest.raises(PaymentRequiredError) as broke:
        await orgo.chat.completions.create(computer_id=computer.id, messages=RUN)
    assert broke.value.code == "credits_exhausted" and broke.value.status == 402
    with pytest.raises(PaymentRequiredError):
        await orgo.chat.completions.create(computer_id=computer.id, messages=RUN, stream=True)
    # With one's own Anthropic key nothing is charged, so an empty balance does not matter.
    paid = await orgo.chat.completions.create(
        computer_id=computer.id, messages=RUN, anthropic_api_key=BYOK
    )
    assert paid.orgo is not None and paid.orgo.cost_cents == 0 and "hi" in (paid.content or "")


async def test_an_error_during_a_stream_is_raised_with_its_code(
    orgo: Orgo, computer: Computer
) -> None:
    stream = await orgo.chat.completions.create(
        computer_id=computer.id,
        messages=[{"role": "user", "content": "run: sleep 30"}],
        stream=True,
    )
    async with stream:
        first = await stream.__anext__()
        assert first.choices[0].delta.role == "assistant"
        await orgo.computers.delete(computer.id)
        with pytest.raises(ConflictError) as caught:
            await stream.__anext__()
    assert caught.value.code == "computer_not_running"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"messages": []}, "messages"),
        ({"messages": "run: ls"}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, r"messages\[0\].role"),
        ({"messages": [{"role": "user", "content": 3}]}, r"messages\[0\].content"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, r"messages\[0\].role"),
        ({"computer_id": ""}, "computer_id"),
        ({"computer_id": "a/b"}, "computer_id"),
        ({"model": " "}, "model"),
        ({"max_steps": 0}, "max_steps"),
        ({"thread_id": ""}, "thread_id"),
        ({"stream": "yes"}, "stream"),
        ({"anthropic_api_key": "sk-ant-x\r\nX-Evil: 1"}, "anthropic_api_key"),
        ({"anthropic_api_key": ""}, "anthropic_api_key"),
    ],
)
async def test_bad_arguments_are_refused_before_sending(
    orgo: Orgo, computer: Computer, emulator: Emulator, kwargs: dict[str, object], field: str
) -> None:
    arguments: dict[str, object] = {"computer_id": computer.id, "messages": RUN, **kwargs}
    with pytest.raises(ValueError, match=field) as caught:
        await orgo.chat.completions.create(**arguments)  # type: ignore[call-overload]
    assert "X-Evil" not in str(caught.value) and "sk-ant" not in str(caught.value)
    assert chat_requests(emulator) == 0


async def test_the_anthropic_key_is_never_in_a_repr_log_or_error(
    orgo: Orgo, computer: Computer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await orgo.chat.completions.create(
        computer_id=computer.id, messages=RUN, anthropic_api_key=BYOK
    )
    stream = await orgo.chat.completions.create(
        computer_id=computer.id, messages=RUN, anthropic_api_key=BYOK, stream=True
    )
    shown = [repr(orgo), repr(orgo.chat), repr(orgo.chat.completions), repr(answer), repr(stream)]
    await stream.close()
    with pytest.raises(NotFoundError) as caught:
        await orgo.chat.completions.create(computer_id="gone", messages=RUN, anthropic_api_key=BYOK)
    shown += [str(caught.value), repr(caught.value), repr(caught.value.body)]
    assert all(BYOK not in text for text in shown)
    assert caplog.records and BYOK not in caplog.text


async def test_a_run_waits_for_a_slow_command_past_the_session_read_timeout(
    emulator: Emulator, computer: Computer
) -> None:
    from orgo_async import Timeouts

    async with Orgo(
        api_key=emulator.api_key, base_url=emulator.base_url, timeouts=Timeouts(read=0.2)
    ) as orgo:
        answer = await orgo.chat.completions.create(
            computer_id=computer.id,
            messages=[{"role": "user", "content": "run: sleep 0.5; echo ok"}],
        )
        assert answer.content is not None and "ok\n[exit code 0]" in answer.content
        await asyncio.sleep(0)
