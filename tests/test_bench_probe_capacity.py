"""benchmarks/probe_capacity.py keeps running: both transports, the limit held, every row whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "probe_capacity.py"


def test_probe_capacity_benchmark_measures_both_transports_at_each_limit() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--computers", "2,4", "--limits", "1,4,8",
         "--seconds", "0.2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    # A limit above the computers probed is left out (it would equal the limit of all of them).
    assert [(r["computers"], r["limit"]) for r in result["rows"]] == [(2, 1), (4, 1), (4, 4)]
    for row in result["rows"]:
        for transport in ("probe", "aiohttp"):
            m = row[transport]
            assert m["probes_per_s"] > 0, (row, transport)
            assert 0 < m["rtt_ms"]["p50"] <= m["rtt_ms"]["p90"], (row, transport)
            assert m["client_cpu_load"] > 0, (row, transport)
            # The emulator served every probe of the row, so it was busy some of it.
            assert 0 < m["emulator_cpu_load"] <= 1.5, (row, transport)
            # One computer's period is the computers over the rate, in milliseconds.
            expected = row["computers"] / m["probes_per_s"] * 1000
            assert abs(m["period_ms"] - expected) <= 0.02 * expected + 0.01, (row, transport)
    # With one probe in flight for several computers, the others wait for the slot.
    assert result["rows"][1]["probe"]["slot_wait_ms_p50"] > 0


def test_probe_capacity_rejects_a_zero_limit_before_starting_anything() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--limits", "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "every --computers and --limits value must be >= 1" in done.stderr
