"""What the commands act on: the workspace each listed computer belongs to."""

from __future__ import annotations

from orgo_async.cli._target import _placed
from orgo_async.models import Computer, Workspace


def test_a_listed_computer_takes_its_workspace_where_the_api_left_it_out() -> None:
    workspace = Workspace(id="ws-1", name="fleet")
    bare = _placed(Computer(id="c-1", vnc_password="secret"), workspace)
    assert (bare.workspace_id, bare.project_name, bare.vnc_password) == ("ws-1", "fleet", "secret")
    told = _placed(Computer(id="c-2", workspace_id="ws-9", project_name="other"), workspace)
    assert (told.workspace_id, told.project_name) == ("ws-9", "other")
    nameless = _placed(Computer(id="c-3"), Workspace(id="ws-2"))
    assert (nameless.workspace_id, nameless.project_name) == ("ws-2", None)
