"""Figures and the text they are printed as: percentiles, cells, tables, JSON.

Percentiles use the **nearest-rank** method: the p-th percentile of ``n``
sorted values is the value of rank ``ceil(p / 100 * n)`` (1-based), so every
reported figure is one that was actually measured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

PERCENTILES: Final = ("p50", "p95", "p99", "max")
"""The keys of :func:`percentiles` that tables show, in order."""

_RANKS: Final = (50, 95, 99)


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    """``p50``, ``p95``, ``p99``, ``max`` (nearest rank) and ``n``; ``None`` when empty."""
    data = sorted(values)
    n = len(data)
    out: dict[str, float | int | None] = {}
    for p in _RANKS:
        out[f"p{p}"] = data[max(1, math.ceil(p / 100 * n)) - 1] if n else None
    out["max"] = data[-1] if n else None
    out["n"] = n
    return out


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to the microsecond."""
    return round(seconds * 1000, 3)


def cell(value: object) -> str:
    """One table cell: ``-`` for nothing, floats to 1 or 2 decimals, the rest as text."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def percentile_cells(figure: Mapping[str, Any], width: int) -> str:
    """The :data:`PERCENTILES` of one :func:`percentiles` figure, right-aligned in ``width``."""
    return "".join(f"{cell(figure[p]):>{width}}" for p in PERCENTILES)


def percentile_header(width: int) -> str:
    """The headings of :func:`percentile_cells`."""
    return "".join(f"{p:>{width}}" for p in PERCENTILES)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart, as wide as their widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def fields_text(fields: Mapping[str, object], *, as_json: bool) -> str:
    """One record: as JSON, or a ``name  value`` line per field with the names aligned."""
    if as_json:
        return to_json(fields)
    width = max(len(name) for name in fields)
    return "\n".join(f"{name.ljust(width)}  {cell(value)}" for name, value in fields.items())


def to_json(value: Any) -> str:
    """``value`` as indented JSON; every figure must be finite (missing ones are ``null``)."""
    return json.dumps(value, indent=2, allow_nan=False, default=str)
