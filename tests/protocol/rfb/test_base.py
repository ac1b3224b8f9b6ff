"""What both roles share: the handshake between two cores, the end of the stream, any split
of the stream, garbage, and no I/O."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from orgo_async.errors import ProtocolError
from orgo_async.protocol import rfb
from orgo_async.protocol.rfb import (
    DEFAULT_PIXEL_FORMAT,
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_HEXTILE,
    ENCODING_LAST_RECT,
    ENCODING_RAW,
    ENCODING_ZRLE,
    CursorShape,
    DesktopResized,
    Ready,
    RectCopy,
    RectFill,
    RectPixels,
    RFBClientProtocol,
    RFBEvent,
    RFBProtocol,
    RFBState,
    ServerInit,
    SetEncodings,
    SetPixelFormat,
)

from .conftest import (
    BLUE,
    GREEN,
    RED,
    H,
    Pair,
    W,
    connected_client,
    connected_server,
    picture,
    px,
    rect,
    server_init,
    update,
    zrle_stream,
)


def test_handshake_without_a_password() -> None:
    pair = Pair()
    client_events, server_events = pair.connect()
    pf = DEFAULT_PIXEL_FORMAT
    assert client_events == [ServerInit(W, H, "orgo_async", pf), Ready()]
    assert server_events[0] == Ready()
    assert server_events[1:] == [
        SetPixelFormat(pf),
        SetEncodings(
            (
                ENCODING_ZRLE,
                ENCODING_HEXTILE,
                ENCODING_COPYRECT,
                ENCODING_RAW,
                ENCODING_DESKTOP_SIZE,
                ENCODING_EXTENDED_DESKTOP_SIZE,
                ENCODING_LAST_RECT,
                ENCODING_CURSOR,
            )
        ),
    ]
    assert pair.client.state is pair.server.state is RFBState.CONNECTED
    assert pair.client.version == pair.server.version == (3, 8)
    # 3.8 with None: version, types [1], SecurityResult OK, then ServerInit.
    assert pair.to_client.startswith(b"RFB 003.008\n\x01\x01\0\0\0\0")


def test_eof_during_the_handshake_and_after() -> None:
    client = RFBClientProtocol()
    client.receive_data(b"RFB 003.008\n\x01")
    with pytest.raises(ProtocolError, match="middle of the handshake"):
        client.receive_eof()
    client = connected_client()
    client.receive_data(b"\0\0")
    with pytest.raises(ProtocolError, match="middle of a message"):
        client.receive_eof()
    client = connected_client()
    client.receive_eof()
    assert client.state is RFBState.CLOSED
    with pytest.raises(RuntimeError, match="after receive_eof"):
        client.receive_data(b"\x02")
    server = connected_server()
    server.receive_eof()
    assert server.state is RFBState.CLOSED


def _recorded_server_stream() -> bytes:
    """Everything a server sends over a session that uses every feature it has."""
    pair = Pair(
        client={"password": "pw"},
        server={"password": "pw", "challenge": bytes(range(16)), "name": "split"},
    )
    pair.connect()
    server = pair.server
    image = picture(W, H, seed=11)
    server.send_framebuffer_update([RectPixels(0, 0, W, H, image)])
    server.send_framebuffer_update([RectPixels(0, 0, W, H, image[::-1])], encoding=ENCODING_RAW)
    server.send_framebuffer_update(
        [
            RectFill(3, 4, 50, 60, bytes(GREEN)),
            RectCopy(0, 0, 10, 10, 20, 20),
            CursorShape(0, 0, 9, 3, bytes(81), bytes(6)),
            RectPixels(1, 1, 80, 65, picture(80, 65, seed=12)),
        ]
    )
    server.send_bell()
    server.send_cut_text("split me")
    server.send_framebuffer_update([DesktopResized(120, 90)])
    pair.pump()
    return bytes(pair.to_client)


def _handmade_stream() -> bytes:
    """A 3.8 None handshake for a 200x140 desktop, then hand-built Hextile and ZRLE updates."""
    hextile = (
        bytes((2 | 4 | 8,)) + px(RED) + px(GREEN) + b"\x02\x23\x31\xac\x52"
        + bytes((8 | 16,)) + b"\x01" + px(BLUE) + b"\x00\x00"
        + b"\x01" + b"".join(px((i, i, i)) for i in range(32))
        + b"\x00"
    )  # fmt: skip
    zrle, _ = zrle_stream(seed=21)
    return (
        b"RFB 003.008\n\x01\x01\0\0\0\0"
        + server_init(200, 140)
        + update(rect(3, 2, 20, 18, ENCODING_HEXTILE, hextile))
        + zrle
        + b"\x01\0\0\x01\0\x01\0\x01\0\x02\0\x03"
    )


STREAMS = {"recorded": _recorded_server_stream(), "handmade": _handmade_stream()}


def _client_for(stream: str) -> RFBProtocol:
    return RFBClientProtocol(password="pw" if stream == "recorded" else None)


def _events_of(stream: str, cuts: Iterable[int]) -> list[RFBEvent]:
    data = STREAMS[stream]
    client = _client_for(stream)
    events: list[RFBEvent] = []
    start = 0
    for cut in sorted(cuts):
        client.receive_data(data[start:cut])
        events += client.events_received()
        start = cut
    client.receive_data(data[start:])
    client.receive_eof()
    return events + client.events_received()


REFERENCE = {name: _events_of(name, []) for name in STREAMS}


def test_reference_streams_are_complete() -> None:
    kinds = Counter(type(e).__name__ for e in REFERENCE["recorded"] + REFERENCE["handmade"])
    for name in ("RectPixels", "RectFill", "RectCopy", "CursorShape", "DesktopResized", "Bell"):
        assert kinds[name], name
    assert kinds["ServerCutText"] and kinds["ColourMap"] and kinds["Ready"] == 2


@pytest.mark.parametrize("stream", sorted(STREAMS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_split_gives_the_same_events(stream: str, data: st.DataObject) -> None:
    size = len(STREAMS[stream])
    cuts = data.draw(st.lists(st.integers(0, size), max_size=40))
    assert _events_of(stream, cuts) == REFERENCE[stream]


def test_byte_by_byte_gives_the_same_events() -> None:
    data = STREAMS["handmade"]
    assert _events_of("handmade", range(1, len(data))) == REFERENCE["handmade"]


def _feed_garbage(core: RFBProtocol, chunks: Sequence[bytes]) -> None:
    """Feed chunks; only ProtocolError may come out, and buffers stay under the limits."""
    limit = core._reader.limit
    for chunk in chunks:
        try:
            core.receive_data(chunk)
        except ProtocolError:
            assert core.state is RFBState.FAILED and core.buffered_bytes == 0
            with pytest.raises(ProtocolError):
                core.receive_data(b"\0")
            return
        core.events_received()
        assert core.buffered_bytes <= limit


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([0, 1, 2, 3]),
    garbage=st.lists(st.binary(max_size=600), max_size=8),
)
def test_garbage_after_the_handshake_is_only_ever_a_protocol_error(
    kind: int, garbage: list[bytes]
) -> None:
    _feed_garbage(connected_client(), [bytes((kind,)), *garbage])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_corrupted_streams_are_only_ever_a_protocol_error(data: st.DataObject) -> None:
    stream = bytearray(STREAMS["handmade"])
    start = len(b"RFB 003.008\n\x01\x01\0\0\0\0") + len(server_init(200, 140))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(start, len(stream) - 1))
        stream[at] = data.draw(st.integers(0, 255))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    chunks = [bytes(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    _feed_garbage(RFBClientProtocol(), chunks)


@settings(max_examples=200, deadline=None)
@given(garbage=st.lists(st.binary(max_size=300), max_size=6))
def test_garbage_to_a_server_is_only_ever_a_protocol_error(garbage: list[bytes]) -> None:
    _feed_garbage(connected_server(), garbage)


def test_the_core_does_no_io_and_keeps_big_bytes_out_of_reprs() -> None:
    package = Path(rfb.__file__).parent
    for path in (*package.glob("*.py"), package.with_name("_reader.py")):
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not imported & {"asyncio", "aiohttp", "websockets", "time", "socket"}, path
    assert "<6 bytes>" in repr(RectPixels(0, 0, 2, 1, bytes(6)))
