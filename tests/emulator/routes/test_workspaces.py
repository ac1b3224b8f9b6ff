"""The workspace routes, and the deprecated ``/api/projects`` alias."""

from __future__ import annotations

from urllib.parse import quote

from ..rest import ISO_Z, UUID, Api


async def test_workspace_crud(api: Api) -> None:
    created = await api.call(
        "POST", "/api/workspaces", {"name": "prod", "icon_url": "https://x/i.png"}
    )
    assert created.status == 201
    ws = created.body
    assert UUID.match(ws["id"]) and UUID.match(ws["user_id"])
    assert ws["name"] == "prod" and ws["status"] == "active"
    assert ws["icon_url"] == "https://x/i.png" and ws["desktops"] == []
    assert ISO_Z.match(ws["created_at"]) and ISO_Z.match(ws["updated_at"])

    duplicate = await api.call("POST", "/api/workspaces", {"name": "prod"})
    assert (duplicate.status, duplicate.body["code"]) == (400, "name_exists")
    for body in ({}, {"name": ""}, {"name": 3}):
        reply = await api.call("POST", "/api/workspaces", body)
        assert (reply.status, reply.body["code"]) == (400, "name_required")
    bad_status = await api.call("POST", "/api/workspaces", {"name": "x", "status": "paused"})
    assert (bad_status.status, bad_status.body["code"]) == (400, "invalid_status")
    bad_json = await api.call("POST", "/api/workspaces", data="{nope")
    assert (bad_json.status, bad_json.body["code"]) == (400, "invalid_json")
    inactive = await api.call("POST", "/api/workspaces", {"name": "idle", "status": "inactive"})
    assert inactive.body["status"] == "inactive"

    computer = await api.computer(ws["id"], "agent")
    one = await api.call("GET", f"/api/workspaces/{ws['id']}")
    assert one.status == 200
    assert [d["id"] for d in one.body["desktops"]] == [computer["id"]]
    listing = await api.call("GET", "/api/workspaces")
    assert sorted(w["name"] for w in listing.body["workspaces"]) == ["idle", "prod"]
    item = next(w for w in listing.body["workspaces"] if w["id"] == ws["id"])
    assert item["desktops"][0]["id"] == computer["id"]

    deleted = await api.call("DELETE", f"/api/workspaces/{ws['id']}")
    assert (deleted.status, deleted.body) == (200, {"success": True})
    gone = await api.call("GET", f"/api/workspaces/{ws['id']}")
    assert (gone.status, gone.body["code"]) == (404, "workspace_not_found")
    assert (await api.call("GET", f"/api/computers/{computer['id']}")).status == 404
    assert api.emu.counters.live == 0


async def test_projects_alias(api: Api) -> None:
    created = await api.call("POST", "/api/projects", {"name": "my team/α"})
    assert created.status == 201
    pid = created.body["id"]
    assert (await api.call("GET", f"/api/projects/{pid}")).body["name"] == "my team/α"
    # Each list route answers in the shape its clients expect: the legacy one under "projects".
    listed = (await api.call("GET", "/api/projects")).body
    assert list(listed) == ["projects"] and [p["id"] for p in listed["projects"]] == [pid]
    assert list((await api.call("GET", "/api/workspaces")).body) == ["workspaces"]

    by_name = await api.call("GET", "/api/projects/by-name/" + quote("my team/α", safe=""))
    assert by_name.status == 200 and by_name.body["project"]["id"] == pid
    missing = await api.call("GET", "/api/projects/by-name/nobody")
    assert (missing.status, missing.body["code"]) == (404, "workspace_not_found")

    not_allowed = await api.call("DELETE", f"/api/projects/{pid}")
    assert (not_allowed.status, not_allowed.body["code"]) == (405, "method_not_allowed")
    deleted = await api.call("POST", f"/api/projects/{pid}/delete")
    assert (deleted.status, deleted.body) == (200, {"success": True})
    assert (await api.call("GET", f"/api/projects/{pid}")).status == 404
