"""``orgo-async``, run as a user runs it: in a subprocess, against the emulator.

Most tests point the CLI at one emulator started as a long-running child
(``python -m orgo_async.emulator``) with ``--base-url`` and ``ORGO_API_KEY``,
and check the emulator's own books (``GET /_emulator/counters``) for what the
CLI left behind. ``--emulator`` (an emulator started by the CLI itself) is
covered too. ``terminal`` is driven through a real pseudo-terminal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

TIMEOUT = 120
KEY = "sk_cli_test_0123456789abcdef"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- helpers


@attrs.frozen
class Server:
    base_url: str
    api_key: str

    @property
    def origin(self) -> str:
        return self.base_url.removesuffix("/api")

    def get(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(
            self.origin + path, headers={"Authorization": f"Bearer {self.api_key}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            data: dict[str, Any] = json.load(answer)
        return data

    def counters(self) -> dict[str, Any]:
        return self.get("/_emulator/counters")

    def live(self) -> int:
        return int(self.counters()["live"])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGO_")}
    env["PYTHONWARNINGS"] = "error::ResourceWarning"
    env.update(extra)
    return env


def _cli(
    *args: str, server: Server | None = None, key: str | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m orgo_async ARGS``; with ``server``: ``--base-url`` and its key."""
    argv = [sys.executable, "-m", "orgo_async"]
    env = _env()
    if server is not None:
        argv += ["--base-url", server.base_url]
        env["ORGO_API_KEY"] = server.api_key if key is None else key
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@contextlib.contextmanager
def _emulator_child(*extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the emulator did not announce itself within 30 s"
        line = proc.stdout.readline()
        assert line.startswith("ORGO_BASE_URL="), line
        yield proc, line.removeprefix("ORGO_BASE_URL=").strip()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def server() -> Iterator[Server]:
    """A long-running emulator child, as ``python -m orgo_async.emulator`` serves it."""
    args = ["orgo_async.emulator", "--port", "0", "--api-key", KEY, "--boot-ms", "30"]
    with _emulator_child(*args, "--log-level", "warning") as (_, base_url):
        yield Server(base_url, KEY)


def _launch_kept(server: Server, count: int, prefix: str) -> list[str]:
    done = _ok(
        _cli("launch", "--count", str(count), "--prefix", prefix, "--keep", "--json", server=server)
    )
    report = json.loads(done.stdout)
    assert report["ready"] == count and report["kept"] is True
    return [c["id"] for c in report["computers"]]


# --------------------------------------------------------------------------- launch


def test_emulator_launch_json_is_one_object_with_every_computer_ready() -> None:
    done = _ok(_cli("--emulator", "launch", "--count", "5", "--json", "--boot-ms", "30"))
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
    done = _ok(_cli("launch", "--count", "5", "--concurrency", "2", server=server))
    assert "deleted 5 computer(s)" in done.stdout
    assert "create -> ready ms" in done.stdout and "p99" in done.stdout
    assert "\r" not in done.stdout and "\x1b" not in done.stdout
    assert server.live() == 0
    assert server.counters()["creates"] == 5

    ids = _launch_kept(server, 5, "kept")
    assert server.live() == 5
    listed = json.loads(_ok(_cli("ls", "--json", server=server)).stdout)
    assert sorted(c["id"] for c in listed) == sorted(ids)


def test_rm_prefix_reaps_the_leftovers(server: Server) -> None:
    crashed = _launch_kept(server, 3, "crash")
    other = _launch_kept(server, 1, "other")
    assert server.live() == 4
    done = _ok(_cli("rm", "--prefix", "crash", server=server))
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("deleted ") for line in lines)
    assert sorted(line.split()[1] for line in lines) == sorted(crashed)
    assert server.live() == 1
    again = json.loads(_ok(_cli("rm", "--prefix", "crash", "--json", server=server)).stdout)
    assert again == {"deleted": []}
    _ok(_cli("rm", *other, server=server))
    assert server.live() == 0


def test_launch_options_reach_the_computers(server: Server) -> None:
    args = ["--ram", "8", "--cpu", "2", "--resolution", "800x600x24", "--workspace", "fleet-a"]
    done = _ok(
        _cli("launch", "--count", "1", "--keep", "--json", "--prefix", "opts", *args, server=server)
    )
    computer_id = json.loads(done.stdout)["computers"][0]["id"]
    status = json.loads(_ok(_cli("status", computer_id, "--json", server=server)).stdout)
    assert (status["ram"], status["cpu"], status["resolution"]) == (8, 2, "800x600x24")
    assert status["project_name"] == "fleet-a"


def test_launch_failures_are_reported_by_type_and_exit_7(server: Server) -> None:
    done = _cli("launch", "--count", "3", "--ready-timeout", "0.001", "--json", server=server)
    line = _one_error_line(done, 7)
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
    with _emulator_child(*slow) as (_, base_url):
        server = Server(base_url, KEY)
        proc = subprocess.Popen(
            [sys.executable, "-c", _INTERRUPTIBLE, "--base-url", base_url, "launch"]
            + ["--count", "20", "--concurrency", "8"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(ORGO_API_KEY=KEY),
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


# --------------------------------------------------------------------------- ls, status, rm


def test_ls_and_status_as_json_and_tables(server: Server) -> None:
    assert _ok(_cli("ls", server=server)).stdout.strip() == "no computers"
    ids = _launch_kept(server, 2, "look")

    listed = json.loads(_ok(_cli("ls", "--json", server=server)).stdout)
    assert sorted(c["id"] for c in listed) == sorted(ids)
    assert all(c["status"] == "running" and "vnc_password" not in c for c in listed)

    table = _ok(_cli("ls", "--workspace", "orgo-async", server=server)).stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATUS", "INSTANCE", "RESOLUTION", "CREATED"]
    assert len(table) == 3
    assert {line.split()[0] for line in table[1:]} == set(ids)
    assert all(" running " in line for line in table[1:])

    status = json.loads(_ok(_cli("status", ids[0], "--json", server=server)).stdout)
    assert status["id"] == ids[0] and status["status"] == "running"
    assert "vnc_password" not in status
    text = _ok(_cli("status", ids[0], server=server)).stdout
    fields = dict(line.split(None, 1) for line in text.splitlines() if len(line.split()) > 1)
    assert fields["id"] == ids[0] and fields["status"] == "running"
    assert "vnc_password" not in text

    password = server.get(f"/api/computers/{ids[0]}")["vnc_password"]
    assert password
    verbose = _ok(_cli("-v", "status", ids[0], server=server))
    for shown in (text, json.dumps(listed), json.dumps(status), verbose.stdout, verbose.stderr):
        assert password not in shown and KEY not in shown

    _ok(_cli("rm", *ids, server=server))
    assert server.live() == 0


def test_emulator_ls_and_status_new_work_offline() -> None:
    assert _ok(_cli("--emulator", "ls")).stdout.strip() == "no computers"
    status = json.loads(_ok(_cli("--emulator", "status", "new", "--json")).stdout)
    assert status["status"] == "running" and status["name"].startswith("orgo-async-new-")


def test_new_computers_are_deleted_when_the_command_ends(server: Server) -> None:
    status = json.loads(_ok(_cli("status", "new", "--json", server=server)).stdout)
    assert status["status"] == "running"
    assert server.live() == 0
    assert server.counters()["creates"] == 1


# --------------------------------------------------------------------------- exit codes


def test_a_refused_key_exits_3_on_one_line(server: Server) -> None:
    line = _one_error_line(_cli("ls", server=server, key="sk_wrong_key_000000"), 3)
    assert "authentication" in line
    assert "sk_wrong_key_000000" not in line


def test_a_missing_key_exits_3_on_one_line(server: Server) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orgo_async", "--base-url", server.base_url, "ls"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
    )
    assert "ORGO_API_KEY" in _one_error_line(done, 3)


def test_an_unknown_id_exits_4_on_one_line(server: Server) -> None:
    assert "not found" in _one_error_line(_cli("status", "no-such-id", server=server), 4)
    assert "not found" in _one_error_line(_cli("rm", "no-such-id", server=server), 4)
    line = _one_error_line(_cli("ls", "--workspace", "nowhere", server=server), 4)
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
        (["bash", "abc", "--timeout", "0", "--", "true"], "--timeout"),
        (["screenshot", "abc", "-o", "x.png", "--vnc"], "not available yet"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_on_one_line(server: Server, args: list[str], needle: str) -> None:
    done = _cli(*args, server=server)
    assert needle in _one_error_line(done, 2)
    assert done.stdout == ""
    assert server.counters()["creates"] == 0


def test_verbose_logs_hide_the_key(server: Server) -> None:
    done = _ok(_cli("--verbose", "status", "new", "--json", server=server))
    assert "DEBUG" in done.stderr and "GET /api/computers/" in done.stderr
    assert KEY not in done.stderr and KEY not in done.stdout


# --------------------------------------------------------------------------- bash, screenshot


def test_bash_prints_the_output_and_exits_with_the_remote_code(server: Server) -> None:
    [computer_id] = _launch_kept(server, 1, "sh")
    done = _cli("bash", computer_id, "--", "sh", "-c", "echo hi; exit 3", server=server)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "hi\n"
    assert done.stderr == ""
    one = _ok(_cli("--emulator", "bash", "new", "--", "echo $((6*7)) | tr 4 X"))
    assert one.stdout == "X2\n"


def test_screenshot_writes_a_png(server: Server, tmp_path: Path) -> None:
    [computer_id] = _launch_kept(server, 1, "shot")
    out = tmp_path / "shots" / "shot.png"
    done = _ok(_cli("screenshot", computer_id, "-o", str(out), server=server))
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert str(out) in done.stdout and str(len(data)) in done.stdout


# --------------------------------------------------------------------------- terminal


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class _Pty:
    """The master side of a pseudo-terminal, read with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen = b""

    def read_until(self, needle: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while needle not in self.seen[start:]:
            left = deadline - time.monotonic()
            assert left > 0, f"no {needle!r} within {timeout} s; got {self.seen[-500:]!r}"
            self.pump(min(left, 0.5))
        return self.seen[start:]

    def pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                self.seen += os.read(self.fd, 65536)
            except OSError:  # EIO: no process has the slave open any more
                time.sleep(0.05)

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())


def test_terminal_through_a_pty_runs_commands_and_restores_the_tty() -> None:
    master, slave = os.openpty()
    _set_size(slave, 30, 100)
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orgo_async", "--emulator", "terminal", "new"],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=_env(),
        start_new_session=True,
    )
    pty = _Pty(master)
    try:
        pty.read_until(b"orgo-desktop", timeout=60)  # a prompt: the shell is there
        # Raw mode: the CLI does not echo or translate; only the remote shell does.
        assert termios.tcgetattr(slave)[3] & termios.ICANON == 0
        pty.type("echo MARK-$((40+2))\r")
        pty.read_until(b"MARK-42")
        # The remote window started at this terminal's size...
        pty.type("stty size\r")
        pty.read_until(b"30 100")
        # ...and follows it on SIGWINCH.
        _set_size(slave, 40, 120)
        proc.send_signal(signal.SIGWINCH)
        time.sleep(0.3)
        pty.type("stty size\r")
        pty.read_until(b"40 120")
        # Ctrl-C goes to the remote command, not to the CLI.
        pty.type("sleep 30\r")
        time.sleep(0.3)
        pty.type("\x03")
        pty.type("echo AFTER-$((1+1))\r")
        pty.read_until(b"AFTER-2")
        assert proc.poll() is None
        pty.type("\x04")  # Ctrl-D: the remote shell exits, and so does the CLI
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            pty.pump(0.1)
        assert proc.poll() == 0, pty.seen[-500:]
        assert proc.stderr is not None
        errors = proc.stderr.read().decode()
        assert errors == "", errors
        assert termios.tcgetattr(slave) == before  # the tty is restored
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
        os.close(master)
        os.close(slave)


def test_terminal_pipes_stdin_and_exits_with_the_shell_code() -> None:
    done = _cli("--emulator", "terminal", "new", input="echo PIPED-$((2*21))\nexit 5\n")
    assert done.returncode == 5, done.stderr
    assert "PIPED-42" in done.stdout
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- emulator, bench


def test_emulator_command_serves_until_sigterm() -> None:
    with _emulator_child("orgo_async", "emulator", "--port", "0", "--boot-ms", "20") as (
        proc,
        base_url,
    ):
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api")
        served = Server(base_url, "sk_emulator")
        done = _ok(_cli("status", "new", "--json", server=served))
        assert json.loads(done.stdout)["status"] == "running"
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        hint = proc.stderr.read()
        assert f"export ORGO_BASE_URL={base_url} ORGO_API_KEY=sk_emulator" in hint
        assert "Traceback" not in hint


def test_emulator_command_does_not_print_a_given_key() -> None:
    with _emulator_child(
        "orgo_async", "emulator", "--port", "0", "--api-key", KEY, "--log-level", "debug"
    ) as (proc, base_url):
        _ok(_cli("ls", server=Server(base_url, KEY)))
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        assert KEY not in proc.stderr.read()


_BLOCK_MATPLOTLIB = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
from orgo_async.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_bench_plot_without_matplotlib_exits_2_before_running(tmp_path: Path) -> None:
    out = tmp_path / "latency.png"
    done = subprocess.run(
        [sys.executable, "-c", _BLOCK_MATPLOTLIB, "bench", "--emulator", "--plot", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
    )
    line = _one_error_line(done, 2)
    assert line == "bench --plot needs matplotlib: pip install 'orgo_async[plot]'"
    assert done.stdout == ""
    assert not out.exists()


def test_bench_plot_draws_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots" / "latency.png"
    done = _ok(
        _cli(
            "--emulator",
            "bench",
            "--count",
            "4",
            "--concurrency",
            "2",
            "--boot-ms",
            "20",
            "--mode",
            "burst",
            "--json",
            "--plot",
            str(out),
        )  # fmt: skip
    )
    assert json.loads(done.stdout)["ready"] == 4
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert f"drew {out}" in done.stderr
