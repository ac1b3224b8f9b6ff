"""What every JSON route shares: a hostile body is a 400 in Orgo's error shape, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from ..rest import Api, Pc

DEEP = ("[" * 100_000 + "]" * 100_000, '{"name":' + "[" * 100_000 + "]" * 100_000 + "}")


@pytest.mark.parametrize("body", DEEP, ids=["array", "in-a-field"])
async def test_deeply_nested_json_is_a_400_on_every_json_route(
    api: Api, ws: dict[str, Any], pc: Pc, body: str
) -> None:
    routes = [
        ("POST", "/api/workspaces"),
        ("POST", "/api/computers"),
        ("PATCH", f"/api/computers/{pc.id}/resize"),
        ("PATCH", f"/api/computers/{pc.id}/auto-stop"),
        ("POST", pc.path("platform", "click")),
        ("POST", pc.path("proxy", "type")),
        ("POST", "/api/files/export"),
    ]
    for method, path in routes:
        reply = await api.call(method, path, data=body)
        assert reply.status == 400, (path, reply.body)
        assert reply.body["code"] == "invalid_json"
        assert "nested deeper than 64 levels" in reply.body["error"]
        assert reply.body["request_id"].startswith("req_")
    assert 500 not in api.emu.counters.responses_by_status


async def test_nesting_within_the_limit_reaches_the_field_checks(api: Api) -> None:
    body = '{"name":' + "[" * 63 + "]" * 63 + "}"
    reply = await api.call("POST", "/api/workspaces", data=body)
    assert (reply.status, reply.body["code"]) == (400, "name_required")
