"""``orgo-async bench``: run as a user runs it, in a subprocess, against a spawned emulator.

These tests check the shape and the bookkeeping of the results (every
computer accounted for, none left behind), never how fast anything was.
They keep the launches small and the boots short: the command's cost is CI's.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import PNG_MAGIC, blocking, cli, ok, one_error_line, python

BENCH_TIMEOUT = 180
PERCENTILE_KEYS = ("p50", "p95", "p99", "max")
FIGURES = ("create_ms", "create_to_ready_ms", "detection_lag_ms", "probes_per_computer")
MODES = ("sequential", "staggered", "burst")


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
    assert 0 < figures["client_cpu_load"] <= os.cpu_count(), (where, figures["client_cpu_load"])
    # The instruments: the client's full collections, and the spawned emulator's books.
    assert isinstance(figures["gc_full_collections"], int), where
    assert figures["gc_full_collections"] >= 0, where
    assert figures["max_probes_in_flight_per_computer"] >= 1, where
    lag = figures["emulator_loop_lag_ms"]
    assert lag["samples"] >= 1, (where, lag)
    # The spawned emulator's CPU seconds per second: it served the run, so some.
    assert 0 < figures["emulator_cpu_load"] <= os.cpu_count(), (where, figures["emulator_cpu_load"])
    assert isinstance(figures["emulator_gc_full_collections"], int), where
    assert figures["emulator_gc_full_collections"] >= 0, where
    assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"], (where, lag)


def _check_ratios(ratios: dict[str, Any], where: str) -> None:
    for key in ("wall", "cpu"):
        value = ratios[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (where, key)


def test_bench_json_accounts_for_every_computer_and_leaves_none() -> None:
    done = cli(
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
        timeout=BENCH_TIMEOUT,
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
    assert (result["loop"], result["tls"], result["boot_dist"]) == ("asyncio", False, "fixed")
    assert "points" not in result

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
    done = cli(
        "--emulator", "bench", "--count", "2", "--concurrency", "2", "--boot-ms", "20",
        "--mode", "burst", timeout=BENCH_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout)
    assert "== burst" in done.stdout
    assert "create ms" in done.stdout
    assert "baseline" in done.stdout
    assert "leftover computers: 0" in done.stdout


def test_bad_count_is_a_usage_error_on_one_line() -> None:
    done = cli("bench", "--emulator", "--count", "0")
    assert done.stdout == ""
    assert "--count" in one_error_line(done, 2)


def test_bench_without_a_target_is_a_usage_error() -> None:
    done = cli("bench", "--count", "1")
    assert "--emulator" in one_error_line(done, 2)


def test_missing_api_key_exits_3_on_one_line() -> None:
    done = cli("bench", "--base-url", "http://127.0.0.1:9/api", "--count", "1")
    assert "ORGO_API_KEY" in one_error_line(done, 3)


def test_bench_plot_without_matplotlib_exits_2_before_running(tmp_path: Path) -> None:
    out = tmp_path / "latency.png"
    done = python(blocking("matplotlib"), "bench", "--emulator", "--plot", str(out))
    line = one_error_line(done, 2)
    assert line == "bench --plot needs matplotlib: pip install 'orgo_async[plot]'"
    assert done.stdout == ""
    assert not out.exists()


def test_bench_plot_draws_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots" / "latency.png"
    done = ok(
        cli(
            "--emulator",
            "bench",
            "--count",
            "4",
            "--concurrency",
            "2",
            "--boot-ms",
            "20",
            "--mode",
            "burst",
            "--json",
            "--plot",
            str(out),
            timeout=BENCH_TIMEOUT,
        )  # fmt: skip
    )
    assert json.loads(done.stdout)["ready"] == 4
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert f"drew {out}" in done.stderr


def test_bench_sweep_json_has_one_point_per_concurrency() -> None:
    sweep = ["--sweep", "16,32", "--count", "8", "--boot-ms", "20", "--rounds", "2"]
    done = ok(cli("bench", "--emulator", *sweep, "--json", timeout=BENCH_TIMEOUT))
    result = json.loads(done.stdout)  # one JSON object and nothing else on stdout
    assert result["sweep"] == [16, 32]
    assert result["mode"] == "burst"
    assert result["leftover"] == 0
    assert result["detection_lag_available"] is True
    assert "modes" not in result
    points = result["points"]
    assert [(p["concurrency"], p["count_per_launch"], p["count"]) for p in points] == [
        (16, 8, 16),
        (32, 8, 16),
    ]
    for point in points:
        where = f"concurrency {point['concurrency']}"
        assert point["leftover"] == 0
        _check_figures(point, where)
        _check_figures(point["baseline"], f"{where}.baseline")
        _check_ratios(point["ratio_vs_baseline"], where)
        assert [r["first"] for r in point["per_round"]] == ["sdk", "baseline"]
        # The load is the rounds' CPU over their wall time, side by side with each round's record.
        for side in ("sdk", "baseline"):
            figures = point if side == "sdk" else point["baseline"]
            cpu = sum(r[f"{side}_cpu_ms"] for r in point["per_round"])
            wall = sum(r[f"{side}_wall_ms"] for r in point["per_round"])
            assert figures["client_cpu_load"] == pytest.approx(cpu / wall, abs=0.002), where
            # The machine's speed before each of the side's runs, and their median.
            gauges = sorted(r[f"{side}_speed_gauge_ms"] for r in point["per_round"])
            assert all(g > 0 for g in gauges), (where, gauges)
            assert figures["speed_gauge_ms"] == pytest.approx(sum(gauges) / 2, abs=0.01), where
    gauge = result["machine"]["speed_gauge_ms"]
    assert gauge["start"] > 0 and gauge["end"] > 0, gauge


def test_bench_sweep_prints_one_row_per_concurrency_and_plots_them(tmp_path: Path) -> None:
    out = tmp_path / "sweep.png"
    plot = ["--plot", str(out)] if importlib.util.find_spec("matplotlib") else []
    sweep = ["--sweep", "2,4", "--count", "2,4", "--rounds", "2"]
    boot = ["--boot-ms", "20", "--boot-dist", "uniform", "--boot-max-ms", "40"]
    done = ok(cli("bench", "--emulator", *sweep, *boot, *plot, timeout=BENCH_TIMEOUT))
    lines = done.stdout.splitlines()
    assert "burst sweep over concurrency 2, 4, boot uniform 20-40 ms, rounds 2" in lines[0]
    header = next(n for n, line in enumerate(lines) if line.startswith("concurrency"))
    # Concurrency and computers per launch, then the figures; one failed/left cell pair each.
    assert lines[header + 1].split()[:2] == ["2", "2"]
    assert lines[header + 2].split()[:2] == ["4", "4"]
    assert [line.split()[-2:] for line in lines[header + 1 : header + 3]] == [["0/0", "0"]] * 2
    # The speed gauge: one SDK/baseline cell a row, and the run's start and end on top.
    assert lines[header].split()[-4:] == ["speed", "ms", "failed", "left"], lines[header]
    for line in lines[header + 1 : header + 3]:
        sdk, baseline = (float(x) for x in line.split()[-3].split("/"))
        assert sdk > 0 and baseline > 0, line
    assert "speed gauge " in lines[1] and " at the end" in lines[1], lines[1]
    assert "leftover computers: 0" in done.stdout
    if plot:
        assert out.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep", "16,32", "--concurrency", "8"], "leave out --concurrency"),
        (["--sweep", "16,32", "--mode", "staggered"], "burst mode only"),
        (["--sweep", "16,32,64", "--count", "8,8"], "one per --sweep point (3); got 2"),
        (["--count", "8,8"], "--count takes one number without --sweep"),
        (["--sweep", "16,0"], "--sweep"),
        (["--boot-dist", "uniform"], "--boot-dist uniform needs --boot-max-ms"),
        (["--boot-max-ms", "900"], "--boot-max-ms needs --boot-dist uniform or long-tail"),
        (["--boot-sigma", "1"], "--boot-sigma needs --boot-dist long-tail"),
        (["--boot-dist", "long-tail", "--boot-max-ms", "100"], "must be >= --boot-ms (300)"),
        (["--seed", "-1"], "--seed: must be a whole number from 0 to 2147483647; got '-1'"),
    ],
)
def test_sweep_and_boot_options_that_do_not_fit_are_usage_errors(
    args: list[str], message: str
) -> None:
    done = cli("bench", "--emulator", *args)
    assert done.stdout == ""
    assert message in one_error_line(done, 2)


def test_emulator_options_need_the_emulator() -> None:
    done = cli("bench", "--base-url", "http://127.0.0.1:9/api", "--tls", "--boot-dist", "fixed")
    assert "--boot-dist --tls: only with --emulator" in one_error_line(done, 2)


def _small_burst(*options: str) -> dict[str, Any]:
    """The JSON of ``bench --emulator OPTIONS`` launching two computers in one burst."""
    burst = ["--mode", "burst", "--count", "2", "--concurrency", "2", "--boot-ms", "20"]
    done = ok(cli("bench", "--emulator", *options, *burst, "--json", timeout=BENCH_TIMEOUT))
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_bench_over_tls_trusts_the_emulators_certificate() -> None:
    pytest.importorskip("cryptography")
    result = _small_burst("--tls")
    assert result["tls"] is True
    assert (result["ready"], result["baseline"]["ready"], result["leftover"]) == (2, 2, 0)


def test_loop_uvloop_without_uvloop_exits_2_naming_the_extra() -> None:
    done = python(blocking("uvloop"), "--loop", "uvloop", "bench", "--emulator", "--count", "1")
    line = one_error_line(done, 2)
    assert line == "--loop uvloop needs uvloop: pip install 'orgo_async[speed]'"
    assert done.stdout == ""


def test_loop_uvloop_runs_the_bench_on_uvloop() -> None:
    pytest.importorskip("uvloop")
    assert _small_burst("--loop", "uvloop")["loop"] == "uvloop"
