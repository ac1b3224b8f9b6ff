"""The examples in examples/ keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
