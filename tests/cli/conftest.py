"""``orgo-async`` run as a user runs it: in a subprocess, against the emulator.

Most tests point the CLI at one emulator started as a long-running child
(``python -m orgo_async.emulator``, the :func:`server` fixture) with
``--base-url`` and ``ORGO_API_KEY``, and check the emulator's own books
(``GET /_emulator/counters``) for what the CLI left behind. ``--emulator`` (an
emulator started by the CLI itself) is covered too.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

TIMEOUT = 120
KEY = "sk_cli_test_0123456789abcdef"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def env(**extra: str) -> dict[str, str]:
    """This environment without ORGO_*, with ResourceWarnings as errors, plus ``extra``."""
    values = {k: v for k, v in os.environ.items() if not k.startswith("ORGO_")}
    values["PYTHONWARNINGS"] = "error::ResourceWarning"
    values.update(extra)
    return values


def cli(
    *args: str,
    server: Server | None = None,
    key: str | None = None,
    input: str | None = None,
    timeout: float = TIMEOUT,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m orgo_async ARGS`` (in ``cwd``); with ``server``: ``--base-url`` and its key."""
    argv = [sys.executable, "-m", "orgo_async"]
    environment = env()
    if server is not None:
        argv += ["--base-url", server.base_url]
        environment["ORGO_API_KEY"] = server.api_key if key is None else key
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        cwd=cwd,
    )


def python(code: str, *args: str, server: Server | None = None) -> subprocess.CompletedProcess[str]:
    """``python -c CODE ARGS`` in a fresh interpreter (with ``server``'s key, if any)."""
    extra = {} if server is None else {"ORGO_API_KEY": server.api_key}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env(**extra),
        stdin=subprocess.DEVNULL,
    )


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@contextlib.contextmanager
def emulator_child(*extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m EXTRA...`` serving an emulator; yields it and its ORGO_BASE_URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
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
    with emulator_child(*args, "--log-level", "warning") as (_, base_url):
        yield Server(base_url, KEY)


def launch_kept(server: Server, count: int, prefix: str) -> list[str]:
    """Launch ``count`` computers that stay; their ids."""
    done = ok(
        cli("launch", "--count", str(count), "--prefix", prefix, "--keep", "--json", server=server)
    )
    report = json.loads(done.stdout)
    assert report["ready"] == count and report["kept"] is True
    return [c["id"] for c in report["computers"]]


def blocking(module: str) -> str:
    """Code for ``python -c`` that runs ``main(sys.argv[1:])`` as if ``module`` were missing."""
    return f"""
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {module!r} or name.startswith({module + "."!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Block())
from orgo_async.cli import main
sys.exit(main(sys.argv[1:]))
"""
