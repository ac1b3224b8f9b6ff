"""The examples in examples/ keep working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_agent_loop_runs_against_the_emulator() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "agent_loop.py"), "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("-> ok") == 2
    assert "bash says: ['42', 'Linux']" in done.stdout


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_agent_fleet_runs_offline(provider: str) -> None:
    pytest.importorskip(provider if provider == "anthropic" else "agents")
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "agent_fleet.py"),
            "--emulator",
            "--count",
            "4",
            "--concurrency",
            "2",
            "--provider",
            provider,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # One line per run, each done after the scripted actions, then the summary.
    steps = 4 if provider == "anthropic" else 7
    assert sum(f" done        {steps} steps" in line for line in lines) == 4, done.stdout
    assert lines[-1].startswith("4 runs in ") and "4 done" in lines[-1]


@pytest.mark.timeout(150)
def test_ray_fleet_runs_offline_and_leaves_nothing() -> None:
    pytest.importorskip("ray")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "ray_fleet.py"), "--emulator", "--count", "12"]
        + ["--actors", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=140,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["count"] == summary["ready"] == summary["episodes"] == 12
    assert summary["failed"] == summary["leftover"] == 0 and summary["actors"] == 2
    assert summary["wall_s"] > 0 and summary["episodes_per_s"] > 0
