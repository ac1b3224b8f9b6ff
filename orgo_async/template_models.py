"""What the template API (``orgo.ai/v1``) returns, as frozen attrs classes.

Tolerant like :mod:`orgo_async.models`: unknown fields are ignored and the
build ``status`` and event ``phase`` stay plain strings, so a value Orgo adds
later does not break a read.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

import attrs

__all__ = [
    "BuildEvent",
    "BuildStatus",
    "PublishedTemplate",
    "Template",
    "TemplateRef",
    "TemplateVersion",
    "TestRun",
    "ValidationError",
    "ValidationResult",
]

# A namespace or name: what Orgo's refs are made of (lowercase kebab-case); a version: semver.
_PART = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.+-]+)?$")
_REF = re.compile(r"^([^/@]+)/([^/@]+)@([^/@]+)$")

BUILD_STATUSES: Final = ("not_built", "building", "ready", "failed")
# The phases a build log ends on (a failed build's stream ends on the failing phase).
TERMINAL_PHASES: Final = frozenset({"ready", "cancel", "timeout"})


def _part(what: str, value: object, pattern: re.Pattern[str], example: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{what} must look like {example}; got {value!r}")
    return value


@attrs.frozen
class TemplateRef:
    """A template version's address: ``namespace/name@version``.

    Raises:
        ValueError: a part that cannot be one (naming it), before any request.
    """

    namespace: str
    name: str
    version: str

    def __attrs_post_init__(self) -> None:
        _part("ref namespace", self.namespace, _PART, "'default' or 'system'")
        _part("ref name", self.name, _PART, "'claude-code' (lowercase kebab-case)")
        _part("ref version", self.version, _VERSION, "'1.0.0' (semver)")

    @classmethod
    def parse(cls, ref: object) -> TemplateRef:
        """``ref`` if it is one, else parse ``"namespace/name@version"``."""
        if isinstance(ref, TemplateRef):
            return ref
        match = _REF.match(ref) if isinstance(ref, str) else None
        if match is None:
            raise ValueError(
                f"ref must be namespace/name@version (for example system/claude-code@1.0.0); "
                f"got {ref!r}"
            )
        return cls(*match.groups())

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}@{self.version}"

    @property
    def path(self) -> str:
        """``/templates/{namespace}/{name}/{version}`` (checked parts: nothing to escape)."""
        return f"/templates/{self.namespace}/{self.name}/{self.version}"


@attrs.frozen(kw_only=True)
class Template:
    """One published template version with its whole document."""

    ref: str
    digest: str | None = None
    published: datetime | None = None
    template: dict[str, Any] = attrs.field(factory=dict)
    """The ``orgo.ai/v1`` document, normalized."""


@attrs.frozen(kw_only=True)
class TemplateVersion:
    """A version of a template, as ``versions()`` lists it."""

    version: str | None = None
    ref: str | None = None
    digest: str | None = None
    published: datetime | None = None


@attrs.frozen(kw_only=True)
class PublishedTemplate:
    """The answer to a publish; ``auto_build`` is the build's status when one was started."""

    ref: str
    digest: str | None = None
    published: datetime | None = None
    auto_build: str | None = None


@attrs.frozen(kw_only=True)
class BuildStatus:
    """Where a version's golden snapshot stands: not_built, building, ready or failed."""

    status: str
    ref: str | None = None
    digest: str | None = None
    reused: bool = False
    """An identical digest was already built and its snapshot reused."""
    build_time_ms: int | None = None
    error: str | None = None
    """Why it failed (when ``status`` is ``failed``)."""

    @property
    def done(self) -> bool:
        """Whether the build is over (or never started)."""
        return self.status != "building"


@attrs.frozen(kw_only=True)
class BuildEvent:
    """One line of a build's log, as the build-events stream sends it."""

    line: str = ""
    phase: str | None = None
    """publish, compile, boot, install, snapshot, record, archive, ready; cancel or timeout."""
    level: str | None = None
    """info, success, warn or error."""
    source: str | None = None
    ts: datetime | None = None
    id: str | None = None
    """The stream's event id, when the server sends one (resuming starts after it)."""

    @property
    def terminal(self) -> bool:
        """Whether this line ends the build (ready, cancelled, timed out)."""
        return self.phase in TERMINAL_PHASES


@attrs.frozen(kw_only=True)
class ValidationError:
    """One problem the server found in a template document (not an exception)."""

    field: str = ""
    """Where, as a dotted path (``hardware.cpu``)."""
    code: str = ""
    message: str = ""
    hint: str | None = None


@attrs.frozen(kw_only=True)
class ValidationResult:
    """What ``validate`` found: ``ok`` with the normalized ``template``, or the ``errors``."""

    ok: bool
    template: dict[str, Any] | None = None
    errors: tuple[ValidationError, ...] = ()
    note: str | None = None
    """Said when the check was partial (the emulator without jsonschema checks only structure)."""


@attrs.frozen(kw_only=True)
class TestRun:
    """A short-lived preview computer booted from a built template (``test_run``).

    Connect to it like any computer: its desktop lives under
    ``/desktops/{desktop_id}``, its sockets take ``vnc_password`` as token. Orgo
    reaps a preview after a while idle; ``stop_test_run`` ends it at once.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    desktop_id: str
    """The preview's identifier: its desktop URLs use it, and ``stop_test_run`` takes it."""
    id: str | None = None
    """The underlying VM's id."""
    status: str | None = None
    """The preview's status when answered (``creating``, ``running``, ``error`` ...)."""
    vnc_password: str | None = attrs.field(default=None, repr=False)
    """The token of the preview's VNC and WebSocket connections (a secret)."""
    public_host: str | None = None
    resolution: str | None = None
