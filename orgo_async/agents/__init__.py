"""Agent loops on Orgo computers: adapters for the model vendors' computer-use tools.

Each adapter imports its vendor library only when it is used, so importing
this package pulls in neither; install the extra of the one you use
(``pip install 'orgo_async[openai]'`` for :func:`openai_computer`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._openai import openai_computer

__all__ = ["openai_computer"]

_MODULE_OF: dict[str, str] = {
    "openai_computer": "._openai",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
