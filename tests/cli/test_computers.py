"""``orgo-async ls``, ``status`` and ``rm``."""

from __future__ import annotations

import json

import pytest

from .conftest import KEY, Server, cli, launch_kept, ok, one_error_line


def test_rm_prefix_reaps_the_leftovers(server: Server) -> None:
    crashed = launch_kept(server, 3, "crash")
    other = launch_kept(server, 1, "other")
    assert server.live() == 4
    done = ok(cli("rm", "--prefix", "crash", server=server))
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("deleted ") for line in lines)
    assert sorted(line.split()[1] for line in lines) == sorted(crashed)
    assert server.live() == 1
    again = json.loads(ok(cli("rm", "--prefix", "crash", "--json", server=server)).stdout)
    assert again == {"deleted": []}
    ok(cli("rm", *other, server=server))
    assert server.live() == 0


def test_ls_and_status_as_json_and_tables(server: Server) -> None:
    assert ok(cli("ls", server=server)).stdout.strip() == "no computers"
    ids = launch_kept(server, 2, "look")

    listed = json.loads(ok(cli("ls", "--json", server=server)).stdout)
    assert sorted(c["id"] for c in listed) == sorted(ids)
    assert all(c["status"] == "running" and "vnc_password" not in c for c in listed)

    table = ok(cli("ls", "--workspace", "orgo-async", server=server)).stdout.splitlines()
    header = ["ID", "NAME", "WORKSPACE", "STATUS", "INSTANCE", "RESOLUTION", "CREATED"]
    assert table[0].split() == header
    assert len(table) == 3
    assert {line.split()[0] for line in table[1:]} == set(ids)
    assert all(" running " in line for line in table[1:])

    status = json.loads(ok(cli("status", ids[0], "--json", server=server)).stdout)
    assert status["id"] == ids[0] and status["status"] == "running"
    assert "vnc_password" not in status
    text = ok(cli("status", ids[0], server=server)).stdout
    fields = dict(line.split(None, 1) for line in text.splitlines() if len(line.split()) > 1)
    assert fields["id"] == ids[0] and fields["status"] == "running"
    assert "vnc_password" not in text

    password = server.get(f"/api/computers/{ids[0]}")["vnc_password"]
    assert password
    verbose = ok(cli("-v", "status", ids[0], server=server))
    for shown in (text, json.dumps(listed), json.dumps(status), verbose.stdout, verbose.stderr):
        assert password not in shown and KEY not in shown

    ok(cli("rm", *ids, server=server))
    assert server.live() == 0


def test_emulator_ls_and_status_new_work_offline() -> None:
    assert ok(cli("--emulator", "ls")).stdout.strip() == "no computers"
    status = json.loads(ok(cli("--emulator", "status", "new", "--json")).stdout)
    assert status["status"] == "running" and status["name"].startswith("orgo-async-new-")


def test_new_computers_are_deleted_when_the_command_ends(server: Server) -> None:
    status = json.loads(ok(cli("status", "new", "--json", server=server)).stdout)
    assert status["status"] == "running"
    assert server.live() == 0
    assert server.counters()["creates"] == 1


def test_rm_prefix_dry_run_lists_and_deletes_nothing(server: Server) -> None:
    doomed = launch_kept(server, 2, "dry")
    launch_kept(server, 1, "dryer")  # named dryer-..., not dry-...
    done = ok(cli("rm", "--prefix", "dry", "--dry-run", server=server))
    lines = done.stdout.strip().splitlines()
    assert sorted(line.split()[:3] for line in lines) == [
        ["would", "delete", i] for i in sorted(doomed)
    ]
    assert all(line.split()[3].startswith("dry-") for line in lines)
    listed = json.loads(
        ok(cli("rm", "--prefix", "dry", "--dry-run", "--json", server=server)).stdout
    )
    assert sorted(c["id"] for c in listed["would_delete"]) == sorted(doomed)
    assert server.live() == 3 and server.counters()["deletes"] == 0
    nothing = ok(
        cli("rm", "--prefix", "none", "--dry-run", "--workspace", "orgo-async", server=server)
    )
    assert nothing.stdout == "nothing to delete\n"
    line = one_error_line(cli("rm", *doomed, "--dry-run", server=server), 2)
    assert "--dry-run goes with --prefix" in line
    assert server.live() == 3


def test_ls_shows_each_computers_workspace(server: Server) -> None:
    [first] = launch_kept(server, 1, "here")
    done = ok(
        cli("launch", "--count", "1", "--keep", "--json", "--workspace", "fleet-b", server=server)
    )
    second = json.loads(done.stdout)["computers"][0]["id"]
    table = ok(cli("ls", server=server)).stdout.splitlines()
    workspace = table[0].split().index("WORKSPACE")
    rows = {line.split()[0]: line.split()[workspace] for line in table[1:]}
    assert rows == {first: "orgo-async", second: "fleet-b"}
    only = ok(cli("ls", "--workspace", "fleet-b", server=server)).stdout.splitlines()
    assert [line.split()[workspace] for line in only[1:]] == ["fleet-b"]


RECIPE = (
    "to keep one running: 'orgo-async emulator --port 8000' in another terminal, then "
    "'export ORGO_BASE_URL=http://127.0.0.1:8000/api ORGO_API_KEY=sk_emulator'"
)


@pytest.mark.parametrize(
    "args",
    [["ls"], ["status", "new"], ["rm", "--prefix", "gone"], ["rm", "--prefix", "x", "--dry-run"]],
)
def test_ls_status_rm_on_emulator_say_it_lives_for_this_command_only(args: list[str]) -> None:
    done = ok(cli("--emulator", *args))
    line = done.stderr.strip()
    assert "\n" not in line, done.stderr
    assert line.startswith(f"orgo-async {args[0]}: --emulator: ")
    assert "an empty emulator that lives only for this command" in line
    assert line.endswith(RECIPE)


def test_ls_on_a_server_says_nothing_more(server: Server) -> None:
    assert ok(cli("ls", server=server)).stderr == ""
