"""The VNC connector against RFB peers on port 0 that misbehave after a good handshake."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from orgo_async import (
    Computer,
    ConnectionClosedError,
    HandshakeError,
    Orgo,
    ReconnectPolicy,
    Timeouts,
)
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


@contextlib.asynccontextmanager
async def rfb_peer(
    width: int = 64, height: int = 48, *, silent: bool = False, auth: bool = True
) -> AsyncIterator[tuple[Computer, list[ServerConnection]]]:
    """An RFB server announcing ``width`` x ``height``: the computer that names it, and the
    sockets it accepted. ``silent``: after the handshake it never reads again (pings
    included), as a hung host or a dead NAT mapping. ``auth=False``: security None only
    (the computer still has a token)."""
    accepted: list[ServerConnection] = []
    password = "t"  # VNC authentication with the computer's token, as Orgo's servers do

    async def handler(ws: ServerConnection) -> None:
        accepted.append(ws)
        with contextlib.suppress(ConnectionClosed):  # a client may refuse the desktop
            core = RFBServerProtocol(
                width=width, height=height, password=password if auth else None
            )
            await rfb_handshake(ws, core)
            if silent:
                ws.transport.pause_reading()
            await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/desktops/vm-1"
        computer = Computer(id="c-1", instance_id="vm-1", connection_url=url, vnc_password=password)
        try:
            yield computer, accepted
        finally:
            for ws in accepted:  # not reading, a silent one would not notice the hang-up
                ws.transport.abort()


@pytest.fixture
async def offline() -> AsyncIterator[Orgo]:
    """A session that never reaches an API (only its socket settings are used)."""
    async with Orgo(
        api_key="sk_test_offline", base_url="http://127.0.0.1:9", timeouts=Timeouts(ping=0.2)
    ) as orgo:
        yield orgo


async def test_a_server_hanging_up_on_the_early_auth_choice_is_dialled_again(
    offline: Orgo,
) -> None:
    # This server offers None alone and hangs up (1011) on the VNC authentication the
    # client chose with its version, before its list reaches the client.
    async with rfb_peer(auth=False) as (computer, accepted):
        conn = offline.connect(computer, reconnect=ReconnectPolicy.off(), keepalive=None)
        async with conn.vnc() as vnc:
            assert (vnc.width, vnc.height) == (64, 48)
            assert len(accepted) == 2  # the second dial chose None from the list
            assert accepted[0].close_code == 1011
            vnc._ws.transport.abort()  # the reconnect policy is off: closed for good
            await eventually(lambda: vnc.closed)
        async with conn.vnc() as vnc:  # a new connector chooses early again
            assert len(accepted) == 4


@pytest.mark.parametrize("keepalive", [0.02, 0.5], ids=["keepalive < ping", "keepalive > ping"])
async def test_the_keepalive_drops_a_silent_peer(offline: Orgo, keepalive: float) -> None:
    async with rfb_peer(silent=True) as (computer, accepted):
        conn = offline.connect(computer, reconnect=ReconnectPolicy.off(), keepalive=keepalive)
        async with conn.vnc() as vnc:
            assert (vnc.width, vnc.height) == (64, 48)
            # Unanswered pings: dropped within a ping timeout after the first one.
            await eventually(lambda: vnc.closed, timeout=5)
            with pytest.raises(ConnectionClosedError):
                await vnc.pixels(timeout=1)
        assert len(accepted) == 1


async def test_a_desktop_over_max_pixels_is_refused_with_a_clear_error(offline: Orgo) -> None:
    async with rfb_peer(8192, 8192) as (computer, _):
        with pytest.raises(HandshakeError) as info:
            async with offline.connect(computer, keepalive=None).vnc():
                pass
    message = str(info.value)
    assert "8192x8192" in message and "exceeds max_pixels=16,777,216" in message
    assert "max_pixels=" in message.split("exceeds")[1]  # it says how to accept it

    async with rfb_peer(64, 48) as (computer, _):
        conn = offline.connect(computer, keepalive=None)
        with pytest.raises(HandshakeError, match="64x48 .* exceeds max_pixels=3,071"):
            async with conn.vnc(max_pixels=64 * 48 - 1):
                pass
        async with conn.vnc(max_pixels=64 * 48) as vnc:
            assert (vnc.width, vnc.height) == (64, 48)
    with pytest.raises(ValueError, match="max_pixels"):
        conn.vnc(max_pixels=0)
