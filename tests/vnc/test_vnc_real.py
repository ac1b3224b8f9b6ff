"""The VNC connector against real servers: TigerVNC's Xvnc and Xvfb + x11vnc, behind websockify.

What the connector did is checked from the X side: ``xsetroot`` paints a
known colour that screenshots must show, ``xdotool getmouselocation`` says
where the pointer is, ``xclip`` reads and writes the clipboard, and a small Tk
window (``_tk_app.py``) reports the clicks, wheel turns, drags and text it got.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable

import pytest

from orgo_async import ConnectionClosedError, HandshakeError, Orgo
from orgo_async.connect import Vnc
from orgo_async.connect.vnc import VNC_ENCODINGS, VNC_LOCAL_ENCODINGS
from orgo_async.protocol.png import decode_png
from orgo_async.protocol.rfb import (
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
    ENCODING_LAST_RECT,
    ENCODING_RAW,
    ENCODING_ZRLE,
)

from ..conftest import eventually
from .conftest import GEOMETRY, TkApp, VncServer, connection


async def wait_for_colour(vnc: Vnc, rgb: str, timeout: float = 10.0) -> None:
    """Wait until every pixel of the framebuffer is ``rgb`` (``"#rrggbb"``)."""
    expected = bytes.fromhex(rgb.removeprefix("#")) * (vnc.width * vnc.height)
    async with asyncio.timeout(timeout):
        while True:
            _, _, pixels = await vnc.pixels()
            version = vnc.version  # read in the same step as the pixels
            if pixels == expected:
                return
            await vnc.wait_for_change(since_version=version)


def assert_png_colour(png: bytes, rgb: str) -> None:
    image = decode_png(png)
    assert (image.width, image.height, image.mode) == (*GEOMETRY, "RGB")
    expected = bytes.fromhex(rgb.removeprefix("#")) * (image.width * image.height)
    assert image.pixels == expected


# -- authentication ------------------------------------------------------------------------------


async def test_security_none(offline: Orgo, xvnc_open: VncServer) -> None:
    xvnc_open.x("xsetroot", "-solid", "#204060")
    async with connection(offline, xvnc_open, token="ignored-by-a-None-server").vnc() as vnc:
        # With a token the client chose VNC authentication with its version; this
        # server offers None alone, so a second dial chose from its list.
        assert vnc._link.dials == 2
        assert (vnc.width, vnc.height) == GEOMETRY
        assert vnc.desktop_name
        await wait_for_colour(vnc, "#204060")
        assert_png_colour(await vnc.screenshot(), "#204060")
        # A reconnect remembers it: one dial.
        vnc._ws.transport.abort()
        await eventually(lambda: vnc.reconnects == 1)
        assert vnc._link.dials == 3
        assert_png_colour(await vnc.screenshot(), "#204060")


async def test_vnc_auth_with_the_right_password(offline: Orgo, xvnc: VncServer) -> None:
    xvnc.x("xsetroot", "-solid", "#123456")
    conn = connection(offline, xvnc)
    async with conn.vnc() as vnc:
        assert vnc._link.dials == 1  # TigerVNC takes VNC authentication chosen with the version
        assert (vnc.width, vnc.height) == GEOMETRY
        assert_png_colour(await vnc.screenshot(), "#123456")  # the first full frame
    assert conn.refreshes == 0


async def test_a_wrong_password_fails_with_the_reason_after_one_refresh(
    offline: Orgo, xvnc: VncServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stale, fresh = "0badc0de0badc0de", "1badc0de1badc0de"
    conn = connection(offline, xvnc, token=stale, fresh=fresh)
    with pytest.raises(HandshakeError, match="Authentication failure") as info:
        await conn.vnc().open()
    assert conn.refreshes == 1
    assert info.value.socket == "websockify"
    text = "\n".join(r.getMessage() for r in caplog.records) + str(info.value)
    for secret in (stale, fresh, stale[:8], fresh[:8], xvnc.password or "x"):
        assert secret not in text


async def test_a_stale_password_is_re_read_once(offline: Orgo, xvnc: VncServer) -> None:
    conn = connection(offline, xvnc, token="0badc0de0badc0de", fresh=xvnc.password)
    async with conn.vnc() as vnc:
        await vnc.pixels()
    assert conn.refreshes == 1


async def test_rotating_the_password_file(offline: Orgo, xvnc: VncServer) -> None:
    old, new = xvnc.password, secrets.token_hex(8)
    assert old is not None
    conn = connection(offline, xvnc, token=old, fresh=new)
    async with conn.vnc() as vnc:
        await vnc.pixels()
        xvnc.set_password(new)  # Orgo rotates it on restart; Xvnc re-reads the file
        try:
            # A socket open before the rotation keeps working...
            xvnc.x("xsetroot", "-solid", "#336699")
            await wait_for_colour(vnc, "#336699")
            # ...and when it drops, the re-dial meets the new password: one refresh.
            assert vnc._ws is not None
            vnc._ws.transport.abort()
            await eventually(lambda: vnc.reconnects == 1)
            assert_png_colour(await vnc.screenshot(), "#336699")
            assert conn.refreshes == 1

            # With the old password only, a new socket fails after its one refresh.
            stuck = connection(offline, xvnc, token=old, fresh=old)
            with pytest.raises(HandshakeError, match="Authentication failure"):
                await stuck.vnc().open()
            assert stuck.refreshes == 1
        finally:
            xvnc.set_password(old)


async def test_the_3_3_blacklist_refusal(offline: Orgo, xvnc_blacklisting: VncServer) -> None:
    # One failure blacklists the client: the re-dial after the refresh is refused in 3.3 form.
    conn = connection(offline, xvnc_blacklisting, token="wrong-pw", fresh="right-pw")
    with pytest.raises(HandshakeError, match="Too many security failures"):
        await conn.vnc().open()
    assert conn.refreshes == 1


# -- the screen --------------------------------------------------------------------------------


# Websockify listens on loopback, so the default is the local list (Tight at compression
# level 1); the remote list (Tight at the server's level) and ZRLE, for servers without
# Tight, are decoded from the real servers too.
ZRLE_FIRST = (
    ENCODING_ZRLE,
    ENCODING_COPYRECT,
    ENCODING_RAW,
    ENCODING_DESKTOP_SIZE,
    ENCODING_LAST_RECT,
    ENCODING_CURSOR,
)
ENCODING_LISTS = pytest.mark.parametrize(
    "encodings",
    [None, VNC_ENCODINGS, ZRLE_FIRST],
    ids=["local-default", "remote-default", "zrle-first"],
)


@ENCODING_LISTS
async def test_screenshots_follow_the_screen(
    offline: Orgo, xvnc: VncServer, encodings: tuple[int, ...] | None
) -> None:
    xvnc.x("xsetroot", "-solid", "#0a0b0c")
    async with Vnc(connection(offline, xvnc), encodings=encodings) as vnc:
        assert vnc.encodings == (encodings or VNC_LOCAL_ENCODINGS)
        assert_png_colour(await vnc.screenshot(), "#0a0b0c")
        before = vnc.version
        xvnc.x("xsetroot", "-solid", "#f0e0d0")
        after = await vnc.wait_for_change(10, since_version=before)
        assert after > before
        await wait_for_colour(vnc, "#f0e0d0")
        assert_png_colour(await vnc.screenshot(compress_level=1), "#f0e0d0")
        with pytest.raises(TimeoutError, match="no screen change within"):
            await vnc.wait_for_change(0.2)  # nothing moves on an idle root window


async def test_a_dropped_socket_reconnects_and_repaints(offline: Orgo, xvnc: VncServer) -> None:
    xvnc.x("xsetroot", "-solid", "#111111")
    async with connection(offline, xvnc).vnc() as vnc:
        await wait_for_colour(vnc, "#111111")
        assert vnc._ws is not None
        vnc._ws.transport.abort()
        xvnc.x("xsetroot", "-solid", "#222222")  # changed while we were away
        await eventually(lambda: vnc.reconnects == 1)
        assert_png_colour(await vnc.screenshot(), "#222222")
        await vnc.move(5, 6)
        await eventually(lambda: xvnc.pointer() == (5, 6))


async def test_keepalive_pings_are_answered(offline: Orgo, xvnc: VncServer) -> None:
    async with connection(offline, xvnc, keepalive=0.05).vnc() as vnc:
        await eventually(lambda: vnc.latency is not None)
        latency = vnc.latency
        assert latency is not None and latency < 5
        await vnc.pixels()
        assert vnc.reconnects == 0


# -- input -------------------------------------------------------------------------------------


async def test_move_and_click_move_the_x_pointer(offline: Orgo, xvnc: VncServer) -> None:
    async with connection(offline, xvnc).vnc() as vnc:
        await vnc.move(321, 123)
        await eventually(lambda: xvnc.pointer() == (321, 123))
        await vnc.click(1279, 719, button="right")
        await eventually(lambda: xvnc.pointer() == (1279, 719))
        await vnc.scroll("down", 2, x=0, y=0)
        await eventually(lambda: xvnc.pointer() == (0, 0))


def _is(kind: str, **fields: object) -> Callable[[dict[str, object]], bool]:
    return lambda e: e["event"] == kind and all(e.get(k) == v for k, v in fields.items())


async def test_clicks_wheel_and_drags_reach_an_x_application(
    offline: Orgo, xvnc: VncServer, tk_app: TkApp
) -> None:
    async with connection(offline, xvnc).vnc() as vnc:
        await vnc.click(300, 250)
        await tk_app.expect(_is("press", button=1, x=300, y=250))
        await tk_app.expect(_is("release", button=1, x=300, y=250))
        await vnc.click(310, 260, button="right")
        await tk_app.expect(_is("press", button=3, x=310, y=260))
        await vnc.click(320, 270, button="middle")
        await tk_app.expect(_is("press", button=2, x=320, y=270))
        await vnc.click(330, 280, double=True)
        await tk_app.expect(_is("double", x=330, y=280))

        await vnc.scroll("down", 3, x=200, y=300)
        for _ in range(3):
            await tk_app.expect(_is("release", button=5, x=200, y=300))
        await vnc.scroll("up")  # where the pointer was left
        await tk_app.expect(_is("press", button=4, x=200, y=300))

        await vnc.drag(150, 200, 350, 350, steps=5)
        await tk_app.expect(_is("press", button=1, x=150, y=200))
        await tk_app.expect(_is("drag", x=350, y=350))
        await tk_app.expect(_is("release", button=1, x=350, y=350))


async def test_typing_and_keys_reach_the_focused_entry(
    offline: Orgo, xvnc: VncServer, tk_app: TkApp
) -> None:
    async with connection(offline, xvnc).vnc() as vnc:
        await vnc.type("Hello, World! #42 (ok?)")
        await tk_app.expect(_is("text", text="Hello, World! #42 (ok?)"))
        await vnc.key("BackSpace")
        await tk_app.expect(_is("text", text="Hello, World! #42 (ok?"))
        await vnc.key("ctrl+h")  # Tk's entry: delete the character before the cursor
        await tk_app.expect(_is("text", text="Hello, World! #42 (ok"))


async def test_clipboard_both_ways(offline: Orgo, xvnc: VncServer) -> None:
    async with connection(offline, xvnc).vnc() as vnc:
        await vnc.set_clipboard("from the SDK: café")
        await eventually(
            lambda: xvnc.x("xclip", "-o", "-selection", "clipboard") == "from the SDK: café"
        )

        since = vnc.clipboard_version
        # -quiet keeps xclip in the foreground (it serves the selection until replaced).
        xclip = await asyncio.create_subprocess_exec(
            "xclip",
            "-i",
            "-selection",
            "clipboard",
            "-quiet",
            env=xvnc.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert xclip.stdin is not None
            xclip.stdin.write(b"from the X side")
            xclip.stdin.close()
            text = await vnc.wait_for_clipboard(10, since_version=since)
            assert text == "from the X side" == vnc.clipboard
        finally:
            xclip.terminate()
            await xclip.wait()

        with pytest.raises(ValueError, match="Latin-1"):
            await vnc.set_clipboard("snowman ☃")


async def test_arguments_are_checked_before_anything_is_sent(
    offline: Orgo, xvnc: VncServer
) -> None:
    vnc = connection(offline, xvnc).vnc()
    with pytest.raises(RuntimeError, match="open"):
        await vnc.move(1, 1)
    async with vnc:
        w, h = GEOMETRY
        cases: list[tuple[str, Callable[[], object]]] = [
            ("x must", lambda: vnc.move(-1, 0)),
            ("x must", lambda: vnc.move(w, 0)),
            ("y must", lambda: vnc.click(0, h)),
            ("x must", lambda: vnc.click(True, 0)),
            ("x must", lambda: vnc.move(1.5, 0)),  # type: ignore[arg-type]
            ("button must", lambda: vnc.click(1, 1, button="side")),  # type: ignore[arg-type]
            ("x1 must", lambda: vnc.drag(0, 0, w + 5, 0)),
            ("steps must", lambda: vnc.drag(0, 0, 1, 1, steps=0)),
            ("direction must", lambda: vnc.scroll("sideways")),  # type: ignore[arg-type]
            ("amount must", lambda: vnc.scroll("up", 0)),
            ("both x and y", lambda: vnc.scroll("up", x=3)),
            ("unknown key", lambda: vnc.key("ctrl+nokey")),
        ]
        for message, call in cases:
            with pytest.raises(ValueError, match=message):
                await call()  # type: ignore[misc]
        with pytest.raises(TypeError):
            await vnc.type(b"bytes")  # type: ignore[arg-type]
        await vnc.move(w - 1, h - 1)  # the edges are fine
        await eventually(lambda: xvnc.pointer() == (w - 1, h - 1))
    with pytest.raises(ConnectionClosedError):
        await vnc.screenshot()
    with pytest.raises(ConnectionClosedError):
        await vnc.click(1, 1)


# -- cancellation --------------------------------------------------------------------------------


def _socket_fds() -> set[str]:
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            fds.add(target)
    return fds


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.003, 0.01, 0.03, 0.1])
async def test_cancelling_at_any_point_leaves_nothing_open(
    offline: Orgo, xvnc: VncServer, delay: float
) -> None:
    tasks, sockets = asyncio.all_tasks(), _socket_fds()

    async def use() -> None:
        async with connection(offline, xvnc, keepalive=0.01).vnc() as vnc:
            await vnc.screenshot()
            await asyncio.sleep(5)

    task = asyncio.create_task(use())
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: _socket_fds() <= sockets, timeout=5)  # closed a step later
    assert asyncio.all_tasks() == tasks


# -- the second implementation: Xvfb + x11vnc ---------------------------------------------------


@ENCODING_LISTS
async def test_x11vnc_screenshot_and_pointer(
    offline: Orgo, x11vnc: VncServer, encodings: tuple[int, ...] | None
) -> None:
    x11vnc.x("xsetroot", "-solid", "#a1b2c3")
    async with Vnc(connection(offline, x11vnc), encodings=encodings) as vnc:
        assert vnc._link.dials == 1  # x11vnc takes VNC authentication chosen with the version
        assert (vnc.width, vnc.height) == GEOMETRY
        await wait_for_colour(vnc, "#a1b2c3", timeout=15)  # x11vnc polls: give it time
        assert_png_colour(await vnc.screenshot(timeout=15), "#a1b2c3")
        await vnc.move(640, 360)
        await eventually(lambda: x11vnc.pointer() == (640, 360))
        x11vnc.x("xsetroot", "-solid", "#3c2b1a")
        await wait_for_colour(vnc, "#3c2b1a", timeout=15)


async def test_x11vnc_wrong_password(offline: Orgo, x11vnc: VncServer) -> None:
    conn = connection(offline, x11vnc, token="0badc0de", fresh="1badc0de")
    with pytest.raises(HandshakeError, match="password check failed"):
        await conn.vnc().open()
    assert conn.refreshes == 1
