"""The converter absorbs Orgo's drift; the models stay frozen and keep secrets out of repr."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import pytest

from orgo_async import (
    Computer,
    ComputerFields,
    ComputerSpec,
    ComputerStatus,
    LaunchTiming,
    ReconnectPolicy,
    ResponseValidationError,
    RetryPolicy,
    Screenshot,
    VncCredentials,
    Workspace,
)
from orgo_async._converter import structure, structure_list, unstructure_spec

# The founding document's example answer, verbatim.
FOUNDING = {
    "id": "a3bb189e-8bf9-3888-9912-ace4e6543002",
    "name": "agent-1",
    "workspace_id": "550e8400-e29b-41d4-a716-446655440000",
    "os": "linux",
    "ram": 4,
    "cpu": 1,
    "resolution": "1280x720x24",
    "status": "running",
    "url": "https://orgo.ai/workspaces/550e8400/computers/a3bb189e",
    "created_at": "2026-04-07T10:35:00Z",
    "instance_id": "a3881618",
    "hostname": "www.orgo.ai",
    "connection_url": "https://www.orgo.ai/desktops/a3881618",
    "vnc_password": "a06db12a8683df96",
}


def test_founding_document_example_structures() -> None:
    c = structure(FOUNDING, Computer)
    assert c.id == FOUNDING["id"]
    assert c.status is ComputerStatus.RUNNING
    assert c.instance_id == "a3881618"
    assert c.vnc_password == "a06db12a8683df96"
    assert c.created_at is not None and c.created_at.year == 2026
    assert "a06db12a8683df96" not in repr(c)


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        ({"instance_id": "inst1", "fly_instance_id": "fly1"}, "inst1"),
        ({"fly_instance_id": "fly1"}, "fly1"),
        ({"instance_id": None, "fly_instance_id": "fly1"}, "fly1"),
        ({"connection_url": "https://www.orgo.ai/desktops/tail9/"}, "tail9"),
        ({}, None),
    ],
)
def test_instance_id_fallbacks(drift: dict[str, object], expected: str | None) -> None:
    c = structure({"id": "c1", **drift}, Computer)
    assert c.instance_id == expected


def test_unknown_fields_are_ignored_and_unknown_status_kept() -> None:
    c = structure({"id": "c1", "status": "hibernating", "brand_new_field": {"x": 1}}, Computer)
    assert c.status == "hibernating"
    assert not c.status.known
    assert not c.status.is_failed
    assert ComputerStatus("frozen").known
    assert ComputerStatus("error").is_failed


@pytest.mark.parametrize("key", ["workspaces", "projects"])
def test_both_list_shapes(key: str) -> None:
    body = {key: [{"id": "w1", "name": "n", "desktops": [{"id": "c1", "fly_instance_id": "f"}]}]}
    [ws] = structure_list(body, Workspace, "workspaces", "projects")
    assert ws.computers[0].instance_id == "f"


def test_bad_answers_raise_response_validation_error() -> None:
    with pytest.raises(ResponseValidationError, match="Computer"):
        structure({"name": "no id"}, Computer)
    with pytest.raises(ResponseValidationError):
        structure({"id": "c", "ram": "lots"}, Computer)
    with pytest.raises(ResponseValidationError, match="no workspaces or projects"):
        structure_list({"items": []}, Workspace, "workspaces", "projects")


def test_models_are_frozen() -> None:
    c = structure(FOUNDING, Computer)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        c.name = "other"  # type: ignore[misc]


def test_credentials_repr_hides_both_tokens() -> None:
    creds = VncCredentials(password="pw-secret-1", desktop_api_token="tok-secret-2")
    assert "secret" not in repr(creds)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ram", 5, "ram must be one of 4, 8, 16, 32, 64"),
        ("ram", True, "ram must be one of"),
        ("cpu", 3, "cpu must be one of 1, 2, 4, 8, 16"),
        ("disk_size_gb", 0, "disk_size_gb must be a whole number >= 1"),
        ("resolution", "big", "resolution must be WIDTHxHEIGHTxDEPTH"),
        ("resolution", "1280x720x23", "resolution must be"),
        ("name", "", "name must be a non-empty string"),
        ("name", "   ", "name must be a non-empty string"),
        ("auto_stop_minutes", -1, "auto_stop_minutes must be a whole number >= 0"),
        ("os", "windows", "os must be 'linux'"),
    ],
)
def test_spec_validation_names_the_field(field: str, value: object, message: str) -> None:
    fields: dict[str, object] = {"name": "a", "workspace_id": "w", field: value}
    with pytest.raises(ValueError, match=message):
        ComputerSpec(**fields)  # type: ignore[arg-type]


def test_spec_body_leaves_defaults_to_the_api() -> None:
    body = unstructure_spec(ComputerSpec(name="a", workspace_id="w", ram=8, auto_stop_minutes=0))
    assert body == {
        "name": "a",
        "workspace_id": "w",
        "os": "linux",
        "ram": 8,
        "auto_stop_minutes": 0,
    }


def test_computer_fields_are_the_specs_optional_fields() -> None:
    # One declaration of what a computer can be created with: create, launch and the
    # fleet take ComputerFields as keywords; ComputerSpec checks them. Same set, always.
    spec_fields = {f.name for f in attrs.fields(ComputerSpec)} - {"name", "workspace_id"}
    assert set(ComputerFields.__annotations__) == spec_fields
    assert not ComputerFields.__required_keys__


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "n" * 256, "name must be at most 255 characters"),
        ("name", "a\0b", "name must not contain NUL"),
        ("workspace_id", "..", "workspace_id must be an identifier"),
        ("template_ref", 7, "template_ref must be a non-empty string"),
        ("disk_size_gb", 2.0, "disk_size_gb must be a whole number"),
    ],
)
def test_spec_refuses_what_the_server_would_misread(
    field: str, value: object, message: str
) -> None:
    fields: dict[str, object] = {"name": "a", "workspace_id": "w", field: value}
    with pytest.raises(ValueError, match=message):
        ComputerSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: ComputerSpec(name="a", workspace_id="w", resolution="9000x100x24"),
            "sides up to 8192",
        ),
        (lambda: RetryPolicy(backoff_base=math.inf), "backoff_base must be a positive number"),
        (lambda: RetryPolicy(backoff_max=-1), "backoff_max must be a positive number"),
        (lambda: ReconnectPolicy(max_attempts=0), r"use ReconnectPolicy\.off\(\)"),
        (lambda: ReconnectPolicy(backoff_base=math.nan), "backoff_base must be a number"),
    ],
)
def test_settings_refuse_what_would_misbehave_later(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_launch_timing_shows_durations_and_screenshots_save(tmp_path: Path) -> None:
    timing = LaunchTiming(
        request_sent=100.0,
        create_answered=100.02,
        first_probe=100.25,
        ready_detected=100.33,
        probes=5,
    )
    assert repr(timing) == (
        "<LaunchTiming create=20.0ms ready=310.0ms total=330.0ms probes=5 retries=0>"
    )
    shot = Screenshot(data=b"\\x89PNG fake", width=1, height=1)
    assert shot.save(tmp_path / "s.png") == tmp_path / "s.png"
    assert (tmp_path / "s.png").read_bytes() == shot.data
