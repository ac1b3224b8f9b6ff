"""The events core: typed events for Orgo's twelve types, generic ones for the rest."""

from __future__ import annotations

import json

import pytest

from orgo_async.errors import ProtocolError
from orgo_async.protocol import Role
from orgo_async.protocol.events import (
    EVENT_TYPES,
    EventsError,
    EventsProtocol,
    FileChange,
    GenericEvent,
    Idle,
    Pong,
    ProcessStart,
    Subscribe,
    Subscribed,
    Unsubscribe,
    WindowOpen,
    event_from_wire,
)


def test_twelve_documented_types() -> None:
    assert EVENT_TYPES == {
        "window_focus",
        "window_open",
        "window_close",
        "clipboard",
        "file_change",
        "screen_change",
        "audio_stream_start",
        "audio_stream_stop",
        "process_start",
        "process_stop",
        "idle",
        "active",
    }
    for kind in EVENT_TYPES:
        event = event_from_wire({"type": kind, "timestamp": "t", "data": {}})
        assert type(event).type == kind and not isinstance(event, GenericEvent)


def test_typed_fields_and_generic_fallback() -> None:
    event = event_from_wire(
        {
            "type": "file_change",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "data": {"path": "Desktop/a.txt", "action": "created", "extra": 1},
        }
    )
    assert event == FileChange(
        timestamp="2026-01-01T00:00:00.000Z",
        data={"path": "Desktop/a.txt", "action": "created", "extra": 1},
        path="Desktop/a.txt",
        action="created",
    )
    other = event_from_wire({"type": "hologram", "data": {"x": 1}})
    assert isinstance(other, GenericEvent) and other.event_type == "hologram"
    assert other.data == {"x": 1}
    odd = event_from_wire({"type": "idle", "data": "not a dict"})
    assert isinstance(odd, Idle) and odd.idle_seconds is None


def test_client_server_exchange() -> None:
    client, server = EventsProtocol(Role.CLIENT), EventsProtocol(Role.SERVER)
    client.send_subscribe(["window_open", "process_start"])
    client.send_unsubscribe(["window_open"])
    client.send_ping()
    for frame in client.data_to_send():
        server.receive_text(frame)
    assert server.events_received() == [
        Subscribe(("window_open", "process_start")),
        Unsubscribe(("window_open",)),
        Pong(),
    ]
    server.send_subscribed()
    server.send_event("window_open", "t1", {"window_id": 7, "title": "xterm"})
    server.send_event("process_start", "t2", {"pid": 42, "name": "sleep"})
    server.send_error("Unknown event type: x")
    server.send_pong()
    for frame in server.data_to_send():
        client.receive_text(frame)
    assert client.events_received() == [
        Subscribed("ok"),
        WindowOpen(
            timestamp="t1", data={"window_id": 7, "title": "xterm"}, window_id=7, title="xterm"
        ),
        ProcessStart(timestamp="t2", data={"pid": 42, "name": "sleep"}, pid=42, name="sleep"),
        EventsError("Unknown event type: x"),
        Pong(),
    ]


def test_malformed() -> None:
    client = EventsProtocol(Role.CLIENT)
    with pytest.raises(ProtocolError, match="without an event object"):
        client.receive_text(json.dumps({"type": "event", "event": 3}))
    server = EventsProtocol(Role.SERVER)
    with pytest.raises(ProtocolError, match="list of strings"):
        server.receive_text(json.dumps({"type": "subscribe", "event_types": "idle"}))
