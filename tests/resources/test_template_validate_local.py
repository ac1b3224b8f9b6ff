"""``orgo.templates.validate_local``: jsonschema against the schema the server publishes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from orgo_async import Orgo, TemplateValidationError
from orgo_async.emulator import Emulator
from orgo_async.emulator.templates import template_schema

SCHEMA_ROUTE = "GET /api/template-schema"


def malformed() -> dict[str, Any]:
    """A wrong type, an unknown field, a missing required field and a bad enum value."""
    return {
        "api_version": "orgo.ai/v1",
        "template": {"name": "broken"},
        "hardware": {"cpu": 2, "ram_gb": 3},
        "build": {"run": "echo not a list"},
        "files": [{"to": "/opt/a", "inline": "a", "colour": "red"}],
    }


def good() -> dict[str, Any]:
    return {"api_version": "orgo.ai/v1", "template": {"name": "fine", "version": "1.0.0"}}


def requests(emulator: Emulator) -> int:
    return sum(emulator.counters.requests.values())


async def test_local_and_server_validation_find_the_same_problems(orgo: Orgo) -> None:
    with pytest.raises(TemplateValidationError) as raised:
        await orgo.templates.validate_local(malformed())
    local = {(p["field"], p["code"]) for p in raised.value.problems}
    assert local == {
        ("template.version", "required"),
        ("hardware.ram_gb", "invalid_enum"),
        ("build.run", "invalid_type"),
        ("files[0].colour", "unknown_field"),
    }
    assert isinstance(raised.value, ValueError)
    assert str(raised.value).startswith("template document: build.run must be an array")
    assert "(and 3 more problems)" in str(raised.value)
    server = await orgo.templates.validate(malformed())
    assert {(e.field, e.code) for e in server.errors} == local
    assert await orgo.templates.validate_local(good()) == good()


async def test_the_schema_is_fetched_once_per_session(orgo: Orgo, emulator: Emulator) -> None:
    for _ in range(3):
        await orgo.templates.validate_local(good())
        with pytest.raises(TemplateValidationError):
            await orgo.templates.validate_local({"api_version": "orgo.ai/v1", "name": "x@1"})
    assert emulator.counters.requests.get(SCHEMA_ROUTE) == 1


async def test_a_given_schema_needs_no_server_at_all(orgo: Orgo, emulator: Emulator) -> None:
    before = requests(emulator)
    schema = template_schema()
    with pytest.raises(TemplateValidationError) as raised:
        await orgo.templates.validate_local(
            "api_version: orgo.ai/v1\nname: bad name@1.0.0\n", schema=schema
        )
    assert [p["field"] for p in raised.value.problems] == ["name"]
    assert "name must be NAME@VERSION" in str(raised.value)
    assert await orgo.templates.validate_local(good(), schema=schema) == good()
    assert requests(emulator) == before


async def test_publish_checked_locally_sends_nothing_when_malformed(
    orgo: Orgo, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("api_version: orgo.ai/v1\ntemplate:\n  name: local\n  version: 1.0.0\n"
                    "hardware:\n  cpu: 3\n")  # fmt: skip
    with pytest.raises(TemplateValidationError, match=r"hardware\.cpu must be one of"):
        await orgo.templates.publish(path, check_locally=True)
    assert emulator.counters.requests.get("POST /api/templates", 0) == 0
    published = await orgo.templates.publish(good(), check_locally=True)
    assert published.ref == "default/fine@1.0.0"
    assert emulator.counters.requests["POST /api/templates"] == 1


async def test_without_jsonschema_local_validation_says_how_to_install_it(
    orgo: Orgo, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    before = requests(emulator)
    with pytest.raises(ImportError, match=r"pip install 'orgo_async\[templates\]'"):
        await orgo.templates.validate_local(good())
    with pytest.raises(ImportError, match="jsonschema"):
        await orgo.templates.publish(good(), check_locally=True)
    assert requests(emulator) == before  # not even the schema was fetched
