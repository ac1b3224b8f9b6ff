"""``orgo-async template``: publish with the build log followed, ls, status."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Server, cli, ok

GOOD = "api_version: orgo.ai/v1\ntemplate:\n  name: cli-demo\n  version: 1.0.0\n"
FAILING = GOOD.replace("cli-demo", "cli-bad") + "build:\n  run: ['echo one', 'exit 2']\n"


def test_emulator_publish_follows_the_build_log(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    done = ok(cli("--emulator", "template", "publish", str(good), "--build", "--follow"))
    lines = done.stdout.splitlines()
    assert lines[0].startswith("published default/cli-demo@1.0.0 ")
    assert [line.split()[0] for line in lines[1:-1]] == [
        "publish", "compile", "boot", "snapshot", "ready",
    ]  # fmt: skip
    assert lines[-1] == "build ready"


def test_a_failed_build_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(FAILING)
    done = cli("--emulator", "template", "publish", str(bad), "--build", "--follow")
    assert done.returncode == 5, done.stderr
    assert "install   $ echo one" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("build failed: build.run step 2")


def test_ls_and_status(server: Server, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"api_version": "orgo.ai/v1",
                                "template": {"name": "listed", "version": "1.0.0"}}))  # fmt: skip
    ok(cli("template", "publish", str(good), server=server))
    listed = json.loads(ok(cli("template", "ls", "--json", server=server)).stdout)
    assert "default/listed@1.0.0" in [t["ref"] for t in listed]
    status = json.loads(
        ok(cli("template", "status", "default/listed@1.0.0", "--json", server=server)).stdout
    )
    assert status["status"] == "not_built"
    bad_ref = cli("template", "status", "listed", server=server)
    assert bad_ref.returncode == 2 and "namespace/name@version" in bad_ref.stderr


def test_publish_of_a_malformed_file_sends_nothing_and_names_the_fields(
    server: Server, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("cli-demo", "cli-malformed") + "hardware:\n  ram_gb: 3\nextra: 1\n")
    before = server.counters()["requests"]
    done = cli("template", "publish", str(bad), server=server)
    assert done.returncode == 2, done.stderr
    assert "does not fit the template schema" in done.stderr
    assert "hardware.ram_gb must be one of 4, 8, 16, 32, 64" in done.stderr
    assert "unknown field 'extra'" in done.stderr
    after = server.counters()["requests"]
    assert after.get("POST /api/templates", 0) == before.get("POST /api/templates", 0)
    assert after.get("GET /api/template-schema", 0) == before.get("GET /api/template-schema", 0) + 1
