"""``orgo.chat``: the hosted agent, as OpenAI-compatible chat completions, and its threads.

``orgo.chat.completions.create(computer_id=..., messages=[...])`` runs Orgo's
agent on a computer until it is done (``POST /v1/chat/completions`` under the
API root) and returns a :class:`~orgo_async.ChatCompletion`; with
``stream=True`` it returns a :class:`ChatCompletionStream` of
:class:`~orgo_async.ChatCompletionChunk` read from the Server-Sent Events
until ``[DONE]``. ``orgo.chat.threads`` lists, creates, reads, updates and
deletes the threads those runs are stored in (``/chat/threads``).

The model is sent as given: any non-empty string. Orgo documents
:data:`~orgo_async.CHAT_MODELS`, and answers ``invalid_model`` for others;
the SDK does not refuse a model Orgo may have added since.

Bring-your-own Anthropic key: ``anthropic_api_key=`` travels in the
``x-anthropic-key`` header, to the API's origin only, and is never kept,
logged or put in an error message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal, TypedDict, Unpack, overload

import attrs
from cattrs.gen import make_dict_structure_fn, override

from .._checks import check_id, check_int, check_text, optional
from .._config import Timeouts
from .._converter import converter, structure
from .._http import Response
from .._sse import EventSource, open_events
from ..chat_models import (
    CHAT_MODELS,
    ChatCompletion,
    ChatCompletionChunk,
    ChatThread,
    OrgoRunInfo,
)
from ..errors import APIError, ResponseValidationError, _error_class_for
from ._base import Resource, path_id

__all__ = ["Chat", "ChatCompletionStream", "Completions", "Threads"]

COMPLETIONS_PATH = "/v1/chat/completions"
THREADS_PATH = "/chat/threads"
ROLES = ("user", "assistant")
AGENT_TIMEOUT = 600.0
"""Seconds an agent run may take by default (non-streamed: the whole call; streamed:
the longest silence between two events). ``timeout=`` overrides it."""

# The codes Orgo sends inside a stream, and the status each would have had.
_STREAM_ERROR_STATUS = {
    "invalid_api_key": 401,
    "credits_exhausted": 402,
    "computer_not_found": 404,
    "computer_not_running": 409,
    "context_overflow": 400,
}

# -- the wire format ------------------------------------------------------------

_thread_fields = make_dict_structure_fn(
    ChatThread,
    converter,
    desktop_id=override(rename="desktopId"),
    external_id=override(rename="externalId"),
    created_at=override(rename="createdAt"),
    updated_at=override(rename="updatedAt"),
)


def _structure_thread(data: Any, _: type) -> ChatThread:
    if not isinstance(data, dict):
        raise ValueError(f"expected an object, got {type(data).__name__}")
    if isinstance(data.get("thread"), dict):
        data = data["thread"]
    fields = {k: v for k, v in data.items() if v is not None}
    if "id" not in fields and isinstance(fields.get("remoteId"), str):
        fields["id"] = fields["remoteId"]  # a create answers {remoteId, externalId?}
    return _thread_fields(fields, ChatThread)


converter.register_structure_hook(ChatThread, _structure_thread)


# -- argument checks ------------------------------------------------------------


def _check_messages(messages: object) -> list[dict[str, str]]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(
            f"messages must be a non-empty list of {{role, content}}; got {messages!r}"
        )
    checked: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ValueError(f"messages[{i}] must be a {{role, content}} mapping; got {message!r}")
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"messages[{i}].role must be one of {', '.join(ROLES)}; got {role!r}")
        content = message.get("content")
        if not isinstance(content, str):
            raise ValueError(
                f"messages[{i}].content must be a string; got {type(content).__name__}"
            )
        checked.append({"role": role, "content": content})
    if checked[0]["role"] != "user":
        raise ValueError("messages[0].role must be user: a conversation starts with the user")
    return checked


def _check_secret_header(name: str, value: object) -> str:
    # The message never quotes the value: it is a secret.
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    if any(c in value for c in "\r\n\0") or value != value.strip():
        raise ValueError(f"{name} must be one line without surrounding spaces")
    return value


def _timeouts(session_timeouts: Timeouts, override: Timeouts | float | None) -> Timeouts:
    if isinstance(override, Timeouts):
        return override
    # A number bounds the whole run: the wait for the answer, the attempt and the call.
    seconds = AGENT_TIMEOUT if override is None else override
    return session_timeouts.replace(read=seconds, request=seconds, total=seconds)


# -- completions ----------------------------------------------------------------


class ChatCompletionStream:
    """The chunks of a streamed agent run; ``async for chunk in stream``.

    Also an async context manager that closes the connection on exit (as
    does :meth:`close`, and reaching ``[DONE]``). :attr:`thread_id` and
    :attr:`request_id` come from the headers, before the first chunk.
    """

    def __init__(self, events: EventSource) -> None:
        self._events = events
        self.thread_id: str | None = events.headers.get("X-Thread-Id")
        """The run's thread (``X-Thread-Id``)."""
        self.request_id: str | None = events.headers.get("X-Request-Id")
        """``X-Request-Id``."""
        self._iterator: AsyncIterator[ChatCompletionChunk] | None = None

    def __repr__(self) -> str:
        return f"<ChatCompletionStream thread_id={self.thread_id!r}>"

    async def __aenter__(self) -> ChatCompletionStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (idempotent); a run on Orgo's side may continue."""
        await self._events.close()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        if self._iterator is None:
            self._iterator = self._chunks()
        return self._iterator

    async def __anext__(self) -> ChatCompletionChunk:
        return await self.__aiter__().__anext__()

    async def text(self) -> str:
        """Read the rest of the stream; the assistant's text it carried."""
        return "".join([chunk.content async for chunk in self])

    async def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            async for data in self._events:
                if data.strip() == "[DONE]":
                    return
                try:
                    payload = json.loads(data)
                except ValueError as exc:
                    raise ResponseValidationError(
                        "ChatCompletionChunk", ["an event that is not JSON"]
                    ) from exc
                if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
                    raise _stream_error(payload["error"], self._events)
                chunk = structure(payload, ChatCompletionChunk)
                if chunk.orgo is not None and chunk.orgo.thread_id:
                    self.thread_id = chunk.orgo.thread_id
                yield chunk
        finally:
            await self.close()


def _stream_error(error: Mapping[str, Any], events: EventSource) -> APIError:
    code = error.get("code")
    code = code if isinstance(code, str) else None
    status = _STREAM_ERROR_STATUS.get(code or "", 500)
    return _error_class_for(status)(
        status=status,
        message=str(error.get("message") or "the agent run failed"),
        code=code,
        request_id=events.headers.get("X-Request-Id"),
        method="POST",
        path=COMPLETIONS_PATH,
        body={"error": dict(error)},
    )


class _RunOptions(TypedDict, total=False):
    """The keywords of :meth:`Completions.create` other than the computer, messages and stream."""

    model: str
    thread_id: str | None
    max_steps: int | None
    anthropic_api_key: str | None
    timeout: Timeouts | float | None


class Completions(Resource):
    """Agent runs; reach it as ``orgo.chat.completions``."""

    @overload
    async def create(
        self,
        *,
        computer_id: str,
        messages: Sequence[Mapping[str, str]],
        stream: Literal[False] = ...,
        **options: Unpack[_RunOptions],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        computer_id: str,
        messages: Sequence[Mapping[str, str]],
        stream: Literal[True],
        **options: Unpack[_RunOptions],
    ) -> ChatCompletionStream: ...

    async def create(
        self,
        *,
        computer_id: str,
        messages: Sequence[Mapping[str, str]],
        model: str = CHAT_MODELS[0],
        thread_id: str | None = None,
        max_steps: int | None = None,
        stream: bool = False,
        anthropic_api_key: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> ChatCompletion | ChatCompletionStream:
        """Run the agent on a computer until it is done.

        Args:
            computer_id: The running computer's UUID.
            messages: ``{role, content}`` mappings, ``role`` ``user`` or
                ``assistant``, the first ``user``; with ``thread_id`` only the
                new ones (the thread holds the rest).
            model: Any non-empty string; Orgo documents :data:`~orgo_async.CHAT_MODELS`.
            thread_id: Continue this thread; otherwise a new one is made
                (:attr:`ChatCompletion.thread_id`).
            max_steps: At most this many agent steps (Orgo's default: 100).
            stream: Return a :class:`ChatCompletionStream` of chunks instead.
            anthropic_api_key: Bill your own Anthropic account (``x-anthropic-key``).
            timeout: This call's timeouts; by default :data:`AGENT_TIMEOUT`
                seconds for the run (streamed: between two events).

        Raises:
            ValueError: a bad argument, before any request.
            InvalidRequestError: ``invalid_model``, ``invalid_message_order``... (its ``code``).
            PaymentRequiredError: ``credits_exhausted``.
            NotFoundError: ``computer_not_found``.
        """
        body: dict[str, Any] = {
            "computer_id": check_id("computer_id", computer_id),
            "messages": _check_messages(messages),
            "model": check_text("model", model, max_length=200),
            "stream": stream,
        }
        if optional(check_id)("thread_id", thread_id) is not None:
            body["thread_id"] = thread_id
        if optional(check_int)("max_steps", max_steps, minimum=1) is not None:
            body["max_steps"] = max_steps
        if not isinstance(stream, bool):
            raise ValueError(f"stream must be True or False; got {stream!r}")
        headers = None
        if anthropic_api_key is not None:
            headers = {
                "x-anthropic-key": _check_secret_header("anthropic_api_key", anthropic_api_key)
            }
        session = self._session
        timeouts = _timeouts(session.timeouts, timeout)
        if stream:
            session.check_open()
            events = await open_events(
                session.transport,
                "POST",
                COMPLETIONS_PATH,
                json_body=body,
                headers=headers,
                timeouts=timeouts,
            )
            return ChatCompletionStream(events)
        response = await self._post(
            COMPLETIONS_PATH, cast_to=Response, json=body, headers=headers, timeout=timeouts
        )
        return _completion(response)


def _completion(response: Response) -> ChatCompletion:
    completion = structure(response.json(), ChatCompletion)
    header_thread = response.headers.get("X-Thread-Id")
    orgo = completion.orgo
    if header_thread and (orgo is None or not orgo.thread_id):
        orgo = attrs.evolve(orgo or OrgoRunInfo(), thread_id=header_thread)
    return attrs.evolve(completion, orgo=orgo, request_id=response.request_id)


# -- threads --------------------------------------------------------------------


class Threads(Resource):
    """The agent's conversations per computer; reach it as ``orgo.chat.threads``."""

    async def list(
        self, desktop_id: str, *, timeout: Timeouts | float | None = None
    ) -> list[ChatThread]:
        """Every thread of a computer (its UUID), most recent first, with their messages."""
        params = {"desktopId": check_id("desktop_id", desktop_id)}
        return await self._get(
            THREADS_PATH,
            cast_to=list[ChatThread],
            keys=("threads",),
            params=params,
            timeout=timeout,
        )

    async def create(
        self,
        desktop_id: str,
        *,
        local_id: str | None = None,
        timeout: Timeouts | float | None = None,
    ) -> ChatThread:
        """An empty thread on a computer; ``local_id`` comes back as ``external_id``.

        (Completions make their thread themselves: this is rarely needed.)
        """
        body = {"desktopId": check_id("desktop_id", desktop_id)}
        if local_id is not None:
            body["localId"] = check_text("local_id", local_id, max_length=512)
        thread = await self._post(THREADS_PATH, cast_to=ChatThread, json=body, timeout=timeout)
        return thread if thread.desktop_id else attrs.evolve(thread, desktop_id=desktop_id)

    async def get(self, thread_id: str, *, timeout: Timeouts | float | None = None) -> ChatThread:
        """A thread with its full message history.

        Raises:
            NotFoundError: no such thread.
        """
        path = f"{THREADS_PATH}/{path_id(thread_id, 'thread_id')}"
        return await self._get(path, cast_to=ChatThread, timeout=timeout)

    async def update(
        self,
        thread_id: str,
        *,
        title: str | None = None,
        messages: Sequence[Mapping[str, str]] | None = None,
        archive: bool | None = None,
        timeout: Timeouts | float | None = None,
    ) -> ChatThread:
        """Rename, replace the messages of (a full overwrite), archive or unarchive a thread.

        ``archive=False`` unarchives. At least one change is required.

        Raises:
            ValueError: no change, or a bad one, before any request.
            NotFoundError: no such thread.
        """
        path = f"{THREADS_PATH}/{path_id(thread_id, 'thread_id')}"
        body: dict[str, Any] = {}
        if title is not None:
            body["title"] = check_text("title", title, max_length=500)
        if messages is not None:
            body["messages"] = _check_messages(messages)
        if archive is not None:
            if not isinstance(archive, bool):
                raise ValueError(f"archive must be True, False or None; got {archive!r}")
            body["archive" if archive else "unarchive"] = True
        if not body:
            raise ValueError("update needs at least one of title, messages, archive")
        return await self._patch(path, cast_to=ChatThread, json=body, timeout=timeout)

    async def delete(self, thread_id: str, *, timeout: Timeouts | float | None = None) -> None:
        """Delete a thread.

        Raises:
            NotFoundError: no such thread.
        """
        await self._delete(f"{THREADS_PATH}/{path_id(thread_id, 'thread_id')}", timeout=timeout)


class Chat:
    """The hosted agent: ``orgo.chat.completions`` and ``orgo.chat.threads``."""

    def __init__(self, completions: Completions, threads: Threads) -> None:
        self.completions = completions
        """Agent runs (OpenAI-compatible chat completions)."""
        self.threads = threads
        """The runs' conversations, per computer."""

    def __repr__(self) -> str:
        return "<Chat>"
