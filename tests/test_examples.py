"""The examples in examples/ keep working."""

from __future__ import annotations

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
