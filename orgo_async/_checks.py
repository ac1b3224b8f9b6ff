"""Argument checks shared by the whole client: one wording for every bad argument.

Each check returns the value it accepted (so a call can check and assign in
one step) or raises :class:`ValueError` naming the argument, what it must be,
and what it got. They run before any request is sent. ``attrs`` models use the
same checks through :func:`validator`.

The protocol cores (``orgo_async.protocol``) keep their own few checks: they
import nothing of the client.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any, TypeVar

import attrs

T = TypeVar("T")

__all__ = [
    "check_choice",
    "check_count",
    "check_id",
    "check_int",
    "check_number",
    "check_seconds",
    "check_text",
    "optional",
    "validator",
]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(
    name: str, value: object, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """A whole number (``bool`` is not one) within ``[minimum, maximum]``."""
    if (
        not _is_int(value)
        or (minimum is not None and value < minimum)  # type: ignore[operator]
        or (maximum is not None and value > maximum)  # type: ignore[operator]
    ):
        if minimum is not None and maximum is not None:
            bound = f" from {minimum} to {maximum}"
        elif minimum is not None:
            bound = f" >= {minimum}"
        elif maximum is not None:
            bound = f" <= {maximum}"
        else:
            bound = ""
        raise ValueError(f"{name} must be a whole number{bound}; got {value!r}")
    return value  # type: ignore[return-value]


def check_count(name: str, value: object) -> int:
    """A whole number >= 1 (a concurrency, a size, a number of attempts)."""
    return check_int(name, value, minimum=1)


def check_choice(name: str, value: object, choices: Collection[T]) -> T:
    """One of ``choices`` (for numbers, ``True`` is not ``1``)."""
    if isinstance(value, bool) and not any(isinstance(c, bool) for c in choices):
        ok = False
    else:
        try:
            ok = value in choices
        except TypeError:  # unhashable
            ok = False
    if not ok:
        allowed = ", ".join(map(str, choices))
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    return value  # type: ignore[return-value]


def check_number(
    name: str,
    value: object,
    *,
    minimum: float = -math.inf,
    maximum: float = math.inf,
    inclusive: bool = True,
    what: str = "a number",
) -> float:
    """A finite number within the bounds (``minimum`` excluded unless ``inclusive``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value > maximum
        or (value < minimum if inclusive else value <= minimum)
    ):
        if inclusive and math.isfinite(minimum) and math.isfinite(maximum):
            bound = f" from {minimum:g} to {maximum:g}"
        else:
            low = (
                ""
                if math.isinf(minimum)
                else (f" >= {minimum:g}" if inclusive else f" > {minimum:g}")
            )
            high = "" if math.isinf(maximum) else f" <= {maximum:g}"
            bound = low + (" and" if low and high else "") + high
        raise ValueError(f"{name} must be {what}{bound}; got {value!r}")
    return float(value)


def check_seconds(
    name: str,
    value: object,
    *,
    minimum: float = 0.0,
    maximum: float = math.inf,
    inclusive: bool = True,
) -> float:
    """A finite number of seconds within the bounds (``minimum`` excluded unless ``inclusive``)."""
    return check_number(
        name,
        value,
        minimum=minimum,
        maximum=maximum,
        inclusive=inclusive,
        what="a number of seconds",
    )


def check_text(name: str, value: object, *, max_length: int | None = None) -> str:
    """A string that is not blank, holds no NUL, and is at most ``max_length`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string; got {value!r}")
    if "\0" in value:
        raise ValueError(f"{name} must not contain NUL characters; got {_short(value)}")
    if max_length is not None and len(value) > max_length:
        raise ValueError(
            f"{name} must be at most {max_length} characters; got {len(value)} characters"
        )
    return value


def check_id(name: str, value: object) -> str:
    """An identifier that can be one path segment: not blank, not ``.``/``..``, no ``/`` or NUL.

    ``.`` and ``..`` would be folded away by the URL library and reach another
    route; a slash would address another resource.
    """
    text = check_text(name, value, max_length=512)
    if text in (".", "..") or "/" in text or text != text.strip():
        raise ValueError(
            f"{name} must be an identifier (no '/', no surrounding spaces, not '.' or '..'); "
            f"got {_short(text)}"
        )
    return text


def optional(check: Callable[..., T]) -> Callable[..., T | None]:
    """``check`` that lets ``None`` through (meaning "not given")."""

    def checked(name: str, value: object, *args: Any, **kwargs: Any) -> T | None:
        return None if value is None else check(name, value, *args, **kwargs)

    return checked


def validator(check: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
    """An ``attrs`` validator running ``check(field_name, value, *args, **kwargs)``."""

    def run(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(attribute.name, value, *args, **kwargs)

    return run


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
