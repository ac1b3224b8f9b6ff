"""TLS: the emulator over HTTPS and WSS with a self-signed certificate, and who trusts it."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orgo_async import APIConnectionError, Orgo, RetryPolicy
from orgo_async.emulator import Emulator, EmulatorConfig
from orgo_async.emulator.tls import self_signed

from .rest import FAST_BOOT

x509 = pytest.importorskip("cryptography.x509")


@pytest.fixture
async def tls_emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(boot=FAST_BOOT, tls=True, tls_cert_out=str(tmp_path / "cert.pem"))
    async with Emulator(config) as emu:
        yield emu


def test_the_certificate_names_this_machine_and_is_no_ca() -> None:
    made = self_signed(["localhost", "127.0.0.1", "::1", "emulator.test"])
    certificate = x509.load_pem_x509_certificate(made.pem.encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "emulator.test"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert "PRIVATE KEY" not in made.pem and "PRIVATE KEY" in made.key_pem
    assert made.key_pem not in repr(made)


async def test_https_and_wss_for_a_client_that_trusts_the_certificate(
    tls_emulator: Emulator, tmp_path: Path
) -> None:
    emu = tls_emulator
    pem = emu.tls_certificate
    assert pem is not None and pem.startswith("-----BEGIN CERTIFICATE-----")
    # Written before start() returned, whole, where the config said.
    assert (tmp_path / "cert.pem").read_text() == pem
    assert emu.base_url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cadata=pem)
    async with Orgo(api_key=emu.api_key, base_url=emu.base_url, ssl=context) as orgo:
        workspace = await orgo.workspaces.create("tls")
        launched = await orgo.computers.launch(workspace_id=workspace.id, name="tls")
        computer = launched.computer
        assert computer.connection_url is not None
        assert computer.connection_url.startswith("https://")
        assert emu.ws_url(computer.id, "terminal").startswith("wss://")
        async with orgo.connect(computer).terminal() as term:
            result = await term.run("echo over-wss")
        assert (result.output, result.exit_code) == ("over-wss\n", 0)


@pytest.mark.parametrize("trusted", ["the system's", "another certificate"])
async def test_a_client_without_the_certificate_cannot_connect(
    tls_emulator: Emulator, trusted: str
) -> None:
    context = (
        None if trusted == "the system's" else ssl.create_default_context(cadata=self_signed().pem)
    )
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    # The default retry policy: a certificate error is not retried (no attempt can help).
    async with Orgo(
        api_key=tls_emulator.api_key,
        base_url=tls_emulator.base_url,
        ssl=context,
        retry=RetryPolicy(sleep=record),
    ) as orgo:
        with pytest.raises(APIConnectionError, match="TLS failed") as info:
            await orgo.workspaces.list()
    assert not info.value.retryable and sleeps == []


async def test_without_tls_there_is_no_certificate(emu: Emulator) -> None:
    assert emu.tls_certificate is None
    assert emu.base_url.startswith("http://")


_WITHOUT_CRYPTOGRAPHY = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "cryptography" or name.startswith("cryptography."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
from orgo_async.emulator.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_tls_without_cryptography_is_a_usage_error_naming_the_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CRYPTOGRAPHY, "--port", "0", "--tls"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "python -m orgo_async.emulator: error: --tls needs cryptography:"
        " pip install 'orgo_async[tls]'"
    ]
