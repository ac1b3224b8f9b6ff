"""``orgo.templates``: ``orgo.ai/v1`` templates: publish, validate, list, build, follow a build.

A template version is addressed by its ref ``namespace/name@version`` (a string
or a :class:`~orgo_async.TemplateRef`); a malformed ref raises ``ValueError``
before any request. Documents are dicts, or YAML (or JSON) text or a path to a
file; YAML needs PyYAML (``pip install 'orgo_async[templates]'``). The client
checks only what is cheap and certain (an object with ``api_version`` and
``template``); :meth:`Templates.validate` asks the server, which decides, and
:meth:`Templates.validate_local` checks a document with jsonschema (same
extra) against the schema the server publishes, fetched once per session,
or one given, offline.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .._checks import check_id
from .._config import Timeouts
from .._converter import structure
from .._sse import open_events
from ..errors import (
    APIConnectionError,
    APITimeoutError,
    NotFoundError,
    ResponseValidationError,
    TemplateBuildError,
    TemplateBuildTimeout,
    TemplateValidationError,
)
from ..protocol.template_schema import INSTALL_HINT, compile_schema, has_jsonschema, problems
from ..template_models import (
    BuildEvent,
    BuildStatus,
    PublishedTemplate,
    Template,
    TemplateRef,
    TemplateVersion,
    TestRun,
    ValidationResult,
)
from ._base import Resource

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from .._session import Session

__all__ = ["Templates", "load_document"]

Ref = str | TemplateRef
_INSTALL_HINT: Final = "reading YAML needs PyYAML: pip install 'orgo_async[templates]'"
_API_VERSION: Final = "orgo.ai/v1"
# Polling of wait_built: quick at first (a reused golden is ready at once), then every 2 s.
_FIRST_POLL: Final = 0.05
_MAX_POLL: Final = 2.0


def load_document(document: object) -> dict[str, Any]:
    """A template document as a dict: a dict as is, else YAML/JSON text or a file path.

    Raises:
        ValueError: not an object, or without ``api_version`` / ``template``.
        ImportError: YAML that needs PyYAML, which is not installed (with the hint).
        OSError: the file could not be read.
    """
    if isinstance(document, os.PathLike) or (
        isinstance(document, str) and "\n" not in document and _looks_like_path(document)
    ):
        document = Path(document).read_text(encoding="utf-8")
    if isinstance(document, str):
        document = _parse_text(document)
    if not isinstance(document, dict):
        raise ValueError(
            f"document must be a template object (a dict, YAML or JSON); got "
            f"{type(document).__name__}"
        )
    if "api_version" not in document:
        raise ValueError(f"document.api_version is required: '{_API_VERSION}'")
    if "template" not in document and "name" not in document:
        raise ValueError("document.template is required: {name, version}")
    return dict(document)


def _looks_like_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml", ".json")) or os.path.isfile(text)


def _parse_text(text: str) -> object:
    try:
        import yaml
    except ImportError:
        try:
            return json.loads(text)
        except ValueError:
            raise ImportError(_INSTALL_HINT) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"document is not valid YAML: {exc}") from None


class Templates(Resource):
    """Templates (``orgo.ai/v1``); reach it as ``orgo.templates``."""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._published: Validator | None = None
        """The published schema's validator, once fetched (one fetch per session)."""

    async def list(
        self, namespace: str | None = None, *, timeout: Timeouts | float | None = None
    ) -> builtins.list[Template]:
        """Your own template versions (of one ``namespace``, or all)."""
        params = None if namespace is None else {"namespace": namespace}
        return await self._get(
            "/templates",
            cast_to=builtins.list[Template],
            keys=("templates",),
            params=params,
            timeout=timeout,
        )

    async def global_list(
        self, *, timeout: Timeouts | float | None = None
    ) -> builtins.list[Template]:
        """The curated templates (``system/claude-code`` ...), launchable on any plan."""
        return await self._get(
            "/templates/global",
            cast_to=builtins.list[Template],
            keys=("templates",),
            timeout=timeout,
        )

    async def global_versions(
        self, namespace: str, name: str, *, timeout: Timeouts | float | None = None
    ) -> builtins.list[TemplateVersion]:
        """The published versions of one curated template (``system/claude-code``).

        Orgo names ``GET /templates/global/{namespace}/{name}`` without showing its
        answer; it is read like ``versions()``' (``{versions: [...]}``).
        """
        checked = TemplateRef(namespace, name, "0.0.0")  # ValueError naming a bad part
        return await self._get(
            f"/templates/global/{checked.namespace}/{checked.name}",
            cast_to=builtins.list[TemplateVersion],
            keys=("versions",),
            timeout=timeout,
        )

    async def get(self, ref: Ref, *, timeout: Timeouts | float | None = None) -> Template:
        """One version with its whole document.

        Raises:
            ValueError: a malformed ref. NotFoundError: no such version.
        """
        return await self._get(TemplateRef.parse(ref).path, cast_to=Template, timeout=timeout)

    async def versions(
        self, namespace: str, name: str, *, timeout: Timeouts | float | None = None
    ) -> builtins.list[TemplateVersion]:
        """The published versions of ``namespace/name``."""
        path = TemplateRef(namespace, name, "0.0.0").path.rsplit("/", 1)[0]
        return await self._get(
            path, cast_to=builtins.list[TemplateVersion], keys=("versions",), timeout=timeout
        )

    async def publish(
        self,
        document: object,
        *,
        auto_build: bool = False,
        force: bool = False,
        check_locally: bool = False,
        timeout: Timeouts | float | None = None,
    ) -> PublishedTemplate:
        """Publish a document (see :func:`load_document`); refs are immutable unless ``force``.

        With ``check_locally``, the document is first checked as
        :meth:`validate_local` does, so a malformed one is never sent.

        Raises:
            ValueError: not a template document (before any request).
            TemplateValidationError: ``check_locally`` found problems (no publish request).
            ImportError: ``check_locally`` without jsonschema installed.
            InvalidRequestError: 422, the server's validation failed (``body["errors"]``).
            ConflictError: the ref is published with other content.
        """
        body = load_document(document)
        if check_locally:
            await self.validate_local(body, timeout=timeout)
        params = {"auto_build": str(auto_build).lower(), "force": str(force).lower()}
        return await self._post(
            "/templates", cast_to=PublishedTemplate, json=body, params=params, timeout=timeout
        )

    async def validate(
        self, document: object, *, timeout: Timeouts | float | None = None
    ) -> ValidationResult:
        """The server's verdict on a document, with no side effects."""
        body = load_document(document)
        return await self._post(
            "/templates/validate",
            cast_to=ValidationResult,
            json=body,
            timeout=timeout,
            idempotent=True,
        )

    async def validate_local(
        self,
        document: object,
        *,
        schema: Mapping[str, Any] | None = None,
        timeout: Timeouts | float | None = None,
    ) -> dict[str, Any]:
        """Check a document with jsonschema against the published schema; the document if valid.

        The schema is ``schema`` when given (no request at all: this works
        offline), else the one :meth:`schema` answers, fetched once per
        session and kept. Nothing is normalized: the server's answer to
        :meth:`validate` is the normalized document.

        Raises:
            TemplateValidationError: the problems, each naming its field path
                (``hardware.cpu``, ``files[0].to``); the message names the first.
            ImportError: jsonschema is not installed (before any request).
            jsonschema.SchemaError: ``schema`` (or the published one) is not a valid schema.
        """
        body = load_document(document)
        if schema is not None:
            validator = compile_schema(schema)
        else:
            validator = await self._published_validator(timeout)
        found = problems(validator, body)
        if found:
            raise TemplateValidationError(found)
        return body

    async def _published_validator(self, timeout: Timeouts | float | None) -> Validator:
        if self._published is None:
            if not has_jsonschema():
                raise ImportError(INSTALL_HINT)  # before fetching anything
            self._published = compile_schema(await self.schema(timeout=timeout))
        return self._published

    async def delete(self, ref: Ref, *, timeout: Timeouts | float | None = None) -> None:
        """Delete one version."""
        await self._delete(TemplateRef.parse(ref).path, timeout=timeout)

    async def schema(self, *, timeout: Timeouts | float | None = None) -> dict[str, Any]:
        """The JSON Schema of ``orgo.ai/v1`` documents."""
        schema: dict[str, Any] = await self._get("/template-schema", cast_to=dict, timeout=timeout)
        return schema

    # -- test runs ---------------------------------------------------------------

    async def test_run(self, ref: Ref, *, timeout: Timeouts | float | None = None) -> TestRun:
        """Boot a short-lived preview computer from a built template.

        The preview is not one of your computers (use ``computers.create`` with
        ``template_ref`` for that); end it with :meth:`stop_test_run`, or use
        :meth:`test_running`, which does.

        Raises:
            ValueError: a malformed ref (before any request).
            NotFoundError: no such version.
            ConflictError: the version is not built (``ready``) yet.
            RateLimitError: too many previews at once.
        """
        body = {"ref": str(TemplateRef.parse(ref))}
        return await self._post("/templates/run", cast_to=TestRun, json=body, timeout=timeout)

    async def stop_test_run(
        self, run: str | TestRun, *, timeout: Timeouts | float | None = None
    ) -> bool:
        """End a preview and reclaim its VM; ``False`` when it was already gone.

        Raises:
            ValueError: ``run`` is not a preview or its ``desktop_id`` (before any request).
        """
        desktop_id = run.desktop_id if isinstance(run, TestRun) else run
        params = {"id": check_id("desktop_id", desktop_id)}
        try:
            await self._delete("/templates/run", params=params, timeout=timeout)
        except NotFoundError:
            return False  # reaped already, or stopped twice: nothing is left running
        return True

    @asynccontextmanager
    async def test_running(
        self, ref: Ref, *, timeout: Timeouts | float | None = None
    ) -> AsyncIterator[TestRun]:
        """``async with orgo.templates.test_running(ref) as run:`` a preview, stopped on exit.

        The stop runs even when the body raises or is cancelled.
        """
        run = await self.test_run(ref, timeout=timeout)
        try:
            yield run
        finally:
            await asyncio.shield(self.stop_test_run(run, timeout=timeout))

    # -- builds ------------------------------------------------------------------

    async def build(self, ref: Ref, *, timeout: Timeouts | float | None = None) -> BuildStatus:
        """Start building the golden snapshot (``building``, or ``ready`` with ``reused``)."""
        path = TemplateRef.parse(ref).path + "/build"
        return await self._post(path, cast_to=BuildStatus, timeout=timeout)

    async def build_status(
        self, ref: Ref, *, timeout: Timeouts | float | None = None
    ) -> BuildStatus:
        """The build's status now."""
        path = TemplateRef.parse(ref).path + "/build"
        return await self._get(path, cast_to=BuildStatus, timeout=timeout)

    async def cancel_build(self, ref: Ref, *, timeout: Timeouts | float | None = None) -> bool:
        """Cancel the build in progress; ``False`` when nothing was building.

        Raises:
            NotFoundError: no such version.
        """
        path = TemplateRef.parse(ref).path + "/build"
        try:
            await self._delete(path, timeout=timeout)
        except NotFoundError as exc:
            # 404 {"status": "idle"}: the version exists, nothing is building.
            if isinstance(exc.body, dict) and exc.body.get("status") == "idle":
                return False
            raise
        return True

    async def build_logs(
        self, ref: Ref, *, timeout: Timeouts | float | None = None
    ) -> AsyncIterator[BuildEvent]:
        """The build's log lines as they come (Server-Sent Events), until the build is over.

        If the stream breaks while the build is still going, it is opened once
        more, resuming after the last event id seen (lines without ids are
        matched instead), so no line is yielded twice.

        Raises:
            TemplateBuildError: the stream broke twice while the build was going.
            APIError: the stream could not be opened (NotFoundError: no such version).
        """
        parsed = TemplateRef.parse(ref)
        timeouts = self._session.timeouts.resolve(timeout)
        last_id: str | None = None
        seen: set[tuple[Any, ...]] = set()
        for attempt in range(2):
            broke: Exception | None = None
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                async for event in self._stream(parsed, timeouts, headers):
                    if event.id is not None:
                        last_id = event.id
                    key = (event.id, event.ts, event.phase, event.source, event.line)
                    if key in seen:
                        continue
                    seen.add(key)
                    yield event
                    if event.terminal:
                        return
            except APIConnectionError as exc:
                broke = exc
            # The stream ended without a terminal line: over (failed), or broken?
            status = await self.build_status(parsed, timeout=timeout)
            if status.done:
                return
            if attempt == 1:
                raise TemplateBuildError(
                    ref=str(parsed),
                    status=status.status,
                    error=None,
                    message=f"the build log of {parsed} broke twice while it was still building",
                ) from broke

    async def _stream(
        self, ref: TemplateRef, timeouts: Timeouts, headers: dict[str, str]
    ) -> AsyncIterator[BuildEvent]:
        """One connection's events."""
        self._session.check_open()
        events = await open_events(
            self._session.transport,
            "GET",
            ref.path + "/build/events",
            headers=headers,
            timeouts=timeouts.replace(read=None),  # a build may be quiet for minutes
        )
        try:
            async for data in events:
                yield _event(data, events.last_event_id)
        finally:
            await events.close()

    async def wait_built(
        self, ref: Ref, *, timeout: float = 600.0, poll: float = _MAX_POLL
    ) -> BuildStatus:
        """Wait until the version is built (``ready``), polling its status against a deadline.

        Raises:
            TemplateBuildError: the build failed (its ``error``), or was never started.
            TemplateBuildTimeout: still building at the deadline.
        """
        parsed = TemplateRef.parse(ref)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = min(_FIRST_POLL, poll)
        seen = "unknown"

        def expired(status: str) -> TemplateBuildTimeout:
            return TemplateBuildTimeout(
                ref=str(parsed),
                status=status,
                error=None,
                message=f"template {parsed} still {status} after {timeout:g} s",
            )

        while True:
            try:
                # The poll is bounded by the deadline: when the deadline cuts it
                # short, the answer is the deadline's, not a transport timeout.
                status = await self.build_status(
                    parsed, timeout=max(deadline - loop.time(), 0.001)
                )
            except APITimeoutError:
                raise expired(seen) from None
            seen = status.status
            if status.status == "ready":
                return status
            if status.status == "failed":
                raise TemplateBuildError(
                    ref=str(parsed),
                    status=status.status,
                    error=status.error,
                    message=f"template {parsed} failed to build: "
                    f"{status.error or 'no reason given'}",
                )
            if status.status == "not_built":
                raise TemplateBuildError(
                    ref=str(parsed),
                    status=status.status,
                    error=None,
                    message=f"template {parsed} is not built: start its build first "
                    "(orgo.templates.build)",
                )
            left = deadline - loop.time()
            if left <= 0:
                raise expired(status.status)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, poll)


def _event(data: str, event_id: str | None) -> BuildEvent:
    try:
        fields = json.loads(data)
    except ValueError:
        raise ResponseValidationError("BuildEvent", ["a data frame that is not JSON"]) from None
    if isinstance(fields, dict):
        fields = {k: v for k, v in fields.items() if v is not None and k != "id"}
        fields["id"] = event_id
    return structure(fields, BuildEvent)
