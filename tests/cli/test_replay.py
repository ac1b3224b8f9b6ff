"""``orgo-async replay``: a trajectory directory to one HTML page, offline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orgo_async import TrajectoryRecorder
from orgo_async.protocol.png import encode_png

from .conftest import cli, ok, one_error_line


def recorded(directory: Path) -> Path:
    async def record() -> None:
        png = encode_png(2, 2, b"\x10\x20\x30" * 4)
        async with TrajectoryRecorder(directory, instruction="say <hi>", computer="c-9") as rec:
            rec.model_turn(0.25)
            await rec.action("screenshot", screenshot_png=png, desktop_seconds=0.01)
            await rec.action("type", {"text": "hi"}, desktop_seconds=0.02)

    asyncio.run(record())
    return directory


def test_replay_writes_the_page_beside_the_trajectory(tmp_path: Path) -> None:
    run = recorded(tmp_path / "run")
    done = ok(cli("replay", str(run)))
    page = (run / "replay.html").read_text()
    assert page.startswith("<!doctype html>")
    assert 'id="step-0"' in page and 'id="step-1"' in page and "data:image/png;base64," in page
    assert "say &lt;hi&gt;" in page
    assert done.stdout == ""
    assert f"{run / 'replay.html'}: 2 steps, 1 frames, completed" in done.stderr


def test_replay_to_a_file_or_stdout(tmp_path: Path) -> None:
    run = recorded(tmp_path / "run")
    ok(cli("replay", str(run), "-o", str(tmp_path / "out" / "page.html")))
    assert (tmp_path / "out" / "page.html").read_text().count('class="step"') == 2
    done = ok(cli("replay", str(run), "-o", "-"))
    assert done.stdout.startswith("<!doctype html>") and done.stdout.count('class="step"') == 2


def test_replay_of_what_is_not_a_trajectory_is_a_usage_error(tmp_path: Path) -> None:
    line = one_error_line(cli("replay", str(tmp_path)), 2)
    assert "holds no trajectory.jsonl" in line
    line = one_error_line(cli("replay", str(tmp_path / "nowhere")), 2)
    assert "is not a directory" in line
