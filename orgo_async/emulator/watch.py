"""Where the emulator's desktop events come from: files, processes and idleness.

Each source publishes through a callback ``publish(computer_key, event_type,
data)`` and runs only while the socket layer says someone wants its events:

- :class:`FileWatcher` polls ``Desktop/`` and ``Downloads/`` of the watched
  computers with ``os.scandir`` snapshots (``mtime_ns``, size, inode) and
  reports ``file_change`` ``{path, action}`` with paths relative to the
  computer's directory (``Desktop/notes.txt``), as Orgo shows them.
- :class:`ProcessWatcher` scans ``/proc`` once per tick for the descendants
  and session members of the watched terminal shells and reports
  ``process_start`` / ``process_stop`` ``{pid, name}``.
- :class:`IdleTracker` arms one timer per computer for ``idle`` and reports
  ``active`` when terminal input ends an idle period.

Pollers tick every ``interval`` seconds (100 ms by default, Orgo documents
100 ms to 2 s) in one task per watcher, which exists only while at least one
computer is watched. A newly watched computer starts from a baseline
snapshot, so nothing that happened before the subscription is reported.
Everything here runs on the event loop thread and never blocks for long:
scans are bounded (:data:`MAX_FILES`) and ``/proc`` reads are tiny.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import attrs

__all__ = [
    "MAX_FILES",
    "FileWatcher",
    "IdleTracker",
    "ProcInfo",
    "ProcessWatcher",
    "Publish",
    "children_map",
    "descendants",
    "read_proc",
    "scan_processes",
    "session_members",
]

Publish = Callable[[str, str, dict[str, Any]], object]
"""``publish(computer_key, event_type, data)``."""

WATCHED_DIRS: Final = ("Desktop", "Downloads")
MAX_FILES: Final = 10_000
"""At most this many entries are snapshotted per computer (a runaway directory
must not stall the event loop); deeper or later entries are not watched."""
MAX_DEPTH: Final = 8
DEFAULT_INTERVAL: Final = 0.1


# --------------------------------------------------------------------------- /proc


@attrs.frozen
class ProcInfo:
    """One process as ``/proc/<pid>/stat`` describes it."""

    pid: int
    ppid: int
    pgrp: int
    session: int
    state: str
    name: str
    """``comm``: the executable's name, at most 15 characters (as ``/proc/<pid>/comm``)."""
    start_time: int
    """Clock ticks after boot; with ``pid`` it identifies a process across pid reuse."""

    @property
    def alive(self) -> bool:
        """False for zombies and dead tasks (they only wait to be reaped)."""
        return self.state not in ("Z", "X", "x")


def read_proc(pid: int) -> ProcInfo | None:
    """The process ``pid``, or None if it does not exist (or ``/proc`` is unavailable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: it ends at the last ')'.
    open_at = raw.find(b"(")
    close_at = raw.rfind(b")")
    if open_at < 0 or close_at < open_at:
        return None
    fields = raw[close_at + 2 :].split()
    try:
        return ProcInfo(
            pid=pid,
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            session=int(fields[3]),
            state=fields[0].decode("ascii", "replace"),
            name=raw[open_at + 1 : close_at].decode("utf-8", "replace"),
            start_time=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def scan_processes() -> dict[int, ProcInfo]:
    """Every process visible in ``/proc`` (empty where there is no ``/proc``)."""
    table: dict[int, ProcInfo] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if entry.isdigit():
            info = read_proc(int(entry))
            if info is not None:
                table[info.pid] = info
    return table


def session_members(session: int, table: dict[int, ProcInfo] | None = None) -> list[int]:
    """Live (non-zombie) processes of a session, the leader included if alive."""
    table = scan_processes() if table is None else table
    return [p.pid for p in table.values() if p.session == session and p.alive]


def children_map(table: dict[int, ProcInfo]) -> dict[int, list[int]]:
    """``{pid: [child pids]}`` for a process table."""
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    return children


def descendants(
    roots: Iterable[int],
    table: dict[int, ProcInfo],
    children: dict[int, list[int]] | None = None,
) -> set[int]:
    """Pids below ``roots`` in the parent tree (the roots themselves excluded).

    Pass ``children`` (:func:`children_map` of ``table``) to reuse it across calls.
    """
    children = children_map(table) if children is None else children
    found: set[int] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


# --------------------------------------------------------------------------- pollers


class _Poller:
    """A task that calls :meth:`_tick` every ``interval`` seconds while anything is watched."""

    def __init__(self, publish: Publish, interval: float) -> None:
        self._publish = publish
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True while the polling task exists."""
        return self._task is not None

    def _watched(self) -> bool:
        raise NotImplementedError

    def _tick(self) -> None:
        raise NotImplementedError

    def _update(self) -> None:
        # Start on the first watched key, stop on the last one leaving.
        if self._watched() and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"orgo-emulator-{type(self).__name__}"
            )
        elif not self._watched() and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._tick()

    async def aclose(self) -> None:
        """Stop polling (the watched set is kept; used at emulator close)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


_FileSig = tuple[int, int, int]  # (mtime_ns, size, inode)


def _snapshot(root: Path) -> dict[str, _FileSig]:
    """``{"Desktop/a.txt": signature}`` for the files under the watched directories."""
    found: dict[str, _FileSig] = {}
    stack: list[tuple[str, str, int]] = [(str(root / d), d, 0) for d in WATCHED_DIRS]
    while stack:
        directory, prefix, depth = stack.pop()
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    if len(found) >= MAX_FILES:
                        return found
                    rel = f"{prefix}/{entry.name}"
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if depth < MAX_DEPTH:
                                stack.append((entry.path, rel, depth + 1))
                            continue
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # deleted between listing and stat
                    found[rel] = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            continue  # a watched directory removed by the user: it simply holds nothing
    return found


class FileWatcher(_Poller):
    """``file_change`` events for the ``Desktop/`` and ``Downloads/`` of watched computers."""

    def __init__(self, publish: Publish, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__(publish, interval)
        self._roots: dict[str, Path] = {}
        self._snapshots: dict[str, dict[str, _FileSig]] = {}

    def _watched(self) -> bool:
        return bool(self._roots)

    def watch(self, key: str, root: Path) -> None:
        """Watch computer ``key`` whose directory is ``root``; a no-op if already watched."""
        if key in self._roots:
            return
        self._roots[key] = root
        self._snapshots[key] = _snapshot(root)  # the baseline: earlier changes are not news
        self._update()

    def unwatch(self, key: str) -> None:
        """Stop watching ``key`` (idempotent)."""
        self._roots.pop(key, None)
        self._snapshots.pop(key, None)
        self._update()

    def poll(self, key: str) -> None:
        """Scan ``key`` now and publish what changed since the last scan."""
        root = self._roots.get(key)
        if root is None:
            return
        before = self._snapshots[key]
        after = _snapshot(root)
        self._snapshots[key] = after
        for path, sig in after.items():
            old = before.get(path)
            if old is None:
                self._publish(key, "file_change", {"path": path, "action": "created"})
            elif old != sig:
                self._publish(key, "file_change", {"path": path, "action": "modified"})
        for path in before.keys() - after.keys():
            self._publish(key, "file_change", {"path": path, "action": "deleted"})

    def _tick(self) -> None:
        for key in tuple(self._roots):
            self.poll(key)


_ProcKey = tuple[int, int]  # (pid, start_time)


@attrs.frozen
class _Scan:
    """One ``/proc`` scan with its indexes, shared by every watched computer of a tick."""

    table: dict[int, ProcInfo]
    children: dict[int, list[int]]
    sessions: dict[int, list[int]]

    @classmethod
    def now(cls) -> _Scan:
        table = scan_processes()
        sessions: dict[int, list[int]] = {}
        for info in table.values():
            sessions.setdefault(info.session, []).append(info.pid)
        return cls(table, children_map(table), sessions)


class ProcessWatcher(_Poller):
    """``process_start`` / ``process_stop`` for the processes of watched terminal shells.

    A computer is watched with the pids of its shells (each a session
    leader). What counts as the computer's processes: the shells'
    descendants and the members of their sessions, the shells themselves
    excluded (the terminal reports those exactly, at spawn and reap).
    One ``/proc`` scan per tick serves every watched computer.
    """

    def __init__(self, publish: Publish, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__(publish, interval)
        self._shells: dict[str, frozenset[int]] = {}
        self._known: dict[str, dict[_ProcKey, str]] = {}
        # Processes first seen with their parent's name: probably between fork and
        # exec (bash forks before it execs "sleep"). Reported one tick later, named.
        self._deferred: dict[str, set[_ProcKey]] = {}

    def _watched(self) -> bool:
        return bool(self._shells)

    def watch(self, key: str, shells: Iterable[int]) -> None:
        """Watch computer ``key``'s shells (an empty set stops watching it)."""
        pids = frozenset(shells)
        if not pids:
            self.unwatch(key)
            return
        if self._shells.get(key) == pids:
            return
        new = key not in self._shells
        self._shells[key] = pids
        if new:
            # Baseline: what already runs is not news to the new subscriber.
            view = self._view(key, _Scan.now())
            self._known[key] = {k: name for k, (name, _) in view.items()}
            self._deferred[key] = set()
        self._update()

    def unwatch(self, key: str) -> None:
        """Stop watching ``key`` (idempotent)."""
        self._shells.pop(key, None)
        self._known.pop(key, None)
        self._deferred.pop(key, None)
        self._update()

    def _view(self, key: str, scan: _Scan) -> dict[_ProcKey, tuple[str, str]]:
        """``{(pid, start): (name, parent's name)}`` for ``key``'s processes in ``scan``."""
        table = scan.table
        shells = self._shells.get(key, frozenset())
        pids = descendants(shells, table, scan.children)
        # Session members too: a job that daemonized (reparented) still belongs here.
        for shell in shells:
            pids.update(scan.sessions.get(shell, ()))
        pids -= shells
        for shell in shells:
            info = table.get(shell)
            if info is not None and info.name == "nsenter":
                # A sandboxed shell: nsenter's child is the shell itself, inside.
                pids.difference_update(scan.children.get(shell, ()))
        view: dict[_ProcKey, tuple[str, str]] = {}
        for pid in pids:
            info = table.get(pid)
            if info is None or not info.alive:
                continue
            parent = table.get(info.ppid)
            view[(pid, info.start_time)] = (info.name, parent.name if parent else "")
        return view

    def poll(self, key: str | None = None) -> None:
        """Scan now (one computer, or all) and publish starts and stops since the last scan."""
        keys = tuple(self._shells) if key is None else (key,)
        if not keys or not all(k in self._shells for k in keys):
            return
        scan = _Scan.now()
        for k in keys:
            self._diff(k, self._view(k, scan))

    def _diff(self, key: str, view: dict[_ProcKey, tuple[str, str]]) -> None:
        known = self._known[key]
        deferred = self._deferred[key]
        for proc, (name, parent_name) in view.items():
            if proc in known:
                known[proc] = name  # keep the latest name for process_stop
                continue
            if name == parent_name and proc not in deferred:
                deferred.add(proc)
                continue
            deferred.discard(proc)
            known[proc] = name
            self._publish(key, "process_start", {"pid": proc[0], "name": name})
        for proc in [p for p in known if p not in view]:
            name = known.pop(proc)
            self._publish(key, "process_stop", {"pid": proc[0], "name": name})
        # A fork that ended before it was ever named is not reported (it had no
        # name of its own worth reporting, and a start without its stop would mislead).
        deferred.intersection_update(view)

    def _tick(self) -> None:
        self.poll()


# --------------------------------------------------------------------------- idleness


@attrs.define
class _IdleState:
    last_input: float
    watch_idle: bool = False
    watch_active: bool = False
    reported: bool = False
    timer: asyncio.TimerHandle | None = None


class IdleTracker:
    """``idle`` after ``idle_seconds()`` without terminal input, ``active`` when input resumes.

    One timer per computer, armed only while someone wants ``idle`` events:
    no polling. Idleness is measured from the last input, or from when the
    computer was first seen here.
    """

    def __init__(self, publish: Publish, idle_seconds: Callable[[], float]) -> None:
        self._publish = publish
        self._idle_seconds = idle_seconds
        self._states: dict[str, _IdleState] = {}

    def _state(self, key: str) -> _IdleState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _IdleState(asyncio.get_running_loop().time())
        return state

    def watch(self, key: str, *, idle: bool, active: bool) -> None:
        """Set whether ``idle`` / ``active`` events of ``key`` are wanted."""
        if not (idle or active) and key not in self._states:
            return
        state = self._state(key)
        state.watch_idle, state.watch_active = idle, active
        self._arm(key, state)

    def note_input(self, key: str) -> None:
        """Terminal input arrived for ``key`` (publishes ``active`` after an idle period)."""
        state = self._state(key)
        now = asyncio.get_running_loop().time()
        if state.watch_active and now - state.last_input >= self._idle_seconds():
            self._publish(key, "active", {})
        state.last_input = now
        state.reported = False
        self._arm(key, state)

    def forget(self, key: str) -> None:
        """Drop ``key``'s state and timer (the computer is gone)."""
        state = self._states.pop(key, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    def close(self) -> None:
        """Cancel every timer."""
        for key in tuple(self._states):
            self.forget(key)

    def _arm(self, key: str, state: _IdleState) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if state.watch_idle and not state.reported:
            loop = asyncio.get_running_loop()
            when = state.last_input + self._idle_seconds()
            state.timer = loop.call_at(when, self._fire, key)

    def _fire(self, key: str) -> None:
        state = self._states.get(key)
        if state is None:
            return
        state.timer = None
        now = asyncio.get_running_loop().time()
        idle_for = now - state.last_input
        if idle_for < self._idle_seconds():
            self._arm(key, state)  # idle_seconds grew since the timer was armed
            return
        state.reported = True
        self._publish(key, "idle", {"idle_seconds": round(idle_for, 3)})
