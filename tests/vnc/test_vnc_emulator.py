"""Our VNC client against the emulator's own /ws/websockify: synthetic and real Xvnc backends."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest

import orgo_async.connect.vnc as vnc_module
import orgo_async.protocol.rfb.client as rfb_client
import orgo_async.protocol.rfb.encodings as rfb_encodings
from orgo_async import Computer, Orgo, RetryPolicy
from orgo_async.connect import Vnc
from orgo_async.connect.vnc import VNC_ENCODINGS, VNC_LOCAL_ENCODINGS, _is_loopback
from orgo_async.emulator import Emulator
from orgo_async.protocol.png import decode_png, encode_png
from orgo_async.protocol.rfb import ENCODING_RAW, ENCODING_TIGHT, ENCODING_ZRLE

from .conftest import x11


@pytest.fixture
async def synthetic(emulator: Emulator, orgo: Orgo) -> Computer:
    workspace = await orgo.workspaces.create("vnc")
    return (await orgo.computers.launch(workspace_id=workspace.id, name="screen")).computer


async def test_synthetic_screen_matches_rest_and_reacts(orgo: Orgo, synthetic: Computer) -> None:
    async with orgo.connect(synthetic).vnc() as vnc:
        assert (vnc.width, vnc.height) == (1280, 720)
        over_vnc = decode_png(await vnc.screenshot())
        over_rest = decode_png((await orgo.desktop(synthetic).screenshot()).data)
        assert over_vnc.pixels == over_rest.pixels
        version = vnc.version
        await vnc.click(400, 300)
        await vnc.wait_for_change(timeout=5, since_version=version)
        version = vnc.version
        await vnc.type("typed over vnc")
        await vnc.wait_for_change(timeout=5, since_version=version)
        await asyncio.sleep(0.2)  # let the last keystrokes' damage arrive
        after = decode_png(await vnc.screenshot())
    rest_after = decode_png((await orgo.desktop(synthetic).screenshot()).data)
    assert after.pixels != over_vnc.pixels
    assert after.pixels == rest_after.pixels


async def test_restart_rotates_and_the_viewer_recovers(
    orgo: Orgo, synthetic: Computer, emulator: Emulator
) -> None:
    conn = orgo.connect(synthetic)
    async with conn.vnc() as vnc:
        await vnc.screenshot()
        await orgo.computers.restart(synthetic)
        async with asyncio.timeout(10):
            while vnc.reconnects < 1:  # noqa: ASYNC110 - polls the connector's counter
                await asyncio.sleep(0.01)
        shot = decode_png(await vnc.screenshot())
    assert (shot.width, shot.height) == (1280, 720)
    assert conn.refreshes == 1


async def test_the_xvnc_backend_is_a_real_desktop(xvnc_emulator: Emulator) -> None:
    emu = xvnc_emulator
    async with Orgo(
        api_key=emu.api_key, base_url=emu.base_url, retry=RetryPolicy(max_attempts=3)
    ) as orgo:
        workspace = await orgo.workspaces.create("xvnc")
        computer = (await orgo.computers.launch(workspace_id=workspace.id, name="x")).computer
        env = {**os.environ, "DISPLAY": await emu.desktop_display(computer.id)}
        await x11(env, "xsetroot", "-solid", "#123456")
        async with orgo.connect(computer).vnc() as vnc:
            shot = decode_png(await vnc.screenshot())
            assert shot.pixel(640, 360)[:3] == (0x12, 0x34, 0x56)
            await vnc.move(321, 123)
            async with asyncio.timeout(10):
                # The X server applies the pointer event when it reads it: poll the oracle.
                where = "x:321 y:123"
                while not (await x11(env, "xdotool", "getmouselocation")).startswith(where):  # noqa: ASYNC110, E501
                    await asyncio.sleep(0.02)
        # REST actions go through xdotool on the same display; screenshots come from it.
        await orgo.desktop(computer).click(50, 60)
        assert (await x11(env, "xdotool", "getmouselocation")).startswith("x:50 y:60")
        rest = decode_png((await orgo.desktop(computer).screenshot()).data)
        assert rest.pixel(640, 360)[:3] == (0x12, 0x34, 0x56)
        await orgo.workspaces.delete(workspace.id)


async def test_an_unchanged_screen_is_encoded_once(
    orgo: Orgo, synthetic: Computer, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[dict[str, object]] = []

    def counting(*args: Any, **kwargs: Any) -> bytes:
        encoded.append(kwargs)
        return encode_png(*args, **kwargs)

    monkeypatch.setattr(vnc_module, "encode_png", counting)
    async with orgo.connect(synthetic).vnc() as vnc:
        first = await vnc.screenshot()
        assert await vnc.screenshot() is first  # same version, same settings: no copy, no encode
        assert len(encoded) == 1
        # Other settings are another PNG of the same pixels.
        smaller = await vnc.screenshot(compress_level=6, filter="sub")
        assert len(encoded) == 2
        assert decode_png(smaller).pixels == decode_png(first).pixels
        version = vnc.version
        await vnc.click(400, 300)
        await vnc.wait_for_change(timeout=5, since_version=version)
        changed = await vnc.screenshot()
        assert len(encoded) == 3
        assert decode_png(changed).pixels != decode_png(first).pixels
        # Once the mirror has caught up, the PNG is the desktop's, encoded once per change.
        async with asyncio.timeout(10):
            while True:
                settled = vnc.version
                shot = await vnc.screenshot()
                rest = decode_png((await orgo.desktop(synthetic).screenshot()).data)
                if vnc.version == settled and decode_png(shot).pixels == rest.pixels:
                    break
                await asyncio.sleep(0.05)
        assert await vnc.screenshot() is shot
        # A reconnect brings a new frame: never the PNG cached before it.
        reconnects = vnc.reconnects
        await orgo.computers.restart(synthetic)
        async with asyncio.timeout(10):
            while vnc.reconnects == reconnects:  # noqa: ASYNC110 - polls the connector's counter
                await asyncio.sleep(0.01)
        fresh = await vnc.screenshot()
        assert fresh is not shot
        rest = decode_png((await orgo.desktop(synthetic).screenshot()).data)
        assert decode_png(fresh).pixels == rest.pixels


async def test_frames_wait_while_the_encoder_reads_the_framebuffer(
    orgo: Orgo, synthetic: Computer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # screenshot() encodes the mirror itself in worker threads: updates that
    # arrive meanwhile are applied once the encode is over, even a cancelled one.
    entered, release = threading.Event(), threading.Event()
    seen: list[bytes] = []

    def slow(width: int, height: int, pixels: bytearray, **kwargs: Any) -> bytes:
        entered.set()
        release.wait(10)
        seen.append(bytes(pixels))  # what the encoder reads, at its very end
        return encode_png(width, height, pixels, **kwargs)

    async def until(event: threading.Event) -> None:
        async with asyncio.timeout(10):
            while not event.is_set():  # noqa: ASYNC110 - a thread's event
                await asyncio.sleep(0.005)

    async with orgo.connect(synthetic).vnc() as vnc:
        before = decode_png(await vnc.screenshot())
        monkeypatch.setattr(vnc_module, "encode_png", slow)
        version = vnc.version
        shot = asyncio.create_task(vnc.screenshot(compress_level=2))
        await until(entered)
        await vnc.click(400, 300)  # the synthetic desktop redraws: an update comes back
        await asyncio.sleep(0.3)
        assert vnc.version == version  # held back
        shot.cancel()
        with pytest.raises(asyncio.CancelledError):
            await shot
        await asyncio.sleep(0.1)
        assert vnc.version == version  # still held: the thread is still reading
        release.set()
        await vnc.wait_for_change(timeout=5, since_version=version)
        assert seen == [before.pixels]  # the encoder saw one unchanged frame
        monkeypatch.setattr(vnc_module, "encode_png", encode_png)
        after = decode_png(await vnc.screenshot())
        assert after.pixels != before.pixels


async def test_a_local_server_is_asked_for_tight_and_raw(
    orgo: Orgo, synthetic: Computer, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    real_raw, real_zrle = rfb_encodings.read_raw, rfb_encodings.ZRLEDecoder.read

    def raw(*args: Any) -> Any:
        decoded.append("raw")
        return real_raw(*args)

    def zrle(*args: Any) -> Any:
        decoded.append("zrle")
        return real_zrle(*args)

    monkeypatch.setattr(rfb_client, "read_raw", raw)
    monkeypatch.setattr(rfb_encodings.ZRLEDecoder, "read", zrle)
    # The emulator listens on 127.0.0.1: the local list, Tight first then Raw. The
    # emulator's own server has no Tight: it falls back to Raw, and the frame is right.
    async with orgo.connect(synthetic).vnc() as vnc:
        assert vnc.encodings == VNC_LOCAL_ENCODINGS and vnc.encodings[0] == ENCODING_TIGHT
        assert ENCODING_RAW in vnc.encodings and ENCODING_ZRLE not in vnc.encodings
        over_vnc = decode_png(await vnc.screenshot())
    assert decoded and set(decoded) == {"raw"}
    rest = decode_png((await orgo.desktop(synthetic).screenshot()).data)
    assert over_vnc.pixels == rest.pixels
    # Encodings given are used as they are, on loopback too (the remote list: Tight, then
    # ZRLE, which is what the emulator sends).
    decoded.clear()
    async with Vnc(orgo.connect(synthetic), encodings=VNC_ENCODINGS) as vnc:
        assert vnc.encodings == VNC_ENCODINGS
        assert decode_png(await vnc.screenshot()).pixels == rest.pixels
    assert decoded and set(decoded) == {"zrle"}


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        (("127.0.0.1", 5901), True),
        (("127.3.4.5", 80), True),
        (("::1", 443, 0, 0), True),
        (("10.0.0.7", 443), False),
        (("2001:db8::1", 443, 0, 0), False),
        (("example.com", 443), False),
        ("", False),  # a unix socket
        (None, False),
    ],
)
def test_loopback_peers(address: object, loopback: bool) -> None:
    class Peer:
        remote_address = address

    assert _is_loopback(Peer()) is loopback  # type: ignore[arg-type]
