"""``orgo-async bench --plot PATH``: the latency distributions of a benchmark, as a picture.

Two panels of empirical CDFs: create → ready, and ready-detection lag (the
emulator's record of when a computer became healthy → the launcher saw it),
one curve per mode for the SDK (solid) and the raw-aiohttp baseline (dashed).

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
    """Draw the CDFs of ``result``'s runs into ``path`` (PNG, or what its suffix says).

    Raises:
        OSError: ``path`` cannot be written.
    """
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
        boot = result.get("boot_ms")
        figure.suptitle(
            f"{PROG} bench: {result['count_per_launch']} computers per launch, "
            f"concurrency {result['concurrency']}"
            + (f", boot {boot:g} ms" if isinstance(boot, int | float) else "")
            + "  (solid: SDK, dashed: raw aiohttp)"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    finally:
        pyplot.close(figure)
