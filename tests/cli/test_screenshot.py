"""``orgo-async screenshot``: over the REST API, and with ``--vnc`` over the VNC socket."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orgo_async.protocol.png import decode_png

from .conftest import (
    PNG_MAGIC,
    TIMEOUT,
    Server,
    blocking,
    cli,
    env,
    launch_kept,
    ok,
    one_error_line,
    python,
)


def test_screenshot_writes_a_png(server: Server, tmp_path: Path) -> None:
    [computer_id] = launch_kept(server, 1, "shot")
    out = tmp_path / "shots" / "shot.png"
    done = ok(cli("screenshot", computer_id, "-o", str(out), server=server))
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert done.stdout == ""
    assert done.stderr == f"{out}: {len(data)} bytes, 1280x720 image/png\n"


def test_screenshot_over_vnc_is_the_screen_rest_shows(server: Server, tmp_path: Path) -> None:
    [computer_id] = launch_kept(server, 1, "vnc")
    rest, vnc = tmp_path / "rest.png", tmp_path / "vnc" / "screen.png"
    ok(cli("screenshot", computer_id, "-o", str(rest), server=server))
    done = ok(cli("screenshot", computer_id, "-o", str(vnc), "--vnc", server=server))
    data = vnc.read_bytes()
    assert data.startswith(PNG_MAGIC)
    # The same line as the REST path: path, size, dimensions, type.
    assert done.stderr == f"{vnc}: {len(data)} bytes, 1280x720 image/png\n"
    assert done.stdout == ""
    over_vnc, over_rest = decode_png(data), decode_png(rest.read_bytes())
    assert (over_vnc.width, over_vnc.height) == (over_rest.width, over_rest.height)
    assert over_vnc.pixels == over_rest.pixels
    assert server.counters()["creates"] == 1  # no computer made for the VNC path


def test_screenshot_over_vnc_to_stdout_on_a_spawned_emulator() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orgo_async", "--emulator", "screenshot", "new", "--vnc"]
        + ["-o", "-"],
        capture_output=True,
        timeout=TIMEOUT,
        env=env(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(PNG_MAGIC)
    assert decode_png(done.stdout).width == 1280
    line = done.stderr.decode()
    assert line == f"-: {len(done.stdout)} bytes, 1280x720 image/png\n"


def test_screenshot_vnc_without_cryptography_exits_2_before_launching(server: Server) -> None:
    done = python(
        blocking("cryptography"),
        *("--base-url", server.base_url, "screenshot", "new", "-o", "x.png", "--vnc"),
        server=server,
    )
    line = one_error_line(done, 2)
    assert line == "screenshot --vnc needs cryptography: pip install 'orgo_async[vnc]'"
    assert done.stdout == ""
    assert server.counters()["creates"] == 0


def test_screenshot_without_output_writes_screenshot_id_png_here(
    server: Server, tmp_path: Path
) -> None:
    [computer_id] = launch_kept(server, 1, "here")
    done = ok(cli("screenshot", computer_id, server=server, cwd=tmp_path))
    name = f"screenshot-{computer_id}.png"
    assert [p.name for p in tmp_path.iterdir()] == [name]
    data = (tmp_path / name).read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert done.stdout == ""
    assert done.stderr == f"{name}: {len(data)} bytes, 1280x720 image/png\n"


def test_screenshot_to_stdout_refuses_a_terminal(server: Server) -> None:
    master, slave = os.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "orgo_async", "--base-url", server.base_url]
            + ["screenshot", "new", "-o", "-"],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
            text=True,
            env=env(ORGO_API_KEY=server.api_key),
            timeout=TIMEOUT,
        )
    finally:
        os.close(slave)
        os.close(master)
    line = one_error_line(done, 2)
    assert "stdout is a terminal" in line and "-o -" in line
    assert server.counters()["creates"] == 0
