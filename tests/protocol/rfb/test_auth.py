"""VNC Authentication: the DES answer, and both cores checking a password."""

from __future__ import annotations

import sys

import pytest

from orgo_async.errors import ProtocolError
from orgo_async.protocol.rfb import (
    AuthenticationFailed,
    Ready,
    RFBClientProtocol,
    RFBState,
    ServerInit,
    vnc_auth_response,
)

from .conftest import (
    Pair,
)


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


def test_missing_cryptography_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)
    with pytest.raises(ImportError, match=r"pip install 'orgo_async\[vnc\]'"):
        RFBClientProtocol(password="pw")
    with pytest.raises(ImportError, match="needs the 'vnc' extra"):
        vnc_auth_response(bytes(16), "pw")
    RFBClientProtocol()  # no password, no cryptography needed


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
