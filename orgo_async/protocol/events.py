"""Orgo's desktop events protocol (``/ws/events``), sans I/O, for both ends.

Nothing arrives before the client subscribes::

    client -> server   {"type": "subscribe", "event_types": ["file_change", ...]}
                       {"type": "unsubscribe", "event_types": [...]}
                       {"type": "ping"}
    server -> client   {"type": "event", "event": {"type", "timestamp", "data"}}
                       {"type": "subscribed", "message": "ok"}
                       {"type": "unsubscribed", "message": "ok"}
                       {"type": "pong"}
                       {"type": "error", "message": "Unknown event type: x"}

Each of Orgo's twelve event types becomes its own frozen class; a type this
version does not know becomes a :class:`GenericEvent`, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

import attrs

from ..errors import ProtocolError
from ._base import JsonChannel, Role

__all__ = [
    "EVENT_TYPES",
    "Active",
    "AudioStreamStart",
    "AudioStreamStop",
    "Clipboard",
    "DesktopEvent",
    "EventsError",
    "EventsProtocol",
    "FileChange",
    "GenericEvent",
    "Idle",
    "Pong",
    "ProcessStart",
    "ProcessStop",
    "ScreenChange",
    "Subscribe",
    "Subscribed",
    "Unsubscribe",
    "Unsubscribed",
    "WindowClose",
    "WindowFocus",
    "WindowOpen",
    "event_from_wire",
]


@attrs.frozen(kw_only=True)
class DesktopEvent:
    """Base class of the events a desktop reports; ``data`` is the raw payload."""

    type: ClassVar[str] = ""
    timestamp: Any = None
    data: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class WindowFocus(DesktopEvent):
    type: ClassVar[str] = "window_focus"
    window_id: Any = None
    title: str | None = None


@attrs.frozen(kw_only=True)
class WindowOpen(DesktopEvent):
    type: ClassVar[str] = "window_open"
    window_id: Any = None
    title: str | None = None


@attrs.frozen(kw_only=True)
class WindowClose(DesktopEvent):
    type: ClassVar[str] = "window_close"
    window_id: Any = None


@attrs.frozen(kw_only=True)
class Clipboard(DesktopEvent):
    type: ClassVar[str] = "clipboard"
    content: str | None = None


@attrs.frozen(kw_only=True)
class FileChange(DesktopEvent):
    """A file under Desktop or Downloads was ``created``, ``modified`` or ``deleted``."""

    type: ClassVar[str] = "file_change"
    path: str | None = None
    action: str | None = None


@attrs.frozen(kw_only=True)
class ScreenChange(DesktopEvent):
    type: ClassVar[str] = "screen_change"
    width: int | None = None
    height: int | None = None


@attrs.frozen(kw_only=True)
class AudioStreamStart(DesktopEvent):
    type: ClassVar[str] = "audio_stream_start"


@attrs.frozen(kw_only=True)
class AudioStreamStop(DesktopEvent):
    type: ClassVar[str] = "audio_stream_stop"


@attrs.frozen(kw_only=True)
class ProcessStart(DesktopEvent):
    type: ClassVar[str] = "process_start"
    pid: int | None = None
    name: str | None = None


@attrs.frozen(kw_only=True)
class ProcessStop(DesktopEvent):
    type: ClassVar[str] = "process_stop"
    pid: int | None = None
    name: str | None = None


@attrs.frozen(kw_only=True)
class Idle(DesktopEvent):
    type: ClassVar[str] = "idle"
    idle_seconds: float | None = None


@attrs.frozen(kw_only=True)
class Active(DesktopEvent):
    type: ClassVar[str] = "active"


@attrs.frozen(kw_only=True)
class GenericEvent(DesktopEvent):
    """An event of a type this version does not know; :attr:`event_type` names it."""

    event_type: str = ""


_TYPED: Final[dict[str, type[DesktopEvent]]] = {
    cls.type: cls
    for cls in (
        WindowFocus,
        WindowOpen,
        WindowClose,
        Clipboard,
        FileChange,
        ScreenChange,
        AudioStreamStart,
        AudioStreamStop,
        ProcessStart,
        ProcessStop,
        Idle,
        Active,
    )
}
EVENT_TYPES: Final = frozenset(_TYPED)
"""The twelve event types Orgo documents."""


def event_from_wire(event: dict[str, Any]) -> DesktopEvent:
    """The typed event for an ``event`` payload ``{"type", "timestamp", "data"}``."""
    kind = event.get("type")
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    timestamp = event.get("timestamp")
    cls = _TYPED.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return GenericEvent(timestamp=timestamp, data=data, event_type=str(kind))
    names = {a.name for a in attrs.fields(cls)} - {"timestamp", "data"}
    fields = {k: v for k, v in data.items() if k in names}
    return cls(timestamp=timestamp, data=data, **fields)


@attrs.frozen
class Subscribed:
    """The server confirmed a subscribe."""

    message: str = ""


@attrs.frozen
class Unsubscribed:
    """The server confirmed an unsubscribe."""

    message: str = ""


@attrs.frozen
class Pong:
    """The answer to a ping (or, server role: a ping to answer)."""


@attrs.frozen
class EventsError:
    """The server reported an error (for example an unknown event type)."""

    message: str


@attrs.frozen
class Subscribe:
    """(Server role) the client wants these types."""

    event_types: tuple[str, ...]


@attrs.frozen
class Unsubscribe:
    """(Server role) the client no longer wants these types."""

    event_types: tuple[str, ...]


EventsEvent = (
    DesktopEvent | Subscribed | Unsubscribed | Pong | EventsError | Subscribe | Unsubscribe
)


def _types(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError("event_types must be a list of strings")
    return tuple(value)


class EventsProtocol(JsonChannel):
    """The events protocol for one connection (client or server role)."""

    def __init__(self, role: Role = Role.CLIENT) -> None:
        super().__init__(role)
        self._events: list[EventsEvent] = []

    def receive_text(self, text: str | bytes) -> None:
        """Parse one incoming frame.

        Raises:
            ProtocolError: the frame is not a valid message.
        """
        m = self._parse(text)
        kind = m["type"]
        event: EventsEvent | None
        if self.role is Role.CLIENT:
            if kind == "event":
                payload = m.get("event")
                if not isinstance(payload, dict):
                    self._failed = ProtocolError("an 'event' message without an event object")
                    raise self._failed
                event = event_from_wire(payload)
            elif kind == "subscribed":
                event = Subscribed(str(m.get("message", "")))
            elif kind == "unsubscribed":
                event = Unsubscribed(str(m.get("message", "")))
            elif kind == "pong":
                event = Pong()
            elif kind == "error":
                event = EventsError(str(m.get("message", "")))
            else:
                event = None  # a control message this version does not know
        else:
            if kind == "subscribe":
                event = Subscribe(_types(m.get("event_types")))
            elif kind == "unsubscribe":
                event = Unsubscribe(_types(m.get("event_types")))
            elif kind == "ping":
                event = Pong()
            else:
                event = EventsError(f"Unknown message type: {kind}")
        if event is not None:
            self._events.append(event)

    def events_received(self) -> list[EventsEvent]:
        events, self._events = self._events, []
        return events

    # client
    def send_subscribe(self, event_types: Iterable[str]) -> None:
        self._send({"type": "subscribe", "event_types": list(event_types)})

    def send_unsubscribe(self, event_types: Iterable[str]) -> None:
        self._send({"type": "unsubscribe", "event_types": list(event_types)})

    def send_ping(self) -> None:
        self._send({"type": "ping"})

    # server
    def send_event(self, event_type: str, timestamp: Any, data: dict[str, Any]) -> None:
        self._send(
            {"type": "event", "event": {"type": event_type, "timestamp": timestamp, "data": data}}
        )

    def send_subscribed(self) -> None:
        self._send({"type": "subscribed", "message": "ok"})

    def send_unsubscribed(self) -> None:
        self._send({"type": "unsubscribed", "message": "ok"})

    def send_pong(self) -> None:
        self._send({"type": "pong"})

    def send_error(self, message: str) -> None:
        self._send({"type": "error", "message": message})
