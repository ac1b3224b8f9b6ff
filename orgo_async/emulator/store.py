"""The emulator's in-memory store: workspaces, computers and their lifecycle state machine.

A computer's status is never stored. Each lifecycle change records clock
values (when the boot started, when it will be ready, when a stop completes)
and :meth:`Computer.status_at` derives the status from them on every read.
The health answer therefore flips from 503 to 200 at exactly ``ready_at``,
whatever the event loop is doing, and a fleet of thousands of computers costs
no timers at all.

The clock is injectable (``time.monotonic`` by default). ``time.monotonic`` is
system-wide on Linux, so a client in another process can compare its own
readings against ``ready_at`` / ``healthy_at``.

Operations that break one of Orgo's rules raise :class:`ApiError`, which the
app answers with Orgo's JSON error shape.

Everything here is synchronous and single-threaded: the aiohttp handlers call
it from the event loop and never await between a read and the write that
depends on it.
"""

from __future__ import annotations

import heapq
import math
import random
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import attrs

from .config import DesktopBackend, EmulatorConfig
from .counters import Counters

__all__ = [
    "COMPUTER_STATUSES",
    "MAX_DISK_GB",
    "ApiError",
    "BootKind",
    "BootListener",
    "Clock",
    "Computer",
    "ComputerSpec",
    "LifecycleListener",
    "ResizeResult",
    "Store",
    "Transition",
    "Workspace",
    "WorkspaceListener",
    "iso_now",
    "or_404",
    "retry_after_header",
]

Clock = Callable[[], float]
"""A zero-argument callable returning seconds on a monotonic scale."""

BootKind = Literal["create", "start", "restart"]
Phase = Literal["boot", "stop"]
Transition = Literal["start", "stop", "restart", "delete"]
"""A request-driven lifecycle change that ends a computer's current desktop session."""

COMPUTER_STATUSES: Final = (
    "creating",
    "starting",
    "running",
    "stopping",
    "stopped",
    "restarting",
    "suspended",
    "deleting",
    "error",
)
"""Every status Orgo documents; the emulator produces all but ``suspended``/``deleting``."""

# Fraction of a create's boot time reported as "creating" before "starting".
_CREATING_FRACTION: Final = 0.2

MAX_DISK_GB: Final = 256
LIVE_MAX_MEM_GB: Final = 32
DEFAULT_BANDWIDTH_MBPS: Final = 1000


class ApiError(Exception):
    """An error the emulator answers with Orgo's JSON error shape.

    The app turns it into ``{"error": message, "code": code, "request_id": ...}``
    plus ``extra`` keys, with ``headers`` added to the response.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = extra


T = TypeVar("T")


def or_404(found: T | None, code: str, message: str) -> T:
    """``found``, or 404 ``code`` when it is ``None`` (a lookup that missed)."""
    if found is None:
        raise ApiError(404, code, message)
    return found


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` carries whole seconds: round up so a client never retries early."""
    return str(max(0, math.ceil(seconds)))


def iso_now() -> str:
    """Wall-clock now as ISO 8601 UTC with milliseconds and ``Z`` (JavaScript's toISOString)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- records


def _token_hex(nbytes: int) -> str:
    return secrets.token_hex(nbytes)


@attrs.frozen(kw_only=True)
class ComputerSpec:
    """What a create asks for (already validated); the store decides the rest of a computer."""

    name: str
    ram: int = 4
    cpu: int = 1
    disk_size_gb: int = 8
    resolution: str = "1280x720x24"
    auto_stop_minutes: int | None = None
    template_ref: str | None = None


@attrs.define(eq=False)
class Computer:
    """One emulated computer. Read ``status_at(now)``; never set a status."""

    id: str
    name: str
    workspace_id: str
    ram: int
    cpu: int
    disk_size_gb: int
    resolution: str
    auto_stop_minutes: int | None
    template_ref: str | None
    instance_id: str
    created_at: str
    vnc_password: str = attrs.field(repr=False)
    desktop_api_token: str = attrs.field(repr=False)
    os: str = "linux"
    bandwidth_limit_mbps: int = DEFAULT_BANDWIDTH_MBPS
    # Lifecycle, all on the store's clock.
    phase: Phase = "boot"
    boot_kind: BootKind = "create"
    phase_started_at: float = 0.0
    creating_until: float = 0.0
    ready_at: float = 0.0
    boot_seconds: float = 0.0
    boot_fails: bool = False
    stopped_at: float = 0.0
    # Bumped on every lifecycle change so stale scheduled settlements are ignored.
    generation: int = 0
    desktop_backend: DesktopBackend = "synthetic"
    """The desktop backend of the current boot (``EmulatorConfig.desktop_backend`` then)."""
    desktop_pending: bool = False
    """True while the current boot waits for its real desktop (an ``xvnc`` desktop
    starting): the computer is not running before it is up, whatever ``ready_at`` says."""
    desktop_seconds: float | None = None
    """How long the current boot's real desktop took to come up (None: none, or not yet)."""
    boot_error: str | None = None
    """Why the current boot failed, when a boot listener failed it (``None`` otherwise)."""

    def status_at(self, now: float) -> str:
        """The status at clock time ``now``."""
        if self.phase == "stop":
            return "stopping" if now < self.stopped_at else "stopped"
        if now < self.ready_at or (self.desktop_pending and not self.boot_fails):
            if self.boot_kind == "restart":
                return "restarting"
            if self.boot_kind == "create" and now < self.creating_until:
                return "creating"
            return "starting"
        return "error" if self.boot_fails else "running"

    def is_running(self, now: float) -> bool:
        """True from the exact clock time the current boot completed successfully."""
        return (
            self.phase == "boot"
            and now >= self.ready_at
            and not self.boot_fails
            and not self.desktop_pending
        )

    def rotate_credentials(self) -> None:
        """New ``vnc_password`` and ``desktop_api_token`` (every restart, start and resize)."""
        self.vnc_password = _token_hex(8)
        self.desktop_api_token = _token_hex(16)


@attrs.define(eq=False)
class Workspace:
    """One workspace (formerly "project") and its computers, in creation order."""

    id: str
    name: str
    user_id: str
    status: str
    icon_url: str | None
    created_at: str
    updated_at: str
    computers: dict[str, Computer] = attrs.field(factory=dict, repr=False)
    # name -> computer id: names are unique within a workspace.
    names: dict[str, str] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class ResizeResult:
    """Outcome of one requested resize dimension."""

    requested: Any
    applied: Any
    ok: bool
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False)


# --------------------------------------------------------------------------- store


LifecycleListener = Callable[[Computer, Transition], None]
"""Called synchronously by the store right after a computer starts, stops, restarts
(a restart or a vCPU/memory resize) or is deleted; must not raise."""

BootListener = Callable[[Computer, BootKind], str | None]
"""Called synchronously by the store when a computer's boot begins (create, start,
restart, a rebooting resize), after its fields are set and before its outcome is
recorded; returns None, or why the boot must fail (the computer ends in ``error``)."""

WorkspaceListener = Callable[[Workspace], None]
"""Called synchronously by the store right after a workspace (and every computer in
it) was deleted; must not raise."""


class Store:
    """Workspaces and computers, indexed for O(1) lookups by every id a client may send.

    Operations that break one of Orgo's rules raise :class:`ApiError` with the
    status and code the real API uses. :meth:`add_listener` registers a
    :data:`LifecycleListener` (the desktop sockets use it to close a computer's
    sockets and kill its shells; the desktop actions to reset a framebuffer and
    kill commands; the ``xvnc`` desktops to stop a computer's ``Xvnc``);
    :meth:`add_boot_listener` a :data:`BootListener` (the ``xvnc`` desktops start
    an ``Xvnc`` per boot, or fail the boot when they cannot);
    :meth:`add_workspace_listener` a :data:`WorkspaceListener` (the file store
    drops a deleted workspace's files). :meth:`workdir` is a computer's own directory.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.clock = clock
        self.rng = rng if rng is not None else random.Random(self.config.seed)
        self.counters = counters if counters is not None else Counters()
        self.counters.bind(live=lambda: len(self.computers), settle=self.settle)
        self.user_id = str(uuid.uuid4())
        self.workspaces: dict[str, Workspace] = {}
        self.computers: dict[str, Computer] = {}
        self._workspaces_by_name: dict[str, Workspace] = {}
        self._computers_by_instance: dict[str, Computer] = {}
        # (ready_at, seq, computer_id, generation): boots whose success is yet to be
        # recorded in counters.healthy_at. A heap keeps settle() O(log n) per boot.
        self._pending_boots: list[tuple[float, int, str, int]] = []
        self._seq = 0
        # workspace key -> (tokens, last refill clock time) for create_rate_limit.
        self._buckets: dict[str, tuple[float, float]] = {}
        self._listeners: list[LifecycleListener] = []
        self._boot_listeners: list[BootListener] = []
        self._workspace_listeners: list[WorkspaceListener] = []
        self._workdir_root: Path | None = None
        self._workdir_root_is_temp = False
        self.auto_backend: DesktopBackend = "synthetic"
        """What ``desktop_backend="auto"`` means here (decided when the emulator starts)."""

    def add_listener(self, listener: LifecycleListener) -> None:
        """Call ``listener(computer, transition)`` after every start/stop/restart/delete."""
        self._listeners.append(listener)

    def add_boot_listener(self, listener: BootListener) -> None:
        """Call ``listener(computer, kind)`` when a boot begins (see :data:`BootListener`)."""
        self._boot_listeners.append(listener)

    def fail_boot(self, computer: Computer, generation: int, reason: str) -> bool:
        """Turn the computer's current boot into a failure (status ``error``).

        Only while ``generation`` is still the computer's (a later lifecycle
        change wins) and it is booting or running; returns whether it applied.
        For something that broke after the boot began, such as its desktop
        server dying.
        """
        if computer.generation != generation or computer.phase != "boot":
            return False
        computer.boot_fails = True
        computer.boot_error = reason
        return True

    def desktop_ready(self, computer: Computer, generation: int) -> bool:
        """The computer's real desktop is up: it runs from now (or its ``ready_at``, if later).

        Ends what a boot listener began by setting ``desktop_pending``. Only
        while ``generation`` is still the computer's and it is booting or
        running; returns whether it applied.
        """
        if computer.generation != generation or computer.phase != "boot":
            return False
        computer.desktop_pending = False
        now = self.now()
        computer.desktop_seconds = now - computer.phase_started_at
        if now > computer.ready_at:
            computer.ready_at = now
            self.counters.ready_at[computer.id] = now
            if not computer.boot_fails:
                self._seq += 1
                heapq.heappush(self._pending_boots, (now, self._seq, computer.id, generation))
        return True

    def add_workspace_listener(self, listener: WorkspaceListener) -> None:
        """Call ``listener(workspace)`` after a workspace is deleted (its computers first)."""
        self._workspace_listeners.append(listener)

    def _notify(self, computer: Computer, transition: Transition) -> None:
        for listener in tuple(self._listeners):
            listener(computer, transition)

    # ----------------------------------------------------------------- working directories

    @property
    def workdir_root(self) -> Path:
        """The directory holding every computer's working directory.

        ``config.workdir_root`` (created if missing), or a temporary directory
        made on first use and removed by :meth:`close_workdirs`.
        """
        if self._workdir_root is None:
            configured = self.config.workdir_root
            if configured is None:
                self._workdir_root = Path(tempfile.mkdtemp(prefix="orgo-emulator-"))
                self._workdir_root_is_temp = True
            else:
                root = Path(configured).resolve()
                root.mkdir(parents=True, exist_ok=True)
                self._workdir_root = root
        return self._workdir_root

    def workdir(self, computer: Computer) -> Path:
        """``<root>/<instance_id>/`` with ``Desktop/`` and ``Downloads/``, created if missing.

        The terminal's shells start (and keep ``HOME``) here; REST file and
        command routes land their files here. Removed when the computer is deleted.
        """
        path = self.workdir_root / computer.instance_id
        for sub in ("Desktop", "Downloads"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        return path

    def remove_workdir(self, computer: Computer) -> None:
        """Delete the computer's working directory, if it was ever made."""
        if self._workdir_root is not None:
            shutil.rmtree(self._workdir_root / computer.instance_id, ignore_errors=True)

    def close_workdirs(self) -> None:
        """Remove the temporary root and everything in it (a configured root is kept)."""
        root, self._workdir_root = self._workdir_root, None
        if root is not None and self._workdir_root_is_temp:
            shutil.rmtree(root, ignore_errors=True)
        self._workdir_root_is_temp = False

    def now(self) -> float:
        """The store's clock."""
        return self.clock()

    # ----------------------------------------------------------------- workspaces

    def create_workspace(
        self, name: str, *, icon_url: str | None = None, status: str = "active"
    ) -> Workspace:
        """Add a workspace; 400 ``name_exists`` if the name is taken (as Orgo documents)."""
        if name in self._workspaces_by_name:
            raise ApiError(400, "name_exists", f"A workspace named {name!r} already exists")
        stamp = iso_now()
        workspace = Workspace(
            id=str(uuid.uuid4()),
            name=name,
            user_id=self.user_id,
            status=status,
            icon_url=icon_url,
            created_at=stamp,
            updated_at=stamp,
        )
        self.workspaces[workspace.id] = workspace
        self._workspaces_by_name[name] = workspace
        return workspace

    def get_workspace(self, workspace_id: str) -> Workspace:
        """The workspace, or 404 ``workspace_not_found``."""
        workspace = self.workspaces.get(workspace_id)
        return or_404(workspace, "workspace_not_found", "Workspace not found")

    def workspace_by_name(self, name: str) -> Workspace:
        """The workspace with that exact name, or 404 ``workspace_not_found``."""
        workspace = self._workspaces_by_name.get(name)
        return or_404(workspace, "workspace_not_found", f"No workspace named {name!r}")

    def delete_workspace(self, workspace: Workspace) -> None:
        """Remove the workspace and every computer in it."""
        for computer in list(workspace.computers.values()):
            self.delete_computer(computer)
        del self.workspaces[workspace.id]
        del self._workspaces_by_name[workspace.name]
        for listener in tuple(self._workspace_listeners):
            listener(workspace)

    # ----------------------------------------------------------------- computers

    def find_computer(self, key: str) -> Computer | None:
        """Look a computer up by UUID or by instance id (Orgo has accepted both)."""
        computer = self.computers.get(key)
        if computer is None:
            computer = self._computers_by_instance.get(key)
        return computer

    def get_computer(self, key: str) -> Computer:
        """Like :meth:`find_computer`, but 404 ``computer_not_found`` when missing."""
        return or_404(self.find_computer(key), "computer_not_found", "Computer not found")

    def check_plan_limit(self) -> None:
        """403 ``plan_limit`` when ``max_computers`` computers already exist."""
        limit = self.config.max_computers
        if limit is not None and len(self.computers) >= limit:
            raise ApiError(
                403,
                "plan_limit",
                f"Your plan allows at most {limit} computers",
                max_computers=limit,
            )

    def check_name_free(self, workspace: Workspace, name: str) -> None:
        """409 ``name_exists`` when the workspace already has a computer with that name."""
        if name in workspace.names:
            raise ApiError(
                409, "name_exists", f"A computer named {name!r} already exists in this workspace"
            )

    def take_create_token(self, key: str) -> None:
        """Token-bucket check of ``create_rate_limit`` for one workspace; 429 when empty."""
        rate = self.config.create_rate_limit
        if rate is None:
            return
        burst = max(1.0, rate)
        now = self.now()
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return
        self._buckets[key] = (tokens, now)
        wait = (1.0 - tokens) / rate
        raise ApiError(
            429,
            "rate_limited",
            f"Too many computer creates: the limit is {rate:g} per second per workspace",
            headers={"Retry-After": retry_after_header(wait)},
            retry_after=wait,
        )

    def create_computer(
        self, workspace: Workspace, spec: ComputerSpec, *, plan_limit: bool = True
    ) -> Computer:
        """Add a computer and start its first boot (status ``creating``).

        Raises 403 ``plan_limit`` (unless ``plan_limit`` is false: a template
        preview is not one of the plan's computers) and 409 ``name_exists``; the
        spec is assumed valid.
        """
        if plan_limit:
            self.check_plan_limit()
        self.check_name_free(workspace, spec.name)
        computer = Computer(
            id=str(uuid.uuid4()),
            workspace_id=workspace.id,
            instance_id=self._new_instance_id(),
            created_at=iso_now(),
            vnc_password=_token_hex(8),
            desktop_api_token=_token_hex(16),
            **attrs.asdict(spec, recurse=False),
        )
        self.computers[computer.id] = computer
        self._computers_by_instance[computer.instance_id] = computer
        workspace.computers[computer.id] = computer
        workspace.names[computer.name] = computer.id
        workspace.updated_at = computer.created_at
        self._boot(computer, "create")
        return computer

    def delete_computer(self, computer: Computer) -> None:
        """Remove the computer at once: every later lookup answers 404."""
        self.settle()
        self.computers.pop(computer.id, None)
        self._computers_by_instance.pop(computer.instance_id, None)
        workspace = self.workspaces.get(computer.workspace_id)
        if workspace is not None:
            workspace.computers.pop(computer.id, None)
            workspace.names.pop(computer.name, None)
            workspace.updated_at = iso_now()
        computer.generation += 1
        self.counters.deletes += 1
        # Listeners first: they kill the computer's processes, which may hold files there.
        self._notify(computer, "delete")
        self.remove_workdir(computer)

    def start(self, computer: Computer) -> None:
        """Boot a ``stopped`` (or ``error``) computer; 409 ``not_stopped`` otherwise."""
        status = computer.status_at(self.now())
        if status not in ("stopped", "error"):
            raise ApiError(409, "not_stopped", f"Computer is not stopped (status: {status})")
        computer.rotate_credentials()
        self._boot(computer, "start")
        self._notify(computer, "start")

    def stop(self, computer: Computer) -> None:
        """Begin stopping; 409 ``not_running`` when already stopping or stopped."""
        now = self.now()
        status = computer.status_at(now)
        if status in ("stopping", "stopped"):
            raise ApiError(409, "not_running", f"Computer is not running (status: {status})")
        self.settle()
        computer.phase = "stop"
        computer.phase_started_at = now
        computer.stopped_at = now + self.config.stop_seconds
        computer.generation += 1
        self._notify(computer, "stop")

    def restart(self, computer: Computer) -> None:
        """Reboot a running computer (status ``restarting``); 409 ``not_running`` otherwise."""
        status = computer.status_at(self.now())
        if status != "running":
            raise ApiError(409, "not_running", f"Computer is not running (status: {status})")
        computer.rotate_credentials()
        self._boot(computer, "restart")
        self._notify(computer, "restart")

    def clone(self, source: Computer, name: str | None) -> Computer:
        """Copy a running computer into its workspace as a new, always-on computer.

        400 ``NOT_CLONABLE`` unless the source is running; 403/409 as for create.
        """
        status = source.status_at(self.now())
        if status != "running":
            raise ApiError(
                400,
                "NOT_CLONABLE",
                f"Only running computers can be cloned (status: {status})",
            )
        workspace = self.get_workspace(source.workspace_id)
        spec = ComputerSpec(
            name=name if name is not None else f"{source.name} (clone)",
            ram=source.ram,
            cpu=source.cpu,
            disk_size_gb=source.disk_size_gb,
            resolution=source.resolution,
            template_ref=source.template_ref,
        )
        clone = self.create_computer(workspace, spec)
        clone.bandwidth_limit_mbps = source.bandwidth_limit_mbps
        return clone

    def move(self, computer: Computer, target: Workspace) -> None:
        """Move to another workspace; 400 ``same_workspace``, 409 ``name_exists``."""
        if target.id == computer.workspace_id:
            raise ApiError(400, "same_workspace", "Computer is already in this workspace")
        self.check_name_free(target, computer.name)
        source = self.workspaces.get(computer.workspace_id)
        if source is not None:
            source.computers.pop(computer.id, None)
            source.names.pop(computer.name, None)
            source.updated_at = iso_now()
        computer.workspace_id = target.id
        target.computers[computer.id] = computer
        target.names[computer.name] = computer.id
        target.updated_at = iso_now()

    def resize(
        self,
        computer: Computer,
        *,
        vcpus: int | None = None,
        mem_gb: int | None = None,
        disk_size_gb: int | None = None,
        bandwidth_limit_mbps: int | None = None,
        auto_stop_minutes: int | None = None,
        auto_stop_given: bool = False,
    ) -> dict[str, ResizeResult]:
        """Apply a live resize, one result per requested dimension.

        409 ``not_running`` unless running; 400 ``disk_shrink`` for a smaller
        disk (nothing applied). A vCPU or memory change restarts the computer
        and rotates its credentials. Types are assumed already checked.
        """
        status = computer.status_at(self.now())
        if status != "running":
            raise ApiError(409, "not_running", f"Computer is not running (status: {status})")
        if disk_size_gb is not None and disk_size_gb < computer.disk_size_gb:
            raise ApiError(
                400,
                "disk_shrink",
                f"disk_size_gb can only grow (current {computer.disk_size_gb} GB,"
                f" requested {disk_size_gb} GB)",
            )
        results: dict[str, ResizeResult] = {}

        def applied(name: str, value: int | None) -> None:
            results[name] = ResizeResult(value, value, True, None)

        def refused(name: str, value: int, error: str) -> None:
            results[name] = ResizeResult(value, None, False, error)

        reboot = False
        if vcpus is not None:
            if vcpus in (1, 2, 4, 8, 16):
                reboot |= vcpus != computer.cpu
                computer.cpu = vcpus
                applied("vcpus", vcpus)
            else:
                refused("vcpus", vcpus, f"vcpus must be one of 1, 2, 4, 8, 16 (got {vcpus})")
        if mem_gb is not None:
            if mem_gb in (4, 8, 16, 32):
                reboot |= mem_gb != computer.ram
                computer.ram = mem_gb
                applied("mem_gb", mem_gb)
            elif mem_gb == 64:
                refused("mem_gb", mem_gb, f"mem_gb {mem_gb} exceeds the live max 32 GB")
            else:
                refused("mem_gb", mem_gb, f"mem_gb must be one of 4, 8, 16, 32 (got {mem_gb})")
        if disk_size_gb is not None:
            if disk_size_gb <= MAX_DISK_GB:
                computer.disk_size_gb = disk_size_gb
                applied("disk_size_gb", disk_size_gb)
            else:
                error = f"disk_size_gb {disk_size_gb} exceeds the max {MAX_DISK_GB} GB"
                refused("disk_size_gb", disk_size_gb, error)
        if bandwidth_limit_mbps is not None:
            computer.bandwidth_limit_mbps = bandwidth_limit_mbps
            applied("bandwidth_limit_mbps", bandwidth_limit_mbps)
        if auto_stop_given:
            computer.auto_stop_minutes = auto_stop_minutes
            applied("auto_stop_minutes", auto_stop_minutes)
        if reboot:
            computer.rotate_credentials()
            self._boot(computer, "restart")
            self._notify(computer, "restart")
        return results

    # ----------------------------------------------------------------- lifecycle

    def _boot(self, computer: Computer, kind: BootKind) -> None:
        self.settle()
        now = self.now()
        seconds = self.config.boot.sample(self.rng)
        rate = self.config.boot_failure_rate
        # Only draw when failures are possible so that a seeded run's boot times
        # do not depend on whether the failure rate is 0.
        fails = rate > 0.0 and self.rng.random() < rate
        computer.phase = "boot"
        computer.boot_kind = kind
        computer.phase_started_at = now
        computer.boot_seconds = seconds
        computer.creating_until = now + _CREATING_FRACTION * seconds
        computer.ready_at = now + seconds
        computer.boot_fails = fails
        computer.boot_error = None
        backend = self.config.desktop_backend
        computer.desktop_backend = self.auto_backend if backend == "auto" else backend
        computer.desktop_pending = False
        computer.desktop_seconds = None
        computer.generation += 1
        self.counters.ready_at[computer.id] = computer.ready_at
        for listener in tuple(self._boot_listeners):
            reason = listener(computer, kind)
            if reason is not None and computer.boot_error is None:
                computer.boot_error = reason
                computer.boot_fails = fails = True
        if not fails:
            self._seq += 1
            heapq.heappush(
                self._pending_boots,
                (computer.ready_at, self._seq, computer.id, computer.generation),
            )

    def settle(self) -> None:
        """Record in ``counters.healthy_at`` every boot that has completed by now."""
        pending = self._pending_boots
        if not pending:
            return
        now = self.now()
        while pending and pending[0][0] <= now:
            ready_at, _seq, computer_id, generation = heapq.heappop(pending)
            computer = self.computers.get(computer_id)
            if (
                computer is not None
                and computer.generation == generation
                and computer.ready_at == ready_at  # not postponed by desktop_ready()
                and not computer.desktop_pending
                and not computer.boot_fails  # failed later by fail_boot()
            ):
                self.counters.mark_healthy(computer_id, ready_at)

    def _new_instance_id(self) -> str:
        while True:
            candidate = _token_hex(4)
            if candidate not in self._computers_by_instance:
                return candidate
