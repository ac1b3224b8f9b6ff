"""The events connector: typed desktop events, over ``/ws/events``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from ..errors import ConnectorError
from ..protocol import Role
from ..protocol.events import (
    EVENT_TYPES,
    DesktopEvent,
    EventsError,
    EventsProtocol,
    Pong,
    Subscribed,
    Unsubscribed,
)
from ._connection import Connection
from ._socket import Inbox, Socket

__all__ = ["EventStream"]


def _check(event_types: Iterable[str]) -> tuple[str, ...]:
    types = tuple(event_types)
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(EVENT_TYPES))}"
        )
    return types


class EventStream(Socket[EventsProtocol]):
    """The computer's desktop events; iterate it for typed :class:`DesktopEvent` values.

    Nothing arrives before a subscription. The subscriptions are restored by
    themselves after a reconnect. A slow consumer loses the oldest events past
    ``max_buffered`` (counted in :attr:`dropped`).
    """

    name = "events"

    def __init__(
        self, connection: Connection, event_types: Iterable[str] = (), *, max_buffered: int = 1024
    ) -> None:
        super().__init__(connection)
        self._initial = _check(event_types)
        self.subscriptions: frozenset[str] = frozenset()
        """The event types subscribed to now."""
        self._events: Inbox[DesktopEvent] = Inbox(self, max_buffered)
        self._acks: asyncio.Queue[Subscribed | Unsubscribed | EventsError] = asyncio.Queue()
        self._ack_lock = asyncio.Lock()
        self._swallow_acks = 0

    async def open(self) -> None:
        await super().open()
        if self._initial:
            await self.subscribe(*self._initial)

    async def subscribe(self, *event_types: str) -> None:
        """Start receiving these event types (``ValueError`` for an unknown one)."""
        types = _check(event_types)
        if not types:
            raise ValueError("subscribe needs at least one event type")
        await self._exchange(lambda core: core.send_subscribe(types))
        self.subscriptions |= set(types)

    async def unsubscribe(self, *event_types: str) -> None:
        """Stop receiving these event types."""
        types = _check(event_types)
        if not types:
            raise ValueError("unsubscribe needs at least one event type")
        await self._exchange(lambda core: core.send_unsubscribe(types))
        self.subscriptions -= set(types)

    async def _exchange(self, build: Callable[[EventsProtocol], None]) -> None:
        async with self._ack_lock:
            await self._send(build)
            async with asyncio.timeout(self._conn.timeouts.ws_open):
                ack = await self._acks.get()
        if isinstance(ack, EventsError):
            raise ConnectorError(f"events: the server refused: {ack.message}")

    def __aiter__(self) -> AsyncIterator[DesktopEvent]:
        return aiter(self._events)

    @property
    def dropped(self) -> int:
        """Events dropped because the consumer fell behind."""
        return self._events.dropped

    # -- the socket --------------------------------------------------------------------

    def _new_core(self) -> EventsProtocol:
        return EventsProtocol(Role.CLIENT)

    def _event(self, event: object) -> None:
        if isinstance(event, DesktopEvent):
            self._events.put(event)
        elif isinstance(event, Pong):
            self._pong_received()
        elif isinstance(event, Subscribed | Unsubscribed | EventsError):
            if self._swallow_acks and isinstance(event, Subscribed):
                self._swallow_acks -= 1  # the ack of a re-subscription after a reconnect
            else:
                self._acks.put_nowait(event)

    async def _reopened(self) -> None:
        # Subscriptions live in the connection: send them again on the new one.
        # Nobody awaits that acknowledgement; _event drops it when it comes.
        if self.subscriptions and self._core is not None and self._ws is not None:
            self._core.send_subscribe(sorted(self.subscriptions))
            self._swallow_acks += 1
            for text in self._core.data_to_send():
                await self._ws.send(text)

    def _ended_hook(self, error: BaseException | None) -> None:
        self._events.wake()
