"""HTTPS and WSS for the emulator: a self-signed certificate made at start (:func:`self_signed`).

``EmulatorConfig(tls=True)`` (``python -m orgo_async.emulator --tls``) serves
the API and the desktop sockets over TLS with a certificate made on the spot
for ``localhost``, ``127.0.0.1``, ``::1`` and the bind address. It is nobody's
CA: a client trusts exactly this certificate, given its PEM
(``ssl.create_default_context(cadata=pem)``), which the emulator offers as
``emu.tls_certificate`` and writes to ``config.tls_cert_out``
(``--tls-cert-out PATH``) before it announces its address. The private key
stays in memory (it only passes through a private temporary file, because
:meth:`ssl.SSLContext.load_cert_chain` reads files).

Making the certificate needs ``cryptography``, an optional dependency (the
``tls`` extra).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import attrs

__all__ = [
    "INSTALL_HINT",
    "LOCAL_NAMES",
    "Certificate",
    "require_cryptography",
    "self_signed",
    "write_pem",
]

INSTALL_HINT: Final = "--tls needs cryptography: pip install 'orgo_async[tls]'"

# Long enough for any run, short enough that a leaked file is soon worthless.
_VALIDITY: Final = datetime.timedelta(days=7)
# Clocks of a client and a just-started server may disagree by a little.
_BACKDATE: Final = datetime.timedelta(minutes=5)
LOCAL_NAMES: Final = ("localhost", "127.0.0.1", "::1")
"""The names every certificate covers (plus the bind address, when it is a specific one)."""


@attrs.frozen
class Certificate:
    """A certificate and its private key, both PEM (the key is not in ``repr``)."""

    pem: str
    key_pem: str = attrs.field(repr=False)

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context that presents this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # load_cert_chain reads only files: the key passes through one only this user can read.
        with tempfile.TemporaryDirectory(prefix="orgo-emulator-tls-") as directory:
            path = Path(directory) / "server.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(self.pem + self.key_pem)
            context.load_cert_chain(path)
        return context


def require_cryptography() -> None:
    """Raise ``ImportError`` (with :data:`INSTALL_HINT`) if ``cryptography`` is missing."""
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc


def self_signed(hosts: Iterable[str] = LOCAL_NAMES) -> Certificate:
    """A new self-signed server certificate (ECDSA P-256) for ``hosts`` (names or IP addresses).

    Raises:
        ImportError: ``cryptography`` is not installed (the message says what to install).
    """
    require_cryptography()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orgo_async emulator")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # A leaf, not a CA: trusting it trusts this server and nothing it could sign.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
    )


def write_pem(pem: str, path: str | os.PathLike[str]) -> None:
    """Write a certificate's PEM to ``path``, whole: a reader never sees half of it.

    Raises:
        OSError: ``path`` cannot be written.
    """
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(pem, encoding="ascii")
    partial.replace(target)
