"""The server core: versions, security, client messages as events, updates, and misuse."""

from __future__ import annotations

import struct

import pytest

from orgo_async.errors import ProtocolError
from orgo_async.protocol.rfb import (
    BUTTON_LEFT,
    ENCODING_DESKTOP_SIZE,
    ENCODING_HEXTILE,
    ENCODING_RAW,
    ENCODING_ZRLE,
    WHEEL_DOWN,
    WHEEL_UP,
    AuthenticationFailed,
    Bell,
    ClientCutText,
    CursorShape,
    DesktopResized,
    Framebuffer,
    Key,
    PixelFormat,
    Pointer,
    Ready,
    RectCopy,
    RectFill,
    RectPixels,
    RFBServerProtocol,
    Screen,
    ServerCutText,
    SetDesktopSize,
    SetEncodings,
    UpdateRequest,
    key_combo,
    vnc_auth_response,
)

from .conftest import (
    BLUE,
    RED,
    H,
    Pair,
    W,
    connected_server,
    painted,
    picture,
    rect,
    server_init,
)


def test_server_speaks_3_3_to_an_old_client() -> None:
    server = RFBServerProtocol(width=W, height=H, password="pw", challenge=bytes(16))
    assert server.data_to_send() == [b"RFB 003.008\n"]
    server.receive_data(b"RFB 003.003\n")
    assert server.data_to_send() == [struct.pack(">I", 2) + bytes(16)]
    server.receive_data(vnc_auth_response(bytes(16), "pw"))
    assert server.data_to_send() == [b"\0\0\0\0"]
    server.receive_data(b"\x00")
    (init,) = server.data_to_send()
    assert init == server_init(name=b"orgo_async")
    assert server.events_received() == [Ready()] and not server.shared


def test_server_3_3_wrong_password_gets_a_result_without_reason() -> None:
    server = RFBServerProtocol(width=W, height=H, password="pw", challenge=bytes(16))
    server.receive_data(b"RFB 003.003\n" + bytes(16))
    assert server.data_to_send()[-1].endswith(b"\0\0\0\x01")
    assert server.events_received() == [AuthenticationFailed("Authentication failure")]


def test_server_speaks_3_7_with_none() -> None:
    server = RFBServerProtocol(width=W, height=H)
    server.receive_data(b"RFB 003.007\n\x01\x01")
    assert server.data_to_send() == [b"RFB 003.008\n\x01\x01" + server_init(name=b"orgo_async")]


def test_server_offering_both_types() -> None:
    server = RFBServerProtocol(width=W, height=H, password="pw", security_types=[1, 2])
    server.receive_data(b"RFB 003.008\n")
    assert server.data_to_send() == [b"RFB 003.008\n\x02\x01\x02"]
    server.receive_data(b"\x01")  # None is fine too
    assert server.data_to_send() == [b"\0\0\0\0"]


def test_server_refuses_a_type_it_did_not_offer() -> None:
    server = RFBServerProtocol(width=W, height=H, password="pw")
    server.receive_data(b"RFB 003.008\n")
    server.data_to_send()
    with pytest.raises(ProtocolError, match="security type 1, not offered"):
        server.receive_data(b"\x01")
    (result,) = server.data_to_send()
    assert result.startswith(b"\0\0\0\x01") and b"was not offered" in result


def test_client_messages_reach_the_server() -> None:
    pair = Pair()
    pair.connect()
    c = pair.client
    c.send_update_request(incremental=False)
    c.send_update_request(x=10, y=20, width=30, height=40)
    c.send_pointer(5, 6, BUTTON_LEFT | WHEEL_UP)
    c.send_pointer(5, 6, WHEEL_DOWN)
    c.send_keys(key_combo("ctrl+c"))
    c.send_cut_text("héllo")
    c.send_set_desktop_size(120, 80)
    c.send_set_encodings([ENCODING_RAW])
    pair.pump()
    ctrl, letter_c = 0xFFE3, 0x63
    assert pair.server.events_received() == [
        UpdateRequest(False, 0, 0, W, H),
        UpdateRequest(True, 10, 20, 30, 40),
        Pointer(BUTTON_LEFT | WHEEL_UP, 5, 6),
        Pointer(WHEEL_DOWN, 5, 6),
        Key(True, ctrl),
        Key(True, letter_c),
        Key(False, letter_c),
        Key(False, ctrl),
        ClientCutText("héllo"),
        SetDesktopSize(120, 80, (Screen(0, 0, 0, 120, 80),)),
        SetEncodings((ENCODING_RAW,)),
    ]
    assert pair.server.encodings == (ENCODING_RAW,)


def test_the_server_prefers_the_clients_first_pixel_encoding() -> None:
    pair = Pair(client={"encodings": [ENCODING_HEXTILE, ENCODING_RAW, ENCODING_ZRLE]})
    pair.connect()
    pair.server.send_framebuffer_update([RectPixels(0, 0, 2, 1, bytes(6))])
    pair.pump()
    assert pair.to_client[-20:-8] == rect(0, 0, 2, 1, ENCODING_RAW)
    with pytest.raises(ValueError, match="not 5"):
        pair.server.send_framebuffer_update([], encoding=ENCODING_HEXTILE)
    pair = Pair(client={"encodings": []})
    pair.connect()
    with pytest.raises(ValueError, match="did not announce encoding 16"):
        pair.server.send_framebuffer_update([], encoding=ENCODING_ZRLE)
    pair.server.send_framebuffer_update([RectFill(0, 0, 2, 1, bytes(RED))])  # Raw, always
    pair.pump()
    assert pair.to_client[-20:-8] == rect(0, 0, 2, 1, ENCODING_RAW)


def test_every_kind_of_server_rectangle() -> None:
    pair = Pair()
    pair.connect()
    image = picture(W, H, seed=3)
    cursor_rgb, cursor_mask = bytes(range(3 * 4 * 2)), bytes((0b1010_0000, 0b0101_0000))
    server = pair.server
    server.send_framebuffer_update([RectPixels(0, 0, W, H, image)], encoding=ENCODING_RAW)
    server.send_framebuffer_update(
        [
            RectFill(10, 10, 70, 50, bytes(RED)),
            RectCopy(0, 0, 50, 40, 30, 20),
            RectPixels(5, 5, 3, 2, bytes(range(18))),
            CursorShape(1, 2, 4, 2, cursor_rgb, cursor_mask),
        ]
    )
    server.send_framebuffer_update([RectFill(0, 0, 4, 4, bytes(BLUE))], encoding=ENCODING_RAW)
    server.send_bell()
    server.send_cut_text("clip")
    pair.pump()
    events = pair.client.events_received()
    expected = Framebuffer(W, H)
    expected.paint(0, 0, W, H, image)
    expected.fill(10, 10, 70, 50, bytes(RED))
    expected.copy(0, 0, 50, 40, 30, 20)
    expected.paint(5, 5, 3, 2, bytes(range(18)))
    expected.fill(0, 0, 4, 4, bytes(BLUE))
    assert painted(W, H, events).pixels == expected.pixels
    assert RectCopy(0, 0, 50, 40, 30, 20) in events
    # ZRLE sends a fill as solid tiles, which come back as fills of whole bands.
    assert RectFill(10, 10, 70, 50, bytes(RED)) in events
    (cursor,) = [e for e in events if isinstance(e, CursorShape)]
    assert cursor == CursorShape(1, 2, 4, 2, cursor_rgb, cursor_mask)
    alpha = cursor.rgba[3::4]
    assert alpha == bytes((255, 0, 255, 0, 0, 255, 0, 255))
    assert events[-2:] == [Bell(), ServerCutText("clip")]


def test_resizing() -> None:
    pair = Pair()
    pair.connect()
    pair.server.send_framebuffer_update([DesktopResized(200, 150)])
    pair.server.send_framebuffer_update([RectPixels(150, 100, 50, 50, bytes(7500))])
    pair.server.send_framebuffer_update([DesktopResized(300, 300, reason=1, status=1)])
    pair.pump()
    events = pair.client.events_received()
    assert DesktopResized(200, 150, 0, 0, (Screen(0, 0, 0, 200, 150),)) in events
    assert DesktopResized(300, 300, 1, 1, (Screen(0, 0, 0, 300, 300),)) in events
    assert (pair.client.width, pair.client.height) == (200, 150)  # the failed one changed nothing
    assert (pair.server.width, pair.server.height) == (200, 150)

    # A client with plain DesktopSize only.
    pair = Pair(client={"encodings": [ENCODING_RAW, ENCODING_DESKTOP_SIZE]})
    pair.connect()
    pair.server.send_framebuffer_update([DesktopResized(64, 32)])
    pair.pump()
    assert DesktopResized(64, 32) in pair.client.events_received()
    with pytest.raises(ValueError, match="failed resize needs ExtendedDesktopSize"):
        pair.server.send_framebuffer_update([DesktopResized(64, 32, reason=1, status=3)])
    pair = Pair(client={"encodings": [ENCODING_RAW]})
    pair.connect()
    with pytest.raises(ValueError, match="neither DesktopSize"):
        pair.server.send_framebuffer_update([DesktopResized(64, 32)])
    with pytest.raises(ValueError, match="CopyRect"):
        pair.server.send_framebuffer_update([RectCopy(0, 0, 1, 1, 1, 1)])
    with pytest.raises(ValueError, match="Cursor"):
        pair.server.send_framebuffer_update([CursorShape(0, 0, 0, 0, b"", b"")])


def test_server_rectangle_misuse() -> None:
    pair = Pair()
    pair.connect()
    server = pair.server
    with pytest.raises(ValueError, match="outside 100x70"):
        server.send_framebuffer_update([RectPixels(90, 0, 20, 1, bytes(60))])
    with pytest.raises(ValueError, match="need 6 RGB bytes"):
        server.send_framebuffer_update([RectPixels(0, 0, 2, 1, bytes(5))])
    with pytest.raises(ValueError, match="3 bytes"):
        server.send_framebuffer_update([RectFill(0, 0, 2, 1, bytes(4))])
    with pytest.raises(ValueError, match="source"):
        server.send_framebuffer_update([RectCopy(90, 0, 0, 0, 20, 1)])
    with pytest.raises(ValueError, match="Latin-1"):
        server.send_cut_text("€")


def test_a_refused_update_leaves_the_zrle_stream_in_step() -> None:
    pair = Pair()
    pair.connect()
    image = picture(W, H, seed=8)
    with pytest.raises(ValueError, match="outside"):
        pair.server.send_framebuffer_update(
            [RectPixels(0, 0, W, H, image[::-1]), RectPixels(0, 0, W + 1, H, image)]
        )
    pair.server.send_framebuffer_update([RectPixels(0, 0, W, H, image)])
    pair.pump()
    assert painted(W, H, pair.client.events_received()).pixels == image


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x09", "unknown client message type 9"),
        (b"\x02\0\x10\x00", "SetEncodings lists 4096 encodings, over 1024"),
        (b"\x06\0\0\0\0\x20\0\0", "clipboard text of 2097152 bytes"),
        (b"\0\0\0\0" + PixelFormat(24, 24, False, True, 1, 1, 1, 0, 0, 0).pack(), "24 bits per"),
        (b"\0\0\0\0" + PixelFormat(8, 8, False, False, 7, 7, 3, 0, 3, 6).pack(), "colour-map"),
        (b"\0\0\0\0" + PixelFormat(16, 16, False, True, 255, 63, 31, 11, 5, 0).pack(), "fit"),
    ],
)
def test_server_refuses_what_it_cannot_follow(data: bytes, message: str) -> None:
    server = connected_server()
    with pytest.raises(ProtocolError, match=message):
        server.receive_data(data)


def test_server_parses_a_set_desktop_size_with_screens() -> None:
    server = connected_server()
    screen = struct.pack(">IHHHHI", 1, 0, 0, 640, 480, 0)
    server.receive_data(b"\xfb\0\x02\x80\x01\xe0\x01\0" + screen)
    assert server.events_received() == [SetDesktopSize(640, 480, (Screen(1, 0, 0, 640, 480),))]


def test_server_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="width"):
        RFBServerProtocol()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="encodings"):
        RFBServerProtocol(width=1, height=1, encodings=[0])  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="needs a password"):
        RFBServerProtocol(width=1, height=1, security_types=[2])
    with pytest.raises(ValueError, match="from 1 and 2"):
        RFBServerProtocol(width=1, height=1, security_types=[19])
    with pytest.raises(ValueError, match="16 bytes"):
        RFBServerProtocol(width=1, height=1, password="pw", challenge=bytes(8))
    with pytest.raises(ValueError, match="outside 1x1"):
        RFBServerProtocol(width=0, height=1)
