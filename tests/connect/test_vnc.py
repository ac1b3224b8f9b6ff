"""The VNC connector against RFB peers on port 0 that misbehave after a good handshake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from orgo_async import Computer, ConnectionClosedError, Orgo, ReconnectPolicy, Timeouts
from orgo_async.protocol.rfb import Ready, RFBServerProtocol

from ..conftest import eventually


async def rfb_handshake(ws: ServerConnection, core: RFBServerProtocol) -> None:
    """Run the server's side of the RFB handshake on ``ws``, up to the client's Ready."""
    while True:
        for data in core.data_to_send():
            await ws.send(data)
        if any(isinstance(event, Ready) for event in core.events_received()):
            return
        message = await ws.recv()
        assert isinstance(message, bytes)
        core.receive_data(message)


@pytest.fixture
async def silent_peer() -> AsyncIterator[tuple[Computer, list[ServerConnection]]]:
    """An RFB server that completes the handshake, then never reads again (pings included)."""
    accepted: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        accepted.append(ws)
        await rfb_handshake(ws, RFBServerProtocol(width=64, height=48))
        ws.transport.pause_reading()  # silent: a hung host, a dead NAT mapping
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/desktops/vm-1"
        computer = Computer(id="c-1", instance_id="vm-1", connection_url=url, vnc_password="t")
        try:
            yield computer, accepted
        finally:
            for ws in accepted:  # not reading, it would not notice the client's hang-up
                ws.transport.abort()


@pytest.mark.parametrize("keepalive", [0.02, 0.5], ids=["keepalive < ping", "keepalive > ping"])
async def test_the_keepalive_drops_a_silent_peer(
    silent_peer: tuple[Computer, list[ServerConnection]], keepalive: float
) -> None:
    computer, accepted = silent_peer
    async with Orgo(
        api_key="sk_test_offline", base_url="http://127.0.0.1:9", timeouts=Timeouts(ping=0.2)
    ) as orgo:
        conn = orgo.connect(computer, reconnect=ReconnectPolicy.off(), keepalive=keepalive)
        async with conn.vnc() as vnc:
            assert (vnc.width, vnc.height) == (64, 48)
            # Unanswered pings: dropped within a ping timeout after the first one.
            await eventually(lambda: vnc.closed, timeout=5)
            with pytest.raises(ConnectionClosedError):
                await vnc.pixels(timeout=1)
    assert len(accepted) == 1
