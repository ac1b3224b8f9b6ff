"""The RFB core: handshakes, every encoding, any split of the stream, garbage, keys, DES."""

from __future__ import annotations

import ast
import random
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from orgo_async.errors import ProtocolError
from orgo_async.protocol import Role, rfb
from orgo_async.protocol._reader import StreamReader
from orgo_async.protocol.rfb import (
    BUTTON_LEFT,
    DEFAULT_PIXEL_FORMAT,
    ENCODING_COPYRECT,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_HEXTILE,
    ENCODING_LAST_RECT,
    ENCODING_RAW,
    ENCODING_ZRLE,
    WHEEL_DOWN,
    WHEEL_UP,
    AuthenticationFailed,
    Bell,
    ClientCutText,
    ColourMap,
    CursorShape,
    DesktopResized,
    FramebufferUpdateEnd,
    FramebufferUpdateStart,
    Key,
    PixelFormat,
    Pointer,
    Ready,
    RectCopy,
    RectFill,
    RectPixels,
    RFBEvent,
    RFBProtocol,
    RFBState,
    Screen,
    ServerCutText,
    ServerInit,
    SetDesktopSize,
    SetEncodings,
    SetPixelFormat,
    UpdateRequest,
    key_combo,
    keysym,
    text_to_keys,
    vnc_auth_response,
)

# Not multiples of 16 or 64: every encoding meets partial tiles.
W, H = 100, 70
Colour = tuple[int, int, int]

RGBX = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)  # what vncdotool asks for
BIG_ENDIAN = PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0)
HIGH_BYTES = PixelFormat(32, 24, False, True, 255, 255, 255, 24, 16, 8)  # CPIXEL drops the low byte
RGB565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
BGR233 = PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6)
TEN_BIT = PixelFormat(32, 30, True, True, 1023, 1023, 1023, 20, 10, 0)
# 6 bits a channel in 3 bytes: a 3-byte CPIXEL that is not byte-aligned.
EIGHTEEN_BIT = PixelFormat(32, 18, False, True, 63, 63, 63, 12, 6, 0)
EIGHTEEN_BIT_BE = PixelFormat(32, 18, True, True, 63, 63, 63, 12, 6, 0)


# -- helpers --------------------------------------------------------------------------------


class Pair:
    """A client and a server core joined by a fake network, recording what the server sent."""

    def __init__(
        self, *, client: dict[str, Any] | None = None, server: dict[str, Any] | None = None
    ) -> None:
        self.client = RFBProtocol(Role.CLIENT, **(client or {}))
        server_kw: dict[str, Any] = {"width": W, "height": H, **(server or {})}
        self.server = RFBProtocol(Role.SERVER, **server_kw)
        self.to_client = bytearray()

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for data in self.server.data_to_send():
                moved = True
                self.to_client += data
                self.client.receive_data(data)
            for data in self.client.data_to_send():
                moved = True
                self.server.receive_data(data)

    def connect(self) -> tuple[list[RFBEvent], list[RFBEvent]]:
        self.pump()
        return self.client.events_received(), self.server.events_received()


class Canvas:
    """A framebuffer painted by client events, to compare pixels whatever the encoding."""

    def __init__(self, width: int, height: int) -> None:
        self.resize(width, height)

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rgb = bytearray(width * height * 3)

    def apply(self, events: Iterable[RFBEvent]) -> Canvas:
        for event in events:
            if isinstance(event, RectPixels):
                self._paint(event.x, event.y, event.width, event.height, event.rgb)
            elif isinstance(event, RectFill):
                self._paint(
                    event.x, event.y, event.width, event.height,
                    event.rgb * (event.width * event.height),
                )  # fmt: skip
            elif isinstance(event, RectCopy):
                self._paint(
                    event.x, event.y, event.width, event.height,
                    self.crop(event.src_x, event.src_y, event.width, event.height),
                )  # fmt: skip
            elif isinstance(event, DesktopResized) and event.status == 0:
                self.resize(event.width, event.height)
        return self

    def _paint(self, x: int, y: int, w: int, h: int, rgb: bytes) -> None:
        for row in range(h):
            at = ((y + row) * self.width + x) * 3
            self.rgb[at : at + w * 3] = rgb[row * w * 3 : (row + 1) * w * 3]

    def crop(self, x: int, y: int, w: int, h: int) -> bytes:
        return b"".join(
            bytes(self.rgb[((y + r) * self.width + x) * 3 : ((y + r) * self.width + x + w) * 3])
            for r in range(h)
        )

    def pixel(self, x: int, y: int) -> Colour:
        at = (y * self.width + x) * 3
        r, g, b = self.rgb[at : at + 3]
        return (r, g, b)


def picture(w: int, h: int, seed: int = 1) -> bytes:
    """A desktop-like RGB image: flat areas, a gradient, text-like specks and some noise."""
    rng = random.Random(seed)
    out = bytearray()
    for y in range(h):
        for x in range(w):
            if y < h // 5:
                out += bytes((30, 30, 120))
            elif x < w // 3:
                out += bytes(((x * 7) & 255, (y * 3) & 255, 90))
            elif rng.random() < 0.1:
                out += bytes((0, 0, 0))
            elif x > w * 3 // 4:
                out += bytes(rng.randrange(256) for _ in range(3))
            else:
                out += bytes((240, 240, 240))
    return bytes(out)


def quantise(rgb: bytes, pf: PixelFormat) -> bytes:
    """What ``rgb`` looks like after a trip through ``pf`` (reference arithmetic)."""
    out = bytearray()
    tops = (pf.red_max, pf.green_max, pf.blue_max)
    for i, value in enumerate(rgb):
        top = tops[i % 3]
        level = (value * top + 127) // 255
        out.append((level * 255 + top // 2) // top)
    return bytes(out)


def server_init(w: int = W, h: int = H, name: bytes = b"desk", pf: bytes | None = None) -> bytes:
    pf = DEFAULT_PIXEL_FORMAT.pack() if pf is None else pf
    return struct.pack(">HH", w, h) + pf + struct.pack(">I", len(name)) + name


def connected_client(w: int = W, h: int = H, **kw: Any) -> RFBProtocol:
    """A client past the handshake (3.8, None), its outgoing bytes and events drained."""
    client = RFBProtocol(Role.CLIENT, **kw)
    client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(w, h))
    client.data_to_send()
    client.events_received()
    return client


def connected_server(**kw: Any) -> RFBProtocol:
    server = RFBProtocol(Role.SERVER, width=W, height=H, **kw)
    server.receive_data(b"RFB 003.008\n\x01\x01")
    server.data_to_send()
    server.events_received()
    return server


def update(*rects: bytes, count: int | None = None) -> bytes:
    return b"\0\0" + struct.pack(">H", len(rects) if count is None else count) + b"".join(rects)


def rect(x: int, y: int, w: int, h: int, encoding: int, body: bytes = b"") -> bytes:
    return struct.pack(">HHHHi", x, y, w, h, encoding) + body


def px(colour: Colour) -> bytes:
    """A pixel in the default format (B, G, R, X in memory)."""
    r, g, b = colour
    return bytes((b, g, r, 0))


def cpx(colour: Colour) -> bytes:
    """A ZRLE CPIXEL in the default format (B, G, R)."""
    r, g, b = colour
    return bytes((b, g, r))


RED, GREEN, BLUE, YELLOW, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255,) * 3


# -- handshakes -----------------------------------------------------------------------------


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


def test_handshake_with_the_right_password() -> None:
    pair = Pair(client={"password": "s3cret!"}, server={"password": "s3cret!", "name": "été"})
    client_events, server_events = pair.connect()
    assert isinstance(client_events[0], ServerInit) and client_events[0].name == "été"
    assert Ready() in server_events
    assert not pair.client.auth_failed


def test_only_the_first_eight_bytes_of_a_password_count() -> None:
    pair = Pair(client={"password": "n3wPass!-long"}, server={"password": "n3wPass!"})
    assert Ready() in pair.connect()[1]


def test_a_wrong_password_fails_with_the_servers_reason() -> None:
    pair = Pair(client={"password": "wrong"}, server={"password": "right"})
    with pytest.raises(ProtocolError, match="VNC authentication failed: Authentication failure"):
        pair.pump()
    assert pair.client.auth_failed
    assert pair.client.state is RFBState.FAILED
    assert pair.server.state is RFBState.CLOSED
    assert pair.server.events_received() == [AuthenticationFailed("Authentication failure")]
    # Failed for good: the same error again, whatever arrives; EOF is harmless.
    with pytest.raises(ProtocolError, match="VNC authentication failed"):
        pair.client.receive_data(b"\0")
    pair.client.receive_eof()
    # The refused server ignores what the client still sends, and takes the EOF.
    pair.server.receive_data(b"\x01")
    pair.server.receive_eof()


def test_vnc_auth_uses_the_challenge_given_to_the_server() -> None:
    challenge = bytes(range(16))
    pair = Pair(client={"password": "pw"}, server={"password": "pw", "challenge": challenge})
    pair.connect()
    assert challenge in bytes(pair.to_client)


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
    client = RFBProtocol(Role.CLIENT, password=password)
    with pytest.raises(ProtocolError, match=message):
        client.receive_data(b"RFB 003.008\n" + bytes((len(offered), *offered)))


def test_the_client_picks_vnc_auth_past_vencrypt_and_none_without_a_password() -> None:
    client = RFBProtocol(Role.CLIENT, password="pw")
    client.receive_data(b"RFB 003.008\n\x02\x13\x02")
    assert client.data_to_send() == [b"RFB 003.008\n", b"\x02"]
    assert client.state is RFBState.VNC_AUTH
    client = RFBProtocol(Role.CLIENT)
    client.receive_data(b"RFB 003.008\n\x03\x13\x02\x01")
    assert client.data_to_send() == [b"RFB 003.008\n", b"\x01"]


def test_a_refusal_with_a_reason() -> None:
    client = RFBProtocol(Role.CLIENT)
    with pytest.raises(ProtocolError, match="refused the connection: go away"):
        client.receive_data(b"RFB 003.008\n\x00\0\0\0\x07go away")
    client = RFBProtocol(Role.CLIENT)
    with pytest.raises(ProtocolError, match="refused the connection: not you"):
        client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\x01\0\0\0\x07not you")
    assert not client.auth_failed


def test_version_3_3_with_vnc_auth() -> None:
    client = RFBProtocol(Role.CLIENT, password="pw")
    challenge = bytes(range(100, 116))
    client.receive_data(b"RFB 003.003\n" + struct.pack(">I", 2) + challenge)
    assert client.data_to_send() == [b"RFB 003.003\n", vnc_auth_response(challenge, "pw")]
    client.receive_data(b"\0\0\0\0")
    assert client.data_to_send() == [b"\x01"]  # ClientInit, shared
    client.receive_data(server_init())
    assert [type(e) for e in client.events_received()] == [ServerInit, Ready]
    assert client.version == (3, 3)


def test_version_3_3_with_none_has_no_security_result() -> None:
    client = RFBProtocol(Role.CLIENT, shared=False)
    client.receive_data(b"RFB 003.003\n\0\0\0\x01")
    assert client.data_to_send() == [b"RFB 003.003\n", b"\x00"]
    client.receive_data(server_init())
    assert client.state is RFBState.CONNECTED


def test_version_3_3_blacklist_reply() -> None:
    # Xvnc after 5 failures: "RFB 003.003\n", then u32 0 and a reason.
    reason = b"Too many security failures"
    client = RFBProtocol(Role.CLIENT, password="pw")
    with pytest.raises(ProtocolError, match="refused the connection: Too many security failures"):
        client.receive_data(b"RFB 003.003\n\0\0\0\0" + struct.pack(">I", len(reason)) + reason)
    assert not client.auth_failed


@pytest.mark.parametrize(("result", "message"), [(1, "no reason given"), (2, "too many attempts")])
def test_version_3_3_auth_failure(result: int, message: str) -> None:
    client = RFBProtocol(Role.CLIENT, password="pw")
    client.receive_data(b"RFB 003.003\n\0\0\0\x02" + bytes(16))
    with pytest.raises(ProtocolError, match=f"VNC authentication failed: {message}"):
        client.receive_data(struct.pack(">I", result))
    assert client.auth_failed


def test_version_3_3_server_requires_an_unsupported_type() -> None:
    with pytest.raises(ProtocolError, match=r"requires Tight \(16\)"):
        RFBProtocol(Role.CLIENT).receive_data(b"RFB 003.003\n\0\0\0\x10")
    with pytest.raises(ProtocolError, match="no password"):
        RFBProtocol(Role.CLIENT).receive_data(b"RFB 003.003\n\0\0\0\x02")


def test_version_3_7_none_has_no_security_result() -> None:
    client = RFBProtocol(Role.CLIENT)
    client.receive_data(b"RFB 003.007\n\x01\x01")
    assert client.data_to_send() == [b"RFB 003.007\n", b"\x01", b"\x01"]
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
    client = RFBProtocol(Role.CLIENT)
    client.receive_data(greeting)
    assert client.version == version
    assert client.data_to_send() == [b"RFB %03d.%03d\n" % version]


@pytest.mark.parametrize("greeting", [b"RFB 002.000\n", b"HTTP/1.1 200", b"RFB 003.008\r"])
def test_greetings_the_client_refuses(greeting: bytes) -> None:
    with pytest.raises(ProtocolError):
        RFBProtocol(Role.CLIENT).receive_data(greeting)


def test_server_speaks_3_3_to_an_old_client() -> None:
    server = RFBProtocol(Role.SERVER, width=W, height=H, password="pw", challenge=bytes(16))
    assert server.data_to_send() == [b"RFB 003.008\n"]
    server.receive_data(b"RFB 003.003\n")
    assert server.data_to_send() == [struct.pack(">I", 2), bytes(16)]
    server.receive_data(vnc_auth_response(bytes(16), "pw"))
    assert server.data_to_send() == [b"\0\0\0\0"]
    server.receive_data(b"\x00")
    (init,) = server.data_to_send()
    assert init == server_init(name=b"orgo_async")
    assert server.events_received() == [Ready()] and not server.shared


def test_server_3_3_wrong_password_gets_a_result_without_reason() -> None:
    server = RFBProtocol(Role.SERVER, width=W, height=H, password="pw", challenge=bytes(16))
    server.receive_data(b"RFB 003.003\n" + bytes(16))
    assert server.data_to_send()[-1] == b"\0\0\0\x01"
    assert server.events_received() == [AuthenticationFailed("Authentication failure")]


def test_server_speaks_3_7_with_none() -> None:
    server = RFBProtocol(Role.SERVER, width=W, height=H)
    server.receive_data(b"RFB 003.007\n\x01\x01")
    assert server.data_to_send()[1:] == [b"\x01\x01", server_init(name=b"orgo_async")]


def test_server_offering_both_types() -> None:
    server = RFBProtocol(Role.SERVER, width=W, height=H, password="pw", security_types=[1, 2])
    server.receive_data(b"RFB 003.008\n")
    assert server.data_to_send()[-1] == b"\x02\x01\x02"
    server.receive_data(b"\x01")  # None is fine too
    assert server.data_to_send() == [b"\0\0\0\0"]


def test_server_refuses_a_type_it_did_not_offer() -> None:
    server = RFBProtocol(Role.SERVER, width=W, height=H, password="pw")
    server.receive_data(b"RFB 003.008\n")
    server.data_to_send()
    with pytest.raises(ProtocolError, match="security type 1, not offered"):
        server.receive_data(b"\x01")
    (result,) = server.data_to_send()
    assert result.startswith(b"\0\0\0\x01") and b"was not offered" in result


def test_server_init_limits_and_quirks() -> None:
    # x11vnc sends 0xff as the true-colour flag.
    pf = bytearray(DEFAULT_PIXEL_FORMAT.pack())
    pf[3] = 0xFF
    client = RFBProtocol(Role.CLIENT, pixel_format=None)
    client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(pf=bytes(pf)))
    (init, _ready) = client.events_received()
    assert isinstance(init, ServerInit) and init.pixel_format == DEFAULT_PIXEL_FORMAT
    assert client.pixel_format == DEFAULT_PIXEL_FORMAT
    assert client.data_to_send()[-1][0] == 2  # SetEncodings but no SetPixelFormat

    client = RFBProtocol(Role.CLIENT)
    client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(name=b"\xe9t\xe9"))
    assert client.name == "été"  # not UTF-8: read as Latin-1

    client = RFBProtocol(Role.CLIENT, max_name=10)
    with pytest.raises(ProtocolError, match="failure reason of 11 bytes exceeds 10"):
        client.receive_data(b"RFB 003.008\n\x00\0\0\0\x0b")
    client = RFBProtocol(Role.CLIENT, max_name=10)
    with pytest.raises(ProtocolError, match="desktop name of 11 bytes exceeds 10"):
        client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(name=b"x" * 11))
    client = RFBProtocol(Role.CLIENT, max_width=64)
    with pytest.raises(ProtocolError, match="framebuffer of 100x70 exceeds 64x8192"):
        client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init())
    colour_map = PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0).pack()
    client = RFBProtocol(Role.CLIENT, pixel_format=None)
    with pytest.raises(ProtocolError, match="colour-map format.*pass pixel_format="):
        client.receive_data(b"RFB 003.008\n\x01\x01\0\0\0\0" + server_init(pf=colour_map))


def test_eof_during_the_handshake_and_after() -> None:
    client = RFBProtocol(Role.CLIENT)
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


def test_missing_cryptography_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)
    with pytest.raises(ImportError, match=r"pip install 'orgo_async\[vnc\]'"):
        RFBProtocol(Role.CLIENT, password="pw")
    with pytest.raises(ImportError, match="needs the 'vnc' extra"):
        vnc_auth_response(bytes(16), "pw")
    RFBProtocol(Role.CLIENT)  # no password, no cryptography needed


# -- DES ------------------------------------------------------------------------------------


def test_des_against_the_fips_81_known_answer() -> None:
    # FIPS PUB 81, appendix B: key 0123456789abcdef, "Now is t" -> 3fa40e8a984d4815.
    # VNC bit-reverses each password byte into the key, so this password is that key reversed.
    password = bytes.fromhex("80c4a2e691d5b3f7")
    answer = vnc_auth_response(b"Now is tNow is t", password)
    assert answer == bytes.fromhex("3fa40e8a984d4815") * 2


def test_des_against_the_all_zero_vector() -> None:
    # DES with an all-zero key and block gives 8ca64de9c1b123a7 (NBS SP 500-20 validation
    # set); an empty VNC password is that all-zero key.
    assert vnc_auth_response(bytes(16), "") == bytes.fromhex("8ca64de9c1b123a7") * 2


def test_des_key_is_the_password_padded_truncated_and_reversed() -> None:
    challenge = bytes(range(16))
    assert vnc_auth_response(challenge, "abc") == vnc_auth_response(challenge, b"abc\0\0")
    assert vnc_auth_response(challenge, "abcdefgh") == vnc_auth_response(challenge, "abcdefghZZ")
    assert vnc_auth_response(challenge, "abcdefgh") != vnc_auth_response(challenge, "abcdefgi")
    with pytest.raises(ValueError, match="16 bytes"):
        vnc_auth_response(bytes(8), "pw")


# -- client messages ------------------------------------------------------------------------


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


def test_client_message_bytes() -> None:
    client = connected_client()
    client.send_pointer(0x102, 0x304, 0x18)
    client.send_key(0xFF0D, True)
    client.send_update_request(incremental=True, x=1, y=2, width=3, height=4)
    client.send_cut_text("ab")
    assert client.data_to_send() == [
        b"\x05\x18\x01\x02\x03\x04",
        b"\x04\x01\0\0\0\0\xff\x0d",
        b"\x03\x01\0\x01\0\x02\0\x03\0\x04",
        b"\x06\0\0\0\0\0\0\x02ab",
    ]


def test_client_message_misuse() -> None:
    client = RFBProtocol(Role.CLIENT)
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
    with pytest.raises(RuntimeError, match="only the server"):
        client.send_bell()
    with pytest.raises(RuntimeError, match="only the server"):
        client.send_framebuffer_update([])
    server = connected_server()
    with pytest.raises(RuntimeError, match="only the client"):
        server.send_key(0x61, True)
    with pytest.raises(ValueError, match="for the server role"):
        RFBProtocol(Role.CLIENT, width=10, height=10)
    with pytest.raises(ValueError, match="needs width and height"):
        RFBProtocol(Role.SERVER)
    with pytest.raises(ValueError, match="needs a password"):
        RFBProtocol(Role.SERVER, width=1, height=1, security_types=[2])
    with pytest.raises(ValueError, match="from 1 and 2"):
        RFBProtocol(Role.SERVER, width=1, height=1, security_types=[19])


# -- server messages and encodings, round trip ----------------------------------------------


@pytest.mark.parametrize("encoding", [ENCODING_RAW, ENCODING_ZRLE])
@pytest.mark.parametrize(
    "pf",
    [
        DEFAULT_PIXEL_FORMAT,
        RGBX,
        BIG_ENDIAN,
        HIGH_BYTES,
        RGB565,
        BGR233,
        TEN_BIT,
        EIGHTEEN_BIT,
        EIGHTEEN_BIT_BE,
    ],
    ids=["bgrx", "rgbx", "big-endian", "high-bytes", "565", "233", "10-bit", "18-bit", "18-bit-be"],
)
def test_pixels_round_trip(encoding: int, pf: PixelFormat) -> None:
    pair = Pair(client={"pixel_format": pf})
    pair.connect()
    assert pair.server.pixel_format == pf
    image = picture(W, H)
    pair.server.send_framebuffer_update([RectPixels(0, 0, W, H, image)], encoding=encoding)
    pair.pump()
    events = pair.client.events_received()
    assert isinstance(events[0], FramebufferUpdateStart) and events[0].rects == 1
    assert isinstance(events[-1], FramebufferUpdateEnd)
    canvas = Canvas(W, H).apply(events)
    exact = pf.red_max == pf.green_max == pf.blue_max == 255
    assert bytes(canvas.rgb) == (image if exact else quantise(image, pf))


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
    expected = Canvas(W, H)
    expected.rgb[:] = image
    expected._paint(10, 10, 70, 50, bytes(RED) * 3500)
    expected._paint(50, 40, 30, 20, expected.crop(0, 0, 30, 20))
    expected._paint(5, 5, 3, 2, bytes(range(18)))
    expected._paint(0, 0, 4, 4, bytes(BLUE) * 16)
    assert Canvas(W, H).apply(events).rgb == expected.rgb
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
    assert Canvas(W, H).apply(pair.client.events_received()).rgb == image


def test_zero_sized_rectangles_carry_no_pixels() -> None:
    pair = Pair()
    pair.connect()
    pair.server.send_framebuffer_update([RectPixels(0, 0, 0, 5, b"")], encoding=ENCODING_ZRLE)
    pair.server.send_framebuffer_update([RectPixels(0, 0, 5, 0, b"")], encoding=ENCODING_RAW)
    pair.pump()
    assert [type(e) for e in pair.client.events_received()] == [
        FramebufferUpdateStart,
        FramebufferUpdateEnd,
    ] * 2


def test_large_raw_rectangles_arrive_in_bounded_bands() -> None:
    client = connected_client(2000, 1000)
    body = bytes(2000 * 1000 * 4)
    client.receive_data(update(rect(0, 0, 2000, 1000, ENCODING_RAW)))
    for at in range(0, len(body), 300_000):
        client.receive_data(body[at : at + 300_000])
        assert client.buffered_bytes < 1 << 20
    events = client.events_received()
    bands = [e for e in events if isinstance(e, RectPixels)]
    assert len(bands) > 1 and sum(b.height for b in bands) == 1000
    assert all(len(b.rgb) == b.width * b.height * 3 for b in bands)


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


# -- Hextile, built by hand from the spec ----------------------------------------------------


def test_hextile_every_subencoding() -> None:
    client = connected_client()
    raw_tile = [(x * 10, y * 100, 7) for y in range(2) for x in range(16)]
    # A 20x18 rectangle at (3, 2): tiles 16x16, 4x16 (first row), 16x2, 4x2 (second row).
    tiles = (
        # 1: background + foreground + 2 subrects: (2,3) 4x2 and (10,12) 6x3.
        bytes((2 | 4 | 8,)) + px(RED) + px(GREEN) + b"\x02" + b"\x23\x31" + b"\xac\x52"
        # 2: background carried over (red); 2 coloured subrects: (0,0) 1x1 and (1,1) 2x2.
        + bytes((8 | 16,)) + b"\x02" + px(BLUE) + b"\x00\x00" + px(YELLOW) + b"\x11\x11"
        # 3: raw.
        + b"\x01" + b"".join(px(c) for c in raw_tile)
        # 4: a new background, no subrects (AnySubrects with a zero count).
        + bytes((2 | 8,)) + px(WHITE) + b"\x00"
    )  # fmt: skip
    client.receive_data(update(rect(3, 2, 20, 18, ENCODING_HEXTILE, tiles)))
    canvas = Canvas(W, H).apply(client.events_received())
    for y in range(18):
        for x in range(20):
            if y < 16 and x < 16:
                in_a = 2 <= x <= 5 and 3 <= y <= 4
                in_b = 10 <= x <= 15 and 12 <= y <= 14
                want = GREEN if in_a or in_b else RED
            elif y < 16:
                want = (
                    BLUE if (x, y) == (16, 0) else YELLOW if x in (17, 18) and y in (1, 2) else RED
                )
            elif x < 16:
                want = raw_tile[(y - 16) * 16 + x]
            else:
                want = WHITE
            assert canvas.pixel(3 + x, 2 + y) == want, (x, y)
    assert canvas.pixel(2, 2) == (0, 0, 0) and canvas.pixel(23, 2) == (0, 0, 0)


def test_hextile_carries_background_and_foreground_over() -> None:
    client = connected_client()
    tiles = (
        bytes((2 | 4 | 8,)) + px(BLUE) + px(WHITE) + b"\x01" + b"\x00\x0f"  # column 0, 16 tall
        + bytes((8,)) + b"\x01" + b"\xf0\x00"  # blue and white carried: (15,0) 1x1
        + b"\x00"  # blue, carried, nothing else
    )  # fmt: skip
    client.receive_data(update(rect(0, 0, 48, 16, ENCODING_HEXTILE, tiles)))
    canvas = Canvas(W, H).apply(client.events_received())
    assert canvas.pixel(0, 15) == WHITE and canvas.pixel(1, 15) == BLUE
    assert canvas.pixel(31, 0) == WHITE and canvas.pixel(30, 0) == BLUE
    assert canvas.pixel(40, 8) == BLUE


def test_hextile_plain_bands_become_fills() -> None:
    client = connected_client()
    tiles = b"\x02" + px(GREEN) + b"\x00" + b"\x08\x00" + b"\x00" * 3
    tiles += b"\x00\x02" + px(RED) + b"\x00"  # two colours in the third band
    client.receive_data(update(rect(0, 0, 40, 40, ENCODING_HEXTILE, tiles)))
    events = client.events_received()
    assert events[1:3] == [
        RectFill(0, 0, 40, 16, bytes(GREEN)),
        RectFill(0, 16, 40, 16, bytes(GREEN)),
    ]
    assert isinstance(events[3], RectPixels)
    assert events[3].rgb == (bytes(GREEN) * 16 + bytes(RED) * 24) * 8


@pytest.mark.parametrize(
    ("tiles", "message"),
    [
        (b"\x08\x00", "without a background"),
        (b"\x0a" + px(RED) + b"\x01\x00\x00", "without a foreground"),
        (b"\x1a" + px(RED) + b"\x01" + px(RED) + b"\xf0\x10", r"subrectangle 2x1\+15\+0 outside"),
        (b"\x20", "unknown Hextile subencoding bits"),
    ],
)
def test_hextile_errors(tiles: bytes, message: str) -> None:
    client = connected_client()
    with pytest.raises(ProtocolError, match=message):
        client.receive_data(update(rect(0, 0, 16, 16, ENCODING_HEXTILE, tiles)))


# -- ZRLE, built by hand from the spec -------------------------------------------------------


def _length(run: int) -> bytes:
    """An RLE run length: 255s, then the remainder; their sum is run - 1."""
    return b"\xff" * ((run - 1) // 255) + bytes(((run - 1) % 255,))


def _runs(pixels: Sequence[Colour]) -> list[tuple[Colour, int]]:
    runs: list[tuple[Colour, int]] = []
    for p in pixels:
        if runs and runs[-1][0] == p:
            runs[-1] = (p, runs[-1][1] + 1)
        else:
            runs.append((p, 1))
    return runs


def zrle_tile(kind: str, pixels: Sequence[Colour], tw: int) -> bytes:
    """One ZRLE tile in the default format, written from the spec's description."""
    if kind == "raw":
        return b"\x00" + b"".join(cpx(p) for p in pixels)
    if kind == "solid":
        assert len(set(pixels)) == 1
        return b"\x01" + cpx(pixels[0])
    palette = sorted(set(pixels))
    index = {p: i for i, p in enumerate(palette)}
    if kind == "packed":
        size = len(palette)
        assert 2 <= size <= 16
        bits = 1 if size == 2 else 2 if size <= 4 else 4
        out = bytearray((size,)) + b"".join(cpx(p) for p in palette)
        for row in range(len(pixels) // tw):
            acc = filled = 0
            for p in pixels[row * tw : (row + 1) * tw]:
                acc, filled = (acc << bits) | index[p], filled + bits
                if filled == 8:
                    out.append(acc)
                    acc = filled = 0
            if filled:
                out.append(acc << (8 - filled))  # rows end on a byte boundary
        return bytes(out)
    if kind == "plain-rle":
        return b"\x80" + b"".join(cpx(p) + _length(n) for p, n in _runs(pixels))
    if kind == "palette-rle":
        out = bytearray((128 + len(palette),)) + b"".join(cpx(p) for p in palette)
        for p, n in _runs(pixels):
            out += bytes((index[p],)) if n == 1 else bytes((index[p] | 128,)) + _length(n)
        return bytes(out)
    raise AssertionError(kind)


def zrle_rect(x: int, y: int, w: int, h: int, tiles: bytes, deflate: Any) -> bytes:
    data = deflate.compress(tiles) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return rect(x, y, w, h, ENCODING_ZRLE, struct.pack(">I", len(data)) + data)


def tile_pixels(kind: str, tw: int, th: int, rng: random.Random) -> list[Colour]:
    """Pixels that suit ``kind``: few colours for palettes, long runs for RLE."""
    n = tw * th
    if kind == "solid":
        return [YELLOW] * n
    if kind == "raw":
        return [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(n)]
    colours = [(i * 40 % 256, i * 90 % 256, i * 20 % 256) for i in range(rng.choice([2, 3, 9, 16]))]
    if kind == "packed":
        return [
            colours[i % len(colours)] if i < len(colours) else rng.choice(colours) for i in range(n)
        ]
    if kind == "palette-rle":
        colours = [(i, 255 - i, i * 2 % 256) for i in range(127)]  # the largest palette
    out: list[Colour] = []
    while len(out) < n:
        out += [rng.choice(colours)] * rng.choice([1, 1, 2, 255, 256, 300, 600])
    out = out[:n]
    if len(set(out)) == 1:  # a palette needs two colours (one is a solid tile)
        out[-1] = next(c for c in colours if c != out[0])
    return out


KINDS = ["raw", "solid", "packed", "plain-rle", "palette-rle"]


def zrle_stream(seed: int = 5) -> tuple[bytes, bytes]:
    """Two ZRLE updates on one zlib stream, every subencoding in several tile sizes.

    Returns the update bytes (for a 200x140 framebuffer) and the expected RGB.
    """
    rng = random.Random(seed)
    deflate = zlib.compressobj(6)
    expected = Canvas(200, 140)
    messages = []
    for x, y, w, h in ((0, 0, 150, 70), (3, 70, 130, 70)):
        tiles = bytearray()
        for top in range(0, h, 64):
            for left in range(0, w, 64):
                tw, th = min(64, w - left), min(64, h - top)
                kind = KINDS[(top // 64 * 3 + left // 64 + x) % len(KINDS)]
                pixels = tile_pixels(kind, tw, th, rng)
                tiles += zrle_tile(kind, pixels, tw)
                expected._paint(x + left, y + top, tw, th, b"".join(bytes(p) for p in pixels))
        messages.append(update(zrle_rect(x, y, w, h, bytes(tiles), deflate)))
    return b"".join(messages), bytes(expected.rgb)


def test_zrle_every_subencoding_on_one_zlib_stream() -> None:
    client = connected_client(200, 140)
    stream, expected = zrle_stream()
    client.receive_data(stream)
    assert Canvas(200, 140).apply(client.events_received()).rgb == expected


def test_zrle_covers_every_palette_width_and_long_runs() -> None:
    # Each packed-palette width (1, 2, 4 bits) on a tile width that leaves row padding,
    # and runs that need several length bytes.
    client = connected_client(200, 140)
    deflate = zlib.compressobj()
    for size in (2, 3, 4, 5, 16):
        palette = [(i * 15, 255 - i * 15, 7) for i in range(size)]
        pixels = [palette[i % size] for i in range(13 * 5)]
        client.receive_data(
            update(zrle_rect(1, 1, 13, 5, zrle_tile("packed", pixels, 13), deflate))
        )
        assert Canvas(200, 140).apply(client.events_received()).crop(1, 1, 13, 5) == b"".join(
            bytes(p) for p in pixels
        )
    pixels = [RED] * 255 + [GREEN] * 256 + [BLUE] * 511 + [WHITE] * (64 * 64 - 1022)
    for kind in ("plain-rle", "palette-rle"):
        client.receive_data(update(zrle_rect(0, 0, 64, 64, zrle_tile(kind, pixels, 64), deflate)))
        canvas = Canvas(200, 140).apply(client.events_received())
        assert canvas.crop(0, 0, 64, 64) == b"".join(bytes(p) for p in pixels)
    # A run of one written with the top bit set and a zero length byte is valid too.
    tile = b"\x82" + cpx(RED) + cpx(BLUE) + b"\x80\x00" + b"\x81" + _length(63)
    client.receive_data(update(zrle_rect(0, 0, 64, 1, tile, deflate)))
    assert Canvas(200, 140).apply(client.events_received()).crop(0, 0, 2, 1) == bytes(RED + BLUE)


@pytest.mark.parametrize("step", [len(b"x"), 10_000, 1 << 20])
def test_zrle_rectangles_that_inflate_a_lot(step: int) -> None:
    # Far more pixels than compressed bytes: zlib's output is capped per call and the
    # rest is fetched as tiles need it.
    width, height = 1280, 130
    client = connected_client(width, height)
    deflate = zlib.compressobj(9)
    tiles = bytearray()
    stripes = bytes(RED) * 5 + bytes(BLUE) * 3
    for top in range(0, height, 64):
        for left in range(0, width, 64):
            tw, th = min(64, width - left), min(64, height - top)
            tiles += b"\x00" + (stripes * (tw * th))[: tw * th * 3]
    data = update(zrle_rect(0, 0, width, height, bytes(tiles), deflate))
    for at in range(0, len(data), step):
        client.receive_data(data[at : at + step])
        assert client.buffered_bytes < 1 << 18
    canvas = Canvas(width, height).apply(client.events_received())
    assert canvas.pixel(0, 0) == (0, 0, 255) and canvas.pixel(5, 0) == (255, 0, 0)
    assert canvas.pixel(64, 129) == canvas.pixel(0, 0)


def test_zrle_solid_bands_become_fills() -> None:
    client = connected_client(200, 140)
    deflate = zlib.compressobj()
    tiles = (b"\x01" + cpx(BLUE)) * 6
    client.receive_data(update(zrle_rect(0, 0, 150, 70, tiles, deflate)))
    assert client.events_received()[1:3] == [
        RectFill(0, 0, 150, 64, bytes(BLUE)),
        RectFill(0, 64, 150, 6, bytes(BLUE)),
    ]


@pytest.mark.parametrize(
    ("tiles", "message"),
    [
        (b"\x11", "unused ZRLE tile subencoding 17"),
        (b"\x81", "unused ZRLE tile subencoding 129"),
        (b"\x02" + cpx(RED) + cpx(BLUE) + b"\x00", "ends inside a tile"),  # 2x2 needs 2 rows
        (b"\x00" + cpx(RED) * 3, "ends inside a tile"),
        (b"\x01" + cpx(RED)[:2], "ends inside a tile"),
        (b"\x80" + cpx(RED) + b"\xff", "ends inside a tile"),
        (b"\x82" + cpx(RED) + cpx(BLUE) + b"\x01", "ends inside a tile"),
        (b"\x80" + cpx(RED) + b"\x04", "run goes past the end"),
        (b"\x82" + cpx(RED) + cpx(BLUE) + b"\x02\x00\x00\x00", "palette index beyond"),
        (b"\x82" + cpx(RED) + cpx(BLUE) + b"\x81\x04", "run goes past the end"),
        (b"\x03" + cpx(RED) * 3 + b"\xc0\xc0", "palette index beyond a palette of 3"),
        (b"\x01" + cpx(RED) + b"\x00", "more data than its tiles"),
        (b"", "ends before its last tile"),
    ],
)
def test_zrle_errors(tiles: bytes, message: str) -> None:
    client = connected_client()
    with pytest.raises(ProtocolError, match=message):
        client.receive_data(update(zrle_rect(0, 0, 2, 2, tiles, zlib.compressobj())))


def test_zrle_bombs_and_lies_are_bounded() -> None:
    client = connected_client()
    with pytest.raises(ProtocolError, match="too long for a 2x2 rectangle"):
        client.receive_data(update(rect(0, 0, 2, 2, ENCODING_ZRLE, b"\xff\xff\xff\xff")))
    client = connected_client()
    bomb = zlib.compress(b"\x01" + bytes(10_000_000))
    with pytest.raises(ProtocolError, match="inflates past"):
        client.receive_data(update(rect(0, 0, 64, 64, ENCODING_ZRLE, struct.pack(">I", len(bomb)))))
        client.receive_data(bomb)
    client = connected_client()
    with pytest.raises(ProtocolError, match="malformed RFB data"):
        client.receive_data(update(rect(0, 0, 2, 2, ENCODING_ZRLE, b"\0\0\0\x04junk")))


# -- limits, unknowns, misuse on the wire ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x07", "unknown server message type 7"),
        (update(rect(0, 0, 1, 1, 7)), "unsupported encoding 7"),
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


# -- any split, garbage ------------------------------------------------------------------------


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
    return RFBProtocol(Role.CLIENT, password="pw" if stream == "recorded" else None)


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
    _feed_garbage(RFBProtocol(Role.CLIENT), chunks)


@settings(max_examples=200, deadline=None)
@given(garbage=st.lists(st.binary(max_size=300), max_size=6))
def test_garbage_to_a_server_is_only_ever_a_protocol_error(garbage: list[bytes]) -> None:
    _feed_garbage(connected_server(), garbage)


# -- keysyms -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("a", 0x61),
        ("A", 0x41),
        ("7", 0x37),
        ("/", 0x2F),
        ("é", 0xE9),
        ("€", 0x010020AC),
        ("😀", 0x0101F600),
        ("\n", 0xFF0D),
        ("Return", 0xFF0D),
        ("enter", 0xFF0D),
        ("BackSpace", 0xFF08),
        ("backspace", 0xFF08),
        ("Tab", 0xFF09),
        ("Escape", 0xFF1B),
        ("esc", 0xFF1B),
        ("Delete", 0xFFFF),
        ("Home", 0xFF50),
        ("End", 0xFF57),
        ("Page_Up", 0xFF55),
        ("pgdn", 0xFF56),
        ("Left", 0xFF51),
        ("Up", 0xFF52),
        ("Right", 0xFF53),
        ("Down", 0xFF54),
        ("F1", 0xFFBE),
        ("F12", 0xFFC9),
        ("ctrl", 0xFFE3),
        ("Control_L", 0xFFE3),
        ("shift", 0xFFE1),
        ("Shift_L", 0xFFE1),
        ("alt", 0xFFE9),
        ("Alt_L", 0xFFE9),
        ("super", 0xFFEB),
        ("Super_L", 0xFFEB),
        ("meta", 0xFFE7),
        ("space", 0x20),
        ("minus", 0x2D),
        ("plus", 0x2B),
    ],
)
def test_keysyms(name: str, value: int) -> None:
    assert keysym(name) == value


def test_key_combos() -> None:
    ctrl, shift, t = 0xFFE3, 0xFFE1, 0x74
    assert key_combo("ctrl+shift+t") == [
        (ctrl, True),
        (shift, True),
        (t, True),
        (t, False),
        (shift, False),
        (ctrl, False),
    ]
    assert key_combo("Return") == [(0xFF0D, True), (0xFF0D, False)]
    assert key_combo("ctrl++") == [(ctrl, True), (0x2B, True), (0x2B, False), (ctrl, False)]
    assert key_combo("+") == [(0x2B, True), (0x2B, False)]
    assert key_combo(" Ctrl + Alt + Delete ")[:3] == [(ctrl, True), (0xFFE9, True), (0xFFFF, True)]
    for bad in ("", "ctrl+", "ctrl++t+", "nope", "ctrl+nope"):
        with pytest.raises(ValueError):
            key_combo(bad)


def test_text_to_keys() -> None:
    assert text_to_keys("Hi\r\n\t€") == [
        (0x48, True),
        (0x48, False),
        (0x69, True),
        (0x69, False),
        (0xFF0D, True),
        (0xFF0D, False),
        (0xFF09, True),
        (0xFF09, False),
        (0x010020AC, True),
        (0x010020AC, False),
    ]
    with pytest.raises(ValueError, match="control character"):
        text_to_keys("\x01")
    with pytest.raises(ValueError, match="unknown key name"):
        keysym("Hyperdrive")


# -- hygiene ---------------------------------------------------------------------------------


def test_the_core_does_no_io_and_keeps_big_bytes_out_of_reprs() -> None:
    for path in (Path(rfb.__file__), Path(rfb.__file__).with_name("_reader.py")):
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not imported & {"asyncio", "aiohttp", "websockets", "time", "socket"}, path
    assert "<6 bytes>" in repr(RectPixels(0, 0, 2, 1, bytes(6)))


# -- the reader ------------------------------------------------------------------------------


def _drive(reader: StreamReader, gen: Any, *chunks: bytes) -> Any:
    """Run a reader generator, feeding one chunk each time it waits."""
    feed = iter(chunks)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
        reader.feed_data(next(feed))


def test_reader_waits_and_limits() -> None:
    reader = StreamReader(limit=10)
    assert _drive(reader, reader.read_exact(5), b"ab", b"cdefg") == b"abcde"
    assert _drive(reader, reader.read_some(10)) == b"fg"
    assert _drive(reader, reader.read_line(10), b"x\r", b"\ny") == b"x\r\n"
    assert reader.buffer == b"y"
    with pytest.raises(ProtocolError, match="exceeds the limit of 10"):
        next(reader.read_exact(11))
    with pytest.raises(ProtocolError, match="no line end within 4"):
        _drive(reader, reader.read_line(4), b"yyyy")
    reader = StreamReader(limit=10)
    reader.feed_data(b"abc")
    reader.feed_eof()
    with pytest.raises(EOFError, match="2 bytes short"):
        next(reader.read_exact(5))
    with pytest.raises(EOFError):
        reader.feed_data(b"late")
    assert _drive(reader, reader.at_eof()) is False
    assert _drive(reader, reader.read_some(3)) == b"abc"
    assert _drive(reader, reader.at_eof()) is True
