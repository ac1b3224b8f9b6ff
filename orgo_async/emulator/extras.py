"""The emulator's state beyond the lifecycle: RTMP streams, extra screens, resume, fork, limits.

Kept per computer beside the :class:`~orgo_async.emulator.store.Store` and
reset by its lifecycle listener, as production does: a stream dies with the
desktop session that runs it (stop, restart or delete leave it
``terminated``), and screens do not survive a restart.

- **Streams**: ``idle`` → ``streaming`` (start) → ``idle`` (stop). A start on a
  computer that is not running answers 409 ``not_running``; a second start
  409 ``stream_active``; a stop when nothing streams is idempotent. Orgo
  streams to an RTMP connection configured in account settings and named in
  the request: :attr:`Extras.stream_connections` is the set of configured
  names (``None``: any name is accepted).
- **Screens**: the ``default`` screen (``:99``, the boot resolution) and up to
  three more (``screen-100`` to ``screen-102``), each with its own size.
- **Resume** wakes a stopped computer (202), **fork** copies a running one,
  **compute limits** count the live computers against ``max_computers``.
"""

from __future__ import annotations

import itertools
from typing import Any, Final, Literal

import attrs

from .backends import desktop_size
from .store import (
    ApiError,
    Computer,
    ComputerSpec,
    Store,
    Transition,
    iso_now,
    or_404,
    retry_after_header,
)

__all__ = ["MAX_SCREENS", "MAX_SCREEN_SIDE", "Extras", "Screen", "Stream"]

MAX_SCREENS: Final = 4
"""Screens per computer, the default one included."""
MAX_SCREEN_SIDE: Final = 8192
_FIRST_EXTRA_DISPLAY: Final = 100
_DEFAULT_DISPLAY: Final = 99

StreamStatus = Literal["idle", "streaming", "terminated"]


@attrs.define(eq=False)
class Stream:
    """One computer's RTMP stream; ``connection`` names the account's RTMP target."""

    status: StreamStatus = "idle"
    pid: int | None = None
    start_time: str | None = None
    connection: str | None = attrs.field(default=None, repr=False)
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status}
        if self.status == "streaming":
            data["start_time"] = self.start_time
            data["pid"] = self.pid
        if self.message is not None:
            data["message"] = self.message
        return data


@attrs.define(eq=False)
class Screen:
    """One display of a computer."""

    id: str
    display: int
    width: int
    height: int

    @property
    def default(self) -> bool:
        return self.display == _DEFAULT_DISPLAY

    def to_json(self) -> dict[str, Any]:
        offset = self.display - _DEFAULT_DISPLAY
        return {
            "id": self.id,
            "display": f":{self.display}",
            "width": self.width,
            "height": self.height,
            "default": self.default,
            "vnc_port": 5900 + offset,
            "ws_port": 6080 + offset,
        }


class Extras:
    """Streams and screens per computer, and the lifecycle extras (resume, fork, limits)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.stream_connections: set[str] | None = None
        """The RTMP connections configured "in account settings" (None: any name)."""
        self._streams: dict[str, Stream] = {}
        self._screens: dict[str, dict[str, Screen]] = {}
        self._pids = itertools.count(4000)
        store.add_listener(self._on_transition)

    # ----------------------------------------------------------------- lifecycle reset

    def _on_transition(self, computer: Computer, transition: Transition) -> None:
        self._screens.pop(computer.id, None)
        if transition == "delete":
            self._streams.pop(computer.id, None)
            return
        stream = self._streams.get(computer.id)
        if stream is not None and stream.status == "streaming":
            self._streams[computer.id] = Stream(
                status="terminated", message="Stream process was terminated unexpectedly"
            )

    def _require_running(self, computer: Computer, what: str) -> None:
        status = computer.status_at(self.store.now())
        if status != "running":
            raise ApiError(
                409,
                "not_running",
                f"Computer is not running (status: {status}): start it before {what}",
            )

    # ----------------------------------------------------------------- streams

    def stream(self, computer: Computer) -> Stream:
        """The computer's stream (``idle`` when none was ever started)."""
        return self._streams.get(computer.id) or Stream()

    def start_stream(self, computer: Computer, connection: str) -> Stream:
        """Start streaming to the named RTMP connection; 409 unless running and idle."""
        self._require_running(computer, "streaming")
        known = self.stream_connections
        if known is not None and connection not in known:
            raise ApiError(
                404,
                "connection_not_found",
                f"No RTMP connection named {connection!r}: configure it in account settings",
            )
        if self.stream(computer).status == "streaming":
            raise ApiError(409, "stream_active", "A stream is already running on this computer")
        stream = Stream(
            status="streaming", pid=next(self._pids), start_time=iso_now(), connection=connection
        )
        self._streams[computer.id] = stream
        return stream

    def stop_stream(self, computer: Computer) -> bool:
        """Stop the stream; whether one was running (a stop when idle changes nothing)."""
        was = self.stream(computer).status == "streaming"
        self._streams.pop(computer.id, None)
        return was

    # ----------------------------------------------------------------- screens

    def _screen_table(self, computer: Computer) -> dict[str, Screen]:
        table = self._screens.get(computer.id)
        if table is None:
            width, height = desktop_size(computer.resolution)
            table = {"default": Screen("default", _DEFAULT_DISPLAY, width, height)}
            self._screens[computer.id] = table
        return table

    def screens(self, computer: Computer) -> list[Screen]:
        """The computer's screens, the default first; 409 unless running."""
        self._require_running(computer, "reading its screens")
        return list(self._screen_table(computer).values())

    def screen(self, computer: Computer, screen_id: str) -> Screen:
        """One screen; 404 ``screen_not_found``."""
        return or_404(
            self._screen_table(computer).get(screen_id),
            "screen_not_found",
            f"Screen not found: {screen_id}",
        )

    def add_screen(self, computer: Computer, width: int | None, height: int | None) -> Screen:
        """A new screen; a missing dimension takes the boot size. 409 past :data:`MAX_SCREENS`."""
        self._require_running(computer, "adding screens")
        table = self._screen_table(computer)
        if len(table) >= MAX_SCREENS:
            raise ApiError(
                409,
                "screen_limit",
                f"A computer has at most {MAX_SCREENS} screens, the default one included",
            )
        used = {s.display for s in table.values()}
        display = next(d for d in itertools.count(_FIRST_EXTRA_DISPLAY) if d not in used)
        base = table["default"]
        screen = Screen(
            f"screen-{display}",
            display,
            base.width if width is None else width,
            base.height if height is None else height,
        )
        table[screen.id] = screen
        return screen

    def resize_screen(
        self, computer: Computer, screen_id: str, width: int | None, height: int | None
    ) -> Screen:
        """Change a screen's size (either dimension)."""
        self._require_running(computer, "resizing its screens")
        screen = self.screen(computer, screen_id)
        if width is not None:
            screen.width = width
        if height is not None:
            screen.height = height
        return screen

    def remove_screen(self, computer: Computer, screen_id: str) -> None:
        """Remove an added screen; 400 ``default_screen`` for the default one."""
        self._require_running(computer, "removing screens")
        screen = self.screen(computer, screen_id)
        if screen.default:
            raise ApiError(400, "default_screen", "The default screen cannot be deleted")
        del self._screens[computer.id][screen_id]

    def screen_size(self, computer: Computer, screen_id: str | None) -> tuple[int, int] | None:
        """For a screenshot or an action: None for the default screen, else the screen's size.

        404 ``screen_not_found`` for an unknown screen.
        """
        if screen_id is None or screen_id == "default":
            return None
        screen = self.screen(computer, screen_id)
        return None if screen.default else (screen.width, screen.height)

    # ----------------------------------------------------------------- resume, fork

    def resume(self, computer: Computer) -> dict[str, Any]:
        """Wake a computer: ``{waking, pending, expected_seconds}`` (starting a stopped one).

        409 ``stop_in_progress`` (with ``Retry-After``) while it is stopping.
        """
        store = self.store
        now = store.now()
        status = computer.status_at(now)
        if status == "stopping":
            wait = computer.stopped_at - now
            raise ApiError(
                409,
                "stop_in_progress",
                "Computer is stopping: resume it once it has stopped",
                headers={"Retry-After": retry_after_header(wait)},
                retry_after=wait,
            )
        waking = status in ("stopped", "error")
        if waking:
            store.start(computer)
            now = store.now()
        pending = not computer.is_running(now)
        expected = max(0.0, computer.ready_at - now) if pending else 0.0
        return {"waking": waking, "pending": pending, "expected_seconds": round(expected, 3)}

    def ensure_running(self, computer: Computer) -> None:
        """Start the computer if it is stopped (or failed); otherwise leave it as it is."""
        status = computer.status_at(self.store.now())
        if status == "stopping":
            raise ApiError(
                409, "stop_in_progress", "Computer is stopping: try again once it has stopped"
            )
        if status in ("stopped", "error"):
            self.store.start(computer)

    def fork(self, source: Computer) -> Computer:
        """A new computer copied from a running one (memory too), in its workspace.

        400 ``NOT_FORKABLE`` unless running; named ``"<name> (fork)"`` (then
        ``(fork 2)``...); 403 ``plan_limit`` as for a create.
        """
        status = source.status_at(self.store.now())
        if status != "running":
            raise ApiError(
                400, "NOT_FORKABLE", f"Only running computers can be forked (status: {status})"
            )
        workspace = self.store.get_workspace(source.workspace_id)
        names = (f"{source.name} (fork{'' if n == 1 else f' {n}'})" for n in itertools.count(1))
        name = next(n for n in names if n not in workspace.names)
        spec = ComputerSpec(
            name=name,
            ram=source.ram,
            cpu=source.cpu,
            disk_size_gb=source.disk_size_gb,
            resolution=source.resolution,
            auto_stop_minutes=source.auto_stop_minutes,
            template_ref=source.template_ref,
        )
        fork = self.store.create_computer(workspace, spec)
        fork.bandwidth_limit_mbps = source.bandwidth_limit_mbps
        return fork

    # ----------------------------------------------------------------- limits

    def compute_limits(self) -> dict[str, Any]:
        """``max_computers`` (null: unlimited), ``computers_used`` and what is free."""
        limit = self.store.config.max_computers
        used = len(self.store.computers)
        return {
            "max_computers": limit,
            "computers_used": used,
            "computers_available": None if limit is None else max(0, limit - used),
        }
