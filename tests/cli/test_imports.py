"""What the command line imports: never the emulator unless asked, little for ``--help``.

Each check runs a fresh interpreter and reads its ``sys.modules`` at the end.
"""

from __future__ import annotations

import json

import pytest

from .conftest import Server, ok, python

_REPORT = """
import contextlib, io, json, sys
{code}
print(json.dumps(sorted(sys.modules)), file=sys.__stdout__)
"""

_MAIN = """
from orgo_async.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
assert code == 0, code
"""


def _modules(code: str, *args: str, server: Server | None = None) -> set[str]:
    """The modules loaded by the end of ``code`` (run with ``args``) in a fresh interpreter."""
    done = ok(python(_REPORT.format(code=code), *args, server=server))
    return set(json.loads(done.stdout.splitlines()[-1]))


def _emulator(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[:2] == ["orgo_async", "emulator"]}


@pytest.mark.parametrize("code", ["import orgo_async", "import orgo_async.cli"])
def test_importing_loads_neither_the_emulator_nor_aiohttp_web(code: str) -> None:
    modules = _modules(code)
    assert not _emulator(modules)
    assert "aiohttp.web" not in modules
    # Nothing of the network stack either: it comes with the command that uses it.
    assert not {m for m in modules if m.split(".")[0] in ("aiohttp", "websockets")}


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_import_no_command_and_no_sdk(option: str) -> None:
    modules = _modules(_MAIN, option)
    ours = {m for m in modules if m.startswith("orgo_async")}
    assert ours == {
        "orgo_async",
        "orgo_async._lazy",
        "orgo_async._version",
        "orgo_async.cli",
        "orgo_async.cli._options",
        "orgo_async.cli._output",
        "orgo_async.errors",
    }
    assert not {m for m in modules if m.split(".")[0] in ("aiohttp", "websockets", "attrs")}


@pytest.mark.parametrize(
    ("command", "module"),
    [
        ("launch", "launch"),
        ("ls", "computers"),
        ("rm", "computers"),
        ("terminal", "terminal"),
        ("screenshot", "screenshot"),
        ("bash", "bash"),
        ("bench", "bench"),
    ],
)
def test_a_commands_help_imports_that_command_and_not_the_emulator(
    command: str, module: str
) -> None:
    modules = _modules(_MAIN, command, "--help")
    commands = {m for m in modules if m.startswith("orgo_async.cli.") and "._" not in m}
    assert commands == {f"orgo_async.cli.{module}"}
    assert not _emulator(modules)
    assert "aiohttp.web" not in modules


def test_only_the_emulator_command_imports_the_emulator() -> None:
    modules = _modules(_MAIN, "emulator", "--help")
    assert "orgo_async.emulator.app" in modules  # the check sees it when it is there


def test_a_command_on_a_spawned_emulator_runs_it_in_another_process() -> None:
    modules = _modules(_MAIN, "--emulator", "ls")
    assert "orgo_async.cli._spawn" in modules
    assert not _emulator(modules)
    assert "aiohttp.web" not in modules


def test_a_command_on_a_server_does_not_import_the_emulator(server: Server) -> None:
    modules = _modules(_MAIN, "--base-url", server.base_url, "ls", server=server)
    assert "orgo_async._client" in modules
    assert not _emulator(modules)
    assert "aiohttp.web" not in modules
