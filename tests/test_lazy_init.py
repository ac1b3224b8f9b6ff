"""``orgo_async/__init__.py`` loads its public names on first use.

The checks that must see a fresh import run in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

import orgo_async

INIT = Path(orgo_async.__file__)


def _fresh(code: str) -> Any:
    """What ``code`` prints as JSON on its last line, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_import_loads_nothing_but_the_version_and_the_loader() -> None:
    found = _fresh(
        "import json, sys, orgo_async\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.startswith('orgo_async')),\n"
        "    orgo_async.__version__, dir(orgo_async)]))"
    )
    modules, version, names = found
    assert modules == ["orgo_async", "orgo_async._lazy", "orgo_async._version"]
    assert version == orgo_async.__version__
    assert names == sorted([*orgo_async.__all__, "__version__"])


def test_a_subclass_reached_before_its_base_reports_the_package_with_resolved_types() -> None:
    found = _fresh(
        "import json, attrs, orgo_async\n"
        "out = {}\n"
        "for name in ('Idle', 'DesktopEvent', 'Computer', 'Orgo'):\n"
        "    cls = getattr(orgo_async, name)\n"
        "    fields = attrs.fields(cls) if attrs.has(cls) else ()\n"
        "    out[name] = [cls.__module__, [f.name for f in fields if isinstance(f.type, str)]]\n"
        "print(json.dumps(out))"
    )
    assert found == {
        name: ["orgo_async", []] for name in ("Idle", "DesktopEvent", "Computer", "Orgo")
    }


def test_a_published_base_resolves_through_its_defining_module() -> None:
    # The base now reports the package as its module; its annotations still resolve.
    @attrs.frozen(kw_only=True)
    class Later(orgo_async.DesktopEvent):
        extra: int = 0

    attrs.resolve_types(Later, globalns=orgo_async._EXPORTS.defining_namespace(Later))
    fields = attrs.fields(Later)
    assert (fields.extra.type, fields.data.type) == (int, dict[str, Any])


def test_a_name_loads_its_module_and_not_the_emulator() -> None:
    modules = _fresh(
        "import json, sys\n"
        "from orgo_async import Computer\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('orgo_async'))))"
    )
    assert "orgo_async.models" in modules
    assert "orgo_async._client" not in modules
    assert not [m for m in modules if m.startswith("orgo_async.emulator")]


def test_unknown_names_raise_attribute_error_and_submodules_still_import() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        orgo_async.no_such_name  # noqa: B018
    from orgo_async import errors

    assert orgo_async.OrgoError is errors.OrgoError


def test_the_type_checking_imports_are_the_lazy_table() -> None:
    seen: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(INIT.read_text())):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                module = "." * statement.level + (statement.module or "")
                seen.setdefault(module, set()).update(alias.name for alias in statement.names)
    table: dict[str, set[str]] = {}
    for name, module in orgo_async._MODULE_OF.items():
        table.setdefault(module, set()).add(name)
    assert seen == table
    assert sorted(orgo_async._MODULE_OF) == sorted(orgo_async.__all__)
