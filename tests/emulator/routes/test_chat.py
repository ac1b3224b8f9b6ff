"""The emulator's hosted agent on the wire: codes, error shape, headers, SSE, threads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orgo_async._sse import SSEDecoder
from orgo_async.emulator import BootTime, EmulatorConfig
from orgo_async.emulator.routes.chat import HELP, plan

from ..rest import Api, Pc

PATH = "/api/v1/chat/completions"


@pytest.fixture
def config() -> EmulatorConfig:
    return EmulatorConfig(boot=BootTime.fixed(0.005), stop_seconds=0.005, seed=5)


def run(pc: Pc, content: str = "run: echo hi; exit 3", **fields: Any) -> dict[str, Any]:
    return {"computer_id": pc.id, "messages": [{"role": "user", "content": content}], **fields}


U = {"role": "user", "content": "x"}
A = {"role": "assistant", "content": "x"}
PC = "{pc}"  # the test's computer


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"messages": [U]}, 400, "missing_computer_id"),
        ({"computer_id": "", "messages": [U]}, 400, "missing_computer_id"),
        ({"computer_id": PC, "messages": []}, 400, "empty_messages"),
        ({"computer_id": PC}, 400, "empty_messages"),
        ({"computer_id": PC, "messages": [U], "model": "gpt-4o"}, 400, "invalid_model"),
        ({"computer_id": PC, "messages": [A]}, 400, "invalid_message_order"),
        ({"computer_id": PC, "messages": [{**U, "role": "system"}]}, 400, "invalid_message_order"),
        ({"computer_id": PC, "messages": [U, A]}, 400, "invalid_message_order"),
        ({"computer_id": PC, "messages": [{**U, "content": 1}]}, 400, "invalid_json"),
        ({"computer_id": "nope", "messages": [U]}, 404, "computer_not_found"),
    ],
)
async def test_bad_input_answers_the_documented_code_in_the_chat_error_shape(
    api: Api, pc: Pc, body: dict[str, Any], status: int, code: str
) -> None:
    if body.get("computer_id") == PC:
        body = {**body, "computer_id": pc.id}
    reply = await api.call("POST", PATH, body)
    assert reply.status == status
    assert reply.body["error"]["code"] == code
    assert set(reply.body["error"]) == {"type", "message", "code"}
    assert api.emu.chat.runs == 0


async def test_a_body_that_is_not_json_answers_invalid_json(api: Api) -> None:
    headers = {"Content-Type": "application/json"}
    reply = await api.call("POST", PATH, data=b"{nope", headers=headers)
    assert (reply.status, reply.body["error"]["code"]) == (400, "invalid_json")


async def test_a_completion_runs_the_command_and_names_its_thread_in_headers(
    api: Api, pc: Pc
) -> None:
    reply = await api.call("POST", PATH, run(pc))
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "$ echo hi; exit 3\nhi\n[exit code 3]",
    }
    assert reply.headers["X-Request-Id"] == body["id"] and body["id"].startswith("chatcmpl-")
    assert reply.headers["X-Thread-Id"] == body["orgo"]["thread_id"]
    assert body["orgo"]["steps"] == 1 and body["orgo"]["cost_cents"] == 2.0
    assert api.emu.counters.bash_runs == 1
    thread = await api.call("GET", f"/api/chat/threads/{body['orgo']['thread_id']}")
    assert [m["role"] for m in thread.body["messages"]] == ["user", "assistant"]


async def test_a_streamed_completion_is_sse_chunks_ending_with_done(api: Api, pc: Pc) -> None:
    reply = await api.call("POST", PATH, run(pc, "```bash\necho one\necho two\n```", stream=True))
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    assert reply.headers["X-Request-Id"].startswith("chatcmpl-") and reply.headers["X-Thread-Id"]
    decoder = SSEDecoder()
    events = [e for line in reply.raw.decode().split("\n") if (e := decoder.feed(line))]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "$ echo one\necho two\none\ntwo\n[exit code 0]"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["orgo"]["thread_id"] == reply.headers["X-Thread-Id"]


async def test_a_stopped_computer_and_a_foreign_thread_are_refused(api: Api, pc: Pc) -> None:
    other = await api.running_pc(await api.workspace("other"), "c2")
    first = await api.call("POST", PATH, run(other))
    foreign = await api.call("POST", PATH, run(pc, thread_id=first.body["orgo"]["thread_id"]))
    assert (foreign.status, foreign.body["error"]["code"]) == (404, "thread_not_found")
    assert (await api.call("POST", f"/api/computers/{pc.id}/stop")).status == 200
    stopped = await api.call("POST", PATH, run(pc))
    assert (stopped.status, stopped.body["error"]["code"]) == (409, "computer_not_running")


async def test_threads_routes_and_their_cleanup_with_the_computer(api: Api, pc: Pc) -> None:
    made = await api.call("POST", "/api/chat/threads", {"desktopId": pc.id, "localId": "l1"})
    assert made.status == 201 and made.body["externalId"] == "l1"
    thread_id = made.body["remoteId"]
    listed = await api.call("GET", "/api/chat/threads", params={"desktopId": pc.id})
    assert [t["id"] for t in listed.body["threads"]] == [thread_id]
    patched = await api.call(
        "PATCH", f"/api/chat/threads/{thread_id}", {"title": "T", "archive": True}
    )
    assert (patched.body["title"], patched.body["status"]) == ("T", "archived")
    both = await api.call(
        "PATCH", f"/api/chat/threads/{thread_id}", {"archive": True, "unarchive": True}
    )
    assert both.status == 400
    missing = await api.call("GET", "/api/chat/threads")
    assert missing.status == 400
    assert (await api.call("DELETE", f"/api/computers/{pc.id}")).status == 200
    gone = await api.call("GET", f"/api/chat/threads/{thread_id}")
    assert (gone.status, gone.body["code"]) == (404, "thread_not_found")


def test_the_scripted_agent_plans_from_the_message() -> None:
    assert plan("run: echo hi; exit 3") == ("run", "echo hi; exit 3")
    assert plan("  RUN:  ls -la  ") == ("run", "ls -la")
    assert plan("please\n```sh\nls\n```\nthanks") == ("run", "ls\n")
    assert plan("Screenshot.") == ("screenshot", "")
    assert plan("run:") == ("help", "")
    assert plan("open firefox") == ("help", "")
    assert "run: <command>" in HELP


def test_the_sse_decoder_joins_data_lines_and_skips_the_rest() -> None:
    decoder = SSEDecoder()
    lines = [": comment", "event: x", "data: a", "data:b", "", "", "id: 3", "data: [DONE]"]
    assert [d for line in lines if (d := decoder.feed(line)) is not None] == ["a\nb"]
    assert decoder.end() == "[DONE]"
