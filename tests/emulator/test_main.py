"""``python -m orgo_async.emulator``: its options, and the process itself."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

import orgo_async.emulator as emulator_pkg
from orgo_async.emulator import BootTime
from orgo_async.emulator.__main__ import (
    API_KEY_ENV,
    add_arguments,
    config_from_args,
    faults_from_args,
)

REPO_ROOT = Path(emulator_pkg.__file__).resolve().parents[2]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_options_to_config() -> None:
    args = _parse(
        [
            "--api-key", "k", "--boot-ms", "500", "--boot-dist", "long-tail", "--boot-max-ms",
            "3000", "--boot-failure-rate", "0.1", "--create-rate", "20", "--max-computers", "7",
            "--legacy-restart", "--seed", "5", "--fault-429-rate", "0.2", "--fault-503-rate",
            "0.1", "--retry-after", "2",
        ]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.boot == BootTime.long_tail(0.5, sigma=0.5, cap=3.0)
    assert (config.api_key, config.boot_failure_rate, config.create_rate_limit) == ("k", 0.1, 20)
    assert (config.max_computers, config.legacy_restart, config.seed) == (7, True, 5)
    rules = faults_from_args(args)
    assert [(r.status, r.code, r.probability, r.retry_after) for r in rules] == [
        (429, "rate_limited", 0.2, 2.0),
        (503, "resuming", 0.1, 2.0),
    ]
    default = config_from_args(_parse([]))
    assert default.boot == BootTime.fixed(0.3, jitter=0.02)
    assert faults_from_args(_parse([])) == []
    with pytest.raises(ValueError, match="boot-max-ms"):
        config_from_args(_parse(["--boot-dist", "uniform"]))


def test_the_key_comes_from_the_option_else_the_environment_else_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert config_from_args(_parse([])).api_key == "sk_emulator"
    monkeypatch.setenv(API_KEY_ENV, "sk_from_env")
    assert config_from_args(_parse([])).api_key == "sk_from_env"
    assert config_from_args(_parse(["--api-key", "sk_typed"])).api_key == "sk_typed"


def test_server_options_to_config(tmp_path: Path) -> None:
    default = config_from_args(_parse([]))
    assert (default.loop_lag_interval, default.tls, default.tls_cert_out) == (None, False, None)
    cert = str(tmp_path / "cert.pem")
    config = config_from_args(_parse(["--monitor-loop-ms", "5", "--tls", "--tls-cert-out", cert]))
    assert (config.loop_lag_interval, config.tls, config.tls_cert_out) == (0.005, True, cert)
    with pytest.raises(ValueError, match="--tls-cert-out needs --tls"):
        config_from_args(_parse(["--tls-cert-out", cert]))
    with pytest.raises(ValueError, match="--monitor-loop-ms must be > 0"):
        config_from_args(_parse(["--monitor-loop-ms", "0"]))


def test_the_help_warns_that_ps_shows_the_key() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert "read a command line with ps" in " ".join(parser.format_help().split())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_process_mode(signum: signal.Signals) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orgo_async.emulator",
        "--port",
        "0",
        "--api-key",
        "sk_proc",
        "--boot-ms",
        "20",
        "--boot-jitter-ms",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        match = re.fullmatch(rb"ORGO_BASE_URL=(http://127\.0\.0\.1:(\d+)/api)\n", line)
        assert match is not None, line
        base_url = match.group(1).decode()
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk_proc"}) as session:
            async with session.post(f"{base_url}/workspaces", json={"name": "w"}) as resp:
                assert resp.status == 201
                ws = await resp.json()
            async with session.post(
                f"{base_url}/computers", json={"workspace_id": ws["id"], "name": "c"}
            ) as resp:
                computer = await resp.json()
            async with asyncio.timeout(10):
                while True:
                    url = f"{base_url}/desktops/{computer['instance_id']}/proxy/health"
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            break
                    await asyncio.sleep(0.005)
            async with session.get(f"{base_url.removesuffix('/api')}/_emulator/counters") as resp:
                counters = await resp.json()
            # Same system-wide monotonic clock in both processes.
            assert counters["healthy_at"][computer["id"]] <= time.monotonic()
            # The process is the emulator's: what its start made is frozen, out of the
            # full collections' way (an import alone makes tens of thousands of objects).
            assert counters["gc_frozen_objects"] > 10_000, counters["gc_frozen_objects"]
        proc.send_signal(signum)
        rest, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert rest == b""
    assert b"Traceback" not in stderr
    assert b"sk_proc" not in stderr
