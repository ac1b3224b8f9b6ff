"""benchmarks/agent_step.py keeps running: both transports, every step timed and counted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "agent_step.py"


def test_agent_step_benchmark_runs_on_the_synthetic_backend() -> None:
    pytest.importorskip("anthropic")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--backend", "synthetic", "--loops", "1,2",
         "--steps", "3", "--warmup", "1", "--rounds", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    rows = {(r["loops"], r["transport"]): r for r in result["rows"]}
    assert set(rows) == {(1, "vnc"), (1, "rest"), (2, "vnc"), (2, "rest")}
    for (loops, transport), row in rows.items():
        assert row["backend"] == "synthetic"
        assert row["steps"] == loops * 3 * 2  # loops x steps x rounds
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["client_cpu_ms_per_step"] > 0
        assert 0 <= row["new_screen_pct"] <= 100
        other = rows[(loops, "rest" if transport == "vnc" else "vnc")]
        vnc, rest = (row, other) if transport == "vnc" else (other, row)
        assert abs(row["vnc_rest_p50"] - vnc["p50_ms"] / rest["p50_ms"]) < 0.01
    # A REST screenshot takes the emulator's --screenshot-ms (20) at least.
    assert rows[(1, "rest")]["p50_ms"] >= 20
