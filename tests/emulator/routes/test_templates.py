"""The emulator's template routes, over raw HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp

from orgo_async.emulator import Emulator

from ..rest import Api


def _doc(name: str = "demo", run: list[str] | None = None) -> dict[str, Any]:
    return {
        "api_version": "orgo.ai/v1",
        "template": {"name": name, "version": "1.0.0"},
        "build": {"run": run or []},
    }


async def req(api: Api, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    reply = await api.call(method, "/api" + path, body)
    return reply.status, reply.body


async def _sse(emu: Emulator, path: str) -> list[str]:
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(emu.base_url + path, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            return [line.decode() async for line in resp.content]


async def test_publish_build_status_and_events(api: Api, emu: Emulator) -> None:
    emu.config.template_build_seconds = 0.1
    status, body = await req(api, "POST", "/templates?auto_build=true", _doc())
    assert (
        status == 200 and body["ref"] == "default/demo@1.0.0" and body["auto_build"] == "building"
    )
    lines = await _sse(emu, "/templates/default/demo/1.0.0/build/events")
    data = [line for line in lines if line.startswith("data: ")]
    assert '"phase":"ready"' in data[-1]
    assert [line for line in lines if line.startswith("id: ")][0] == "id: 0\n"
    status, body = await req(api, "GET", "/templates/default/demo/1.0.0/build")
    assert status == 200 and body["status"] == "ready" and body["build_time_ms"] >= 0


async def test_validation_errors_answer_422(api: Api) -> None:
    bad = {"api_version": "v0", "template": {"name": "x", "version": "1.0.0"}, "extra": 1}
    status, body = await req(api, "POST", "/templates", bad)
    assert status == 422
    assert {(e["field"], e["code"]) for e in body["errors"]} == {
        ("api_version", "invalid_value"),
        ("extra", "unknown_field"),
    }
    assert all({"field", "code", "message", "hint"} <= set(e) for e in body["errors"])
    status, body = await req(api, "POST", "/templates/validate", bad)
    assert status == 200 and body["ok"] is False and len(body["errors"]) == 2


async def test_cancel_idle_404_delete_and_create_checks(
    api: Api, emu: Emulator, ws: dict[str, Any]
) -> None:
    emu.config.template_build_seconds = 30
    await req(api, "POST", "/templates", _doc())
    path = "/templates/default/demo/1.0.0"
    assert await req(api, "DELETE", path + "/build") == (404, {"status": "idle"})
    create = {"workspace_id": ws["id"], "name": "pc", "template_ref": "default/demo@1.0.0"}
    status, body = await req(api, "POST", "/computers", create)
    assert status == 409 and body["code"] == "template_not_built"
    assert (await req(api, "POST", path + "/build"))[0] == 202
    assert await req(api, "DELETE", path + "/build") == (202, {"status": "cancelling"})
    status, body = await req(api, "GET", path + "/build")
    assert body["status"] == "failed" and body["error"] == "build cancelled"
    status, body = await req(
        api, "POST", "/computers", create | {"template_ref": "default/none@1.0.0"}
    )
    assert status == 404 and body["code"] == "template_not_found"
    assert await req(api, "DELETE", path) == (200, {"deleted": True})
    assert (await req(api, "GET", path))[0] == 404


async def test_curated_templates_are_built(api: Api, ws: dict[str, Any]) -> None:
    status, body = await req(api, "GET", "/templates/global")
    assert "system/claude-code@1.0.0" in {t["ref"] for t in body["templates"]}
    assert (await req(api, "GET", "/templates"))[1] == {"templates": []}
    create = {"workspace_id": ws["id"], "name": "cc", "template_ref": "system/claude-code@1.0.0"}
    assert (await req(api, "POST", "/computers", create))[0] == 201


async def test_test_run_boots_a_preview_and_delete_ends_it(api: Api, emu: Emulator) -> None:
    emu.config.template_build_seconds = 30
    assert (await req(api, "POST", "/templates/run", {}))[0] == 400  # no ref
    status, body = await req(api, "POST", "/templates/run", {"ref": "default/none@1.0.0"})
    assert status == 404 and body["code"] == "template_not_found"
    await req(api, "POST", "/templates", _doc())
    status, body = await req(api, "POST", "/templates/run", {"ref": "default/demo@1.0.0"})
    assert status == 409 and body["code"] == "template_not_built"
    status, run = await req(api, "POST", "/templates/run", {"ref": "system/claude-code@1.0.0"})
    assert status == 200
    assert {"id", "desktop_id", "status", "vnc_password", "public_host", "resolution"} <= set(run)
    status, computer = await req(api, "GET", f"/computers/{run['desktop_id']}")
    assert status == 200 and computer["instance_id"] == run["id"]
    assert computer["vnc_password"] == run["vnc_password"]
    assert computer["template_ref"] == "system/claude-code@1.0.0"
    assert (await req(api, "DELETE", "/templates/run"))[0] == 400  # no id
    gone = f"/templates/run?id={run['desktop_id']}"
    assert await req(api, "DELETE", gone) == (200, {"deleted": True})
    assert (await req(api, "GET", f"/computers/{run['desktop_id']}"))[0] == 404
    status, body = await req(api, "DELETE", gone)
    assert status == 404 and body["code"] == "run_not_found"


async def test_deleting_a_preview_computer_forgets_the_run(api: Api, emu: Emulator) -> None:
    status, run = await req(api, "POST", "/templates/run", {"ref": "system/openclaw@1.0.0"})
    assert status == 200 and run["desktop_id"] in emu.template_runs.runs
    assert (await req(api, "DELETE", f"/computers/{run['desktop_id']}"))[0] == 200
    assert emu.template_runs.runs == {}


async def test_global_versions_are_the_curated_ones_only(api: Api) -> None:
    status, body = await req(api, "GET", "/templates/global/system/hermes-agent")
    assert status == 200 and [v["ref"] for v in body["versions"]] == ["system/hermes-agent@1.0.0"]
    await req(api, "POST", "/templates", _doc())
    assert (await req(api, "GET", "/templates/default/demo"))[0] == 200
    status, body = await req(api, "GET", "/templates/global/default/demo")
    assert status == 404 and body["code"] == "template_not_found"
