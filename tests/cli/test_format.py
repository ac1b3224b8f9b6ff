"""The figures and text of the CLI's tables: nearest-rank percentiles, cells, columns."""

from __future__ import annotations

import json

from orgo_async.cli._format import cell, fields_text, percentile_cells, percentiles, table


def test_percentiles_are_nearest_rank() -> None:
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "max": 7.0, "n": 1}
    values = list(range(100, 0, -1))  # 1..100, unsorted
    assert percentiles(values) == {"p50": 50, "p95": 95, "p99": 99, "max": 100, "n": 100}
    # Nearest rank on six values: ranks ceil(3) = 3, ceil(5.7) = 6, ceil(5.94) = 6.
    assert percentiles([1, 2, 3, 4, 5, 6]) == {"p50": 3, "p95": 6, "p99": 6, "max": 6, "n": 6}


def test_cells_and_tables() -> None:
    assert [cell(v) for v in (None, "", "x", 0, 7, 1.234, 123.456)] == [
        "-", "-", "x", "0", "7", "1.23", "123.5",
    ]  # fmt: skip
    assert percentile_cells(percentiles([1.0, 2.0]), 6) == "  1.00  2.00  2.00  2.00"
    assert percentile_cells(percentiles([]), 3) == "  -  -  -  -"
    assert table(["ID", "NAME"], [["a", "-"], ["bcd", "e"]]) == "ID   NAME\na    -\nbcd  e"


def test_fields_text_aligns_names_or_gives_json() -> None:
    fields = {"id": "c-1", "status": None, "cpu": 2}
    assert fields_text(fields, as_json=False) == "id      c-1\nstatus  -\ncpu     2"
    assert json.loads(fields_text(fields, as_json=True)) == fields
