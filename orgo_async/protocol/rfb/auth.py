"""VNC Authentication (RFB security type 2): the DES answer to the server's challenge.

DES comes from the optional ``cryptography`` dependency
(``pip install 'orgo_async[vnc]'``), imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ._wire import password_bytes

__all__ = ["des_ecb", "vnc_auth_response"]

_EXTRA_HINT: Final = "VNC authentication needs the 'vnc' extra: pip install 'orgo_async[vnc]'"

# Each byte with its bits in reverse order: VNC's DES takes key bits least
# significant first (RFC 6143 erratum 4951).
_REVERSED_BITS: Final = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def des_ecb() -> Callable[[bytes, bytes], bytes]:
    """A single-DES ECB encryptor ``(key8, data) -> ciphertext`` from ``cryptography``.

    Single DES is TripleDES with the same 8-byte key three times. Imported on
    first use because ``cryptography`` is an optional extra.

    Raises:
        ImportError: ``cryptography`` is not installed (the message says how to get it).
    """
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, modes

        try:
            from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
        except ImportError:  # cryptography < 43
            from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[attr-defined,no-redef,unused-ignore]
                TripleDES,
            )
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc

    def encrypt(key: bytes, data: bytes) -> bytes:
        encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
        return encryptor.update(data) + encryptor.finalize()

    return encrypt


def vnc_auth_response(challenge: bytes, password: str | bytes) -> bytes:
    """The answer to a VNC Authentication challenge (RFC 6143 §7.2.2).

    The challenge is DES-encrypted (ECB) with the password as the key: its
    first 8 bytes (a ``str`` is UTF-8 encoded), padded with zeros, each byte
    bit-reversed. Only those 8 bytes of a password count.

    Raises:
        ValueError: the challenge is not 16 bytes.
        ImportError: the optional ``cryptography`` dependency is missing.
    """
    if len(challenge) != 16:
        raise ValueError(f"a VNC challenge has 16 bytes, not {len(challenge)}")
    key = password_bytes(password)[:8].ljust(8, b"\0").translate(_REVERSED_BITS)
    return des_ecb()(key, bytes(challenge))
