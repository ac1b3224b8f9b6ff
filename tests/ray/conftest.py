"""A local Ray and an emulator in its own process, for the tests of ``orgo_async.ray``.

Ray starts once per session (``num_cpus=2``, no dashboard, worker logs not
forwarded); the emulator runs as a separate process on loopback, so that
every actor reaches it as it would reach Orgo. Without ray installed these
tests skip, except under ``CI=true``, where they fail: a green CI must not
hide a missing install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from orgo_async import Orgo, Workspace

ROOT = Path(__file__).parent.parent.parent


def _require_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        message = "ray is not installed: pip install 'orgo_async[ray]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    _require_ray()
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        # The workers import the tests' episode functions from this checkout.
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    try:
        yield
    finally:
        ray.shutdown()


@attrs.frozen
class EmulatorChild:
    base_url: str
    api_key: str = attrs.field(repr=False)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call an ``/_emulator/...`` route (faults, computers)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url.removesuffix("/api") + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read() or b"null")


@pytest.fixture(scope="session")
def emulator_child() -> Iterator[EmulatorChild]:
    key = "sk_emulator_" + secrets.token_hex(16)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orgo_async.emulator", "--host", "127.0.0.1", "--port", "0"]
        + ["--boot-ms", "30", "--log-level", "warning"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env={**os.environ, "ORGO_EMULATOR_API_KEY": key},  # never on the command line
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("ORGO_BASE_URL="), line
        yield EmulatorChild(base_url=line.removeprefix("ORGO_BASE_URL=").strip(), api_key=key)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
async def remote_orgo(emulator_child: EmulatorChild) -> AsyncIterator[Orgo]:
    async with Orgo(api_key=emulator_child.api_key, base_url=emulator_child.base_url) as orgo:
        yield orgo


@pytest.fixture
async def remote_workspace(
    remote_orgo: Orgo, emulator_child: EmulatorChild
) -> AsyncIterator[Workspace]:
    workspace = await remote_orgo.workspaces.create("ray-" + secrets.token_hex(3))
    yield workspace
    emulator_child.admin("DELETE", "/_emulator/faults")
