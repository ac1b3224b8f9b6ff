"""The hosted agent's data: OpenAI-shaped chat completions with Orgo's extension, and threads.

Like :mod:`orgo_async.models`, these classes know nothing of JSON keys: the
wire format (threads speak camelCase) is registered with the converter by
:mod:`orgo_async.resources.chat`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import attrs

__all__ = [
    "CHAT_MODELS",
    "ChatChoice",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatDelta",
    "ChatMessage",
    "ChatThread",
    "ChatUsage",
    "OrgoRunInfo",
]

CHAT_MODELS: Final = ("claude-sonnet-4.6", "claude-opus-4.6")
"""The models Orgo documents for ``/v1/chat/completions`` (the first is the default)."""


@attrs.frozen(kw_only=True)
class ChatMessage:
    """One message of a conversation: ``role`` (``user`` or ``assistant``) and its text."""

    role: str
    content: str | None = None


@attrs.frozen(kw_only=True)
class ChatUsage:
    """Token counts of the whole agent loop (every intermediate turn)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@attrs.frozen(kw_only=True)
class OrgoRunInfo:
    """Orgo's extension of a completion: the thread, the steps taken and what they cost."""

    thread_id: str | None = None
    """The thread the run was stored in: pass it as ``thread_id`` to continue."""
    steps: int | None = None
    """Agent steps (screenshot, action, observation) the run took."""
    cost_cents: float | None = None
    """Credits the run used (0 with your own Anthropic key)."""
    credit_balance_cents: float | None = None
    """The account's credit balance after the run."""


@attrs.frozen(kw_only=True)
class ChatChoice:
    """The final assistant message of a run."""

    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None


@attrs.frozen(kw_only=True)
class _Envelope:
    """What a completion and a streamed chunk share: ids, the model, usage, Orgo's extension."""

    id: str
    created: int = 0
    model: str = ""
    usage: ChatUsage | None = None
    orgo: OrgoRunInfo | None = None


@attrs.frozen(kw_only=True)
class ChatCompletion(_Envelope):
    """A finished agent run, as OpenAI's ``chat.completion`` plus :attr:`orgo`."""

    object: str = "chat.completion"
    choices: list[ChatChoice] = attrs.field(factory=list)
    request_id: str | None = None
    """The ``X-Request-Id`` header (the same ``chatcmpl-...`` as :attr:`id` on Orgo)."""

    @property
    def content(self) -> str | None:
        """The text of the final assistant message (``None`` when there is none)."""
        return self.choices[0].message.content if self.choices else None

    @property
    def thread_id(self) -> str | None:
        """The run's thread (:attr:`OrgoRunInfo.thread_id`)."""
        return None if self.orgo is None else self.orgo.thread_id


@attrs.frozen(kw_only=True)
class ChatDelta:
    """What one streamed chunk adds to the assistant message."""

    role: str | None = None
    content: str | None = None


@attrs.frozen(kw_only=True)
class ChatChunkChoice:
    """One choice of a streamed chunk."""

    index: int = 0
    delta: ChatDelta = attrs.field(factory=ChatDelta)
    finish_reason: str | None = None


@attrs.frozen(kw_only=True)
class ChatCompletionChunk(_Envelope):
    """One ``chat.completion.chunk`` of a streamed run; the last carries usage and :attr:`orgo`."""

    object: str = "chat.completion.chunk"
    choices: list[ChatChunkChoice] = attrs.field(factory=list)

    @property
    def content(self) -> str:
        """The text this chunk adds (``""`` when none)."""
        return "".join(c.delta.content or "" for c in self.choices)


@attrs.frozen(kw_only=True)
class ChatThread:
    """A conversation with the hosted agent, scoped to one computer."""

    id: str
    status: str | None = None
    """``active`` or ``archived``."""
    title: str | None = None
    messages: list[ChatMessage] = attrs.field(factory=list)
    desktop_id: str | None = None
    """The computer's UUID."""
    external_id: str | None = None
    """The ``local_id`` given at creation, echoed back."""
    created_at: datetime | None = None
    updated_at: datetime | None = None
