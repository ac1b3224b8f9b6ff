"""Each bench round's two sides face the same boot times (in process, against the emulator)."""

from __future__ import annotations

import pytest

from orgo_async.cli import _bench_run
from orgo_async.cli._bench_run import BenchConfig, SweepPoint, _run_on
from orgo_async.emulator import BootTime, Emulator


async def test_a_rounds_sdk_and_baseline_draw_the_same_boots(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.config.boot = BootTime.long_tail(0.03, sigma=0.6, cap=0.2)
    boots: list[tuple[int | None, list[float]]] = []
    create = emulator.state.create_computer

    def recording(*args: object, **kwargs: object) -> object:
        computer = create(*args, **kwargs)  # type: ignore[arg-type]
        boots[-1][1].append(computer.boot_seconds)
        return computer

    reseed = emulator.reseed

    def seeding(seed: int | None) -> None:
        reseed(seed)
        boots.append((seed, []))

    monkeypatch.setattr(emulator.state, "create_computer", recording)
    monkeypatch.setattr(emulator, "reseed", seeding)
    config = BenchConfig(count=6, sweep=(SweepPoint(3, 6), SweepPoint(6, 6)), rounds=2)
    result = await _run_on(config, emulator.base_url, emulator.api_key, spawned=False, context=None)
    assert result["leftover"] == 0
    assert len(boots) == 8  # 2 points x 2 rounds x 2 sides
    sides = list(zip(boots[::2], boots[1::2], strict=True))
    for (seed_a, drawn_a), (seed_b, drawn_b) in sides:
        assert seed_a == seed_b
        assert len(drawn_a) == 6 and sorted(drawn_a) == sorted(drawn_b)
    seeds = [seed for (seed, _), _ in sides]
    assert len(set(seeds)) == 4  # every round its own boots
    assert result["boot_seed"] == seeds[0]


async def test_two_runs_with_one_seed_face_the_same_boots(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.config.boot = BootTime.long_tail(0.03, sigma=0.6, cap=0.2)
    drawn: list[float] = []
    create = emulator.state.create_computer

    def recording(*args: object, **kwargs: object) -> object:
        computer = create(*args, **kwargs)  # type: ignore[arg-type]
        drawn.append(computer.boot_seconds)
        return computer

    monkeypatch.setattr(emulator.state, "create_computer", recording)
    runs = []
    for seed in (1234, 1234, 4321):
        drawn.clear()
        config = BenchConfig(count=5, sweep=(SweepPoint(5, 5),), rounds=2, seed=seed)
        result = await _run_on(
            config, emulator.base_url, emulator.api_key, spawned=False, context=None
        )
        assert result["boot_seed"] == seed and result["leftover"] == 0
        runs.append(list(drawn))
    # The same seed, the same boots round by round (each side's in its own order of
    # creates, so compared as sets); another seed, others.
    assert len(runs[0]) == 20 and sorted(runs[0]) == sorted(runs[1])
    assert sorted(runs[0]) != sorted(runs[2])


async def test_the_first_wave_is_reported_apart_from_the_later_ones(emulator: Emulator) -> None:
    emulator.config.boot = BootTime.long_tail(0.03, sigma=0.6, cap=0.2)
    config = BenchConfig(count=7, sweep=(SweepPoint(3, 7),), rounds=2)
    result = await _run_on(config, emulator.base_url, emulator.api_key, spawned=False, context=None)
    for side in (result["points"][0], result["points"][0]["baseline"]):
        waves = side["waves"]
        # Each round's first three creates are its first wave, the other four the later ones.
        assert waves["first"]["computers"] == 2 * 3
        assert waves["later"]["computers"] == 2 * 4
        lags = sorted(side["samples"]["detection_lag_ms"])
        assert len(lags) == 14
        # The two parts split the same computers: their extremes are the whole run's.
        parts = [waves[w]["detection_lag_ms"] for w in ("first", "later")]
        assert max(p["max"] for p in parts) == lags[-1]
        assert sum(p["n"] for p in parts) == len(lags)
        most = max(waves[w]["probes_per_computer"]["max"] for w in ("first", "later"))
        assert most == side["probes_per_computer"]["max"]


async def test_each_run_carries_the_speed_gauge_read_just_before_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each reading is its own number (1, 2, 3...), so where each one lands is plain.
    readings = iter(range(1, 100))
    monkeypatch.setattr(_bench_run, "speed_gauge", lambda repeats=5: float(next(readings)))
    emulator.config.boot = BootTime.fixed(0.02)
    config = BenchConfig(count=2, sweep=(SweepPoint(2, 2),), rounds=3)
    result = await _run_on(config, emulator.base_url, emulator.api_key, spawned=False, context=None)
    # 1 at the start, one before each of the 6 runs (the SDK's first in rounds 0 and 2),
    # 8 at the end.
    assert result["machine"]["speed_gauge_ms"] == {"start": 1.0, "end": 8.0}
    (point,) = result["points"]
    rounds = [(r["sdk_speed_gauge_ms"], r["baseline_speed_gauge_ms"]) for r in point["per_round"]]
    assert rounds == [(2.0, 3.0), (5.0, 4.0), (6.0, 7.0)]
    assert (point["speed_gauge_ms"], point["baseline"]["speed_gauge_ms"]) == (5.0, 4.0)
