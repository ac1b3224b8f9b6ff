"""Template routes (``orgo.ai/v1``), over :class:`~..templates.TemplateRegistry`.

- ``POST /templates?auto_build=&force=`` (JSON, or YAML with PyYAML installed) →
  ``{ref, digest, published, auto_build?}``; 422 ``{errors: [{field, code,
  message, hint}]}``; 409 ``ref_exists``;
- ``POST /templates/validate`` → ``{ok: true, template}`` or ``{ok: false, errors}``
  (with a ``note`` when jsonschema is not installed and only the structure was checked);
- ``GET /templates?namespace=`` (your own) and ``GET /templates/global`` (curated)
  → ``{templates: [{ref, digest, published, template}]}``;
- ``GET /templates[/global]/{ns}/{name}`` → ``{versions: [...]}`` (under
  ``/global`` only the curated ``system`` namespace: Orgo names this route
  without showing its answer, which is modelled on the list of versions);
- ``POST /templates/run``, ``DELETE /templates/run?id=``: test runs
  (:mod:`.template_runs`);
- ``GET`` / ``DELETE /templates/{ns}/{name}/{version}``;
- ``POST`` (202) / ``GET`` / ``DELETE`` (202 ``cancelling``, 404 ``idle``)
  ``.../build``; ``GET .../build/events``: Server-Sent Events, one ``data:``
  JSON frame per log line with ``id:`` its index (``Last-Event-ID`` resumes
  after it), closed when the build is over;
- ``GET /template-schema``: the JSON Schema (2020-12) of ``orgo.ai/v1`` documents,
  the very one the emulator validates against.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ...protocol._base import NestingError, load_json
from ..store import ApiError
from ..templates import (
    TemplateRegistry,
    TemplateVersion,
    template_schema as schema_document,
    validate,
    validation_note,
)
from ._base import emulator_of, ok
from .template_runs import start_test_run, stop_test_run

if TYPE_CHECKING:
    from ..app import Emulator

__all__ = [
    "add_routes",
    "build_events",
    "build_status",
    "cancel_build",
    "delete_template",
    "get_template",
    "global_templates",
    "global_versions",
    "list_templates",
    "list_versions",
    "publish_template",
    "start_build",
    "template_schema",
    "validate_template",
]

# How often a build-events stream looks for new lines.
_STREAM_POLL: Final = 0.02


def add_routes(router: web.UrlDispatcher) -> None:
    """Map the template paths; the curated ``/global`` ones come before the
    ``{namespace}`` ones that would match them too."""
    add = router.add_route
    add("POST", "/api/templates", publish_template)
    add("GET", "/api/templates", list_templates)
    add("POST", "/api/templates/validate", validate_template)
    add("GET", "/api/templates/global", global_templates)
    add("GET", "/api/templates/global/{namespace}/{name}", global_versions)
    add("POST", "/api/templates/run", start_test_run)
    add("DELETE", "/api/templates/run", stop_test_run)
    add("GET", "/api/templates/{namespace}/{name}", list_versions)
    version = "/api/templates/{namespace}/{name}/{version}"
    add("GET", version, get_template)
    add("DELETE", version, delete_template)
    add("POST", version + "/build", start_build)
    add("GET", version + "/build", build_status)
    add("DELETE", version + "/build", cancel_build)
    add("GET", version + "/build/events", build_events)
    add("GET", "/api/template-schema", template_schema)


def _registry(request: web.Request) -> tuple[Emulator, TemplateRegistry]:
    emu = emulator_of(request)
    return emu, emu.templates


def _version(request: web.Request) -> TemplateVersion:
    info = request.match_info
    return emulator_of(request).templates.get(info["namespace"], info["name"], info["version"])


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def _document(request: web.Request) -> object:
    """The body as a document: JSON, or YAML when it says so (400 when unreadable)."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "empty_body", "Request body is empty")
    if "yaml" in request.content_type:
        try:
            import yaml
        except ImportError:
            raise ApiError(
                415, "yaml_unsupported", "This emulator reads YAML only with PyYAML installed"
            ) from None
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ApiError(400, "invalid_yaml", "Request body is not valid YAML") from None
    try:
        return load_json(raw)
    except (NestingError, ValueError):
        raise ApiError(400, "invalid_json", "Request body is not valid JSON") from None


def _entry(version: TemplateVersion) -> dict[str, Any]:
    return version.summary() | {"template": version.document}


async def publish_template(request: web.Request) -> web.Response:
    """POST /templates."""
    _, registry = _registry(request)
    version = registry.publish(await _document(request), force=_flag(request, "force"))
    answer = version.summary()
    if _flag(request, "auto_build"):
        answer["auto_build"] = registry.start_build(version)["status"]
    return ok(answer)


async def validate_template(request: web.Request) -> web.Response:
    """POST /templates/validate: no side effects."""
    document, errors = validate(await _document(request))
    answer: dict[str, Any] = {"ok": False, "errors": errors}
    if document is not None:
        answer = {"ok": True, "template": document}
    note = validation_note()
    return ok(answer if note is None else answer | {"note": note})


async def list_templates(request: web.Request) -> web.Response:
    """GET /templates?namespace=: your own versions."""
    _, registry = _registry(request)
    wanted = request.query.get("namespace")
    items = [
        _entry(v)
        for v in registry.versions.values()
        if v.namespace != "system" and (wanted is None or v.namespace == wanted)
    ]
    return ok({"templates": items})


async def global_templates(request: web.Request) -> web.Response:
    """GET /templates/global: the curated templates."""
    _, registry = _registry(request)
    return ok(
        {"templates": [_entry(v) for v in registry.versions.values() if v.namespace == "system"]}
    )


async def list_versions(request: web.Request) -> web.Response:
    """GET /templates/{namespace}/{name} (and /templates/global/{namespace}/{name})."""
    _, registry = _registry(request)
    info = request.match_info
    versions = registry.versions_of(info["namespace"], info["name"])
    return ok({"versions": [v.summary() | {"version": v.version} for v in versions]})


async def global_versions(request: web.Request) -> web.Response:
    """GET /templates/global/{namespace}/{name}: a curated template's versions (404 for yours)."""
    info = request.match_info
    if info["namespace"] != "system":
        raise ApiError(404, "template_not_found", f"No curated template {info['namespace']}/"
                       f"{info['name']}")  # fmt: skip
    return await list_versions(request)


async def get_template(request: web.Request) -> web.Response:
    """GET /templates/{namespace}/{name}/{version}."""
    return ok(_entry(_version(request)))


async def delete_template(request: web.Request) -> web.Response:
    """DELETE /templates/{namespace}/{name}/{version}."""
    version = _version(request)
    if version.namespace == "system":
        raise ApiError(403, "reserved_namespace", "Curated templates cannot be deleted")
    emulator_of(request).templates.delete(version)
    return ok({"deleted": True})


async def start_build(request: web.Request) -> web.Response:
    """POST .../build: 202 at once."""
    return ok(emulator_of(request).templates.start_build(_version(request)), 202)


async def build_status(request: web.Request) -> web.Response:
    """GET .../build."""
    return ok(emulator_of(request).templates.status(_version(request)))


async def cancel_build(request: web.Request) -> web.Response:
    """DELETE .../build: 202 ``cancelling``, or 404 ``idle`` when nothing is building."""
    if emulator_of(request).templates.cancel_build(_version(request)):
        return ok({"status": "cancelling"}, 202)
    return ok({"status": "idle"}, 404)


async def build_events(request: web.Request) -> web.StreamResponse:
    """GET .../build/events: the build log as Server-Sent Events."""
    emu, registry = _registry(request)
    version = _version(request)
    try:
        sent = int(request.headers.get("Last-Event-ID", "-1")) + 1
    except ValueError:
        sent = 0
    drop_after = registry.take_drop()
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    written = 0
    while True:
        frames, over = registry.frames(version)
        for index in range(max(sent, 0), len(frames)):
            if drop_after is not None and written >= drop_after:
                # Break the connection mid-stream, as a proxy that times out would.
                if request.transport is not None:
                    request.transport.close()
                return response
            payload = json.dumps(frames[index], separators=(",", ":"))
            await response.write(f"id: {index}\ndata: {payload}\n\n".encode())
            written += 1
        sent = max(sent, len(frames))
        if over:
            break
        await emu._sleep(_STREAM_POLL)
    await response.write_eof()
    return response


async def template_schema(request: web.Request) -> web.Response:
    """GET /template-schema."""
    return ok(schema_document())
