"""The emulator's ``/ws/websockify``: RFB over its two desktop backends.

A plain aiohttp WebSocket client drives the socket, with the RFB core in its
client role (not the SDK's connector). The ``synthetic`` backend is checked
against the REST screenshots and actions of the same computer, and against
``vncdotool`` as an independent client (through a small TCP <-> WebSocket
bridge, since vncdotool speaks TCP). The ``xvnc`` backend runs a real
TigerVNC ``Xvnc`` per computer and is checked from the X side (``xsetroot``,
``xdotool getmouselocation``); those tests skip where Xvnc is missing, but
fail under ``CI=true``.

Every wait is a condition with a deadline; the only fixed waits are the
short windows in which an update must *not* arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest

from orgo_async.emulator import BootTime, Emulator, EmulatorConfig
from orgo_async.emulator.__main__ import add_arguments, config_from_args
from orgo_async.emulator.rfb_server import CHUNK_BYTES
from orgo_async.emulator.xvnc import XvncError, capture_screen
from orgo_async.errors import ProtocolError
from orgo_async.protocol.png import decode_png
from orgo_async.protocol.rfb import (
    BUTTON_LEFT,
    DEFAULT_ENCODINGS,
    ENCODING_RAW,
    ENCODING_ZRLE,
    WHEEL_DOWN,
    Framebuffer,
    FramebufferUpdateEnd,
    PixelFormat,
    Ready,
    RectCopy,
    RectFill,
    RectPixels,
    RFBClientProtocol,
    RFBEvent,
    ServerInit,
    key_combo,
    text_to_keys,
)

from ..conftest import eventually, gone
from .rest import SocketApi

FAST_BOOT = BootTime.fixed(0.02)
RED = (220, 40, 40)  # the synthetic desktop's left-click marker
IN_CI = os.environ.get("CI") == "true"


# --------------------------------------------------------------------------- harness


def need(*programs: str) -> None:
    """Skip unless the programs are installed; under CI=true a missing one fails."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        message = f"not installed: {', '.join(missing)}"
        if IN_CI:
            pytest.fail(message + " (CI=true: the VNC peers must be installed)")
        pytest.skip(message)


class Api(SocketApi):
    """The socket tests' REST calls, at a small size, with screenshots and actions."""

    resolution = "320x200x24"

    async def screenshot(self, computer: dict[str, Any]) -> tuple[int, int, bytes]:
        async with self.session.get(
            f"{self.emu.base_url}/computers/{computer['id']}/screenshot",
            params={"response_format": "binary"},
            headers=self.auth,
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.content_type == "image/png"
            png = decode_png(await resp.read())
        assert png.mode == "RGB"
        return png.width, png.height, png.pixels

    async def act(self, computer: dict[str, Any], action: str, body: dict[str, Any]) -> Any:
        status, answer = await self.call("POST", f"/api/computers/{computer['id']}/{action}", body)
        assert status == 200, answer
        return answer


def ws_url(emu: Emulator, computer: dict[str, Any], token: str | None = None) -> str:
    base = f"ws://{emu.hostport}/desktops/{computer['instance_id']}/ws/websockify"
    if token is None:
        return base
    return f"{base}?{urlencode({'token': token}, quote_via=quote)}"


def pixel(rgb: bytes | bytearray, width: int, x: int, y: int) -> tuple[int, int, int]:
    at = (y * width + x) * 3
    return rgb[at], rgb[at + 1], rgb[at + 2]


class Viewer:
    """An RFB client over ``/ws/websockify``: the core in client role, a screen, the frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, core: RFBClientProtocol) -> None:
        self.ws = ws
        self.core = core
        self.fb = Framebuffer()
        self.server_init: ServerInit | None = None
        self.frames: list[int] = []  # sizes of the binary frames received
        self.updates = 0

    async def send(self) -> None:
        for chunk in self.core.data_to_send():
            await self.ws.send_bytes(chunk)

    async def until(self, done: Callable[[RFBEvent], bool], timeout: float = 5.0) -> list[RFBEvent]:
        """Feed frames to the core until an event satisfies ``done``; the events seen."""
        seen: list[RFBEvent] = []
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    raise ConnectionError(f"socket ended: {msg.type} {msg.data!r} {msg.extra!r}")
                self.frames.append(len(msg.data))
                self.core.receive_data(msg.data)
                events = self.core.events_received()
                for event in events:
                    self._apply(event)
                seen.extend(events)
                await self.send()
                if any(done(e) for e in events):
                    return seen

    @property
    def screen(self) -> bytearray:
        return self.fb.pixels

    @property
    def width(self) -> int:
        return self.fb.width

    @property
    def height(self) -> int:
        return self.fb.height

    def _apply(self, event: RFBEvent) -> None:
        self.fb.apply(event)
        if isinstance(event, ServerInit):
            self.server_init = event
        elif isinstance(event, FramebufferUpdateEnd):
            self.updates += 1

    async def update(self, *, incremental: bool = False, timeout: float = 5.0) -> list[RFBEvent]:
        """Request an update and wait for all of it; its events.

        Xvnc answers the first request of a client that announced Cursor and
        ExtendedDesktopSize with those pseudo-rectangles alone; the pixels come
        with the next request, which this then makes (incremental).
        """
        self.core.send_update_request(incremental=incremental)
        await self.send()
        seen: list[RFBEvent] = []
        while True:
            events = await self.until(lambda e: isinstance(e, FramebufferUpdateEnd), timeout)
            seen.extend(events)
            if any(isinstance(e, RectPixels | RectFill | RectCopy) for e in events):
                return seen
            self.core.send_update_request(incremental=True)
            await self.send()

    async def quiet(self, seconds: float) -> bool:
        """True when nothing arrives for ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                await self.ws.receive()
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def viewer(
    session: aiohttp.ClientSession,
    target: str,
    password: str,
    *,
    encodings: Sequence[int] = DEFAULT_ENCODINGS,
    pixel_format: PixelFormat | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Viewer]:
    """A connected, authenticated viewer (ServerInit and Ready seen)."""
    kwargs: dict[str, Any] = {"encodings": encodings}
    if pixel_format is not None:
        kwargs["pixel_format"] = pixel_format
    core = RFBClientProtocol(password=password, **kwargs)
    async with session.ws_connect(target, protocols=("binary",), headers=headers) as ws:
        view = Viewer(ws, core)
        await view.until(lambda e: isinstance(e, Ready))
        yield view


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """Read until the socket closes; its close code and reason."""
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return ws.close_code, str(msg.extra or "")


async def refused(
    session: aiohttp.ClientSession, target: str, headers: dict[str, str] | None = None
) -> tuple[int | None, str]:
    async with session.ws_connect(target, headers=headers) as ws:
        return await closed_with(ws)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    config = EmulatorConfig(boot=FAST_BOOT, screenshot_seconds=0.0, seed=3)
    async with Emulator(config) as emulator:
        yield emulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def api(emu: Emulator, session: aiohttp.ClientSession) -> Api:
    return Api(emu, session)


@pytest.fixture
async def computer(api: Api) -> dict[str, Any]:
    return await api.running("c1")


# --------------------------------------------------------------------------- synthetic


async def test_handshake_and_full_update_equal_the_rest_screenshot(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    async with viewer(session, ws_url(emu, computer, password), password) as view:
        assert view.ws.protocol == "binary"  # accepted when offered, as websockify does
        init = view.server_init
        assert init is not None
        assert (init.width, init.height, init.name) == (320, 200, "c1")
        events = await view.update()
        assert any(isinstance(e, RectPixels) for e in events)
        width, height, rgb = await api.screenshot(computer)
        assert (width, height) == (320, 200)
        assert bytes(view.screen) == rgb
    assert emu.counters.ws_connections == {"websockify": 1}


async def test_zrle_raw_and_the_clients_pixel_format(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    _, _, expected = await api.screenshot(computer)
    target = ws_url(emu, computer, password)
    for encodings in ((ENCODING_ZRLE, ENCODING_RAW), (ENCODING_RAW,)):
        async with viewer(session, target, password, encodings=encodings) as view:
            await view.update()
            assert bytes(view.screen) == expected, encodings
    # RGB565, big endian: the server converts; colours come back within rounding.
    rgb565 = PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0)
    for encodings in ((ENCODING_ZRLE,), (ENCODING_RAW,)):
        async with viewer(
            session, target, password, encodings=encodings, pixel_format=rgb565
        ) as view:
            await view.update()
            worst = max(abs(a - b) for a, b in zip(view.screen, expected, strict=True))
            assert worst <= 8, encodings


async def test_big_updates_travel_in_bounded_frames(
    emu: Emulator, api: Api, session: aiohttp.ClientSession
) -> None:
    big = await api.running("big", "1920x1080x24")
    password = big["vnc_password"]
    async with viewer(session, ws_url(emu, big, password), password, encodings=()) as view:
        view.frames.clear()
        await view.update()  # Raw: 8 MB, over aiohttp's default 4 MB message limit
        assert sum(view.frames) > 1920 * 1080 * 4
        assert max(view.frames) <= CHUNK_BYTES
        _, _, rgb = await api.screenshot(big)
        assert bytes(view.screen) == rgb


async def test_wrong_password_fails_with_the_security_result(
    emu: Emulator, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    core = RFBClientProtocol(password="not-the-password")
    async with session.ws_connect(ws_url(emu, computer, computer["vnc_password"])) as ws:
        view = Viewer(ws, core)
        with pytest.raises(ProtocolError, match="Authentication failure"):
            await view.until(lambda e: isinstance(e, Ready))
        assert core.auth_failed
        assert await closed_with(ws) == (1000, "Target closed")


async def test_only_the_first_8_password_characters_count(
    emu: Emulator, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    async with viewer(session, ws_url(emu, computer, password), password[:8] + "x") as view:
        assert view.server_init is not None


async def test_edge_auth_and_close_codes(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    assert await refused(session, ws_url(emu, computer)) == (4401, "Invalid or missing token")
    assert await refused(session, ws_url(emu, computer, "stale")) == (
        4401,
        "Invalid or missing token",
    )
    unknown = {"instance_id": "deadbeef"}
    assert await refused(session, ws_url(emu, unknown, "x")) == (
        4404,
        "Computer not found or not running",
    )
    # The Bearer form works too; a client offering no subprotocol gets none.
    bearer = {"Authorization": f"Bearer {password}"}
    core = RFBClientProtocol(password=password)
    async with session.ws_connect(ws_url(emu, computer), headers=bearer) as ws:
        assert ws.protocol is None
        view = Viewer(ws, core)
        await view.until(lambda e: isinstance(e, Ready))
        # RFB travels in binary frames only.
        await ws.send_str("RFB 003.008\n")
        assert await closed_with(ws) == (1003, "RFB travels in binary frames")
    # A stop closes an open viewer with 1001; a stopped computer refuses with 4404.
    async with viewer(session, ws_url(emu, computer, password), password) as view:
        assert (await api.call("POST", f"/api/computers/{computer['id']}/stop"))[0] == 200
        assert await closed_with(view.ws) == (1001, "Computer stopping")
    assert await refused(session, ws_url(emu, computer, password)) == (
        4404,
        "Computer not found or not running",
    )


async def test_typing_and_clicking_over_rfb_change_the_screenshot(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    fb = emu.desktops.framebuffer(emu.state.get_computer(computer["id"]))
    _, _, before = await api.screenshot(computer)
    async with viewer(session, ws_url(emu, computer, password), password) as view:
        await view.update()
        view.core.send_keys(text_to_keys("Hi!\nab"))
        view.core.send_keys(key_combo("BackSpace"))
        view.core.send_pointer(100, 120)
        view.core.send_pointer(100, 120, BUTTON_LEFT)  # press: a marker
        view.core.send_pointer(100, 120)  # release
        view.core.send_pointer(100, 120, WHEEL_DOWN)
        view.core.send_pointer(100, 120)
        await view.send()
        await eventually(lambda: fb.text == "Hi!\na" and "scroll 1" in fb._status_line)
        # Everything that changed reaches the viewer as an incremental update.
        while True:
            await view.update(incremental=True)
            _, _, after = await api.screenshot(computer)
            if bytes(view.screen) == after:
                break
    assert after != before
    assert pixel(after, 320, 100, 120) == RED
    assert fb.pointer == (100, 120)
    # A combo with ctrl goes through SyntheticDesktop.key(): ctrl+a clears the text.
    async with viewer(session, ws_url(emu, computer, password), password) as view:
        view.core.send_keys(key_combo("ctrl+a"))
        await view.send()
        await eventually(lambda: fb.text == "")


async def test_pointer_drags_draw_and_double_clicks_ring(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    fb = emu.desktops.framebuffer(emu.state.get_computer(computer["id"]))
    async with viewer(session, ws_url(emu, computer, password), password) as view:
        # Press, move, release: a drag draws a line (the REST drag's colour).
        view.core.send_pointer(60, 80, BUTTON_LEFT)
        view.core.send_pointer(160, 80, BUTTON_LEFT)
        view.core.send_pointer(160, 80)
        # Two quick clicks on one spot: a double click, ringed.
        for _ in range(2):
            view.core.send_pointer(250, 150, BUTTON_LEFT)
            view.core.send_pointer(250, 150)
        await view.send()
        await eventually(lambda: "double left 250,150" in fb._status_line)
        await view.update()
    _, _, rgb = await api.screenshot(computer)
    assert bytes(view.screen) == rgb
    assert pixel(rgb, 320, 110, 80) == (200, 60, 200)
    assert pixel(rgb, 320, 250, 150) == RED
    assert pixel(rgb, 320, 250 + 9, 150) == RED  # the ring
    assert not fb.buttons


async def test_incremental_update_waits_for_damage(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    async with viewer(session, ws_url(emu, computer, password), password) as view:
        await view.update()
        view.core.send_update_request(incremental=True)
        await view.send()
        assert await view.quiet(0.3)  # nothing changed: the answer is deferred
        await api.act(computer, "click", {"x": 40, "y": 70})
        events = await view.until(lambda e: isinstance(e, FramebufferUpdateEnd))
        rects = [e for e in events if isinstance(e, RectPixels)]
        # Only what changed (the marker and the status bar), not the whole screen.
        assert rects and sum(r.width * r.height for r in rects) < 320 * 200 // 2
        assert any(r.x <= 40 < r.x + r.width and r.y <= 70 < r.y + r.height for r in rects)
        _, _, rgb = await api.screenshot(computer)
        assert bytes(view.screen) == rgb
        assert pixel(rgb, 320, 40, 70) == RED
        # And again: no change, no update.
        view.core.send_update_request(incremental=True)
        await view.send()
        assert await view.quiet(0.2)


async def test_two_viewers_track_their_own_damage(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    target = ws_url(emu, computer, password)
    async with viewer(session, target, password) as one, viewer(session, target, password) as two:
        await one.update()
        await two.update()
        await api.act(computer, "type", {"text": "shared", "delay_ms": 0})
        await one.update(incremental=True)
        await two.update(incremental=True)
        _, _, rgb = await api.screenshot(computer)
        assert bytes(one.screen) == bytes(two.screen) == rgb


async def test_restart_rotates_the_vnc_password(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    old = computer["vnc_password"]
    assert (await api.call("POST", f"/api/computers/{computer['id']}/restart"))[0] == 200
    await api.wait_running(computer)
    new = await api.password(computer)
    assert new[:8] != old[:8]
    # The edge takes the new password, and so must RFB: the old one fails there too.
    core = RFBClientProtocol(password=old)
    async with session.ws_connect(ws_url(emu, computer, new)) as ws:
        with pytest.raises(ProtocolError, match="Authentication failure"):
            await Viewer(ws, core).until(lambda e: isinstance(e, Ready))
    async with viewer(session, ws_url(emu, computer, new), new) as view:
        await view.update()


async def test_client_cut_text_sets_the_clipboard_and_publishes_an_event(
    emu: Emulator, session: aiohttp.ClientSession, computer: dict[str, Any]
) -> None:
    password = computer["vnc_password"]
    events_url = ws_url(emu, computer, password).replace("/ws/websockify", "/ws/events")
    async with session.ws_connect(events_url) as events:
        await events.send_json({"type": "subscribe", "event_types": ["clipboard"]})
        assert (await events.receive_json(timeout=5))["type"] == "subscribed"
        async with viewer(session, ws_url(emu, computer, password), password) as view:
            view.core.send_cut_text("copied café")
            await view.send()
            message = await events.receive_json(timeout=5)
    assert message["event"]["type"] == "clipboard"
    assert message["event"]["data"] == {"content": "copied café"}
    assert emu.desktops.backends.clipboard(computer["id"]) == "copied café"


async def test_vncdotool_captures_the_synthetic_desktop(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    vncdo = Path(sys.executable).parent / "vncdo"
    if not vncdo.exists():
        need("vncdo")
    computer = await api.running("vncdo", "400x300x24")
    password = computer["vnc_password"]
    await api.act(computer, "type", {"text": "seen by vncdotool", "delay_ms": 0})
    await api.act(computer, "click", {"x": 200, "y": 150})
    out = tmp_path / "capture.png"
    async with tcp_bridge(session, ws_url(emu, computer, password)) as port:
        process = await asyncio.create_subprocess_exec(
            str(vncdo),
            "-s",
            f"127.0.0.1::{port}",
            "-p",
            password,
            "capture",
            str(out),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, output.decode(errors="replace")
    captured = decode_png(out.read_bytes())
    width, height, rgb = await api.screenshot(computer)
    assert (captured.width, captured.height) == (width, height) == (400, 300)
    channels = captured.channels
    pixels = bytes(b for i, b in enumerate(captured.pixels) if channels == 3 or i % 4 != 3)
    assert pixels == rgb
    # And a wrong password is refused (vncdotool exits 3 on an authentication failure).
    async with tcp_bridge(session, ws_url(emu, computer, password)) as port:
        process = await asyncio.create_subprocess_exec(
            str(vncdo),
            "-s",
            f"127.0.0.1::{port}",
            "-p",
            "wrong",
            "capture",
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await asyncio.wait_for(process.wait(), 60) == 3


@contextlib.asynccontextmanager
async def tcp_bridge(session: aiohttp.ClientSession, target: str) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 whose connections are piped to ``target`` (a WebSocket)."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            async with session.ws_connect(target, protocols=("binary",)) as ws:

                async def upstream() -> None:
                    while data := await reader.read(65536):
                        await ws.send_bytes(data)
                    await ws.close()

                up = asyncio.create_task(upstream())
                try:
                    async for msg in ws:
                        if msg.type is aiohttp.WSMsgType.BINARY:
                            writer.write(msg.data)
                            await writer.drain()
                finally:
                    up.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                        await up
        except (ConnectionError, aiohttp.ClientError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            tasks.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# --------------------------------------------------------------------------- xvnc


async def test_missing_xvnc_fails_the_boot_with_a_log_line(
    emu: Emulator, api: Api, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    emu.config.desktop_backend = "xvnc"
    emu.desktops.backends.xvnc.xvnc = "Xvnc-not-installed-here"
    with caplog.at_level(logging.WARNING, "orgo_async.emulator"):
        computer = await api.create("nox")
    assert "Xvnc-not-installed-here is not installed" in caplog.text
    stored = emu.state.get_computer(computer["id"])
    await eventually(lambda: emu.clock() >= stored.ready_at)
    status, body = await api.call("GET", f"/api/computers/{computer['id']}")
    assert body["status"] == "error"
    status, listing = await api.call("GET", "/_emulator/computers")
    entry = listing["computers"][0]
    assert entry["desktop_backend"] == "xvnc" and "not installed" in entry["boot_error"]
    assert await refused(session, ws_url(emu, computer, computer["vnc_password"])) == (
        4404,
        "Computer not found or not running",
    )
    # Another backend for later boots: a start from error boots a synthetic desktop.
    emu.config.desktop_backend = "synthetic"
    assert (await api.call("POST", f"/api/computers/{computer['id']}/start"))[0] == 200
    await api.wait_running(computer)


async def test_an_xvnc_that_cannot_start_fails_the_boot(
    emu: Emulator, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    need("vncpasswd")
    emu.config.desktop_backend = "xvnc"
    emu.config.boot = BootTime.fixed(0.5)
    emu.desktops.backends.xvnc.xvnc = "false"  # exits at once, reporting no display
    with caplog.at_level(logging.WARNING, "orgo_async.emulator"):
        computer = await api.create("broken")
        stored = emu.state.get_computer(computer["id"])
        await eventually(lambda: stored.boot_fails)
    assert "exited before reporting its display" in caplog.text
    await eventually(lambda: emu.clock() >= stored.ready_at)
    assert (await api.call("GET", f"/api/computers/{computer['id']}"))[1]["status"] == "error"
    assert emu.counters.healthy_at.get(computer["id"]) is None


def test_the_backend_is_an_option_and_a_config_field() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args([])).desktop_backend == "synthetic"
    args = parser.parse_args(["--desktop-backend", "xvnc"])
    assert config_from_args(args).desktop_backend == "xvnc"
    with pytest.raises(SystemExit):
        parser.parse_args(["--desktop-backend", "qemu"])
    with pytest.raises(ValueError):
        EmulatorConfig(desktop_backend="qemu")  # type: ignore[arg-type]


async def test_the_backend_can_be_patched_and_holds_per_boot(emu: Emulator, api: Api) -> None:
    synthetic = await api.running("synthetic")
    status, config = await api.call("PATCH", "/_emulator/config", {"desktop_backend": "nope"})
    assert status == 400
    status, config = await api.call("PATCH", "/_emulator/config", {"desktop_backend": "xvnc"})
    assert status == 200 and config["desktop_backend"] == "xvnc"
    # The running computer keeps the backend it booted with.
    assert emu.state.get_computer(synthetic["id"]).desktop_backend == "synthetic"
    await api.act(synthetic, "click", {"x": 10, "y": 40})
    with pytest.raises(LookupError):
        await emu.desktop_display(synthetic["id"])


@pytest.fixture
async def xemu() -> AsyncIterator[Emulator]:
    need("Xvnc", "vncpasswd", "xdotool", "xsetroot")
    # Unsandboxed: these tests drive the display from the host with their own X clients
    # (a sandboxed display is reachable only from inside; see test_sandbox.py).
    config = EmulatorConfig(boot=FAST_BOOT, desktop_backend="xvnc", seed=5, sandbox="off")
    async with Emulator(config) as emulator:
        yield emulator


@pytest.fixture
def xapi(xemu: Emulator, session: aiohttp.ClientSession) -> Api:
    return Api(xemu, session)


async def x_run(display: str, *argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, "DISPLAY": display},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, err
    return out.decode()


async def pointer(display: str) -> tuple[int, int]:
    fields = dict(
        line.split("=", 1)
        for line in (await x_run(display, "xdotool", "getmouselocation", "--shell")).split()
    )
    return int(fields["X"]), int(fields["Y"])


def xvnc_pid(emu: Emulator, computer: dict[str, Any]) -> int:
    server = emu.desktops.backends.xvnc.server(computer["id"])
    assert server is not None and server.pid is not None
    return server.pid


async def test_xvnc_desktop_over_websockify_and_rest(
    xemu: Emulator, xapi: Api, session: aiohttp.ClientSession
) -> None:
    computer = await xapi.running("real", "640x480x24")
    display = await xemu.desktop_display(computer["id"])
    password = computer["vnc_password"]
    await x_run(display, "xsetroot", "-solid", "#ff0000")
    async with viewer(session, ws_url(xemu, computer, password), password) as view:
        assert view.ws.protocol == "binary"
        init = view.server_init
        assert init is not None and (init.width, init.height) == (640, 480)
        await view.update()
        assert pixel(view.screen, 640, 10, 10) == (255, 0, 0)
        # The X side changes; the viewer sees it, as does the REST screenshot.
        await x_run(display, "xsetroot", "-solid", "#00ff00")
        await view.update()
        assert pixel(view.screen, 640, 600, 400) == (0, 255, 0)
        width, height, rgb = await xapi.screenshot(computer)
        assert (width, height) == (640, 480)
        assert rgb == bytes(view.screen)
        # Input over RFB reaches X.
        view.core.send_pointer(321, 123)
        await view.send()
        async with asyncio.timeout(5):
            # The X pointer has no event to await.
            while await pointer(display) != (321, 123):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    assert xemu.counters.ws_connections == {"websockify": 1}

    # REST actions go through xdotool on the computer's display.
    await xapi.act(computer, "click", {"x": 123, "y": 45})
    assert await pointer(display) == (123, 45)
    await xapi.act(computer, "click", {"x": 5, "y": 6, "double": True, "button": "right"})
    assert await pointer(display) == (5, 6)
    await xapi.act(
        computer, "drag", {"start_x": 10, "start_y": 20, "end_x": 300, "end_y": 200, "duration": 0}
    )
    assert await pointer(display) == (300, 200)
    answer = await xapi.act(
        computer, "scroll", {"direction": "down", "amount": 2, "x": 50, "y": 60}
    )
    assert answer["details"] == {"direction": "down", "amount": 2, "x": 50, "y": 60}
    await xapi.act(computer, "type", {"text": "typed by xdotool\n", "delay_ms": 0})
    for combo in ("ctrl+shift+t", "Return", "enter", "+", "ctrl++", "F5", "XF86AudioMute"):
        await xapi.act(computer, "key", {"key": combo})
    status, body = await xapi.call(
        "POST", f"/api/computers/{computer['id']}/click", {"x": 640, "y": 0}
    )
    assert status == 400 and "x must be" in body["error"]
    # The proxy's screenshot is a real PNG of the X screen as well.
    status, shot = await xapi.call(
        "GET", f"/api/desktops/{computer['instance_id']}/proxy/screenshot"
    )
    assert status == 200 and (shot["width"], shot["height"]) == (640, 480)


async def test_xvnc_restart_is_a_new_xvnc_with_the_new_password(
    xemu: Emulator, xapi: Api, session: aiohttp.ClientSession
) -> None:
    computer = await xapi.running("rot", "320x240x24")
    await xemu.desktop_display(computer["id"])
    old = computer["vnc_password"]
    first = xvnc_pid(xemu, computer)
    async with viewer(session, ws_url(xemu, computer, old), old) as view:
        assert (await xapi.call("POST", f"/api/computers/{computer['id']}/restart"))[0] == 200
        assert await closed_with(view.ws) == (1001, "Computer stopping")
    await xapi.wait_running(computer)
    new = await xapi.password(computer)
    await xemu.desktop_display(computer["id"])
    second = xvnc_pid(xemu, computer)
    assert second != first
    await eventually(lambda: gone(first))
    # The new Xvnc's password file holds the new password: the old one is refused by Xvnc.
    core = RFBClientProtocol(password=old)
    async with session.ws_connect(ws_url(xemu, computer, new)) as ws:
        with pytest.raises(ProtocolError, match="Authentication failure"):
            await Viewer(ws, core).until(lambda e: isinstance(e, Ready))
        assert await closed_with(ws) == (1000, "Target closed")
    async with viewer(session, ws_url(xemu, computer, new), new) as view:
        await view.update()
        assert (view.width, view.height) == (320, 240)


async def test_an_xvnc_that_dies_puts_its_computer_in_error(
    xemu: Emulator, xapi: Api, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    computer = await xapi.running("dies", "320x240x24")
    await xemu.desktop_display(computer["id"])
    password = computer["vnc_password"]
    async with viewer(session, ws_url(xemu, computer, password), password) as view:
        with caplog.at_level(logging.WARNING, "orgo_async.emulator"):
            os.kill(xvnc_pid(xemu, computer), signal.SIGKILL)
            # The bridge closes as websockify does when its target hangs up.
            assert await closed_with(view.ws) == (1000, "Target closed")
            stored = xemu.state.get_computer(computer["id"])
            await eventually(lambda: stored.boot_fails)
    assert "exited on its own" in caplog.text
    assert (await xapi.call("GET", f"/api/computers/{computer['id']}"))[1]["status"] == "error"
    status, body = await xapi.call(
        "POST", f"/api/computers/{computer['id']}/click", {"x": 1, "y": 1}
    )
    assert (status, body["code"]) == (400, "desktop_unavailable")
    # A start from error boots a new Xvnc.
    assert (await xapi.call("POST", f"/api/computers/{computer['id']}/start"))[0] == 200
    await xapi.wait_running(computer)
    await xemu.desktop_display(computer["id"])


async def test_xvnc_rereads_a_rewritten_password_file(xemu: Emulator, xapi: Api) -> None:
    computer = await xapi.running("pwfile", "320x240x24")
    await xemu.desktop_display(computer["id"])
    server = xemu.desktops.backends.xvnc.server(computer["id"])
    assert server is not None
    old = computer["vnc_password"]
    assert (await capture_screen(server.socket_path, old))[:2] == (320, 240)
    await server.set_password("rotated!")
    with pytest.raises(XvncError, match="Authentication failure"):
        await capture_screen(server.socket_path, old)
    assert (await capture_screen(server.socket_path, "rotated!"))[:2] == (320, 240)
    assert server.password_file.stat().st_mode & 0o777 == 0o600


async def test_xvnc_processes_end_with_stop_delete_and_close(
    session: aiohttp.ClientSession,
) -> None:
    need("Xvnc", "vncpasswd")
    # Other tests' session-scoped Xvnc peers may be children of this process too.
    others = set(_our_xvncs())
    config = EmulatorConfig(boot=FAST_BOOT, desktop_backend="xvnc")
    async with Emulator(config) as emu:
        api = Api(emu, session)
        stopped, deleted, left = [await api.running(name) for name in ("s", "d", "l")]
        pids = {}
        for computer in (stopped, deleted, left):
            await emu.desktop_display(computer["id"])
            pids[computer["name"]] = xvnc_pid(emu, computer)
        root = emu.desktops.backends.xvnc.server(left["id"])
        assert root is not None
        assert (await api.call("POST", f"/api/computers/{stopped['id']}/stop"))[0] == 200
        assert (await api.call("DELETE", f"/api/computers/{deleted['id']}"))[0] == 200
        await eventually(lambda: gone(pids["s"]) and gone(pids["d"]))
        with pytest.raises(LookupError):
            await emu.desktop_display(stopped["id"])
        assert not gone(pids["l"])
        # A computer booting right now, its Xvnc still starting, is stopped at close as well.
        await api.create("booting")
    assert gone(pids["l"])
    assert not root.directory.exists()
    assert set(_our_xvncs()) - others == set()


def _our_xvncs() -> list[int]:
    """The live Xvnc processes that are children of this process."""
    return [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if not gone(pid) and _parent(pid) == os.getpid() and _comm(pid) == "Xvnc"
    ]


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return 0
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""
