"""``orgo-async bench --plot PATH``: a benchmark's results, as a picture.

Without ``--sweep``, two panels of empirical CDFs: create → ready, and
ready-detection lag (the emulator's record of when a computer became healthy
→ the launcher saw it), one curve per mode for the SDK (solid) and the
raw-aiohttp baseline (dashed).

With ``--sweep``, two panels against concurrency (a log-2 axis): detection
lag p50 and p99 for the SDK (solid) and the baseline (dashed), with the
emulator's own event-loop lag p99 (grey) to tell a saturated server from a
late client; and the SDK/baseline wall and CPU ratios, with the line at 1.

Drawing needs matplotlib, the optional ``plot`` extra
(``pip install 'orgo_async[plot]'``). :func:`load_pyplot` is called before the
benchmark runs, so a missing extra costs nothing; it uses the non-interactive
Agg backend (no display needed).

The per-computer values come from the benchmark's own result (``samples`` in
each mode's figures), so a plot can also be redrawn from a saved JSON file.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from ._output import PROG, import_extra

_COLOURS: Final = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def load_pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend.

    Raises:
        UsageError: matplotlib (the ``plot`` extra) is not installed.
    """
    matplotlib = import_extra("matplotlib", extra="plot", needed_by="bench --plot")
    matplotlib.use("Agg", force=True)
    return importlib.import_module("matplotlib.pyplot")


def _cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    data = sorted(values)
    n = len(data)
    return data, [(i + 1) / n for i in range(n)]


def draw(pyplot: Any, result: dict[str, Any], path: Path) -> None:
    """Draw ``result`` into ``path`` (PNG, or what its suffix says): CDFs, or a sweep's curves.

    Raises:
        OSError: ``path`` cannot be written.
    """
    if "points" in result:
        _draw_sweep(pyplot, result, path)
    else:
        _draw_cdfs(pyplot, result, path)


def _draw_cdfs(pyplot: Any, result: dict[str, Any], path: Path) -> None:
    modes = list(result["modes"])
    figure, axes = pyplot.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    panels = (
        (axes[0], "create_to_ready_ms", "create \u2192 ready (ms)"),
        (axes[1], "detection_lag_ms", "ready-detection lag (ms)"),
    )
    try:
        for ax, key, label in panels:
            drawn = 0
            for n, mode in enumerate(modes):
                colour = _COLOURS[n % len(_COLOURS)]
                figures = result["modes"][mode]
                for who, one, style in (
                    ("SDK", figures, "-"),
                    ("baseline", figures["baseline"], "--"),
                ):
                    values = one["samples"][key]
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
        title = (
            f"{PROG} bench: {result['count_per_launch']} computers per launch, "
            f"concurrency {result['concurrency']}"
        )
        _save(figure, result, title, path)
    finally:
        pyplot.close(figure)


def _save(figure: Any, result: dict[str, Any], title: str, path: Path) -> None:
    """Title the figure (with the boot time, when known) and write it to ``path``."""
    boot = result.get("boot_ms")
    figure.suptitle(
        title
        + (f", boot {boot:g} ms" if isinstance(boot, int | float) else "")
        + "  (solid: SDK, dashed: raw aiohttp)"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def _series(
    points: Sequence[dict[str, Any]], values: Sequence[Any]
) -> tuple[list[int], list[float]]:
    """``(concurrencies, values)`` of the points whose value is a number (a figure may be null)."""
    pairs = [
        (p["concurrency"], v)
        for p, v in zip(points, values, strict=True)
        if isinstance(v, int | float)
    ]
    return [x for x, _ in pairs], [y for _, y in pairs]


def _draw_sweep(pyplot: Any, result: dict[str, Any], path: Path) -> None:
    points = sorted(result["points"], key=lambda p: p["concurrency"])
    concurrencies = [p["concurrency"] for p in points]
    figure, (lag_ax, ratio_ax) = pyplot.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    try:
        for who, sides, style in (
            ("SDK", points, "-"),
            ("raw aiohttp", [p["baseline"] for p in points], "--"),
        ):
            for n, key in enumerate(("p50", "p99")):
                xs, ys = _series(points, [f["detection_lag_ms"][key] for f in sides])
                if xs:
                    lag_ax.plot(
                        xs, ys, linestyle=style, marker="o", color=_COLOURS[n],
                        label=f"{who} lag {key}",
                    )  # fmt: skip
            loop_lag = [(f.get("emulator_loop_lag_ms") or {}).get("p99") for f in sides]
            xs, ys = _series(points, loop_lag)
            if xs:
                lag_ax.plot(
                    xs, ys, linestyle=style, color="grey", linewidth=1,
                    label=f"emulator loop lag p99 ({who} run)",
                )  # fmt: skip
        for n, key in enumerate(("wall", "cpu")):
            xs, ys = _series(points, [p["ratio_vs_baseline"][key] for p in points])
            if xs:
                ratio_ax.plot(xs, ys, marker="o", color=_COLOURS[2 + n], label=f"{key} SDK/raw")
        ratio_ax.axhline(1.0, color="grey", linewidth=1)
        for ax, label in (
            (lag_ax, "ready-detection lag (ms)"),
            (ratio_ax, "SDK / raw aiohttp"),
        ):
            ax.set_xscale("log", base=2)
            ax.set_xticks(concurrencies, [str(c) for c in concurrencies])
            ax.minorticks_off()
            ax.set_xlabel("concurrency (burst)")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize="small")
        counts = ", ".join(str(p["count_per_launch"]) for p in points)
        _save(figure, result, f"{PROG} bench --sweep: counts {counts}", path)
    finally:
        pyplot.close(figure)
