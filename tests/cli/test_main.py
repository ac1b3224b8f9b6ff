"""``orgo-async`` itself: usage errors, exit codes, one error line, secrets kept out of logs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orgo_async._version import __version__

from .conftest import KEY, TIMEOUT, Server, cli, env, ok, one_error_line


def test_a_refused_key_exits_3_on_one_line(server: Server) -> None:
    line = one_error_line(cli("ls", server=server, key="sk_wrong_key_000000"), 3)
    assert "authentication" in line
    assert "sk_wrong_key_000000" not in line


def test_a_missing_key_exits_3_on_one_line(server: Server) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orgo_async", "--base-url", server.base_url, "ls"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env(),
    )
    assert "ORGO_API_KEY" in one_error_line(done, 3)


def test_an_unknown_id_exits_4_on_one_line(server: Server) -> None:
    assert "not found" in one_error_line(cli("status", "no-such-id", server=server), 4)
    assert "not found" in one_error_line(cli("rm", "no-such-id", server=server), 4)
    line = one_error_line(cli("ls", "--workspace", "nowhere", server=server), 4)
    assert "nowhere" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["launch", "--count", "0"], "--count"),
        (["launch"], "--count"),
        (["launch", "--count", "2", "--ram", "3"], "--ram"),
        (["launch", "--count", "2", "--resolution", "big"], "resolution"),
        (["launch", "--count", "2", "--boot-ms", "10"], "--emulator"),
        (["rm"], "--prefix"),
        (["rm", "abc", "--prefix", "p"], "--prefix"),
        (["screenshot", "abc", "-o", "x.png", "--vnc", "--route", "proxy"], "--route"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_on_one_line(server: Server, args: list[str], needle: str) -> None:
    done = cli(*args, server=server)
    assert needle in one_error_line(done, 2)
    assert done.stdout == ""
    assert server.counters()["creates"] == 0


def test_verbose_logs_hide_the_key(server: Server) -> None:
    done = ok(cli("--verbose", "status", "new", "--json", server=server))
    assert "DEBUG" in done.stderr and "GET /api/computers/" in done.stderr
    assert KEY not in done.stderr and KEY not in done.stdout


def test_help_lists_every_command_and_exits_0() -> None:
    done = ok(cli("--help"))
    for command in ("emulator", "launch", "ls", "status", "rm", "terminal", "screenshot", "bash"):
        assert f"\n    {command} " in done.stdout, command
    assert "\n    bench " in done.stdout
    assert "exit codes:" in done.stdout
    sub = ok(cli("screenshot", "--help"))
    assert "--vnc" in sub.stdout and "not available" not in sub.stdout


def test_version_prints_the_package_version_and_exits_0() -> None:
    done = ok(cli("--version"))
    assert done.stdout == f"orgo-async {__version__}\n"
    assert done.stderr == ""
