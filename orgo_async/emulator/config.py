"""The emulator's configuration: :class:`EmulatorConfig`, :class:`BootTime` and the drift switches.

:class:`EmulatorConfig` holds everything that may change how the emulator
answers: the API key and bind address, how long boots take
(:class:`BootTime`) and how often they fail, plan limits, the desktop
sockets' settings, and the switches that reproduce where production drifted
from Orgo's documentation (``legacy_restart``, ``workspaces_path_missing``,
``list_key``, ``omit_instance_id``), and how the server itself runs (TLS, the
event-loop lag monitor). It is mutable and validated on every assignment; a
change applies to later requests (the server's settings are read once, at start).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, Final, Literal, cast

import attrs

__all__ = [
    "DESKTOP_BACKENDS",
    "WS_AUTH_MODES",
    "BootDist",
    "BootTime",
    "SANDBOX_MODES",
    "DesktopBackend",
    "DesktopChoice",
    "EmulatorConfig",
    "ListKey",
    "SandboxMode",
    "WsAuth",
]

BootDist = Literal["fixed", "uniform", "long_tail"]
ListKey = Literal["workspaces", "projects"]
WsAuth = Literal["close", "reject", "query_only", "header_only"]
DesktopBackend = Literal["synthetic", "xvnc"]
"""What serves a computer's desktop: a synthetic framebuffer, or a real TigerVNC ``Xvnc``."""
DesktopChoice = Literal["synthetic", "xvnc", "auto"]
"""``EmulatorConfig.desktop_backend``: a backend, or ``auto`` (``xvnc`` where it works)."""
SandboxMode = Literal["auto", "on", "off"]

WS_AUTH_MODES: Final = ("close", "reject", "query_only", "header_only")
DESKTOP_BACKENDS: Final = ("synthetic", "xvnc", "auto")
SANDBOX_MODES: Final = ("auto", "on", "off")


# --------------------------------------------------------------------------- validation


def _is_number(value: object) -> bool:
    # bool is an int subclass; True is not a duration.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(name: str, value: object, *, minimum: float = 0.0, strict: bool = False) -> float:
    if not _is_number(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(cast(float, value))
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if number < minimum or (strict and number == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum:g}, got {value!r}")
    return number


# --------------------------------------------------------------------------- BootTime


@attrs.frozen(kw_only=True, repr=False)
class BootTime:
    """How long a computer takes from create/start/restart to healthy.

    Build one with :meth:`fixed`, :meth:`uniform` or :meth:`long_tail`; the
    fields only hold the parameters of the chosen ``dist``. Invalid
    parameters raise ``ValueError`` naming the argument.
    """

    dist: BootDist = "fixed"
    seconds: float = 0.3
    jitter: float = 0.0
    low: float = 0.0
    high: float = 0.0
    median: float = 0.0
    sigma: float = 0.5
    cap: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.dist == "fixed":
            _finite("seconds", self.seconds)
            _finite("jitter", self.jitter)
        elif self.dist == "uniform":
            low = _finite("low", self.low)
            if _finite("high", self.high) < low:
                raise ValueError(f"high must be >= low ({low:g}), got {self.high!r}")
        elif self.dist == "long_tail":
            median = _finite("median", self.median, strict=True)
            _finite("sigma", self.sigma)
            if self.cap is not None and _finite("cap", self.cap) < median:
                raise ValueError(f"cap must be >= median ({median:g}), got {self.cap!r}")
        else:
            raise ValueError(f"dist must be 'fixed', 'uniform' or 'long_tail', got {self.dist!r}")

    @classmethod
    def fixed(cls, seconds: float, jitter: float = 0.0) -> BootTime:
        """``seconds`` plus a uniform offset in ``[-jitter, +jitter]`` (never below 0)."""
        return cls(dist="fixed", seconds=seconds, jitter=jitter)

    @classmethod
    def uniform(cls, low: float, high: float) -> BootTime:
        """Uniform in ``[low, high]``."""
        return cls(dist="uniform", low=low, high=high)

    @classmethod
    def long_tail(cls, median: float, sigma: float = 0.5, cap: float | None = None) -> BootTime:
        """Lognormal with the given median and log-space ``sigma``, clipped at ``cap``."""
        return cls(dist="long_tail", median=median, sigma=sigma, cap=cap)

    @property
    def nominal(self) -> float:
        """The typical boot time: the fixed value, the range midpoint or the median."""
        if self.dist == "fixed":
            return self.seconds
        if self.dist == "uniform":
            return (self.low + self.high) / 2
        return self.median

    def sample(self, rng: random.Random) -> float:
        """Draw one boot time in seconds."""
        if self.dist == "fixed":
            if not self.jitter:
                return self.seconds
            return max(0.0, self.seconds + rng.uniform(-self.jitter, self.jitter))
        if self.dist == "uniform":
            return rng.uniform(self.low, self.high)
        value = rng.lognormvariate(math.log(self.median), self.sigma)
        return value if self.cap is None else min(value, self.cap)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by the admin routes (inverse of :meth:`from_dict`)."""
        if self.dist == "fixed":
            return {"dist": "fixed", "seconds": self.seconds, "jitter": self.jitter}
        if self.dist == "uniform":
            return {"dist": "uniform", "low": self.low, "high": self.high}
        return {"dist": "long_tail", "median": self.median, "sigma": self.sigma, "cap": self.cap}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BootTime:
        """Parse ``{"dist": "fixed"|"uniform"|"long_tail", ...params}``; ``ValueError`` if bad."""
        params = dict(data)
        dist = str(params.pop("dist", "fixed")).replace("-", "_")
        allowed = {
            "fixed": {"seconds", "jitter"},
            "uniform": {"low", "high"},
            "long_tail": {"median", "sigma", "cap"},
        }.get(dist)
        if allowed is None:
            raise ValueError(f"dist must be 'fixed', 'uniform' or 'long_tail', got {dist!r}")
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(f"unknown {dist} boot parameter(s): {', '.join(unknown)}")
        required = {"fixed": ("seconds",), "uniform": ("low", "high"), "long_tail": ("median",)}
        for name in required[dist]:
            if name not in params:
                raise ValueError(f"{dist} boot time needs {name!r}")
        if dist == "fixed":
            return cls.fixed(**params)
        if dist == "uniform":
            return cls.uniform(**params)
        return cls.long_tail(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "dist")
        return f"BootTime.{self.dist}({args})"


# --------------------------------------------------------------------------- config


def _validate_rate(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_number(value) or not 0.0 <= float(cast(float, value)) <= 1.0:
        raise ValueError(f"{attribute.name} must be a number in [0, 1], got {value!r}")


def _validate_non_negative(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _finite(attribute.name, value)


def _validate_optional_positive(
    _inst: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None:
        _finite(attribute.name, value, strict=True)


def _validate_optional_count(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"{attribute.name} must be None or an int >= 0, got {value!r}")


def _validate_count(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{attribute.name} must be an int >= 0, got {value!r}")


def _validate_port(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name} must be an int in [0, 65535], got {value!r}")


def _validate_api_key(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        # Never echo the key itself.
        raise ValueError(f"{attribute.name} must be a non-empty string")


def _validate_positive(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _finite(attribute.name, value, strict=True)


def _validate_tone(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Below Nyquist at the lowest sample rate (24 kHz), or the tone aliases.
    if _finite(attribute.name, value, strict=True) >= 12000:
        raise ValueError(f"{attribute.name} must be below 12000 Hz, got {value!r}")


def _validate_optional_dir(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{attribute.name} must be None or a non-empty path, got {value!r}")


def _default_boot() -> BootTime:
    return BootTime.fixed(0.3, jitter=0.02)


@attrs.define(kw_only=True)
class EmulatorConfig:
    """Settings of one emulator. Mutable: a change applies to later requests.

    Validators run on assignment too, so ``config.boot_failure_rate = 2``
    raises ``ValueError``. ``host``, ``port``, ``loop_lag_interval``, ``tls`` and
    ``tls_cert_out`` are read once at start; ``seed`` too, unless set again through
    :meth:`Emulator.reseed` (``PATCH /_emulator/config``), which starts the boot
    times over.
    """

    api_key: str = attrs.field(default="sk_emulator", repr=False, validator=_validate_api_key)
    host: str = "127.0.0.1"
    port: int = attrs.field(default=0, validator=_validate_port)
    boot: BootTime = attrs.field(
        factory=_default_boot, validator=attrs.validators.instance_of(BootTime)
    )
    stop_seconds: float = attrs.field(default=0.05, validator=_validate_non_negative)
    boot_failure_rate: float = attrs.field(default=0.0, validator=_validate_rate)
    create_rate_limit: float | None = attrs.field(
        default=None, validator=_validate_optional_positive
    )
    max_computers: int | None = attrs.field(default=None, validator=_validate_optional_count)
    legacy_restart: bool = False
    workspaces_path_missing: bool = False
    list_key: ListKey = attrs.field(
        default="workspaces", validator=attrs.validators.in_(("workspaces", "projects"))
    )
    omit_instance_id: bool = False
    seed: int | None = None
    access_log: bool = False
    # Desktop sockets (/desktops/{instance_id}/ws/{name}).
    ws_auth: WsAuth = attrs.field(default="close", validator=attrs.validators.in_(WS_AUTH_MODES))
    """How a bad, missing or stale socket token is refused: ``close`` (upgrade, then
    close 4401, Orgo's documented way), ``reject`` (HTTP 401 instead of the upgrade),
    ``query_only`` (only ``?token=`` is accepted, anything else is HTTP 401: the new
    metal image) or ``header_only`` (only ``Authorization: Bearer``: the old image)."""
    audio_tone_hz: float = attrs.field(default=440.0, validator=_validate_tone)
    """Frequency of the sine tone ``/ws/audio`` streams."""
    idle_seconds: float = attrs.field(default=30.0, validator=_validate_positive)
    """Seconds without terminal input before an ``idle`` event."""
    workdir_root: str | None = attrs.field(default=None, validator=_validate_optional_dir)
    """Where computers' working directories live (``<root>/<instance_id>/``); ``None``
    = a temporary directory created when first needed and removed when the emulator
    closes. Read once, when the first working directory is made."""
    screenshot_seconds: float = attrs.field(default=0.02, validator=_validate_non_negative)
    """How long each REST screenshot takes to capture (a real VM needs tens of
    milliseconds); a second screenshot of the same computer meanwhile fails.
    (An ``xvnc`` desktop's screenshot takes what the real capture takes instead.)"""
    template_build_seconds: float = attrs.field(default=0.3, validator=_validate_non_negative)
    """How long a template build takes (Orgo's take about two minutes); its log lines
    are spread over this time."""
    desktop_backend: DesktopChoice = attrs.field(
        default="synthetic", validator=attrs.validators.in_(DESKTOP_BACKENDS)
    )
    """What serves the desktop (``/ws/websockify``, the REST desktop actions and
    screenshots) of computers booted from now on: ``synthetic``, a framebuffer drawn
    by the emulator; ``xvnc``, a real TigerVNC ``Xvnc`` per computer (driven with
    ``xdotool``; in its sandbox with a window manager and a terminal on screen when
    sandboxes work); or ``auto``: ``xvnc`` when ``Xvnc`` is installed and sandboxes
    work, ``synthetic`` otherwise (decided at start, with one log line saying why). A
    computer keeps the backend of its current boot until it boots again (start,
    restart)."""
    desktop_pool: int = attrs.field(default=0, validator=_validate_count)
    """How many ``xvnc`` desktops to keep booted ahead (Orgo's golden snapshots): a
    create on the ``xvnc`` backend then takes one, with its X server, window manager
    and terminal up, and reaches healthy in the configured boot time. Filled after
    :meth:`~.app.Emulator.start` returns, one at a time."""
    sandbox: SandboxMode = attrs.field(
        default="auto", validator=attrs.validators.in_(SANDBOX_MODES)
    )
    """Whether each computer's processes (terminal, ``bash``/``exec``, desktop) run in a
    bubblewrap sandbox of its own (:mod:`~.sandbox`): ``auto`` when sandboxes work here,
    ``on`` always (the emulator's start fails where they do not), ``off`` never.
    Read once, at start."""
    sandbox_network: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )
    """Give sandboxes the host's network (default: a loopback interface of their own)."""
    # The server itself: read once, at start.
    loop_lag_interval: float | None = attrs.field(
        default=None, validator=_validate_optional_positive
    )
    """Seconds between the samples of the event-loop lag monitor
    (:mod:`~orgo_async.emulator.loop_lag`); ``None`` = no monitor."""
    tls: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    """Serve HTTPS and WSS with a self-signed certificate made at start
    (:mod:`~orgo_async.emulator.tls`; needs ``cryptography``)."""
    tls_cert_out: str | None = attrs.field(default=None, validator=_validate_optional_dir)
    """With ``tls``: where to write the certificate's PEM at start, before serving, so
    that a client can trust exactly it."""
