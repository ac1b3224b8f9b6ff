"""``orgo-async screenshot``: over the REST API."""

from __future__ import annotations

from pathlib import Path

from .conftest import PNG_MAGIC, Server, cli, launch_kept, ok


def test_screenshot_writes_a_png(server: Server, tmp_path: Path) -> None:
    [computer_id] = launch_kept(server, 1, "shot")
    out = tmp_path / "shots" / "shot.png"
    done = ok(cli("screenshot", computer_id, "-o", str(out), server=server))
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert str(out) in done.stdout and str(len(data)) in done.stdout
