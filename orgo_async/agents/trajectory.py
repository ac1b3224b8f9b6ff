"""Recorded agent trajectories: every step as a typed record, on disk as it happens.

A trajectory directory holds ``trajectory.jsonl`` (one JSON object per line:
a header, then one line per step, then an end line) and ``frames/NNNN.png``,
the screenshot a step produced, named by the step's index::

    async with TrajectoryRecorder("runs/42", instruction=task, computer=computer) as rec:
        rec.model_turn(1.8)                      # seconds the model took to answer
        png = await vnc.screenshot()
        await rec.action("screenshot", {}, screenshot_png=png, desktop_seconds=0.02)
        await rec.action("left_click", {"coordinate": [10, 20]}, error="off the screen")
        rec.outcome = "completed"
    trajectory = load_trajectory("runs/42")

Each line is written and flushed as soon as its step is recorded, its frame
first, so a process that crashes leaves a readable prefix: :func:`load_trajectory`
reads it, dropping a last line cut short, and reports ``outcome=None``.

The writes go to one thread of their own (a single-worker executor) rather than
running on the event loop: a frame is a few hundred kilobytes and a slow disk
would stall every other task of the loop for its whole write. One worker keeps
the lines in the order the steps were recorded; a write is shielded from the
caller's cancellation, so a step recorded just before a cancellation is on disk.
Data reaches the operating system on every line, not the disk platter: a process
crash loses nothing recorded, a power cut may.

A trajectory holds what the model asked for, typed text included: treat the
directory as you treat the task's own data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import attrs

from .._aio import run_shielded
from .._checks import check_text, optional
from ..models import Computer

__all__ = [
    "FORMAT_VERSION",
    "Step",
    "Trajectory",
    "TrajectoryError",
    "TrajectoryRecorder",
    "load_trajectory",
]

FORMAT_VERSION: Final = 1
"""The ``version`` of the header line this module writes and reads."""

JSONL: Final = "trajectory.jsonl"
FRAMES: Final = "frames"
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"


class TrajectoryError(ValueError):
    """A trajectory directory that cannot be read (missing, foreign, or corrupt before its end)."""


@attrs.frozen(kw_only=True)
class Step:
    """One action the model asked for, and what came of it.

    Attributes:
        index: 0, 1, 2... in the order the steps were recorded.
        turn: The model turn (counted from 0) whose answer asked for this action.
        action: The action's name, as the model gave it (``left_click``, ``type``...).
        input: The action's input, as the model gave it (JSON values).
        ok: Whether the action succeeded; when not, ``error`` says why.
        error: The error text the model was shown, if the action failed.
        output: Text the action returned to the model, if any (a cursor position...).
        frame: The screenshot the step produced, relative to the trajectory's
            directory (``frames/0003.png``), or ``None``.
        model_seconds: Model time charged to this step: the turn's time on the first
            action of a turn, 0 on the others (so the steps' sum is the model's total).
        desktop_seconds: Time spent on the computer performing the action.
        started_at, ended_at: Wall-clock times (seconds since the epoch) of the action.
    """

    index: int
    turn: int
    action: str
    input: Mapping[str, Any] = attrs.field(factory=dict)
    ok: bool = True
    error: str | None = None
    output: str | None = None
    frame: str | None = None
    model_seconds: float = 0.0
    desktop_seconds: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0


@attrs.frozen(kw_only=True)
class Trajectory:
    """A recorded run: its instruction, computer, steps and how it ended.

    ``outcome`` is what the loop reported (``completed``, ``max_steps``,
    ``deadline``, ``cancelled``, ``error``...), or ``None`` when the recording
    stops without an end line (the process died): then ``ended_at`` is the last
    step's end, and the steps are those written before it died.
    """

    directory: Path
    instruction: str
    computer_id: str | None
    started_at: float
    ended_at: float | None
    outcome: str | None
    error: str | None = None
    steps: tuple[Step, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether the recording ended properly (it has an end line)."""
        return self.outcome is not None

    @property
    def model_seconds(self) -> float:
        return math.fsum(step.model_seconds for step in self.steps)

    @property
    def desktop_seconds(self) -> float:
        return math.fsum(step.desktop_seconds for step in self.steps)

    def frame_path(self, step: Step) -> Path | None:
        """The file of ``step``'s screenshot, or ``None`` if it has none."""
        return None if step.frame is None else self.directory / step.frame


class StepLog:
    """The steps of one run as the loop reports them, in memory: turns, model time, actions.

    :class:`TrajectoryRecorder` keeps one and writes each step it makes; a loop
    that records nothing to disk keeps one alone.
    """

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._turn = -1
        self._pending_model = 0.0

    def model_turn(self, seconds: float) -> None:
        """A model answer took ``seconds``; the actions after it belong to it.

        Raises:
            ValueError: ``seconds`` is negative or not a finite number.
        """
        self._pending_model += _seconds("seconds", seconds)
        self._turn += 1

    def action(
        self,
        name: str,
        input: Mapping[str, Any] | None = None,
        *,
        error: str | None = None,
        output: str | None = None,
        has_frame: bool = False,
        desktop_seconds: float = 0.0,
        started_at: float | None = None,
    ) -> Step:
        """Add one action (see :meth:`TrajectoryRecorder.action`) and return its step.

        Raises:
            ValueError: a blank name, an input that is not JSON, a bad number of seconds.
        """
        check_text("name", name)
        try:
            # As it will read back: tuples become lists, keys strings.
            values = json.loads(json.dumps(dict(input or {}), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"input must hold JSON values only: {exc}") from None
        desktop = _seconds("desktop_seconds", desktop_seconds)
        ended = time.time()
        started = ended - desktop if started_at is None else _seconds("started_at", started_at)
        index = len(self.steps)
        step = Step(
            index=index,
            turn=max(self._turn, 0),
            action=name,
            input=values,
            ok=error is None,
            error=error,
            output=output,
            frame=f"{FRAMES}/{index:04d}.png" if has_frame else None,
            model_seconds=self._pending_model,
            desktop_seconds=desktop,
            started_at=started,
            ended_at=ended,
        )
        self._pending_model = 0.0
        self.steps.append(step)
        return step


class TrajectoryRecorder:
    """Writes a trajectory to ``directory`` while an agent loop runs; an async context manager.

    The loop calls :meth:`model_turn` after each model answer and :meth:`action`
    after each action it performed. On exit the end line is written with
    :attr:`outcome` (set by the loop; by default ``completed``, or ``cancelled``
    or ``error`` when the block ends by a cancellation or an exception, whose
    text goes in the end line's ``error``). :attr:`trajectory` then holds the
    whole run.

    Args:
        directory: Created if missing. One that already holds a trajectory is
            refused unless ``overwrite`` (its old frames are removed then).
        instruction: The task given to the model.
        computer: The computer (or its id) the loop drives.

    Raises:
        ValueError: a blank instruction, or a directory that holds a trajectory.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        instruction: str,
        computer: Computer | str | None = None,
        overwrite: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.instruction = check_text("instruction", instruction)
        self.computer_id = computer.id if isinstance(computer, Computer) else computer
        optional(check_text)("computer", self.computer_id)
        self.overwrite = overwrite
        self.outcome: str | None = None
        """How the run ended, as the end line will say; set by the loop before exit."""
        self.error: str | None = None
        self.started_at = 0.0
        self._log = StepLog()
        self._file: IO[str] | None = None
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        self._trajectory: Trajectory | None = None

    def __repr__(self) -> str:
        return f"<TrajectoryRecorder {str(self.directory)!r} steps={len(self._log.steps)}>"

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps recorded so far."""
        return tuple(self._log.steps)

    @property
    def trajectory(self) -> Trajectory:
        """The finished run (after the ``async with`` block).

        Raises:
            RuntimeError: the recording has not ended yet.
        """
        if self._trajectory is None:
            raise RuntimeError("the trajectory is not finished: read it after the async with block")
        return self._trajectory

    async def __aenter__(self) -> TrajectoryRecorder:
        if self._writer is not None or self._trajectory is not None:
            raise RuntimeError("a TrajectoryRecorder records once")
        self.started_at = time.time()
        header = {
            "type": "trajectory",
            "version": FORMAT_VERSION,
            "instruction": self.instruction,
            "computer_id": self.computer_id,
            "started_at": self.started_at,
        }
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "orgo-trajectory")
        try:
            await self._in_writer(self._open, _line(header))
        except BaseException:
            self._writer.shutdown(wait=False)
            self._writer = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.outcome is None:
            if exc_type is None:
                self.outcome = "completed"
            elif issubclass(exc_type, asyncio.CancelledError):
                self.outcome = "cancelled"
            else:
                self.outcome = "error"
        if self.error is None and exc is not None and not isinstance(exc, asyncio.CancelledError):
            self.error = f"{type(exc).__name__}: {exc}"
        ended_at = time.time()
        end = {"type": "end", "outcome": self.outcome, "ended_at": ended_at, "error": self.error}
        try:
            await self._in_writer(self._close, _line(end))
        finally:
            assert self._writer is not None
            self._writer.shutdown(wait=False)
            self._trajectory = Trajectory(
                directory=self.directory,
                instruction=self.instruction,
                computer_id=self.computer_id,
                started_at=self.started_at,
                ended_at=ended_at,
                outcome=self.outcome,
                error=self.error,
                steps=tuple(self._log.steps),
            )

    def model_turn(self, seconds: float) -> None:
        """Record a model answer that took ``seconds``; the actions after it belong to it.

        Raises:
            ValueError: ``seconds`` is negative or not a finite number.
        """
        self._log.model_turn(seconds)

    async def action(
        self,
        name: str,
        input: Mapping[str, Any] | None = None,
        *,
        error: str | None = None,
        output: str | None = None,
        screenshot_png: bytes | None = None,
        desktop_seconds: float = 0.0,
        started_at: float | None = None,
    ) -> Step:
        """Record one action performed on the computer, and write it out.

        Args:
            name: The action's name, as the model gave it.
            input: Its input, as the model gave it (JSON values only).
            error: The error the model was shown, if the action failed.
            output: Text returned to the model, if any.
            screenshot_png: The PNG the action produced (a screenshot, a zoom), if any.
            desktop_seconds: Time the action took on the computer.
            started_at: Its wall-clock start (default: now minus ``desktop_seconds``).

        Returns:
            The recorded step.

        Raises:
            ValueError: a blank name, an input that is not JSON, bytes that are not a
                PNG, a bad number of seconds (nothing is written then).
            RuntimeError: outside the ``async with`` block.
        """
        if self._writer is None or self._trajectory is not None:
            raise RuntimeError("record actions inside the recorder's async with block")
        if screenshot_png is not None and not bytes(screenshot_png[:8]) == _PNG_MAGIC:
            raise ValueError("screenshot_png must be the bytes of a PNG image")
        step = self._log.action(
            name,
            input,
            error=error,
            output=output,
            has_frame=screenshot_png is not None,
            desktop_seconds=desktop_seconds,
            started_at=started_at,
        )
        record = {"type": "step", **attrs.asdict(step)}
        await self._in_writer(self._write_step, _line(record), step.frame, screenshot_png)
        return step

    # -- the writer thread -------------------------------------------------------------

    async def _in_writer(self, function: Any, *args: Any) -> None:
        loop = asyncio.get_running_loop()
        await run_shielded(loop.run_in_executor(self._writer, function, *args))

    def _open(self, header: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        jsonl = self.directory / JSONL
        if jsonl.exists():
            if not self.overwrite:
                raise ValueError(
                    f"directory {str(self.directory)!r} already holds a trajectory; "
                    "choose another directory or pass overwrite=True"
                )
            for old in (self.directory / FRAMES).glob("*.png"):
                old.unlink()
        (self.directory / FRAMES).mkdir(exist_ok=True)
        self._file = jsonl.open("w", encoding="utf-8")
        self._append(header)

    def _write_step(self, line: str, frame: str | None, png: bytes | None) -> None:
        if frame is not None and png is not None:
            # The frame first, under a temporary name: a line never names a frame
            # that is not whole on disk.
            target = self.directory / frame
            partial = target.with_suffix(".png.part")
            partial.write_bytes(png)
            partial.replace(target)
        self._append(line)

    def _close(self, line: str) -> None:
        if self._file is None:
            return
        try:
            self._append(line)
        finally:
            self._file.close()
            self._file = None

    def _append(self, line: str) -> None:
        assert self._file is not None
        self._file.write(line)
        self._file.flush()


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"


def _seconds(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a number of seconds >= 0; got {value!r}")
    return float(value)


# -- reading ---------------------------------------------------------------------------

_STEP_FIELDS: Final = frozenset(field.name for field in attrs.fields(Step))


def load_trajectory(directory: str | os.PathLike[str]) -> Trajectory:
    """Read the trajectory recorded in ``directory``.

    A last line cut short (the writer died in the middle of it) is dropped, and
    a trajectory without its end line has ``outcome=None``. Frames are not
    read, only named (:meth:`Trajectory.frame_path`).

    Raises:
        TrajectoryError: no ``trajectory.jsonl`` there, a header that is not ours
            (or of a newer version), or a corrupt line before the last.
    """
    root = Path(directory)
    path = root / JSONL
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise TrajectoryError(f"{str(root)!r} holds no {JSONL}: not a trajectory") from None
    except OSError as exc:
        raise TrajectoryError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    lines = text.split("\n")
    # A complete file ends with a newline: whatever follows the last one was cut short.
    cut = lines.pop()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        records.append(_record(path, number, line))
    if cut.strip():
        try:
            records.append(_record(path, len(lines) + 1, cut))
        except TrajectoryError:
            pass  # cut short by a crash: the prefix is what was recorded
    if not records or records[0].get("type") != "trajectory":
        raise TrajectoryError(f"{str(path)!r} does not start with a trajectory header")
    header = records[0]
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TrajectoryError(
            f"{str(path)!r} is format version {version!r}; this reads up to {FORMAT_VERSION}"
        )
    steps: list[Step] = []
    end: dict[str, Any] | None = None
    for record in records[1:]:
        kind = record.get("type")
        if kind == "step":
            steps.append(_step(path, record))
        elif kind == "end":
            end = record
    last_end = steps[-1].ended_at if steps else None
    return Trajectory(
        directory=root,
        instruction=str(header.get("instruction", "")),
        computer_id=header.get("computer_id"),
        started_at=float(header.get("started_at", 0.0)),
        ended_at=float(end["ended_at"]) if end is not None else last_end,
        outcome=str(end["outcome"]) if end is not None else None,
        error=end.get("error") if end is not None else None,
        steps=tuple(steps),
    )


def _record(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        raise TrajectoryError(f"{str(path)!r} line {number} is not JSON") from None
    if not isinstance(record, dict):
        raise TrajectoryError(f"{str(path)!r} line {number} is not a JSON object")
    return record


def _step(path: Path, record: Mapping[str, Any]) -> Step:
    fields = {key: value for key, value in record.items() if key in _STEP_FIELDS}
    try:
        return Step(**fields)
    except TypeError as exc:
        raise TrajectoryError(f"{str(path)!r} has a step that does not fit: {exc}") from None
