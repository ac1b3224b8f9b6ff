"""The hosted agent: ``POST /api/v1/chat/completions`` and ``/api/chat/threads``.

The agent is scripted and deterministic, and what it does is real: the last
user message decides.

- ``run: <command>`` (the rest of the message), or a fenced shell block
  (```` ```sh ````), runs the command with the computer's bash, as the
  ``bash`` action does, and answers with its output and exit code;
- ``screenshot`` takes one of the computer's screen and answers with its size;
- anything else answers :data:`HELP`.

Answers are OpenAI's ``chat.completion`` plus ``orgo`` (thread, steps, cost,
balance), or with ``stream: true`` ``chat.completion.chunk`` events over SSE
ending with ``data: [DONE]``. Every run is stored in a thread (a new one, or
``thread_id``'s); ``X-Thread-Id`` and ``X-Request-Id`` (the ``chatcmpl-`` id)
head the answer. Bad input answers Orgo's chat error shape
``{"error": {"type", "message", "code"}}`` with the documented codes.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
from aiohttp import web

from ..chat_state import MODELS, ChatState, Thread
from ..commands import bash_argv
from ..store import ApiError, Computer
from ._base import boolean, emulator_of, integer, invalid, ok, optional_str, read_json, show, text

if TYPE_CHECKING:
    from ..app import Emulator

__all__ = [
    "CHAT_KEY",
    "HELP",
    "add_routes",
    "chat_completions",
    "create_thread",
    "delete_thread",
    "get_thread",
    "list_threads",
    "plan",
    "update_thread",
]

CHAT_KEY: Final[web.AppKey[ChatState]] = web.AppKey("orgo_emulator_chat")
"""Where the chat handlers find the emulator's :class:`~..chat_state.ChatState`."""

HELP: Final = (
    "I am the emulator's scripted agent. Say 'run: <command>' (or send a ```sh block) "
    "to run a shell command on this computer, or 'screenshot' to take a screenshot."
)
COMMAND_TIMEOUT: Final = 120
"""Seconds a command of the agent may run (then it is killed, exit code 124)."""
DEFAULT_MAX_STEPS: Final = 100

_FENCE = re.compile(r"```(?:bash|sh|shell|console)?[ \t]*\n(.*?)```", re.DOTALL)
_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_credits",
    404: "not_found_error",
    409: "invalid_request_error",
}


def add_routes(router: web.UrlDispatcher) -> None:
    """Map the completions path (OpenAI-compatible, under ``/api/v1``) and the threads'."""
    add = router.add_route
    add("POST", "/api/v1/chat/completions", chat_completions)
    add("GET", "/api/chat/threads", list_threads)
    add("POST", "/api/chat/threads", create_thread)
    add("GET", "/api/chat/threads/{thread_id}", get_thread)
    add("PATCH", "/api/chat/threads/{thread_id}", update_thread)
    add("DELETE", "/api/chat/threads/{thread_id}", delete_thread)


def plan(message: str) -> tuple[str, str]:
    """What the agent does for a user message: ``("run", command)``, ``("screenshot", "")``
    or ``("help", "")``."""
    stripped = message.strip()
    if stripped.lower().startswith("run:") and stripped[4:].strip():
        return "run", stripped[4:].strip()
    fence = _FENCE.search(message)
    if fence is not None and fence.group(1).strip():
        return "run", fence.group(1)
    if stripped.lower().rstrip(".!") in ("screenshot", "take a screenshot"):
        return "screenshot", ""
    return "help", ""


# --------------------------------------------------------------------------- completions


def _chat_error(exc: ApiError) -> web.Response:
    kind = _ERROR_TYPES.get(
        exc.status, "api_error" if exc.status >= 500 else "invalid_request_error"
    )
    body = {"error": {"type": kind, "message": exc.message, "code": exc.code}}
    return web.json_response(body, status=exc.status, headers=exc.headers)


def _messages(value: object) -> list[dict[str, str]]:
    """The request's messages, checked as Orgo checks them."""
    if not isinstance(value, list) or not value:
        raise ApiError(400, "empty_messages", "messages must be a non-empty array")
    checked: list[dict[str, str]] = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise ApiError(400, "invalid_json", f"messages[{i}] must be an object")
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise ApiError(
                400,
                "invalid_message_order",
                f"messages[{i}].role must be user or assistant, got {show(role)}",
            )
        if not isinstance(content, str):
            raise ApiError(400, "invalid_json", f"messages[{i}].content must be a string")
        checked.append({"role": role, "content": content})
    if checked[0]["role"] != "user":
        raise ApiError(400, "invalid_message_order", "The first message must have role user")
    if checked[-1]["role"] != "user":
        raise ApiError(400, "invalid_message_order", "The last message must have role user")
    return checked


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/chat/completions ``{computer_id, messages, model, stream, thread_id,
    max_steps}``; header ``x-anthropic-key`` (bring your own key: nothing charged)."""
    try:
        return await _completion(request)
    except ApiError as exc:
        return _chat_error(exc)


async def _completion(request: web.Request) -> web.StreamResponse:
    emu = emulator_of(request)
    chat = request.app[CHAT_KEY]
    body = await read_json(request)
    computer_id = body.get("computer_id")
    if not isinstance(computer_id, str) or not computer_id:
        raise ApiError(400, "missing_computer_id", "computer_id is required")
    messages = _messages(body.get("messages"))
    model = body.get("model")
    if model is None:
        model = MODELS[0]
    if model not in MODELS:
        raise ApiError(
            400,
            "invalid_model",
            f"model must be one of {', '.join(MODELS)}, got {show(model)}",
        )
    stream = boolean(body, "stream", False)
    max_steps = integer(body, "max_steps", 1, None, DEFAULT_MAX_STEPS)
    thread_id = optional_str(body, "thread_id")
    store = emu.state
    computer = store.get_computer(computer_id)
    if not computer.is_running(store.now()):
        raise ApiError(409, "computer_not_running", "The computer is not running: start it first")
    own_key = bool(request.headers.get("x-anthropic-key", "").strip())
    chat.check_credits(own_key=own_key)
    if thread_id is not None:
        thread = chat.get(thread_id)
        if thread.desktop_id != computer.id:
            raise ApiError(404, "thread_not_found", "Thread not found for this computer")
    else:
        thread = chat.create(computer.id)
    run = _Run(emu, chat, computer, thread, messages, model=str(model), own_key=own_key)
    kind, argument = plan(messages[-1]["content"])
    if not stream:
        answer, steps = await run.act(kind, argument, max_steps)
        return web.json_response(run.completion(answer, steps), headers=run.headers)
    response = web.StreamResponse(
        headers={**run.headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await run.send(response, run.chunk({"role": "assistant", "content": ""}))
    try:
        answer, steps = await run.act(kind, argument, max_steps)
    except ApiError as exc:
        error = {"type": "api_error", "message": exc.message, "code": exc.code}
        await run.send(response, {"error": error})
    else:
        final = run.completion(answer, steps)
        for piece in answer.splitlines(keepends=True):
            await run.send(response, run.chunk({"content": piece}))
        last = run.chunk({}, finish_reason="stop")
        last["usage"], last["orgo"] = final["usage"], final["orgo"]
        await response.write(b"data: " + json.dumps(last).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _stopped() -> ApiError:
    return ApiError(409, "computer_not_running", "The computer stopped during the run")


@attrs.define(eq=False)
class _Run:
    """One agent run: what it does on the computer, and the answer's pieces."""

    emu: Emulator
    chat: ChatState
    computer: Computer
    thread: Thread
    messages: list[dict[str, str]]
    model: str = attrs.field(kw_only=True)
    own_key: bool = attrs.field(kw_only=True)
    cost: float = attrs.field(init=False, default=0.0)
    id: str = attrs.field(init=False, factory=lambda: "chatcmpl-" + secrets.token_hex(12))
    created: int = attrs.field(init=False, factory=lambda: int(time.time()))

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Request-Id": self.id, "X-Thread-Id": self.thread.id}

    async def act(self, kind: str, argument: str, max_steps: int) -> tuple[str, int]:
        """Do what the message asks on the computer; ``(answer, steps)``."""
        chat = self.chat
        chat.runs += 1
        if kind == "run":
            answer = await self._run(argument)
        elif kind == "screenshot":
            service = self.emu.desktops
            service.count("screenshot")
            png, width, height = await service.capture(self.computer, None, proxy=False)
            answer = f"Took a screenshot of the screen: {width}x{height} PNG, {len(png)} bytes."
        else:
            answer = HELP
        steps = min(0 if kind == "help" else 1, max_steps)
        self.cost = chat.charge(steps, own_key=self.own_key)
        thread = self.thread
        thread.messages.extend(self.messages)
        thread.messages.append({"role": "assistant", "content": answer})
        chat.touch(thread)
        return answer, steps

    async def _run(self, command: str) -> str:
        service = self.emu.desktops
        service.count("bash")
        service.store.counters.bash_runs += 1
        try:
            result = await service.commands.run(
                self.computer, bash_argv(command), timeout=COMMAND_TIMEOUT
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request is being cancelled
            # The computer's sandbox was being made when the computer went away.
            raise _stopped() from None
        except RuntimeError:  # the emulator is closing
            raise ApiError(503, "internal_error", "The agent stopped") from None
        except OSError as exc:
            raise ApiError(500, "internal_error", f"Could not run the command: {exc}") from None
        if result.interrupted:
            raise _stopped()
        output = (
            result.output
            if result.output.endswith("\n") or not result.output
            else (result.output + "\n")
        )
        lines = [f"$ {command.strip()}\n", output]
        if result.timed_out:
            lines.append(f"[timed out after {COMMAND_TIMEOUT} s]\n")
        if result.truncated:
            lines.append("[output truncated]\n")
        lines.append(f"[exit code {result.exit_code}]")
        return "".join(lines)

    def completion(self, answer: str, steps: int) -> dict[str, Any]:
        prompt = sum(len(m["content"].split()) for m in self.thread.messages[:-1])
        completion = len(answer.split())
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
            "orgo": {
                "thread_id": self.thread.id,
                "steps": steps,
                "cost_cents": self.cost,
                "credit_balance_cents": self.chat.credit_balance_cents,
            },
        }

    def chunk(self, delta: Mapping[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish_reason}],
        }

    @staticmethod
    async def send(response: web.StreamResponse, event: Mapping[str, Any]) -> None:
        await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")


# --------------------------------------------------------------------------- threads


def _thread_messages(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise invalid(f"messages must be an array of {{role, content}}, got {show(value)}")
    checked: list[dict[str, str]] = []
    for i, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("user", "assistant")
            or not isinstance(message.get("content"), str)
        ):
            raise invalid(f"messages[{i}] must be {{role: user|assistant, content: string}}")
        checked.append({"role": message["role"], "content": message["content"]})
    return checked


def _desktop(request: web.Request, desktop_id: str) -> Computer:
    return emulator_of(request).state.get_computer(desktop_id)


async def list_threads(request: web.Request) -> web.Response:
    """GET /api/chat/threads?desktopId=: the computer's threads, most recent first."""
    desktop_id = request.query.get("desktopId")
    if not desktop_id:
        raise invalid("desktopId is required: the computer's UUID")
    computer = _desktop(request, desktop_id)
    threads: Sequence[Thread] = request.app[CHAT_KEY].of(computer.id)
    return ok({"threads": [t.to_json() for t in threads]})


async def create_thread(request: web.Request) -> web.Response:
    """POST /api/chat/threads ``{desktopId, localId?}`` -> 201 ``{remoteId, externalId?}``."""
    body = await read_json(request)
    computer = _desktop(request, text(body, "desktopId", 512))
    local_id = optional_str(body, "localId")
    thread = request.app[CHAT_KEY].create(computer.id, local_id)
    answer = {"remoteId": thread.id}
    if local_id is not None:
        answer["externalId"] = local_id
    return ok(answer, status=201)


async def get_thread(request: web.Request) -> web.Response:
    """GET /api/chat/threads/{thread_id}: the thread with its messages."""
    return ok(request.app[CHAT_KEY].get(request.match_info["thread_id"]).to_json())


async def update_thread(request: web.Request) -> web.Response:
    """PATCH /api/chat/threads/{thread_id} ``{title?, messages? (full overwrite), archive?,
    unarchive?}``."""
    chat = request.app[CHAT_KEY]
    body = await read_json(request)
    thread = chat.get(request.match_info["thread_id"])
    title = optional_str(body, "title")
    messages = None if body.get("messages") is None else _thread_messages(body["messages"])
    archive, unarchive = boolean(body, "archive", False), boolean(body, "unarchive", False)
    if archive and unarchive:
        raise invalid("archive and unarchive cannot both be true")
    if title is not None:
        thread.title = title
    if messages is not None:
        thread.messages = messages
    if archive or unarchive:
        thread.archived = archive
    chat.touch(thread)
    return ok(thread.to_json())


async def delete_thread(request: web.Request) -> web.Response:
    """DELETE /api/chat/threads/{thread_id}."""
    thread_id = request.match_info["thread_id"]
    request.app[CHAT_KEY].delete(thread_id)
    return ok({"success": True, "id": thread_id})
