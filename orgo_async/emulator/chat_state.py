"""The hosted agent's state in the emulator: threads per computer, and the credit balance.

Threads are kept in memory, one list of ``{role, content}`` messages each,
scoped to a computer (its UUID) and dropped when the computer is deleted.
The balance is what runs without a bring-your-own key draw from: a test sets
:attr:`ChatState.credit_balance_cents` to 0 to see ``credits_exhausted``.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import attrs

from .store import ApiError, Computer, Store, Transition, iso_now, or_404

__all__ = ["COST_PER_STEP_CENTS", "MODELS", "ChatState", "Thread"]

MODELS: Final = ("claude-sonnet-4.6", "claude-opus-4.6")
"""The models Orgo documents for chat completions (the first is the default)."""

COST_PER_STEP_CENTS: Final = 2.0
"""What one agent step costs without a bring-your-own key."""


@attrs.define(kw_only=True)
class Thread:
    """One conversation with the agent."""

    id: str
    desktop_id: str
    local_id: str | None = None
    title: str | None = None
    archived: bool = False
    messages: list[dict[str, str]] = attrs.field(factory=list)
    created_at: str = attrs.field(factory=iso_now)
    updated_at: str = attrs.field(factory=iso_now)
    order: int = 0
    """When it last changed, as a counter (ISO timestamps can tie)."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "remoteId": self.id,
            "desktopId": self.desktop_id,
            "status": "archived" if self.archived else "active",
            "messages": [dict(m) for m in self.messages],
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.title is not None:
            body["title"] = self.title
        if self.local_id is not None:
            body["externalId"] = self.local_id
        return body


class ChatState:
    """The threads of one emulator and the account's credit balance."""

    def __init__(self, store: Store, *, credit_balance_cents: float = 10_000.0) -> None:
        self.store = store
        self.credit_balance_cents = credit_balance_cents
        """Credits left; runs without ``x-anthropic-key`` draw from it."""
        self.threads: dict[str, Thread] = {}
        self.runs = 0
        """Completions answered (streamed or not)."""
        self._order = 0
        store.add_listener(self._on_transition)

    def create(self, desktop_id: str, local_id: str | None = None) -> Thread:
        thread = Thread(id=str(uuid.uuid4()), desktop_id=desktop_id, local_id=local_id)
        self.threads[thread.id] = thread
        self.touch(thread)
        return thread

    def get(self, thread_id: str) -> Thread:
        """The thread, or 404 ``thread_not_found``."""
        return or_404(self.threads.get(thread_id), "thread_not_found", "Thread not found")

    def of(self, desktop_id: str) -> list[Thread]:
        """A computer's threads, most recently changed first."""
        mine = [t for t in self.threads.values() if t.desktop_id == desktop_id]
        return sorted(mine, key=lambda t: t.order, reverse=True)

    def touch(self, thread: Thread) -> None:
        """Mark the thread changed now."""
        self._order += 1
        thread.order = self._order
        thread.updated_at = iso_now()

    def delete(self, thread_id: str) -> None:
        self.get(thread_id)
        del self.threads[thread_id]

    def check_credits(self, *, own_key: bool) -> None:
        """402 ``credits_exhausted`` when a run would draw from an empty balance."""
        if not own_key and self.credit_balance_cents <= 0:
            raise ApiError(402, "credits_exhausted", "Out of credits: top up or bring your own key")

    def charge(self, steps: int, *, own_key: bool) -> float:
        """What a run of ``steps`` cost (nothing with the caller's own key), taken from the
        balance (which stops at 0)."""
        if own_key:
            return 0.0
        cost = min(steps * COST_PER_STEP_CENTS, self.credit_balance_cents)
        self.credit_balance_cents -= cost
        return cost

    def _on_transition(self, computer: Computer, transition: Transition) -> None:
        if transition == "delete":
            for thread in self.of(computer.id):
                del self.threads[thread.id]
