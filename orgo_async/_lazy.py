"""Public names loaded on first use (PEP 562), for the package and its subpackages.

A package lists where each of its public names is defined, relative to itself,
and hands module attribute access to :class:`LazyExports`: the first use of a
name imports its module and binds all of that module's listed names in the
package. Type checkers see the package's ``TYPE_CHECKING`` imports instead.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


class LazyExports:
    """The lazily loaded public names of ``package``.

    Args:
        package: The package's ``__name__``.
        modules: Each public name, and the module defining it (relative to ``package``).
        adopt: Public classes report ``package`` as their module (as httpx's do),
            their string annotations resolved first through the modules that
            define them and their bases (the package's name would not find them).
    """

    def __init__(self, package: str, modules: Mapping[str, str], *, adopt: bool = False) -> None:
        self.package = package
        self.modules = modules
        self.adopt = adopt

    def __call__(self, name: str) -> Any:
        """The package's ``__getattr__``: import the module of ``name``, and publish it."""
        module = self.modules.get(name)
        if module is None:
            raise AttributeError(f"module {self.package!r} has no attribute {name!r}")
        self.publish(module)
        return vars(sys.modules[self.package])[name]

    def publish(self, module_name: str) -> None:
        """Bind the listed names of one submodule in the package, as the package's own."""
        namespace = vars(sys.modules[self.package])
        module = importlib.import_module(module_name, self.package)
        for name, where in self.modules.items():
            if where != module_name:
                continue
            obj = getattr(module, name)
            if self.adopt and isinstance(obj, type):
                import attrs  # here, not at the top: a bare package import stays cheap

                if attrs.has(obj):
                    attrs.resolve_types(obj, globalns=self.defining_namespace(obj))
                obj.__module__ = self.package
            namespace[name] = obj

    def defining_namespace(self, cls: type) -> dict[str, Any]:
        """The globals of the modules that define ``cls`` and its bases, base first.

        A base published earlier already reports the package as its module; its
        defining module is then the one the table names.
        """
        namespace: dict[str, Any] = {}
        for base in reversed(cls.__mro__):
            module = base.__module__
            if module == self.package:
                module = self.package + self.modules[base.__name__]
            namespace.update(vars(sys.modules[module]))
        return namespace
