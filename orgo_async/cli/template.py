"""``orgo-async template``: publish a template (and follow its build), list them, show one.

::

    orgo-async template publish FILE [--build] [--follow] [--force]
    orgo-async template ls [--namespace NS] [--json]
    orgo-async template status REF [--json]

``publish --follow`` prints the build log live, one line per event
(``PHASE  LINE``), and exits 5 when the build fails. YAML files need PyYAML
(``pip install 'orgo_async[templates]'``); JSON files do not. With jsonschema
installed (the same extra), ``publish`` first checks the file against the
schema the server publishes: a malformed file is never sent, and each problem
is printed with its field path (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import TemplateBuildError, TemplateValidationError
from ..protocol.template_schema import has_jsonschema
from ..template_models import BuildStatus, PublishedTemplate, Template
from ._format import cell, fields_text, table, to_json
from ._options import add_json
from ._output import EXIT_API, EXIT_OK, PROG, UsageError, output
from ._runner import run_command
from ._target import target_of

__all__ = ["add_template"]

# How long --follow waits for a build, beyond its log (a build takes about two minutes).
_BUILD_TIMEOUT = 900.0


def add_template(parser: argparse.ArgumentParser) -> None:
    """The ``template`` command group: ``publish``, ``ls``, ``status``."""
    parser.description = "Publish orgo.ai/v1 templates, follow their builds, list them."
    commands = parser.add_subparsers(dest="template_command", metavar="SUBCOMMAND", required=True)
    publish = commands.add_parser("publish", help="publish a template file (YAML or JSON)")
    publish.add_argument("file", metavar="FILE", help="the template document")
    publish.add_argument("--build", action="store_true", help="build it after publishing")
    publish.add_argument(
        "--follow", action="store_true", help="with --build: print the build log live"
    )
    publish.add_argument("--force", action="store_true", help="overwrite the version in place")
    add_json(publish, "print a JSON object")
    publish.set_defaults(handler=_run_publish)
    listing = commands.add_parser("ls", help="list your templates")
    listing.add_argument("--namespace", default=None, help="only this namespace")
    add_json(listing, "print a JSON array")
    listing.set_defaults(handler=_run_ls)
    status = commands.add_parser("status", help="a template version's build status")
    status.add_argument("ref", metavar="REF", help="namespace/name@version")
    add_json(status, "print a JSON object")
    status.set_defaults(handler=_run_status)


def _status_fields(status: BuildStatus) -> dict[str, Any]:
    return {
        "ref": status.ref,
        "status": status.status,
        "digest": status.digest,
        "reused": status.reused,
        "build_time_ms": status.build_time_ms,
        "error": status.error,
    }


def _run_publish(args: argparse.Namespace) -> int:
    if args.follow and not args.build:
        raise UsageError(f"{PROG} template publish: error: --follow goes with --build")

    async def run() -> tuple[PublishedTemplate, BuildStatus | None]:
        async with target_of(args) as target:
            templates = target.orgo.templates
            try:
                published = await templates.publish(
                    args.file, force=args.force, check_locally=has_jsonschema()
                )
            except TemplateValidationError as exc:
                raise UsageError(_problems_text(args.file, exc)) from None
            if not args.json:
                output(f"published {published.ref}  {published.digest or ''}".rstrip())
            if not args.build:
                return published, None
            status = await templates.build(published.ref)
            if args.follow and not status.done:
                async for event in templates.build_logs(published.ref):
                    if not args.json:
                        output(f"{(event.phase or '-'):<9} {event.line}")
            try:
                status = await templates.wait_built(published.ref, timeout=_BUILD_TIMEOUT)
            except TemplateBuildError:
                status = await templates.build_status(published.ref)
            return published, status

    published, status = run_command(run())
    if args.json:
        answer: dict[str, Any] = {"ref": published.ref, "digest": published.digest}
        if status is not None:
            answer["build"] = _status_fields(status)
        output(to_json(answer))
    elif status is not None:
        output(f"build {status.status}" + (f": {status.error}" if status.error else ""))
    return EXIT_OK if status is None or status.status == "ready" else EXIT_API


def _problems_text(file: str, exc: TemplateValidationError) -> str:
    lines = [f"{PROG} template publish: error: {file} does not fit the template schema:"]
    for problem in exc.problems:
        hint = problem.get("hint")
        lines.append(f"  {problem.get('message')}" + (f" ({hint})" if hint else ""))
    return "\n".join(lines)


def _run_ls(args: argparse.Namespace) -> int:
    async def run() -> list[Template]:
        async with target_of(args) as target:
            return await target.orgo.templates.list(args.namespace)

    templates = run_command(run())
    if args.json:
        output(to_json([{"ref": t.ref, "digest": t.digest} for t in templates]))
    elif not templates:
        output("no templates")
    else:
        output(table(["REF", "DIGEST"], [[t.ref, cell((t.digest or "")[:12])] for t in templates]))
    return EXIT_OK


def _run_status(args: argparse.Namespace) -> int:
    async def run() -> BuildStatus:
        async with target_of(args) as target:
            return await target.orgo.templates.build_status(args.ref)

    found = _status_fields(run_command(run()))
    output(fields_text(found, as_json=args.json))
    return EXIT_OK
