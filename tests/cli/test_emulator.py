"""``orgo-async emulator``: the emulator served in the foreground."""

from __future__ import annotations

import json

from .conftest import KEY, Server, cli, emulator_child, ok


def test_emulator_command_serves_until_sigterm() -> None:
    with emulator_child("orgo_async", "emulator", "--port", "0", "--boot-ms", "20") as (
        proc,
        base_url,
    ):
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api")
        served = Server(base_url, "sk_emulator")
        done = ok(cli("status", "new", "--json", server=served))
        assert json.loads(done.stdout)["status"] == "running"
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        hint = proc.stderr.read()
        assert f"export ORGO_BASE_URL={base_url} ORGO_API_KEY=sk_emulator" in hint
        assert "Traceback" not in hint


def test_emulator_command_does_not_print_a_given_key() -> None:
    with emulator_child(
        "orgo_async", "emulator", "--port", "0", "--api-key", KEY, "--log-level", "debug"
    ) as (proc, base_url):
        ok(cli("ls", server=Server(base_url, KEY)))
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        assert KEY not in proc.stderr.read()
