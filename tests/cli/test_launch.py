"""``orgo-async launch``: a fleet with a report, cleaned up after itself."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from .conftest import (
    KEY,
    TIMEOUT,
    Server,
    cli,
    emulator_child,
    env,
    launch_kept,
    ok,
    one_error_line,
)


def test_emulator_launch_json_is_one_object_with_every_computer_ready() -> None:
    done = ok(cli("--emulator", "launch", "--count", "5", "--json", "--boot-ms", "30"))
    report = json.loads(done.stdout)  # one JSON object and nothing else on stdout
    assert report["count"] == 5 and report["ready"] == 5 and report["failed"] == 0
    assert report["deleted"] == 5 and report["left_behind"] == [] and report["kept"] is False
    assert len(report["computers"]) == 5
    assert {c["name"].split("-")[0] for c in report["computers"]} == {"orgo"}
    for key in ("create_ms", "create_to_ready_ms", "probes_per_computer"):
        figure = report[key]
        assert figure["n"] == 5
        values = [figure[p] for p in ("p50", "p95", "p99", "max")]
        assert values == sorted(values) and values[0] >= 0
    assert report["failures_by_type"] == {}
    assert "\r" not in done.stdout  # no progress line off a terminal


def test_launch_deletes_what_it_launched_and_keep_keeps_it(server: Server) -> None:
    done = ok(cli("launch", "--count", "5", "--concurrency", "2", server=server))
    assert "deleted 5 computer(s)" in done.stdout
    assert "create -> ready ms" in done.stdout and "p99" in done.stdout
    assert "\r" not in done.stdout and "\x1b" not in done.stdout
    assert server.live() == 0
    assert server.counters()["creates"] == 5

    ids = launch_kept(server, 5, "kept")
    assert server.live() == 5
    listed = json.loads(ok(cli("ls", "--json", server=server)).stdout)
    assert sorted(c["id"] for c in listed) == sorted(ids)


def test_launch_options_reach_the_computers(server: Server) -> None:
    args = ["--ram", "8", "--cpu", "2", "--resolution", "800x600x24", "--workspace", "fleet-a"]
    done = ok(
        cli("launch", "--count", "1", "--keep", "--json", "--prefix", "opts", *args, server=server)
    )
    computer_id = json.loads(done.stdout)["computers"][0]["id"]
    status = json.loads(ok(cli("status", computer_id, "--json", server=server)).stdout)
    assert (status["ram"], status["cpu"], status["resolution"]) == (8, 2, "800x600x24")
    assert status["project_name"] == "fleet-a"


def test_launch_failures_are_reported_by_type_and_exit_7(server: Server) -> None:
    done = cli("launch", "--count", "3", "--ready-timeout", "0.001", "--json", server=server)
    line = one_error_line(done, 7)
    assert "3 of 3" in line
    report = json.loads(done.stdout)
    assert report["ready"] == 0 and report["failed"] == 3
    assert report["failures_by_type"] == {"ReadyTimeout": 3}
    assert all(f["error_type"] == "ReadyTimeout" for f in report["failures"])
    assert server.live() == 0


_INTERRUPTIBLE = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the parent ignores it
from orgo_async.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_a_launch_leaves_nothing_behind() -> None:
    slow = ["orgo_async.emulator", "--port", "0", "--api-key", KEY, "--boot-ms", "5000"]
    with emulator_child(*slow) as (_, base_url):
        server = Server(base_url, KEY)
        proc = subprocess.Popen(
            [sys.executable, "-c", _INTERRUPTIBLE, "--base-url", base_url, "launch"]
            + ["--count", "20", "--concurrency", "8"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(ORGO_API_KEY=KEY),
        )
        try:
            deadline = time.monotonic() + 30
            while server.counters()["creates"] < 8:
                assert time.monotonic() < deadline, "the launch did not start"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        assert proc.returncode == 130, err
        assert err.strip() == "orgo-async: interrupted"
        assert out == ""
        assert server.live() == 0


def test_progress_goes_to_stderr_cut_to_the_terminals_width(server: Server) -> None:
    # stderr is a terminal 40 columns wide; stdout is a pipe that gets only the result.
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    environment = {k: v for k, v in env(ORGO_API_KEY=KEY).items() if k not in ("COLUMNS", "LINES")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "orgo_async", "--base-url", server.base_url, "launch"]
            + ["--count", "3", "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=environment,
            timeout=TIMEOUT,
            text=True,
        )
        os.close(slave)
        seen = b""
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child has gone, and the slave is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert done.returncode == 0, seen
    assert json.loads(done.stdout)["ready"] == 3  # stdout holds the JSON only
    drawn = re.findall(rb"\r([^\r\x1b]*)\x1b\[K", seen)
    assert any(line.startswith(b"created ") for line in drawn), seen
    assert all(len(line) < 40 for line in drawn), drawn


def test_launch_keep_on_emulator_says_the_computers_go_with_it() -> None:
    done = ok(cli("--emulator", "launch", "--count", "1", "--keep", "--json", "--boot-ms", "20"))
    assert json.loads(done.stdout)["kept"] is True
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("orgo-async launch: --emulator: ")
    assert "the kept computers are gone with the emulator" in line
    assert "'orgo-async emulator --port 8000' in another terminal" in line
    assert "export ORGO_BASE_URL=http://127.0.0.1:8000/api ORGO_API_KEY=sk_emulator" in line
    # Without --keep there is nothing to warn about.
    assert ok(cli("--emulator", "launch", "--count", "1", "--boot-ms", "20")).stderr == ""
