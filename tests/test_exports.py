import ast
import inspect
from pathlib import Path

import orgo_async
from orgo_async import errors, fleet, health, models

ROOT = Path(orgo_async.__file__).parent


def test_all_is_sorted_unique_and_complete() -> None:
    names = orgo_async.__all__
    assert len(names) == len(set(names))
    assert sorted(names, key=lambda n: (not n.isupper(), n)) == names
    public = {n for n in dir(orgo_async) if not n.startswith("_")}
    modules = {n for n in public if inspect.ismodule(getattr(orgo_async, n))}
    assert public - modules - {"annotations"} == set(names)


def test_every_public_name_resolves_and_reports_the_package() -> None:
    for name in orgo_async.__all__:
        obj = getattr(orgo_async, name)
        if inspect.isclass(obj):
            assert obj.__module__ == "orgo_async", name


def test_submodule_surfaces_are_reexported() -> None:
    for module in (errors, models):
        for name in module.__all__:
            assert getattr(orgo_async, name) is getattr(module, name)
    for module in (fleet, health):
        for name in module.__all__:
            assert name in orgo_async.__all__, name


def _package_imports(path: Path) -> set[str]:
    """The orgo_async modules a source file imports (relative imports resolved)."""
    package = ".".join(path.parent.relative_to(ROOT.parent).parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("orgo_async")}


def test_the_emulator_never_imports_the_client() -> None:
    # The protocol cores (and the errors they raise) are shared, and the process helpers of
    # _aio (which import nothing of the package); the client is not.
    allowed = ("orgo_async.emulator", "orgo_async.protocol", "orgo_async.errors", "orgo_async._aio")
    assert _package_imports(ROOT / "_aio.py") == set()
    seen = set()
    for path in (ROOT / "emulator").rglob("*.py"):
        for name in _package_imports(path):
            seen.add(name)
            assert name.startswith(allowed), f"{path.name} imports {name}"
    assert "orgo_async.emulator.store" in seen  # the check does see the package's imports
    assert "orgo_async._client" in _package_imports(ROOT / "__init__.py")
