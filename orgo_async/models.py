"""The data the API returns, as frozen attrs classes.

The wire format lives in :mod:`orgo_async._converter`, not here: these classes
know nothing of JSON keys, aliases or drift.
"""

from __future__ import annotations

import enum
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypedDict

import attrs

from ._checks import check_choice, check_id, check_int, check_text, optional, validator

__all__ = [
    "AutoStop",
    "BashResult",
    "ComputeLimits",
    "Computer",
    "ComputerFields",
    "ComputerSpec",
    "ComputerStatus",
    "EventTypeInfo",
    "ExecResult",
    "ExportedFile",
    "FileInfo",
    "LaunchTiming",
    "LaunchedComputer",
    "ResizeDimension",
    "ResizeResult",
    "ResumeResult",
    "Screen",
    "Screenshot",
    "StreamInfo",
    "VncCredentials",
    "Workspace",
]

RAM_CHOICES: Final = (4, 8, 16, 32, 64)
CPU_CHOICES: Final = (1, 2, 4, 8, 16)
RESIZE_MEM_CHOICES: Final = (4, 8, 16, 32)
# Longer names are refused before they are sent (Orgo has no documented limit).
MAX_NAME_LENGTH: Final = 255
# The largest screen side a computer can be created with (RFB's clients and ours cap there).
MAX_SCREEN_SIDE: Final = 8192
_RESOLUTION = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})x(8|16|24|32)$")


class ComputerStatus(enum.StrEnum):
    """A computer's status.

    The enum is open: a value the SDK does not know yet (``frozen`` was one)
    becomes a member on the fly instead of failing, with :attr:`known` false.
    """

    CREATING = "creating"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    SUSPENDED = "suspended"
    DELETING = "deleting"
    ERROR = "error"
    FROZEN = "frozen"

    @classmethod
    def _missing_(cls, value: object) -> ComputerStatus | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member

    @property
    def known(self) -> bool:
        """Whether this status is one the SDK was written for."""
        return self._name_ in type(self).__members__

    @property
    def is_failed(self) -> bool:
        """Whether a computer in this status will not become ready without help."""
        return self in _FAILED


_FAILED: Final = frozenset({ComputerStatus.ERROR, ComputerStatus.STOPPED, ComputerStatus.DELETING})


def _resolution(name: str, value: object) -> str:
    match = _RESOLUTION.match(value) if isinstance(value, str) else None
    if match is None or not all(int(side) <= MAX_SCREEN_SIDE for side in match.groups()[:2]):
        raise ValueError(
            f"{name} must be WIDTHxHEIGHTxDEPTH with sides up to {MAX_SCREEN_SIDE} and depth "
            f"8, 16, 24 or 32 (for example 1280x720x24); got {value!r}"
        )
    return match.string


def _os(name: str, value: object) -> str:
    if value != "linux":
        raise ValueError(f"{name} must be 'linux' (the only one Orgo offers); got {value!r}")
    return value


class ComputerFields(TypedDict, total=False):
    """The optional fields of a computer to create, as keyword arguments.

    ``orgo.computers.create``, ``orgo.computers.launch``, ``orgo.fleet`` and
    ``orgo.launch_fleet`` all take these (``**fields: Unpack[ComputerFields]``),
    and :class:`ComputerSpec` checks them; a test keeps the two in step. A field
    left out (or ``None``) lets the API apply its default.
    """

    os: str
    """``"linux"``, the only one Orgo offers."""
    ram: int | None
    """GB, one of 4, 8, 16, 32, 64 (API default 4)."""
    cpu: int | None
    """Cores, one of 1, 2, 4, 8, 16 (API default 1)."""
    disk_size_gb: int | None
    """GB, positive (API default 8)."""
    resolution: str | None
    """``WIDTHxHEIGHTxDEPTH`` (API default ``1280x720x24``)."""
    auto_stop_minutes: int | None
    """Minutes idle before it stops; 0 keeps it always on."""
    template_ref: str | None
    """A built template such as ``system/claude-code@1.0.0``."""


@attrs.frozen(kw_only=True)
class ComputerSpec:
    """What to create: the body of ``POST /computers``, checked on construction.

    ``None`` fields are left out of the request so the API applies its
    defaults (4 GB, 1 core, 8 GB disk, 1280x720x24, no auto-stop). The
    optional fields are those of :class:`ComputerFields`.

    Raises:
        ValueError: naming the field and its allowed values, before any request.
    """

    name: str = attrs.field(validator=validator(check_text, max_length=MAX_NAME_LENGTH))
    workspace_id: str = attrs.field(validator=validator(check_id))
    os: str = attrs.field(default="linux", validator=validator(_os))
    ram: int | None = attrs.field(
        default=None, validator=validator(optional(check_choice), RAM_CHOICES)
    )
    cpu: int | None = attrs.field(
        default=None, validator=validator(optional(check_choice), CPU_CHOICES)
    )
    disk_size_gb: int | None = attrs.field(
        default=None, validator=validator(optional(check_int), minimum=1)
    )
    resolution: str | None = attrs.field(default=None, validator=validator(optional(_resolution)))
    auto_stop_minutes: int | None = attrs.field(
        default=None, validator=validator(optional(check_int), minimum=0)
    )
    template_ref: str | None = attrs.field(
        default=None, validator=validator(optional(check_text), max_length=MAX_NAME_LENGTH)
    )


@attrs.frozen(kw_only=True)
class Computer:
    """A cloud computer as the API last described it.

    ``vnc_password`` is the bearer token of the computer's WebSockets; it
    rotates on every start and restart, and is left out of ``repr``.
    """

    id: str
    name: str = ""
    workspace_id: str | None = None
    project_name: str | None = None
    os: str | None = None
    ram: int | None = None
    cpu: int | None = None
    disk_size_gb: int | None = None
    resolution: str | None = None
    status: ComputerStatus = ComputerStatus.CREATING
    auto_stop_minutes: int | None = None
    url: str | None = None
    created_at: datetime | None = None
    instance_id: str | None = None
    hostname: str | None = None
    connection_url: str | None = None
    template_ref: str | None = None
    vnc_password: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class Workspace:
    """A workspace (formerly "project") and the computers it held when read."""

    id: str
    name: str = ""
    user_id: str | None = None
    status: str | None = None
    icon_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    role: str | None = None
    member_count: int | None = None
    computers: tuple[Computer, ...] = ()


@attrs.frozen(kw_only=True)
class VncCredentials:
    """The current token(s) of a computer's WebSockets; both are left out of ``repr``."""

    password: str = attrs.field(repr=False)
    desktop_api_token: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class AutoStop:
    """A computer's auto-stop setting; ``None`` minutes means never."""

    auto_stop_minutes: int | None = None
    configurable: bool | None = None


@attrs.frozen(kw_only=True)
class ResizeDimension:
    """What happened to one requested dimension of a resize."""

    requested: Any = None
    applied: Any = None
    ok: bool = False
    error: str | None = None


@attrs.frozen(kw_only=True)
class ResizeResult:
    """The answer to a resize: the computer's size now, and per dimension what happened."""

    vcpus: int | None = None
    mem_gb: int | None = None
    disk_size_gb: int | None = None
    bandwidth_limit_mbps: int | None = None
    auto_stop_minutes: int | None = None
    results: dict[str, ResizeDimension] = attrs.field(factory=dict)
    partial: bool = False


@attrs.frozen(kw_only=True, repr=False)
class LaunchTiming:
    """Where the time of one launch went.

    Instants are ``time.monotonic()`` values (the event loop's clock), comparable
    across processes of one Linux machine.

    Attributes:
        request_sent: The create request was sent (first attempt).
        create_answered: The create's answer arrived.
        first_probe: The first health probe was sent (``None`` if none was needed).
        ready_detected: The health probe that answered 200 came back.
        probes: Health probes sent.
        retries: Create attempts beyond the first (429s, wake codes, lost answers).
    """

    request_sent: float
    create_answered: float
    first_probe: float | None
    ready_detected: float
    probes: int
    retries: int = 0

    @property
    def create_seconds(self) -> float:
        """From sending the create to its answer."""
        return self.create_answered - self.request_sent

    @property
    def create_to_ready_seconds(self) -> float:
        """From the create's answer to readiness being seen."""
        return self.ready_detected - self.create_answered

    @property
    def total_seconds(self) -> float:
        """From sending the create to readiness being seen."""
        return self.ready_detected - self.request_sent

    def __repr__(self) -> str:
        # Durations, not the raw monotonic instants (those are in the fields).
        return (
            f"<LaunchTiming create={self.create_seconds * 1000:.1f}ms "
            f"ready={self.create_to_ready_seconds * 1000:.1f}ms "
            f"total={self.total_seconds * 1000:.1f}ms probes={self.probes} retries={self.retries}>"
        )


@attrs.frozen(kw_only=True)
class LaunchedComputer:
    """A computer that is ready, with the timing of its launch."""

    computer: Computer
    timing: LaunchTiming


@attrs.frozen(kw_only=True)
class Screenshot:
    """An image of a computer's screen."""

    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    width: int | None = None
    height: int | None = None
    mime_type: str = "image/png"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the image to ``path`` (overwriting it) and return the path.

        A blocking write of a small file; in a busy event loop, run it with
        ``await asyncio.to_thread(shot.save, path)``.
        """
        target = Path(path)
        target.write_bytes(self.data)
        return target


@attrs.frozen(kw_only=True)
class BashResult:
    """What a shell command printed (stdout and stderr together) and its exit code."""

    output: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    """Whether the command was killed at its timeout (its output is then partial)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@attrs.frozen(kw_only=True)
class ExecResult:
    """The outcome of Python code run on the computer."""

    output: str = ""
    success: bool = False
    timed_out: bool = False
    error: str | None = None
    error_type: str | None = None


@attrs.frozen(kw_only=True)
class FileInfo:
    """A file stored for a workspace (uploaded, or exported from a computer)."""

    id: str
    filename: str = ""
    size_bytes: int | None = None
    content_type: str | None = None
    created_at: datetime | None = None
    desktop_id: str | None = None
    project_id: str | None = None
    source: str | None = None


@attrs.frozen(kw_only=True)
class ExportedFile:
    """A file exported from a computer, with a signed download URL (valid about an hour)."""

    file: FileInfo
    url: str = attrs.field(repr=False)


# -- streams, screens, resume, the events catalog, compute limits -------------------------


@attrs.frozen(kw_only=True)
class StreamInfo:
    """A computer's RTMP stream: ``idle``, ``streaming`` or ``terminated`` (open: others pass)."""

    status: str = "idle"
    pid: int | None = None
    start_time: datetime | None = None
    message: str | None = None

    @property
    def streaming(self) -> bool:
        return self.status == "streaming"


@attrs.frozen(kw_only=True)
class Screen:
    """One display of a computer; ``default`` is the boot screen (``:99``)."""

    id: str
    display: str | None = None
    width: int | None = None
    height: int | None = None
    default: bool = False
    vnc_port: int | None = None
    ws_port: int | None = None


@attrs.frozen(kw_only=True)
class ResumeResult:
    """The answer to a resume: whether it is waking, still pending, and for how long."""

    waking: bool = False
    pending: bool = False
    expected_seconds: float | None = None


@attrs.frozen(kw_only=True)
class EventTypeInfo:
    """One event type the events socket delivers, and the fields of its ``data``."""

    type: str
    description: str | None = None
    data: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class ComputeLimits:
    """The account's compute limits; ``None`` where Orgo reports none (unlimited)."""

    max_computers: int | None = None
    computers_used: int | None = None
    computers_available: int | None = None
    max_ram_gb: float | None = None
    account_ram_budget_gb: float | None = None
    account_ram_used_gb: float | None = None

    @property
    def free(self) -> int | None:
        """Computers that can still be created (``None``: no limit known)."""
        if self.computers_available is not None:
            return max(0, self.computers_available)
        if self.max_computers is None:
            return None
        return max(0, self.max_computers - (self.computers_used or 0))
