"""The emulator validates template documents with jsonschema against the schema it publishes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from orgo_async.emulator import templates

from ..rest import Api


async def req(api: Api, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    reply = await api.call(method, "/api" + path, body)
    return reply.status, reply.body


def full_document() -> dict[str, Any]:
    """One document using every section the schema guide documents."""
    return {
        "api_version": "orgo.ai/v1",
        "template": {"name": "full-demo", "version": "1.2.3-rc.1", "description": "all of it"},
        "hardware": {"cpu": 2, "ram_gb": 4, "resolution": "1280x800x24", "audio": True},
        "secrets": [{"name": "anthropic_api_key", "description": "key", "optional": True}],
        "vars": {"headline": "hello", "port": 8000},
        "env": {"NODE_ENV": "production", "ANTHROPIC_API_KEY": {"secret": "anthropic_api_key"}},
        "build": {"apt": ["ffmpeg"], "pip": ["httpx"], "npm": ["pnpm"], "run": ["echo hi"]},
        "files": [
            {"to": "/opt/hello.txt", "inline": "hello world"},
            {"to": "/opt/run.sh", "mode": "0755", "inline": "#!/bin/bash\necho hi"},
            {"to": "~/bg.png", "from": "https://example.com/bg.png", "when": "runtime"},
            {"to": "/root/.config/app.json", "from": "secret://anthropic_api_key"},
        ],
        "apps": [{"name": "site", "port": 8000}],
        "triggers": [
            {
                "name": "heartbeat",
                "source": {"type": "cron", "schedule": "* * * * *"},
                "actions": [{"type": "command", "run": "echo beat"}],
            }
        ],
        "terminal": [{"name": "main"}],
        "hooks": {"on_first_boot": "echo ready", "on_resume": "echo again"},
        "telemetry": {},
        "egress_policy": {},
        "streaming": [],
    }


def malformed() -> dict[str, Any]:
    """A wrong type, an unknown field, a missing required field and a bad enum value."""
    return {
        "api_version": "orgo.ai/v1",
        "template": {"name": "broken"},  # no version
        "hardware": {"cpu": 2, "ram_gb": 3},  # not one of Orgo's sizes
        "build": {"run": "echo not a list"},
        "files": [{"to": "/opt/a", "inline": "a", "colour": "red"}],
    }


MALFORMED_PROBLEMS = {
    ("template.version", "required"),
    ("hardware.ram_gb", "invalid_enum"),
    ("build.run", "invalid_type"),
    ("files[0].colour", "unknown_field"),
}


def fields(problems: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(p["field"], p["code"]) for p in problems}


async def test_the_published_schema_is_the_package_file_and_a_valid_2020_12_schema(
    api: Api,
) -> None:
    status, schema = await req(api, "GET", "/template-schema")
    assert status == 200
    shipped = resources.files("orgo_async.emulator").joinpath("template_schema.json")
    assert schema == json.loads(shipped.read_text("utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) >= {"api_version", "template", "hardware", "build", "files"}
    assert Draft202012Validator(schema).is_valid(full_document())


async def test_a_document_using_every_section_is_valid_and_normalized(api: Api) -> None:
    status, body = await req(api, "POST", "/templates/validate", full_document())
    assert status == 200 and body["ok"] is True, body
    assert "note" not in body
    sugar = {"api_version": "orgo.ai/v1", "name": "tiny@0.1.0"}
    status, body = await req(api, "POST", "/templates/validate", sugar)
    assert body["template"] == {"api_version": "orgo.ai/v1",
                                "template": {"name": "tiny", "version": "0.1.0"}}  # fmt: skip


async def test_malformed_documents_get_a_problem_per_field_path(api: Api) -> None:
    status, body = await req(api, "POST", "/templates/validate", malformed())
    assert status == 200 and body["ok"] is False
    assert fields(body["errors"]) == MALFORMED_PROBLEMS
    by_field = {p["field"]: p for p in body["errors"]}
    ram = by_field["hardware.ram_gb"]
    assert ram["message"] == "hardware.ram_gb must be one of 4, 8, 16, 32, 64"
    assert by_field["build.run"]["message"] == "build.run must be an array"
    assert by_field["files[0].colour"]["hint"] == "see GET /template-schema"
    assert all(set(p) == {"field", "code", "message", "hint"} for p in body["errors"])
    status, body = await req(api, "POST", "/templates", malformed())
    assert status == 422 and fields(body["errors"]) == MALFORMED_PROBLEMS


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"hardware": "big"}, "hardware", "invalid_type"),
        ({"api_version": "orgo.ai/v2"}, "api_version", "invalid_value"),
        ({"template": {"name": "-bad-", "version": "1.0.0"}}, "template.name", "invalid_format"),
        ({"env": {"lower_case": "x"}}, "env.lower_case", "invalid_format"),
        ({"env": {"KEY": {"secret": 3}}}, "env.KEY", "invalid_value"),
        ({"files": [{"to": "/opt/x", "inline": "a", "from": "https://e.com/x"}]}, "files[0]",
         "invalid_value"),
        ({"files": [{"to": "/proc/x", "inline": "a"}]}, "files[0].to", "invalid_format"),
        ({"files": [{"to": "/opt/../etc/x", "inline": "a"}]}, "files[0].to", "invalid_format"),
        ({"build": {"run": ["true"] * 65}}, "build.run", "too_long"),
        ({"triggers": [{"name": "t", "source": {"type": "sometimes"},
                        "actions": [{"type": "log"}]}]},
         "triggers[0].source.type", "invalid_enum"),
        ({"name": "again@1.0.0"}, "template", "invalid_value"),
        ({"env": {"KEY": {"secret": "undeclared"}}}, "env.KEY.secret", "undeclared_secret"),
        ({"files": [{"to": "/opt/k", "from": "secret://nope"}]}, "files[0].from",
         "undeclared_secret"),
    ],
)  # fmt: skip
async def test_each_rule_names_its_field(
    api: Api, change: dict[str, Any], field: str, code: str
) -> None:
    document = {"api_version": "orgo.ai/v1", "template": {"name": "one", "version": "1.0.0"}}
    status, body = await req(api, "POST", "/templates/validate", document | change)
    assert body["ok"] is False
    assert (field, code) in fields(body["errors"]), body["errors"]
    problem = next(p for p in body["errors"] if p["field"] == field)
    assert field in problem["message"]


async def test_a_document_that_is_not_an_object_gets_one_problem(api: Api) -> None:
    status, body = await req(api, "POST", "/templates/validate", [1, 2])
    assert body["ok"] is False and fields(body["errors"]) == {("", "invalid_type")}
    assert body["errors"][0]["message"] == "the document must be an object"


@pytest.fixture
def without_jsonschema(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if jsonschema were not installed (``import jsonschema`` raises ImportError)."""
    templates._validator.cache_clear()
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    yield
    templates._validator.cache_clear()


@pytest.mark.usefixtures("without_jsonschema")
async def test_without_jsonschema_the_structure_is_still_checked_with_a_note(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="orgo_async.emulator.templates"):
        status, body = await req(api, "POST", "/templates/validate", malformed())
        assert status == 200 and body["ok"] is False
        assert fields(body["errors"]) == MALFORMED_PROBLEMS
        assert "jsonschema is not installed" in body["note"]
        # Patterns are jsonschema's part: without it a bad name passes the structure.
        loose = {"api_version": "orgo.ai/v1", "template": {"name": "Not Kebab", "version": "1"}}
        status, body = await req(api, "POST", "/templates/validate", loose)
        assert body["ok"] is True and "note" in body
        status, body = await req(api, "POST", "/templates", {"api_version": "orgo.ai/v1"})
        assert status == 422 and fields(body["errors"]) == {("template", "required")}
        status, body = await req(api, "POST", "/templates", full_document())
        assert status == 200 and body["ref"] == "default/full-demo@1.2.3-rc.1"
    notes = [r for r in caplog.records if "jsonschema is not installed" in r.getMessage()]
    assert len(notes) == 1  # logged once, not per request
