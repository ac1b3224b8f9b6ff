"""The client core: versions, security, ServerInit, its messages, and what it refuses."""

from __future__ import annotations

import struct

import pytest

from orgo_async.errors import ProtocolError
from orgo_async.protocol.rfb import (
    DEFAULT_ENCODINGS,
    DEFAULT_PIXEL_FORMAT,
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
    ENCODING_RAW,
    Bell,
    ColourMap,
    DesktopResized,
    FramebufferUpdateEnd,
    FramebufferUpdateStart,
    PixelFormat,
    Ready,
    RectPixels,
    RFBClientProtocol,
    RFBState,
    Screen,
    ServerInit,
    vnc_auth_response,
)

from .conftest import (
    RED,
    H,
    W,
    connected_client,
    connected_server,
    px,
    rect,
    server_init,
    update,
)


def client_init(shared: bool = True) -> bytes:
    """What the client sends once security is settled: ClientInit, SetPixelFormat, SetEncodings."""
    encodings = struct.pack(
        f">BxH{len(DEFAULT_ENCODINGS)}i", 2, len(DEFAULT_ENCODINGS), *DEFAULT_ENCODINGS
    )
    return bytes((int(shared),)) + b"\0\0\0\0" + DEFAULT_PIXEL_FORMAT.pack() + encodings


@pytest.mark.parametrize(
    ("offered", "password", "message"),
    [
        (
            [19],
            None,
            r"server offers only VeNCrypt \(19\);.*None \(1\) and VNC Authentication \(2\)",
        ),
        ([19, 16, 77], "pw", r"only VeNCrypt \(19\), Tight \(16\), type 77"),
        ([2], None, r"requires VNC authentication \(2\) but no password was given"),
        ([19, 2], None, r"requires VNC authentication \(2\) but no password"),
    ],
)
def test_no_common_security_type(offered: list[int], password: str | None, message: str) -> None:
    client = RFBClientProtocol(password=password)
    with pytest.raises(ProtocolError, match=message):
        client.receive_data(b"RFB 003.008\n" + bytes((len(offered), *offered)))


def test_the_client_picks_vnc_auth_past_vencrypt_and_none_without_a_password() -> None:
    client = RFBClientProtocol(password="pw")
    client.receive_data(b"RFB 003.008\n\x02\x13\x02")
    assert client.data_to_send() == [b"RFB 003.008\n\x02"]
    assert client.state is RFBState.VNC_AUTH
    client = RFBClientProtocol()
    client.receive_data(b"RFB 003.008\n\x03\x13\x02\x01")
    assert client.data_to_send() == [b"RFB 003.008\n\x01" + client_init()]


def test_client_init_pixel_format_and_encodings_go_before_security_result() -> None:
    # A scripted 3.8 server: the client answers the challenge and, in the same
    # write, sends ClientInit, SetPixelFormat and SetEncodings, one round trip
    # before SecurityResult and ServerInit arrive.
    format_ = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
    client = RFBClientProtocol(password="pw", shared=False, pixel_format=format_, encodings=[0, 7])
    challenge = bytes(range(16))
    client.receive_data(b"RFB 003.008\n\x01\x02" + challenge)
    set_format = b"\0\0\0\0" + format_.pack()
    set_encodings = b"\x02\x00\x00\x02" + struct.pack(">ii", 0, 7)
    assert client.data_to_send() == [
        b"RFB 003.008\n\x02"
        + vnc_auth_response(challenge, "pw")
        + b"\x00"
        + set_format
        + set_encodings
    ]
    assert client.state is RFBState.SECURITY_RESULT
    assert client.events_received() == []
    # SecurityResult and ServerInit come together; nothing more is sent for them.
    client.receive_data(b"\0\0\0\0" + server_init())
    assert [type(e) for e in client.events_received()] == [ServerInit, Ready]
    assert client.data_to_send() == []
    assert client.pixel_format == format_ and client.encodings == (0, 7)
    client.send_update_request(incremental=False)
    assert client.data_to_send() == [struct.pack(">BBHHHH", 3, 0, 0, 0, W, H)]


@pytest.mark.parametrize("version", [b"RFB 003.008\n", b"RFB 003.007\n"])
def test_vnc_auth_is_chosen_with_the_version_before_the_list(version: bytes) -> None:
    client = RFBClientProtocol(password="pw")
    client.receive_data(version)
    assert client.data_to_send() == [version + b"\x02"]  # one round trip before the list
    challenge = bytes(range(16, 32))
    client.receive_data(b"\x03\x13\x01\x02" + challenge)  # VeNCrypt, None, VNC auth
    assert client.data_to_send() == [vnc_auth_response(challenge, "pw") + client_init()]
    client.receive_data(b"\0\0\0\0" + server_init())
    assert [type(e) for e in client.events_received()] == [ServerInit, Ready]


@pytest.mark.parametrize(
    ("password", "early_auth", "version"),
    [
        (None, True, b"RFB 003.008\n"),  # no password: the list decides
        ("pw", False, b"RFB 003.008\n"),
        ("pw", True, b"RFB 003.003\n"),  # 3.3: the server decides
    ],
)
def test_no_early_choice(password: str | None, early_auth: bool, version: bytes) -> None:
    client = RFBClientProtocol(password=password, early_auth=early_auth)
    client.receive_data(version)
    assert client.data_to_send() == [version]


def test_a_server_offering_none_alone_refuses_the_early_choice() -> None:
    client = RFBClientProtocol(password="pw")
    client.receive_data(b"RFB 003.008\n")
    client.data_to_send()
    with pytest.raises(ProtocolError, match=r"does not offer VNC Authentication \(2\).*None \(1\)"):
        client.receive_data(b"\x01\x01")
    assert client.early_auth_refused and not client.auth_failed
    # Without the early choice the same server is spoken to with None.
    client = RFBClientProtocol(password="pw", early_auth=False)
    client.receive_data(b"RFB 003.008\n\x01\x01")
    assert client.data_to_send() == [b"RFB 003.008\n\x01" + client_init()]
    # A server offering neither is refused as before, with nothing to retry.
    client = RFBClientProtocol(password="pw")
    with pytest.raises(ProtocolError, match=r"no supported security type.*VeNCrypt \(19\)"):
        client.receive_data(b"RFB 003.008\n\x01\x13")
    assert not client.early_auth_refused


@pytest.mark.parametrize(
    ("greeting", "failure", "message"),
    [
        (b"RFB 003.008\n\x01\x02", b"\0\0\0\x01\0\0\0\x04nope", "VNC authentication failed: nope"),
        (b"RFB 003.007\n\x01\x02", b"\0\0\0\x01", "VNC authentication failed: no reason given"),
        (b"RFB 003.003\n\0\0\0\x02", b"\0\0\0\x02", "VNC authentication failed: too many"),
    ],
)
def test_a_refused_password_is_an_auth_error_after_the_pipelined_init(
    greeting: bytes, failure: bytes, message: str
) -> None:
    client = RFBClientProtocol(password="pw")
    client.receive_data(greeting + bytes(16))
    assert client.data_to_send()[0].endswith(client_init())  # already sent
    with pytest.raises(ProtocolError, match=message):
        client.receive_data(failure)
    assert client.auth_failed
    assert client.state is RFBState.FAILED


def test_a_refusal_with_a_reason() -> None:
    client = RFBClientProtocol()
    with pytest.raises(ProtocolError, match="refused the connection: go away"):
        client.receive_data(b"RFB 003.008\n\x00\0\0\0\x07go away")
    client = RFBClientProtocol()
    with pytest.raises(ProtocolError, match="refused the connection: not you"):
        client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\x01\0\0\0\x07not you")
    assert not client.auth_failed


def test_version_3_3_with_vnc_auth() -> None:
    client = RFBClientProtocol(password="pw")
    challenge = bytes(range(100, 116))
    client.receive_data(b"RFB 003.003\n" + struct.pack(">I", 2) + challenge)
    # ClientInit and the rest go right behind the answer, before the SecurityResult.
    answer = vnc_auth_response(challenge, "pw")
    assert client.data_to_send() == [b"RFB 003.003\n" + answer + client_init()]
    client.receive_data(b"\0\0\0\0")
    assert client.data_to_send() == []
    client.receive_data(server_init())
    assert [type(e) for e in client.events_received()] == [ServerInit, Ready]
    assert client.version == (3, 3)


def test_version_3_3_with_none_has_no_security_result() -> None:
    client = RFBClientProtocol(shared=False)
    client.receive_data(b"RFB 003.003\n\0\0\0\x01")
    assert client.data_to_send() == [b"RFB 003.003\n" + client_init(shared=False)]
    client.receive_data(server_init())
    assert client.state is RFBState.CONNECTED


def test_version_3_3_blacklist_reply() -> None:
    # Xvnc after 5 failures: "RFB 003.003\n", then u32 0 and a reason.
    reason = b"Too many security failures"
    client = RFBClientProtocol(password="pw")
    with pytest.raises(ProtocolError, match="refused the connection: Too many security failures"):
        client.receive_data(b"RFB 003.003\n\0\0\0\0" + struct.pack(">I", len(reason)) + reason)
    assert not client.auth_failed


@pytest.mark.parametrize(("result", "message"), [(1, "no reason given"), (2, "too many attempts")])
def test_version_3_3_auth_failure(result: int, message: str) -> None:
    client = RFBClientProtocol(password="pw")
    client.receive_data(b"RFB 003.003\n\0\0\0\x02" + bytes(16))
    with pytest.raises(ProtocolError, match=f"VNC authentication failed: {message}"):
        client.receive_data(struct.pack(">I", result))
    assert client.auth_failed


def test_version_3_3_server_requires_an_unsupported_type() -> None:
    with pytest.raises(ProtocolError, match=r"requires Tight \(16\)"):
        RFBClientProtocol().receive_data(b"RFB 003.003\n\0\0\0\x10")
    with pytest.raises(ProtocolError, match="no password"):
        RFBClientProtocol().receive_data(b"RFB 003.003\n\0\0\0\x02")


def test_version_3_7_none_has_no_security_result() -> None:
    client = RFBClientProtocol()
    client.receive_data(b"RFB 003.007\n\x01\x01")
    assert client.data_to_send() == [b"RFB 003.007\n\x01" + client_init()]
    client.receive_data(server_init())
    assert client.state is RFBState.CONNECTED


@pytest.mark.parametrize(
    ("greeting", "version"),
    [
        (b"RFB 003.008\n", (3, 8)),
        (b"RFB 003.889\n", (3, 8)),
        (b"RFB 004.001\n", (3, 8)),
        (b"RFB 005.000\n", (3, 8)),
        (b"RFB 003.007\n", (3, 7)),
        (b"RFB 003.005\n", (3, 3)),
        (b"RFB 003.003\n", (3, 3)),
    ],
)
def test_versions_the_client_accepts(greeting: bytes, version: tuple[int, int]) -> None:
    client = RFBClientProtocol()
    client.receive_data(greeting)
    assert client.version == version
    assert client.data_to_send() == [b"RFB %03d.%03d\n" % version]


@pytest.mark.parametrize("greeting", [b"RFB 002.000\n", b"HTTP/1.1 200", b"RFB 003.008\r"])
def test_greetings_the_client_refuses(greeting: bytes) -> None:
    with pytest.raises(ProtocolError):
        RFBClientProtocol().receive_data(greeting)


def test_server_init_limits_and_quirks() -> None:
    # x11vnc sends 0xff as the true-colour flag.
    pf = bytearray(DEFAULT_PIXEL_FORMAT.pack())
    pf[3] = 0xFF
    client = RFBClientProtocol(pixel_format=None)
    client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(pf=bytes(pf)))
    (init, _ready) = client.events_received()
    assert isinstance(init, ServerInit) and init.pixel_format == DEFAULT_PIXEL_FORMAT
    assert client.pixel_format == DEFAULT_PIXEL_FORMAT
    (sent,) = client.data_to_send()
    assert sent[14] == 2  # after version, choice and ClientInit: SetEncodings, no SetPixelFormat

    client = RFBClientProtocol()
    client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(name=b"\xe9t\xe9"))
    assert client.name == "été"  # not UTF-8: read as Latin-1

    client = RFBClientProtocol(max_name=10)
    with pytest.raises(ProtocolError, match="failure reason of 11 bytes exceeds 10"):
        client.receive_data(b"RFB 003.008\n\x00\0\0\0\x0b")
    client = RFBClientProtocol(max_name=10)
    with pytest.raises(ProtocolError, match="desktop name of 11 bytes exceeds 10"):
        client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(name=b"x" * 11))
    client = RFBClientProtocol(max_width=64)
    with pytest.raises(ProtocolError, match="framebuffer of 100x70 exceeds 64x8192"):
        client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init())
    colour_map = PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0).pack()
    client = RFBClientProtocol(pixel_format=None)
    with pytest.raises(ProtocolError, match="colour-map format.*pass pixel_format="):
        client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(pf=colour_map))


def test_client_caps_the_framebuffer_it_will_hold() -> None:
    greeting = b"RFB 003.008\n\x01\x01\0\0\0\0"
    # 8192x8192 is within max_width and max_height but would take ~270 MB.
    client = RFBClientProtocol()
    with pytest.raises(ProtocolError) as info:
        client.receive_data(greeting + server_init(8192, 8192))
    message = str(info.value)
    assert "8192x8192" in message and "67,108,864 pixels" in message
    assert "max_pixels=16,777,216" in message
    assert client.events_received() == []  # nothing to allocate a framebuffer for
    # A 4K desktop, and one at the default cap, are welcome.
    for width, height in ((3840, 2160), (4096, 4096)):
        client = RFBClientProtocol()
        client.receive_data(greeting + server_init(width, height))
        assert (client.width, client.height) == (width, height)
    # The cap applies to resizes too, and can be set.
    client = connected_client(max_pixels=100 * 70)
    with pytest.raises(ProtocolError, match="101x70 .* exceeds max_pixels=7,000"):
        client.receive_data(update(rect(0, 0, 101, 70, ENCODING_DESKTOP_SIZE)))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_pixels"):
            RFBClientProtocol(max_pixels=bad)  # type: ignore[arg-type]


def test_client_message_bytes() -> None:
    client = connected_client()
    client.send_pointer(0x102, 0x304, 0x18)
    client.send_key(0xFF0D, True)
    client.send_update_request(incremental=True, x=1, y=2, width=3, height=4)
    client.send_cut_text("ab")
    # Everything buffered goes as one chunk (one WebSocket frame for the connector).
    assert client.data_to_send() == [
        b"\x05\x18\x01\x02\x03\x04"
        b"\x04\x01\0\0\0\0\xff\x0d"
        b"\x03\x01\0\x01\0\x02\0\x03\0\x04"
        b"\x06\0\0\0\0\0\0\x02ab"
    ]
    assert client.data_to_send() == []


def test_client_message_misuse() -> None:
    client = RFBClientProtocol()
    with pytest.raises(RuntimeError, match="not ready"):
        client.send_key(0x61, True)
    client = connected_client()
    with pytest.raises(ValueError, match="Latin-1; '€' is not"):
        client.send_cut_text("5 €")
    with pytest.raises(ValueError, match="x must be from 0 to 65535"):
        client.send_pointer(-1, 0)
    with pytest.raises(ValueError, match="button mask"):
        client.send_pointer(0, 0, 256)
    with pytest.raises(ValueError, match="keysym"):
        client.send_key(-1, True)
    with pytest.raises(ValueError, match="unsupported pixel format"):
        client.send_set_pixel_format(PixelFormat(24, 24, False, True, 255, 255, 255, 16, 8, 0))
    # Each role has only its own messages and arguments.
    assert not hasattr(client, "send_bell") and not hasattr(client, "send_framebuffer_update")
    assert not hasattr(connected_server(), "send_key")
    with pytest.raises(TypeError, match="width"):
        RFBClientProtocol(width=10, height=10)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="challenge"):
        RFBClientProtocol(challenge=bytes(16))  # type: ignore[call-arg]


def test_last_rect_ends_the_update_early() -> None:
    client = connected_client()
    client.receive_data(
        update(rect(0, 0, 1, 1, ENCODING_RAW, px(RED)), rect(0, 0, 0, 0, -224), count=0xFFFF)
        + b"\x02"
    )
    assert client.events_received() == [
        FramebufferUpdateStart(0xFFFF),
        RectPixels(0, 0, 1, 1, bytes(RED)),
        FramebufferUpdateEnd(),
        Bell(),
    ]


def test_colour_map_entries_are_reported() -> None:
    client = connected_client()
    client.receive_data(b"\x01\0\0\x05\0\x02" + struct.pack(">6H", 1, 2, 3, 65535, 0, 9))
    assert client.events_received() == [ColourMap(5, ((1, 2, 3), (65535, 0, 9)))]


def test_extended_desktop_size_from_the_wire() -> None:
    client = connected_client()
    screens = struct.pack(">IHHHHIIHHHHI", 7, 0, 0, 800, 600, 0, 8, 800, 0, 1, 2, 3)
    client.receive_data(update(rect(0, 0, 1024, 600, -308, b"\x02\0\0\0" + screens)))
    (_, resized, _) = client.events_received()
    assert resized == DesktopResized(
        1024, 600, 0, 0, (Screen(7, 0, 0, 800, 600, 0), Screen(8, 800, 0, 1, 2, 3))
    )
    assert (client.width, client.height) == (1024, 600)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x07", "unknown server message type 7"),
        (update(rect(0, 0, 1, 1, 6)), "unsupported encoding 6"),
        (update(rect(0, 0, 1, 1, -260)), "unsupported encoding -260"),
        (
            update(rect(90, 0, 20, 1, ENCODING_RAW)),
            r"rectangle 20x1\+90\+0 \(encoding 0\) is outside",
        ),
        (update(rect(0, 0, 10, 10, ENCODING_COPYRECT, b"\0\x60\0\0")), "CopyRect source"),
        (update(rect(0, 0, 300, 2, ENCODING_CURSOR)), "cursor of 300x2 exceeds 256x256"),
        (update(rect(0, 0, 9000, 2, ENCODING_DESKTOP_SIZE)), "framebuffer of 9000x2 exceeds"),
        (b"\x03\0\0\0\x7f\xff\xff\xff", "clipboard text of 2147483647 bytes exceeds 1048576"),
    ],
)
def test_client_refuses_what_it_cannot_follow(data: bytes, message: str) -> None:
    client = connected_client()
    with pytest.raises(ProtocolError, match=message):
        client.receive_data(data)
    assert client.state is RFBState.FAILED and client.buffered_bytes == 0
