"""The emulator's template registry: ``orgo.ai/v1`` documents, their versions and builds.

A template version is keyed ``(namespace, name, version)`` and printed as the
ref ``namespace/name@version``. Its namespace is ``template.namespace`` in the
document, else ``default`` (Orgo's default for your own templates). Curated
templates (``system/claude-code@1.0.0`` ...) are there from the start, built.

Validation is jsonschema's, against the one JSON Schema of ``orgo.ai/v1``
documents in ``template_schema.json`` beside this module (following Orgo's
schema guide, docs.orgo.ai guides/templates/schema), which ``GET
/template-schema`` serves as it is; :mod:`orgo_async.protocol.template_schema`
turns each failure into a problem ``{field, code, message, hint}``. Without
jsonschema installed the emulator still answers, with the structural checks
(types, constants, enums, required and unknown fields) and a note saying so
(logged once). Beside the schema stays the one rule it cannot express: a
secret an ``env`` value or a ``files`` entry's ``from: secret://NAME`` refers
to must be declared under ``secrets``. The sugar ``name: foo@1.0.0`` stands
for ``template: {name: foo, version: 1.0.0}``.

Builds follow the store's habit: nothing runs, a build records when it started
and what it will emit, and its status derives from the clock on every read
(``not_built`` → ``building`` → ``ready`` | ``failed``). A build lasts
``EmulatorConfig.template_build_seconds`` and its log lines are spread over that
time through the phases publish, compile, boot, install (one line per build
step), snapshot and ready. The emulator runs no build command, but a
``build.run`` step that is ``false`` or ``exit N`` with N other than 0 fails
the install phase there, as that command would on Orgo: the build ends
``failed`` with an ``error`` naming the step. A cancelled build ends ``failed``
on the phase ``cancel``. A build of a digest some version already built ends
``ready`` at once with ``reused: true``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import attrs

from ..protocol.template_schema import (
    compile_schema,
    has_jsonschema,
    problems,
    structural_problems,
)
from .store import ApiError, or_404

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = [
    "API_VERSION",
    "Build",
    "TemplateRegistry",
    "TemplateVersion",
    "parse_ref",
    "template_schema",
    "validate",
    "validation_note",
]

API_VERSION: Final = "orgo.ai/v1"
DEFAULT_NAMESPACE: Final = "default"
_REF = re.compile(r"^([^/@\s]+)/([^/@\s]+)@([^/@\s]+)$")
_FAILING_STEP = re.compile(r"^\s*(?:false|exit\s+0*[1-9]\d*)\s*$")
_SECRET_URI: Final = "secret://"
_CURATED: Final = ("claude-code", "openclaw", "hermes-agent")
NO_JSONSCHEMA_NOTE: Final = (
    "jsonschema is not installed: only types, constants, enums, required and unknown fields "
    "were checked (pip install 'orgo_async[templates]')"
)
_log = logging.getLogger(__name__)


@functools.cache
def template_schema() -> dict[str, Any]:
    """The JSON Schema of ``orgo.ai/v1`` documents, read once (shared: not to be changed)."""
    text = resources.files(__package__).joinpath("template_schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> Validator | None:
    """The checked schema's validator; ``None`` (logged once) without jsonschema."""
    if not has_jsonschema():
        _log.warning("%s", NO_JSONSCHEMA_NOTE)
        return None
    return compile_schema(template_schema())


def validation_note() -> str | None:
    """What an answer says when validation was only structural (``None`` when it was not)."""
    return NO_JSONSCHEMA_NOTE if _validator() is None else None


def parse_ref(ref: str) -> tuple[str, str, str]:
    """``namespace/name@version`` as its three parts; 400 ``invalid_ref`` otherwise."""
    match = _REF.match(ref)
    if match is None:
        raise ApiError(
            400, "invalid_ref", f"template_ref must be namespace/name@version, got {ref!r}"
        )
    return match.group(1), match.group(2), match.group(3)


def validate(document: object) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``(normalized document, [])`` or ``(None, problems)``."""
    validator = _validator()
    if validator is None:
        errors = structural_problems(template_schema(), document)
    else:
        errors = problems(validator, document)
    if errors:
        return None, errors
    if not isinstance(document, dict):  # the schema's root is an object: never true here
        raise TypeError("a valid template is an object")
    doc = dict(document)
    sugar = doc.pop("name", None)
    if isinstance(sugar, str) and "template" not in doc:
        bare, _, number = sugar.partition("@")
        doc["template"] = {"name": bare, "version": number}
    errors = _undeclared_secrets(doc)
    return (None, errors) if errors else (doc, [])


def _undeclared_secrets(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """References to secrets the document does not declare (no schema can say this)."""
    declared = {s.get("name") for s in doc.get("secrets") or [] if isinstance(s, dict)}
    uses: list[tuple[str, object]] = []
    for key, value in (doc.get("env") or {}).items():
        if isinstance(value, dict):
            uses.append((f"env.{key}.secret", value.get("secret")))
    for index, entry in enumerate(doc.get("files") or []):
        source = entry.get("from") if isinstance(entry, dict) else None
        if isinstance(source, str) and source.startswith(_SECRET_URI):
            uses.append((f"files[{index}].from", source.removeprefix(_SECRET_URI)))
    return [
        {"field": field, "code": "undeclared_secret",
         "message": f"{field} refers to the secret {name!r}, which secrets does not declare",
         "hint": f"add '- name: {name}' under secrets"}
        for field, name in uses if name not in declared
    ]  # fmt: skip


def digest_of(document: Mapping[str, Any]) -> str:
    """The content address: SHA-256 of the canonical JSON of the normalized document."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _iso(wall: float) -> str:
    moment = datetime.fromtimestamp(wall, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@attrs.define(kw_only=True)
class Build:
    """One build of a version: its schedule of log lines and how it ends."""

    started: float
    wall: float
    ends: float
    """Clock value at which it is over (ready, or failed at the failing step)."""
    lines: list[tuple[float, dict[str, Any]]]
    """``(clock value, frame)`` in order; the last is the terminal frame."""
    error: str | None = None
    reused: bool = False
    cancelled: float | None = None

    def status(self, now: float) -> str:
        if self.cancelled is not None:
            return "failed"
        if now < self.ends:
            return "building"
        return "failed" if self.error is not None else "ready"

    def frames(self, now: float) -> list[dict[str, Any]]:
        """The log lines emitted by ``now`` (a cancelled build's end with a ``cancel`` line)."""
        until = now if self.cancelled is None else min(now, self.cancelled)
        shown = [frame for at, frame in self.lines if at <= until]
        if self.cancelled is not None and self.cancelled < self.ends:
            shown.append(
                {"ts": _iso(self.wall + self.cancelled - self.started), "level": "error",
                 "phase": "cancel", "source": "builder", "line": "build cancelled"}
            )  # fmt: skip
        return shown


@attrs.define(kw_only=True)
class TemplateVersion:
    namespace: str
    name: str
    version: str
    document: dict[str, Any]
    digest: str
    published: str
    build: Build | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}@{self.version}"

    def summary(self) -> dict[str, Any]:
        return {"ref": self.ref, "digest": self.digest, "published": self.published}


class TemplateRegistry:
    """Every published template version and its build; see the module docstring."""

    def __init__(self, clock: Callable[[], float], build_seconds: Callable[[], float]) -> None:
        self._clock = clock
        self._build_seconds = build_seconds
        self.versions: dict[tuple[str, str, str], TemplateVersion] = {}
        self._drop_after: int | None = None
        for name in _CURATED:
            doc = {"api_version": API_VERSION, "template": {"name": name, "version": "1.0.0"}}
            curated = self._add("system", doc)
            curated.build = Build(started=clock(), wall=time.time(), ends=clock(), lines=[])

    # -- documents -------------------------------------------------------------

    def publish(self, document: object, *, force: bool) -> TemplateVersion:
        """Add a version; 422 with ``errors`` when invalid, 409 when the ref holds other content."""
        doc, errors = validate(document)
        if doc is None:
            raise ApiError(422, "validation_failed", "Template failed validation", errors=errors)
        namespace = doc["template"].get("namespace", DEFAULT_NAMESPACE)
        if namespace == "system":
            raise ApiError(403, "reserved_namespace", "The system namespace is reserved")
        key = (namespace, doc["template"]["name"], doc["template"]["version"])
        existing = self.versions.get(key)
        if existing is not None and existing.digest != digest_of(doc):
            if not force:
                raise ApiError(
                    409, "ref_exists",
                    f"{existing.ref} is already published with other content: bump "
                    "template.version or pass ?force=true",
                )  # fmt: skip
        elif existing is not None:
            return existing  # the same content again: nothing changes
        return self._add(namespace, doc)

    def _add(self, namespace: str, doc: dict[str, Any]) -> TemplateVersion:
        identity = doc["template"]
        version = TemplateVersion(
            namespace=namespace,
            name=identity["name"],
            version=identity["version"],
            document=doc,
            digest=digest_of(doc),
            published=_iso(time.time()),
        )
        self.versions[(version.namespace, version.name, version.version)] = version
        return version

    def get(self, namespace: str, name: str, version: str) -> TemplateVersion:
        return or_404(
            self.versions.get((namespace, name, version)),
            "template_not_found",
            f"No template {namespace}/{name}@{version}",
        )

    def versions_of(self, namespace: str, name: str) -> list[TemplateVersion]:
        found = [v for (ns, n, _), v in self.versions.items() if (ns, n) == (namespace, name)]
        if not found:
            raise ApiError(404, "template_not_found", f"No template {namespace}/{name}")
        return found

    def delete(self, version: TemplateVersion) -> None:
        del self.versions[(version.namespace, version.name, version.version)]

    # -- builds ------------------------------------------------------------------

    def status(self, version: TemplateVersion) -> dict[str, Any]:
        """The build status as ``GET .../build`` answers it."""
        answer: dict[str, Any] = {"ref": version.ref, "digest": version.digest}
        build = version.build
        if build is None:
            return answer | {"status": "not_built"}
        now = self._clock()
        status = build.status(now)
        answer |= {"status": status, "reused": build.reused}
        if status == "ready":
            answer["build_time_ms"] = round((build.ends - build.started) * 1000)
        if status == "failed":
            answer["error"] = "build cancelled" if build.cancelled is not None else build.error
        return answer

    def start_build(self, version: TemplateVersion) -> dict[str, Any]:
        """Start a build (or reuse a golden of the same digest, or join one in progress)."""
        now = self._clock()
        if version.build is not None and version.build.status(now) == "building":
            return self.status(version)
        if self._golden(version.digest, now):
            line = {"ts": _iso(time.time()), "level": "success", "phase": "ready",
                    "source": "builder", "line": "golden snapshot reused"}  # fmt: skip
            version.build = Build(
                started=now, wall=time.time(), ends=now, lines=[(now, line)], reused=True
            )
        else:
            version.build = self._schedule(version, now)
        return self.status(version)

    def cancel_build(self, version: TemplateVersion) -> bool:
        """Cancel a build in progress; ``False`` when nothing is building."""
        now = self._clock()
        build = version.build
        if build is None or build.status(now) != "building":
            return False
        build.cancelled = now
        return True

    def frames(self, version: TemplateVersion) -> tuple[list[dict[str, Any]], bool]:
        """The log lines so far, and whether the build is over."""
        build = version.build
        if build is None:
            return [], True
        now = self._clock()
        return build.frames(now), build.status(now) != "building"

    def require_built(self, ref: str) -> None:
        """For a create with ``template_ref``: 404 unknown, 409 not built."""
        version = self.get(*parse_ref(ref))
        status = self.status(version)["status"]
        if status != "ready":
            raise ApiError(
                409, "template_not_built",
                f"Template {ref} is not built (build status {status}): build it first",
            )  # fmt: skip

    def drop_next_stream(self, after: int) -> None:
        """Make the next build-events stream break its connection after ``after`` frames."""
        self._drop_after = after

    def take_drop(self) -> int | None:
        """The frame count after which this stream breaks (once), if one was asked for."""
        after, self._drop_after = self._drop_after, None
        return after

    def _golden(self, digest: str, now: float) -> bool:
        return any(
            v.digest == digest and v.build is not None and v.build.status(now) == "ready"
            for v in self.versions.values()
        )

    def _schedule(self, version: TemplateVersion, now: float) -> Build:
        """The log lines of a fresh build, spread over the configured build time."""
        doc = version.document
        build = doc.get("build") or {}
        steps: list[tuple[str, str, str]] = [
            ("publish", "builder", f"resolved {version.ref} ({version.digest[:12]})"),
            ("compile", "builder", "compiled template to build plan"),
            ("boot", "builder", "booting build VM"),
        ]
        for tool in ("apt", "pip", "npm"):
            packages = build.get(tool) or []
            if packages:
                steps.append(("install", tool, f"{tool} install {' '.join(map(str, packages))}"))
        failing: str | None = None
        for number, command in enumerate(build.get("run") or [], 1):
            steps.append(("install", "run", f"$ {command}"))
            if _FAILING_STEP.match(command):
                failing = f"build.run step {number} failed: {command.strip()!r} exited non-zero"
                break
        if failing is None:
            steps += [("snapshot", "builder", "capturing golden snapshot")]
        seconds = self._build_seconds()
        wall = time.time()
        lines = []
        total = len(steps) + 1  # and the terminal line
        for index, (phase, source, text) in enumerate(steps):
            at = now + seconds * index / total
            frame = {"ts": _iso(wall + at - now), "level": "info", "phase": phase,
                     "source": source, "line": text}  # fmt: skip
            lines.append((at, frame))
        ends = now + seconds
        if failing is None:
            last = {"level": "success", "phase": "ready", "line": f"golden snapshot ready in "
                    f"{seconds:.1f}s"}  # fmt: skip
        else:
            last = {"level": "error", "phase": "install", "source": "run", "line": failing}
        lines.append((ends, {"ts": _iso(wall + seconds), **last}))
        return Build(started=now, wall=wall, ends=ends, lines=lines, error=failing)
