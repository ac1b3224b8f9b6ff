"""The official ``openai`` client pointed at the emulator's hosted agent, streamed and not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from orgo_async import Computer, Orgo, Workspace
from orgo_async.emulator import Emulator

openai = pytest.importorskip("openai")

RUN = [{"role": "user", "content": "run: echo hi; exit 3"}]
ANSWER = "$ echo hi; exit 3\nhi\n[exit code 3]"


@pytest.fixture
async def computer(orgo: Orgo, workspace: Workspace) -> Computer:
    return (await orgo.computers.launch(workspace_id=workspace.id, name="openai")).computer


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[Any]:
    client = openai.AsyncOpenAI(
        base_url=emulator.base_url + "/v1", api_key=emulator.api_key, max_retries=0
    )
    async with client:
        yield client


async def test_a_completion_through_the_openai_client(
    client: Any, computer: Computer, orgo: Orgo
) -> None:
    response = await client.chat.completions.create(
        model="claude-sonnet-4.6", messages=RUN, extra_body={"computer_id": computer.id}
    )
    assert response.choices[0].message.content == ANSWER
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "claude-sonnet-4.6"
    thread_id = response.orgo["thread_id"]
    again = await client.chat.completions.create(
        model="claude-opus-4.6",
        messages=[{"role": "user", "content": "run: echo two"}],
        extra_body={"computer_id": computer.id, "thread_id": thread_id},
    )
    assert again.orgo["thread_id"] == thread_id
    assert len((await orgo.chat.threads.get(thread_id)).messages) == 4


async def test_a_stream_through_the_openai_client(client: Any, computer: Computer) -> None:
    stream = await client.chat.completions.create(
        model="claude-sonnet-4.6",
        messages=RUN,
        extra_body={"computer_id": computer.id},
        stream=True,
    )
    text = ""
    finish = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert text == ANSWER and finish == "stop"


async def test_errors_reach_the_openai_client_with_their_codes(
    client: Any, computer: Computer
) -> None:
    with pytest.raises(openai.BadRequestError) as order:
        await client.chat.completions.create(
            model="claude-sonnet-4.6",
            messages=[{"role": "assistant", "content": "I start"}],
            extra_body={"computer_id": computer.id},
        )
    assert order.value.code == "invalid_message_order"
    with pytest.raises(openai.BadRequestError) as missing:
        await client.chat.completions.create(model="claude-sonnet-4.6", messages=RUN)
    assert missing.value.code == "missing_computer_id"
    with pytest.raises(openai.NotFoundError) as gone:
        await client.chat.completions.create(
            model="claude-sonnet-4.6", messages=RUN, extra_body={"computer_id": "nope"}
        )
    assert gone.value.code == "computer_not_found"
