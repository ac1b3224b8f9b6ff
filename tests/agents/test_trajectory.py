"""The trajectory recorder writes what load_trajectory reads back, crash or not."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from orgo_async import Computer, TrajectoryError, TrajectoryRecorder, load_trajectory
from orgo_async.agents.trajectory import JSONL, Step
from orgo_async.protocol.png import encode_png


def frame(shade: int) -> bytes:
    return encode_png(4, 3, bytes([shade, 255 - shade, 7]) * 12)


async def record(directory: Path) -> tuple[Step, ...]:
    computer = Computer(id="c-42", connection_url="http://x/desktops/vm", vnc_password="secret")
    recorder = TrajectoryRecorder(directory, instruction="open the editor", computer=computer)
    async with recorder as rec:
        rec.model_turn(1.5)
        await rec.action("screenshot", {}, screenshot_png=frame(10), desktop_seconds=0.02)
        await rec.action("left_click", {"coordinate": (10, 20)}, desktop_seconds=0.01)
        rec.model_turn(0.75)
        await rec.action("type", {"text": "héllo\n"}, error="keyboard gone", desktop_seconds=0.1)
        await rec.action("zoom", {"region": [0, 0, 2, 2]}, screenshot_png=frame(200), output="2x2")
        rec.outcome = "max_steps"
    return rec.trajectory.steps


async def test_what_is_recorded_loads_back_the_same(tmp_path: Path) -> None:
    recorded = await record(tmp_path / "run")
    loaded = load_trajectory(tmp_path / "run")

    assert loaded.steps == recorded
    assert [s.action for s in loaded.steps] == ["screenshot", "left_click", "type", "zoom"]
    assert loaded.instruction == "open the editor" and loaded.computer_id == "c-42"
    assert loaded.outcome == "max_steps" and loaded.complete
    assert loaded.ended_at is not None and loaded.ended_at >= loaded.started_at
    # Model time goes to the first action of each turn; the sums come out whole.
    assert [s.turn for s in loaded.steps] == [0, 0, 1, 1]
    assert [s.model_seconds for s in loaded.steps] == [1.5, 0.0, 0.75, 0.0]
    assert loaded.model_seconds == 2.25
    assert loaded.desktop_seconds == pytest.approx(0.13)
    # JSON values as they read back: a tuple is a list.
    assert loaded.steps[1].input == {"coordinate": [10, 20]}
    assert not loaded.steps[2].ok and loaded.steps[2].error == "keyboard gone"
    assert loaded.steps[3].output == "2x2"
    # The frames are the bytes given, named by step index.
    assert [s.frame for s in loaded.steps] == ["frames/0000.png", None, None, "frames/0003.png"]
    first, last = (loaded.frame_path(loaded.steps[i]) for i in (0, 3))
    assert first is not None and first.read_bytes() == frame(10)
    assert last is not None and last.read_bytes() == frame(200)
    assert sorted(p.name for p in (tmp_path / "run" / "frames").iterdir()) == [
        "0000.png",
        "0003.png",
    ]
    # The vnc_password of the computer given is nowhere in the files.
    assert "secret" not in (tmp_path / "run" / JSONL).read_text()


async def test_a_truncated_file_loads_its_prefix(tmp_path: Path) -> None:
    await record(tmp_path / "run")
    jsonl = tmp_path / "run" / JSONL
    whole = jsonl.read_bytes()
    lines = whole.splitlines(keepends=True)
    assert len(lines) == 6  # header, 4 steps, end

    # Cut in the middle of the third step's line: the two before it remain.
    cut = sum(map(len, lines[:3])) + len(lines[3]) // 2
    jsonl.write_bytes(whole[:cut])
    partial = load_trajectory(tmp_path / "run")
    assert [s.action for s in partial.steps] == ["screenshot", "left_click"]
    assert partial.outcome is None and not partial.complete
    assert partial.ended_at == partial.steps[-1].ended_at

    # Cut exactly after a line: that line counts.
    jsonl.write_bytes(b"".join(lines[:4]))
    assert len(load_trajectory(tmp_path / "run").steps) == 3

    # A corrupt line before the last is not a crash's doing: refused, naming the line.
    jsonl.write_bytes(lines[0] + b"{not json\n" + lines[1])
    with pytest.raises(TrajectoryError, match="line 2 is not JSON"):
        load_trajectory(tmp_path / "run")


async def test_a_crash_leaves_a_readable_prefix_on_disk(tmp_path: Path) -> None:
    # Lines are on disk as each step is recorded, before the block ends.
    async with TrajectoryRecorder(tmp_path, instruction="crash") as rec:
        await rec.action("screenshot", screenshot_png=frame(1))
        await rec.action("key", {"text": "Return"})
        midway = load_trajectory(tmp_path)
        assert [s.action for s in midway.steps] == ["screenshot", "key"]
        assert midway.outcome is None
        assert (tmp_path / "frames" / "0000.png").read_bytes() == frame(1)


async def test_the_end_line_says_how_the_block_ended(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        async with TrajectoryRecorder(tmp_path / "error", instruction="x") as rec:
            await rec.action("wait", {"duration": 1})
            raise RuntimeError("the model API failed")
    failed = load_trajectory(tmp_path / "error")
    assert failed.outcome == "error"
    assert failed.error == "RuntimeError: the model API failed"

    recorded = asyncio.Event()

    async def loop() -> None:
        async with TrajectoryRecorder(tmp_path / "cancelled", instruction="x") as rec:
            await rec.action("wait", {"duration": 1})
            recorded.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(loop())
    await recorded.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cancelled = load_trajectory(tmp_path / "cancelled")
    assert cancelled.outcome == "cancelled" and len(cancelled.steps) == 1

    async with TrajectoryRecorder(tmp_path / "done", instruction="x"):
        pass
    assert load_trajectory(tmp_path / "done").outcome == "completed"


async def test_files_are_written_off_the_event_loop(tmp_path: Path) -> None:
    threads: set[str] = set()
    loop_thread = threading.current_thread().name

    class Spy(TrajectoryRecorder):
        def _append(self, line: str) -> None:
            threads.add(threading.current_thread().name)
            super()._append(line)

    async with Spy(tmp_path, instruction="x") as rec:
        await rec.action("screenshot", screenshot_png=frame(3))
    assert threads and loop_thread not in threads


async def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="instruction"):
        TrajectoryRecorder(tmp_path, instruction="  ")
    async with TrajectoryRecorder(tmp_path / "run", instruction="x") as rec:
        with pytest.raises(ValueError, match="input must hold JSON values"):
            await rec.action("click", {"at": object()})
        with pytest.raises(ValueError, match="screenshot_png must be the bytes of a PNG"):
            await rec.action("screenshot", screenshot_png=b"GIF89a....")
        with pytest.raises(ValueError, match="desktop_seconds"):
            await rec.action("wait", desktop_seconds=-1)
        with pytest.raises(ValueError, match="seconds"):
            rec.model_turn(float("nan"))
        with pytest.raises(ValueError, match="name"):
            await rec.action("")
    assert load_trajectory(tmp_path / "run").steps == ()
    with pytest.raises(RuntimeError, match="inside the recorder"):
        await rec.action("wait")

    # An existing trajectory is not overwritten by accident.
    with pytest.raises(ValueError, match="already holds a trajectory"):
        async with TrajectoryRecorder(tmp_path / "run", instruction="again"):
            pass
    async with TrajectoryRecorder(tmp_path / "run", instruction="again", overwrite=True):
        pass
    assert load_trajectory(tmp_path / "run").instruction == "again"


def test_what_is_not_a_trajectory_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryError, match="holds no trajectory.jsonl"):
        load_trajectory(tmp_path)
    (tmp_path / JSONL).write_text(json.dumps({"type": "something"}) + "\n")
    with pytest.raises(TrajectoryError, match="does not start with a trajectory header"):
        load_trajectory(tmp_path)
    (tmp_path / JSONL).write_text(json.dumps({"type": "trajectory", "version": 99}) + "\n")
    with pytest.raises(TrajectoryError, match="format version 99"):
        load_trajectory(tmp_path)
