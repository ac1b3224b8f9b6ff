"""What every route shares: the emulator behind a request, its JSON body and fields, the answer.

Fields are validated as Orgo validates them: a bad one answers 400
``invalid_field`` with a message that names the field and quotes the JSON the
client sent (Orgo documents no machine-readable field key); a body that is
not a JSON object, or one nested deeper than
:data:`~orgo_async.protocol._base.MAX_JSON_DEPTH` levels, answers 400
``invalid_json``. Integers accept integral floats (JavaScript backends see
``4.0`` as ``4``) and never booleans.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ...protocol._base import NestingError, load_json
from ..store import ApiError

if TYPE_CHECKING:
    from ..app import Emulator

__all__ = [
    "COMPUTER_PATH",
    "EMULATOR_KEY",
    "boolean",
    "choice",
    "emulator_of",
    "int_choice",
    "integer",
    "invalid",
    "number",
    "ok",
    "optional_integer",
    "optional_str",
    "read_json",
    "show",
    "text",
]

EMULATOR_KEY: Final[web.AppKey[Emulator]] = web.AppKey("orgo_emulator")
"""Where handlers find their :class:`~orgo_async.emulator.Emulator`."""

COMPUTER_PATH: Final = "/api/computers/{computer_id}"
"""One computer's routes (:mod:`.computers`, :mod:`.extras`, :mod:`.desktop`) sit under it;
``{computer_id}`` accepts the UUID or the instance id."""


def emulator_of(request: web.Request) -> Emulator:
    """The emulator serving ``request``."""
    return request.app[EMULATOR_KEY]


def ok(data: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.json_response(data, status=status)


# --------------------------------------------------------------------------- the body


async def read_json(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; 400 ``invalid_json`` otherwise (also when nested too deep).

    With ``optional``, an empty body is ``{}``.
    """
    raw = await request.read()
    if optional and not raw.strip():
        return {}
    try:
        data = load_json(raw)
    except NestingError as exc:
        raise ApiError(400, "invalid_json", f"Request body is {exc}") from None
    except ValueError:  # UnicodeDecodeError is one too
        raise ApiError(400, "invalid_json", "Request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "Request body must be a JSON object")
    return data


def show(value: object) -> str:
    """``value`` as the client wrote it (JSON: ``true``, not ``True``)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def invalid(message: str) -> ApiError:
    """400 ``invalid_field``: Orgo has no machine-readable field key, the message names it."""
    return ApiError(400, "invalid_field", message)


# --------------------------------------------------------------------------- fields


def _as_integer(name: str, value: object, expected: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise invalid(f"{name} must be {expected}, got {show(value)}")
    return int(value)


def _expected(low: int, high: int | None) -> str:
    return f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"


def _in_range(name: str, value: object, low: int, high: int | None) -> int:
    expected = _expected(low, high)
    number = _as_integer(name, value, expected)
    if number < low or (high is not None and number > high):
        raise invalid(f"{name} must be {expected}, got {show(value)}")
    return number


def integer(
    body: Mapping[str, Any],
    name: str,
    low: int,
    high: int | None = None,
    default: int | None = None,
) -> int:
    """An integer field in ``[low, high]`` (``high`` None: no upper bound).

    Missing or null: ``default``, or 400 when there is none.
    """
    value = body.get(name)
    if value is None:
        if default is None:
            raise invalid(f"{name} is required: {_expected(low, high)}")
        return default
    return _in_range(name, value, low, high)


def optional_integer(
    body: Mapping[str, Any], name: str, low: int, high: int | None = None
) -> int | None:
    """Like :func:`integer`, but missing or null is None."""
    value = body.get(name)
    return None if value is None else _in_range(name, value, low, high)


def int_choice(body: Mapping[str, Any], name: str, choices: tuple[int, ...], default: int) -> int:
    """One of the integers ``choices``; missing: ``default``."""
    value = body.get(name)
    if value is None:
        return default
    allowed = ", ".join(str(c) for c in choices)
    number = _as_integer(name, value, f"one of {allowed}")
    if number not in choices:
        raise invalid(f"{name} must be one of {allowed}, got {show(value)}")
    return number


def number(
    body: Mapping[str, Any], name: str, low: float, high: float, default: float | None = None
) -> float:
    """A finite number field in ``[low, high]``; missing: ``default`` or 400."""
    value = body.get(name)
    expected = f"a number from {low:g} to {high:g}"
    if value is None:
        if default is None:
            raise invalid(f"{name} is required: {expected}")
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise invalid(f"{name} must be {expected}, got {show(value)}")
    return float(value)


def choice(body: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    """One of the strings ``choices``; missing: ``default``."""
    value = body.get(name)
    if value is None:
        return default
    if value not in choices:
        raise invalid(f"{name} must be one of {', '.join(choices)}, got {show(value)}")
    return str(value)


def boolean(body: Mapping[str, Any], name: str, default: bool) -> bool:
    """``true`` or ``false``; missing: ``default``."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"{name} must be true or false, got {show(value)}")
    return value


def text(body: Mapping[str, Any], name: str, limit: int | None = None) -> str:
    """A required non-empty string of at most ``limit`` characters (None: no limit)."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid(f"{name} is required: a non-empty string, got {show(value)}")
    if limit is not None and len(value) > limit:
        raise invalid(f"{name} must be at most {limit} characters, got {len(value)}")
    return value


def optional_str(body: Mapping[str, Any], name: str) -> str | None:
    """A string field; missing or null: None."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{name} must be a string, got {show(value)}")
    return value
