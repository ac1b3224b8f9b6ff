"""``orgo-async bench``: run as a user runs it, in a subprocess, against a spawned emulator.

These tests check the shape and the bookkeeping of the results (every
computer accounted for, none left behind), never how fast anything was.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest

from orgo_async._bench import percentiles

TIMEOUT = 180
PERCENTILE_KEYS = ("p50", "p95", "p99", "max")
FIGURES = ("create_ms", "create_to_ready_ms", "detection_lag_ms", "probes_per_computer")
MODES = ("sequential", "staggered", "burst")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGO_")}
    env["PYTHONWARNINGS"] = "error::ResourceWarning"
    return env


def _orgo_async(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orgo_async", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env() if env is None else env,
    )


def _check_percentiles(figure: Any, name: str) -> None:
    assert isinstance(figure, dict), name
    values = [figure[k] for k in PERCENTILE_KEYS]
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in values), (name, figure)
    assert values == sorted(values), (name, figure)


def _check_figures(figures: dict[str, Any], where: str) -> None:
    assert figures["ready"] + figures["failed"] == figures["count"], where
    for name in FIGURES:
        _check_percentiles(figures[name], f"{where}.{name}")
    assert figures["probes_per_computer"]["p50"] >= 1, where
    assert figures["client_cpu_ms_per_computer"] > 0, where


def _check_ratios(ratios: dict[str, Any], where: str) -> None:
    for key in ("wall", "cpu"):
        value = ratios[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (where, key)


def test_bench_json_accounts_for_every_computer_and_leaves_none() -> None:
    done = _orgo_async(
        "bench",
        "--emulator",
        "--count",
        "6",
        "--concurrency",
        "3",
        "--boot-ms",
        "50",
        "--json",
        "--mode",
        "all",
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr
    result = json.loads(done.stdout)  # one JSON object and nothing else on stdout
    assert isinstance(result, dict)

    assert result["count"] == 6
    assert result["leftover"] == 0
    assert result["boot_ms"] == 50
    assert result["concurrency"] == 3
    assert result["headline_mode"] == "burst"
    assert isinstance(result["python"], dict) and result["python"]["version"]
    assert isinstance(result["machine"], dict) and result["machine"]["machine"]
    assert result["detection_lag_available"] is True

    _check_figures(result, "top")
    _check_figures(result["baseline"], "top.baseline")
    _check_ratios(result["ratio_vs_baseline"], "top")

    assert set(result["modes"]) == set(MODES)
    for mode, figures in result["modes"].items():
        _check_figures(figures, mode)
        _check_figures(figures["baseline"], f"{mode}.baseline")
        _check_ratios(figures["ratio_vs_baseline"], mode)
    # The top level repeats the headline mode.
    for key in ("ready", "failed", "create_ms", "ratio_vs_baseline"):
        assert result[key] == result["modes"]["burst"][key]


def test_bench_prints_a_table_without_json() -> None:
    # The global option may come before the command too.
    done = _orgo_async(
        "--emulator", "bench", "--count", "2", "--concurrency", "2", "--boot-ms", "20",
        "--mode", "burst",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout)
    assert "== burst" in done.stdout
    assert "create ms" in done.stdout
    assert "baseline" in done.stdout
    assert "leftover computers: 0" in done.stdout


def test_bad_count_is_a_usage_error_on_one_line() -> None:
    done = _orgo_async("bench", "--emulator", "--count", "0")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--count" in lines[0]
    assert "Traceback" not in done.stderr


def test_bench_without_a_target_is_a_usage_error() -> None:
    done = _orgo_async("bench", "--count", "1")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "--emulator" in done.stderr


def test_missing_api_key_exits_3_on_one_line() -> None:
    done = _orgo_async("bench", "--base-url", "http://127.0.0.1:9/api", "--count", "1")
    assert done.returncode == 3
    assert len(done.stderr.strip().splitlines()) == 1
    assert "ORGO_API_KEY" in done.stderr


def test_percentiles_are_nearest_rank() -> None:
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "max": 7.0, "n": 1}
    values = list(range(100, 0, -1))  # 1..100, unsorted
    assert percentiles(values) == {"p50": 50, "p95": 95, "p99": 99, "max": 100, "n": 100}
    # Nearest rank on six values: ranks ceil(3) = 3, ceil(5.7) = 6, ceil(5.94) = 6.
    assert percentiles([1, 2, 3, 4, 5, 6]) == {"p50": 3, "p95": 6, "p99": 6, "max": 6, "n": 6}
