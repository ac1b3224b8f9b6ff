"""The emulator child process of ``--emulator`` and ``bench``: its key, its TLS, its end."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from orgo_async import APIConnectionError, Orgo, RetryPolicy
from orgo_async.cli._spawn import emulator_process

from ..conftest import gone


async def test_the_key_reaches_the_child_in_its_environment_never_its_command_line() -> None:
    async with emulator_process(boot_ms=20) as emu:
        proc = Path(f"/proc/{emu.pid}")
        assert emu.api_key.encode() not in (proc / "cmdline").read_bytes()
        assert b"--api-key" not in (proc / "cmdline").read_bytes()
        assert f"ORGO_EMULATOR_API_KEY={emu.api_key}".encode() in (proc / "environ").read_bytes()
        assert emu.api_key not in repr(emu)
        # ...and it is the key the child wants.
        async with aiohttp.ClientSession() as session:
            for key, status in ((emu.api_key, 200), ("sk_emulator", 401)):
                async with session.get(
                    f"{emu.origin}/_emulator/counters",
                    headers={"Authorization": f"Bearer {key}"},
                ) as resp:
                    assert resp.status == status
        pid = emu.pid
    assert gone(pid)


async def test_a_tls_child_is_trusted_by_its_own_context_only() -> None:
    pytest.importorskip("cryptography")
    async with emulator_process(boot_ms=20, tls=True) as emu:
        assert emu.base_url.startswith("https://127.0.0.1:")
        assert emu.tls_certificate is not None
        assert emu.tls_certificate not in repr(emu)
        async with Orgo(api_key=emu.api_key, base_url=emu.base_url, ssl=emu.ssl_context()) as orgo:
            workspace = await orgo.workspaces.create("tls")
            launched = await orgo.computers.launch(workspace_id=workspace.id, name="tls")
            assert launched.computer.connection_url is not None
            assert launched.computer.connection_url.startswith("https://")
        async with Orgo(
            api_key=emu.api_key, base_url=emu.base_url, retry=RetryPolicy.off()
        ) as untrusting:
            with pytest.raises(APIConnectionError):
                await untrusting.workspaces.list()


async def test_without_tls_there_is_no_context() -> None:
    async with emulator_process(boot_ms=20) as emu:
        assert emu.base_url.startswith("http://")
        assert (emu.tls_certificate, emu.ssl_context()) == (None, None)
