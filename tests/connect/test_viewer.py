"""viewer_url: a noVNC URL whose socket, token and password work, and that never shows them."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from orgo_async import Computer, NotFoundError, Orgo, ViewerUrl, viewer_url
from orgo_async.connect.viewer import NOVNC_PAGE


def settings(url: ViewerUrl) -> dict[str, str]:
    """noVNC's settings as its page reads them from the fragment."""
    parts = urlsplit(url.url)
    return {key: values[0] for key, values in parse_qs(parts.fragment, strict_parsing=True).items()}


async def test_the_url_opens_the_computer_s_vnc_socket(orgo: Orgo, computer: Computer) -> None:
    viewer = await viewer_url(orgo, computer)
    assert viewer.url.startswith(NOVNC_PAGE + "#")
    values = settings(viewer)
    assert values["view_only"] == "1" and values["autoconnect"] == "1"
    assert values["encrypt"] == "0" and values["shared"] == "1"
    password = (await orgo.computers.vnc_password(computer)).password
    assert values["password"] == password

    # The socket noVNC would open, as the URL describes it: accepted, speaking RFB.
    socket = f"ws://{values['host']}:{values['port']}/{values['path']}"
    async with connect(socket) as ws:
        assert await ws.recv() == b"RFB 003.008\n"
    assert viewer.websocket_url == socket.split("?")[0]

    # The same socket without the token is refused: the token in the path is what opened it.
    with pytest.raises(ConnectionClosed) as closed:
        async with connect(socket.split("?")[0] + "?token=0000000000000000") as ws:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    # The password in the URL is the VNC credential too: a full VNC session takes a frame.
    base = socket.split("/ws/websockify")[0].replace("ws://", "http://")
    seen = attrs.evolve(computer, connection_url=base, vnc_password=values["password"])
    async with orgo.connect(seen, keepalive=None).vnc() as vnc:
        assert (await vnc.screenshot()).startswith(b"\x89PNG")


async def test_the_token_is_fetched_when_asked_and_never_shown(
    orgo: Orgo, computer: Computer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stale = attrs.evolve(computer, vnc_password="0" * 16)
    viewer = await viewer_url(orgo, stale, view_only=False)
    password = (await orgo.computers.vnc_password(computer)).password
    assert settings(viewer)["password"] == password != "0" * 16
    assert settings(viewer)["view_only"] == "0"

    assert password in viewer.url and str(viewer) == viewer.url == f"{viewer}"
    shown = repr(viewer)
    assert password not in shown and "token hidden" in shown and computer.id in shown
    assert password not in repr([viewer]) and password not in repr({"v": viewer})
    assert caplog.records and password not in caplog.text

    # By id alone: the computer is read first.
    by_id = await viewer_url(orgo, computer.id)
    assert settings(by_id)["password"] == password
    assert settings(by_id)["view_only"] == "1" and by_id != viewer
    with pytest.raises(NotFoundError):
        await viewer_url(orgo, "no-such-computer")


async def test_an_https_connection_url_makes_an_encrypted_viewer(
    orgo: Orgo, computer: Computer
) -> None:
    remote = attrs.evolve(computer, connection_url="https://www.orgo.ai/desktops/abc123")
    viewer = await viewer_url(orgo, remote, page="https://viewer.example/novnc/vnc.html?x=1")
    values = settings(viewer)
    assert viewer.url.startswith("https://viewer.example/novnc/vnc.html?x=1#")
    assert (values["host"], values["port"], values["encrypt"]) == ("www.orgo.ai", "443", "1")
    assert values["path"].startswith("desktops/abc123/ws/websockify?token=")
    assert viewer.websocket_url == "wss://www.orgo.ai/desktops/abc123/ws/websockify"


async def test_bad_arguments_are_refused_before_any_request(orgo: Orgo) -> None:
    gone = Computer(id="no-such-computer", connection_url="http://127.0.0.1:1/desktops/x")
    for page in ("ftp://host/vnc.html", "vnc.html", "https://host/vnc.html#x=1"):
        with pytest.raises(ValueError, match="page"):
            await viewer_url(orgo, gone, page=page)
    with pytest.raises(ValueError, match="view_only"):
        await viewer_url(orgo, gone, view_only="yes")  # type: ignore[arg-type]


async def test_the_viewer_url_names_the_screen(orgo: Orgo, computer: Computer) -> None:
    side = await orgo.screens.create(computer, width=320, height=200)
    url = await viewer_url(orgo, computer, screen=side.id)
    path = settings(url)["path"]
    assert parse_qs(urlsplit(path).query)["screen"] == [side.id]
    with pytest.raises(ValueError, match="screen"):
        await viewer_url(orgo, computer, screen="a/b")
