"""What every socket connector shares, against a hostile peer on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from orgo_async import (
    Computer,
    ConnectorError,
    ConnectorProtocolError,
    Orgo,
    ProtocolError,
    ReconnectPolicy,
)
from orgo_async.emulator import Emulator


@pytest.fixture(params=["at once", "after a pong", "nested 100,000 deep"])
async def hostile(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A WebSocket server that sends a frame that is not JSON (first, or after a valid
    one), or JSON nested too deep to parse recursively."""

    async def handler(ws: ServerConnection) -> None:
        if request.param == "after a pong":
            await ws.recv()  # the connector's greeting ping
            await ws.send('{"type": "pong"}')
        if request.param == "nested 100,000 deep":
            await ws.send('{"type":"output","data":' + "[" * 100_000 + "]" * 100_000 + "}")
        else:
            await ws.send("{this is not json")
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/desktops/vm-1"


async def test_a_malformed_frame_is_a_connector_and_a_protocol_error(
    emulator: Emulator, hostile: str
) -> None:
    computer = Computer(id="c-1", instance_id="vm-1", connection_url=hostile, vnc_password="t")
    async with Orgo(api_key=emulator.api_key, base_url=emulator.base_url) as orgo:
        conn = orgo.connect(computer, reconnect=ReconnectPolicy.off(), keepalive=None)
        with pytest.raises(ConnectorProtocolError) as info:
            async with conn.terminal() as term:  # open, or the reader, meets the bad frame
                async for _ in term:
                    pass
    error = info.value
    # Caught by either family, and the core's own error is kept as the cause.
    assert isinstance(error, ConnectorError) and isinstance(error, ProtocolError)
    assert error.socket == "terminal" and str(error).startswith("terminal: ")
    assert type(error.__cause__) is ProtocolError
    assert "not JSON" in str(error.__cause__) or "nested deeper than 64" in str(error.__cause__)


def test_a_png_decoding_error_is_not_a_connector_error() -> None:
    from orgo_async.protocol.png import decode_png

    with pytest.raises(ProtocolError) as info:
        decode_png(b"not a png at all")
    assert not isinstance(info.value, ConnectorError)
