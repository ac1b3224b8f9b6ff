"""What the JSON cores share: hostile frames end in ProtocolError, never in another exception."""

from __future__ import annotations

import json

import pytest

from orgo_async.errors import ProtocolError
from orgo_async.protocol import Role
from orgo_async.protocol._base import JsonChannel
from orgo_async.protocol.audio import AudioProtocol
from orgo_async.protocol.events import EventsProtocol
from orgo_async.protocol.terminal import TerminalProtocol

CORES = (TerminalProtocol, EventsProtocol, AudioProtocol)
DEPTH = 64  # the nesting the cores accept


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def message(depth: int) -> str:
    """A message whose ``data`` holds lists ``depth - 1`` deep: ``depth`` levels in all."""
    return '{"type":"input","data":' + nested(depth - 1) + "}"


HOSTILE = (
    nested(100_000),
    '{"type":"x","data":' + nested(100_000) + "}",
    nested(50_000, '{"a":', "}"),
    "[" * 100_000,  # never closed
    message(DEPTH + 1),
)


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("role", list(Role))
def test_deep_json_is_a_protocol_error(core: type[JsonChannel], role: Role) -> None:
    for frame in HOSTILE:
        channel = core(role)  # type: ignore[call-arg]
        with pytest.raises(ProtocolError, match="nested deeper than 64 levels"):
            channel.receive_text(frame)  # type: ignore[attr-defined]
        # The channel is failed for good.
        with pytest.raises(ProtocolError, match="nested deeper"):
            channel.receive_text('{"type":"ping"}')  # type: ignore[attr-defined]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    server = TerminalProtocol(Role.SERVER)
    with pytest.raises(ProtocolError, match="malformed 'input'"):
        server.receive_text(message(DEPTH))  # parsed: only the field is wrong


def test_load_json_bounds_nesting_and_keeps_json_errors() -> None:
    from orgo_async.protocol._base import MAX_JSON_DEPTH, NestingError, load_json

    assert MAX_JSON_DEPTH == DEPTH
    assert load_json(b'{"a": [1, {"b": "[[[[["}]}') == {"a": [1, {"b": "[[[[["}]}
    # Brackets inside strings do not count.
    assert load_json(json.dumps(["[" * 1000, "{" * 1000])) == ["[" * 1000, "{" * 1000]
    assert load_json(nested(3), max_depth=3) == [[[]]]
    for deep in (nested(4), '{"k":' * 3 + "{}" + "}" * 3, nested(10_000), "[" * 10_000):
        with pytest.raises(NestingError, match="nested deeper than 3 levels"):
            load_json(deep, max_depth=3)
    with pytest.raises(ValueError) as info:
        load_json("{nope")
    assert not isinstance(info.value, NestingError)
    with pytest.raises(ValueError):
        load_json(b"\xff\xfe\xfd")
