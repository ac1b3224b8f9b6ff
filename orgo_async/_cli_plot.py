"""``orgo-async bench --plot PATH``: the latency distributions of a benchmark, as a picture.

Two panels of empirical CDFs: create → ready, and ready-detection lag (the
emulator's record of when a computer became healthy → the launcher saw it),
one curve per mode for the SDK (solid) and the raw-aiohttp baseline (dashed).

Drawing needs matplotlib, the optional ``plot`` extra
(``pip install 'orgo_async[plot]'``). :func:`load_pyplot` is called before the
benchmark runs, so a missing extra costs nothing; it uses the non-interactive
Agg backend (no display needed).

The benchmark's result holds only percentiles, so :func:`recording_samples`
keeps the per-computer values the benchmark computes its figures from, for
the duration of one run.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from . import _bench

__all__ = [
    "PLOT_EXTRA_MISSING",
    "PlotUnavailable",
    "Samples",
    "Series",
    "draw",
    "load_pyplot",
    "recording_samples",
]

PLOT_EXTRA_MISSING: Final = "bench --plot needs matplotlib: pip install 'orgo_async[plot]'"

_COLOURS: Final = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


class PlotUnavailable(Exception):
    """matplotlib (the ``plot`` extra) is not installed."""


def load_pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend.

    Raises:
        PlotUnavailable: matplotlib cannot be imported.
    """
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg", force=True)
        return importlib.import_module("matplotlib.pyplot")
    except ImportError as exc:
        raise PlotUnavailable(PLOT_EXTRA_MISSING) from exc


@attrs.frozen(kw_only=True)
class Series:
    """The per-computer values of one launcher (SDK or baseline) in one mode, in ms."""

    create_to_ready_ms: list[float]
    detection_lag_ms: list[float]


@attrs.define
class Samples:
    """Per-computer values, in the order the benchmark summarized its modes."""

    pairs: list[tuple[Series, Series]] = attrs.field(factory=list)

    def by_mode(self, modes: Sequence[str]) -> dict[str, tuple[Series, Series]]:
        """``{mode: (sdk, baseline)}``; empty if the record does not match ``modes``."""
        if len(modes) != len(self.pairs):
            return {}
        return dict(zip(modes, self.pairs, strict=True))


def _series(runs: Sequence[Any], records: Any) -> Series:
    # The same arithmetic as _bench._figures, on the same inputs.
    samples = [s for r in runs for s in r.samples]
    ready = [(s.ready - s.answered) * 1000 for s in samples]
    lag: list[float] = []
    healthy = getattr(records, "healthy_at", None) if records is not None else None
    if healthy is not None:
        lag = [
            (s.ready - healthy[s.computer_id]) * 1000 for s in samples if s.computer_id in healthy
        ]
    return Series(create_to_ready_ms=ready, detection_lag_ms=lag)


@contextlib.contextmanager
def recording_samples() -> Iterator[Samples]:
    """Record the per-computer values of the benchmark runs inside the block."""
    samples = Samples()
    original = _bench._summarize

    def summarize(
        config: Any, sdk_runs: Sequence[Any], baseline_runs: Sequence[Any], records: Any
    ) -> dict[str, Any]:
        samples.pairs.append((_series(sdk_runs, records), _series(baseline_runs, records)))
        return original(config, sdk_runs, baseline_runs, records)

    _bench._summarize = summarize
    try:
        yield samples
    finally:
        _bench._summarize = original


def _cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    data = sorted(values)
    n = len(data)
    return data, [(i + 1) / n for i in range(n)]


def draw(pyplot: Any, result: dict[str, Any], samples: Samples, path: Path) -> None:
    """Draw the CDFs of ``result``'s runs into ``path`` (PNG, or what its suffix says).

    Raises:
        OSError: ``path`` cannot be written.
    """
    modes = list(result["modes"])
    series = samples.by_mode(modes)
    figure, axes = pyplot.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    panels = (
        (axes[0], "create_to_ready_ms", "create \u2192 ready (ms)"),
        (axes[1], "detection_lag_ms", "ready-detection lag (ms)"),
    )
    try:
        for ax, key, label in panels:
            drawn = 0
            for n, mode in enumerate(modes):
                if mode not in series:
                    continue
                colour = _COLOURS[n % len(_COLOURS)]
                for who, one, style in (
                    ("SDK", series[mode][0], "-"),
                    ("baseline", series[mode][1], "--"),
                ):
                    values = getattr(one, key)
                    if not values:
                        continue
                    xs, ys = _cdf(values)
                    ax.step(
                        xs,
                        ys,
                        where="post",
                        linestyle=style,
                        color=colour,
                        label=f"{mode} {who} (n={len(values)})",
                    )
                    drawn += 1
            ax.set_xlabel(label)
            ax.set_ylabel("fraction of computers")
            ax.set_ylim(0, 1.02)
            ax.grid(True, alpha=0.3)
            if drawn:
                ax.legend(fontsize="small", loc="lower right")
            else:
                ax.text(
                    0.5,
                    0.5,
                    "no data" + (" (needs the emulator on this machine)" if "lag" in key else ""),
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                )
        boot = result.get("boot_ms")
        figure.suptitle(
            f"orgo-async bench: {result['count_per_launch']} computers per launch, "
            f"concurrency {result['concurrency']}"
            + (f", boot {boot:g} ms" if isinstance(boot, int | float) else "")
            + "  (solid: SDK, dashed: raw aiohttp)"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    finally:
        pyplot.close(figure)
