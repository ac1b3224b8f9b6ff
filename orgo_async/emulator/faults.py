"""Fault injection: declarative rules matched against each ``/api/`` request.

A :class:`FaultRule` says what to break (``kind``), for which requests
(``method``, ``path`` regex), how often (``times``, ``probability``) and how
(``status``/``code``/``retry_after`` or ``delay``). :class:`Faults` holds the
rules in order; the first rule that matches *and* fires decides the fault.

Kinds:

``status``
    Answer ``status`` with Orgo's error body (``code``, ``retry_after``) and a
    ``Retry-After`` header when ``retry_after`` is set; the handler never runs.
``drop``
    Close the connection without running the handler or answering.
``delay``
    Sleep ``delay`` seconds, then handle the request normally.
``lose_response``
    Run the handler (its side effects happen: a computer *is* created), then
    close the connection instead of answering.
``slow_answer``
    Run the handler, then wait ``delay`` seconds before answering: the work is
    done (a boot has started) and the client hears of it late, as behind a
    queue of answers on their way back.
"""

from __future__ import annotations

import http
import math
import random
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal

import attrs

__all__ = ["FaultKind", "FaultRule", "Faults"]

FaultKind = Literal["status", "drop", "delay", "lose_response", "slow_answer"]
_KINDS: Final = ("status", "drop", "delay", "lose_response", "slow_answer")

_DEFAULT_CODES: Final[Mapping[int, str]] = {
    400: "bad_request",
    401: "invalid_api_key",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}

# Human messages for Orgo's transient codes (docs/orgo-api.md §1.2); others use the HTTP phrase.
_MESSAGES: Final[Mapping[str, str]] = {
    "rate_limited": "Too many requests",
    "resuming": "Computer is resuming",
    "wake_failed": "Computer failed to wake",
    "computer_waking": "Computer is waking up",
    "resume_in_progress": "Computer resume in progress",
    "suspend_in_progress": "Computer suspend in progress",
    "computer_asleep": "Computer is asleep",
    "no_capacity": "No capacity available",
}


def _validate_kind(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}; got {value!r}")


def _validate_method(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"method must be None or an HTTP method name, got {value!r}")


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _validate_path(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"path must be None or a regular expression string, got {value!r}")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"path is not a valid regular expression: {exc}") from None


def _validate_times(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"times must be None or an int >= 0, got {value!r}")


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return number
    return None


def _validate_probability(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ValueError(f"probability must be a number in [0, 1], got {value!r}")


def _validate_status(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 599:
        raise ValueError(f"status must be an int in [400, 599], got {value!r}")


def _validate_code(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"code must be None or a non-empty string, got {value!r}")


def _validate_seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None and attribute.name == "retry_after":
        return
    number = _number(value)
    if number is None or number < 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")


def _new_rule_id() -> str:
    return "flt_" + secrets.token_hex(6)


@attrs.define(kw_only=True)
class FaultRule:
    """One fault to inject; see the module docstring for the kinds.

    ``path`` is a regular expression searched (``re.search``) in the request
    path, e.g. ``r"^/api/computers$"``; ``None`` matches every path, as
    ``method=None`` matches every method. ``times=None`` fires without limit.
    ``retry_after`` is sent as ``Retry-After`` (whole seconds, rounded up) and
    as ``retry_after`` in the body (exact). Invalid values raise ``ValueError``
    naming the field. ``fired`` counts how often the rule has fired.
    """

    kind: FaultKind = attrs.field(validator=_validate_kind)
    method: str | None = attrs.field(default=None, converter=_upper, validator=_validate_method)
    path: str | None = attrs.field(default=None, validator=_validate_path)
    times: int | None = attrs.field(default=None, validator=_validate_times)
    probability: float = attrs.field(default=1.0, validator=_validate_probability)
    status: int = attrs.field(default=429, validator=_validate_status)
    code: str | None = attrs.field(default=None, validator=_validate_code)
    retry_after: float | None = attrs.field(default=None, validator=_validate_seconds)
    delay: float = attrs.field(default=0.0, validator=_validate_seconds)
    id: str = attrs.field(factory=_new_rule_id)
    fired: int = attrs.field(default=0, init=False)

    @property
    def exhausted(self) -> bool:
        """True once the rule has fired ``times`` times."""
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str) -> bool:
        """Whether the request is in scope (ignores ``probability`` and ``times``)."""
        if self.method is not None and self.method != method.upper():
            return False
        # re caches compiled patterns, so this does not recompile per request.
        return self.path is None or re.search(self.path, path) is not None

    @property
    def error_code(self) -> str:
        """``code``, or a conventional code for ``status``."""
        if self.code is not None:
            return self.code
        return _DEFAULT_CODES.get(self.status, f"http_{self.status}")

    @property
    def error_message(self) -> str:
        """The human message sent in ``error``."""
        message = _MESSAGES.get(self.error_code)
        if message is not None:
            return message
        try:
            return http.HTTPStatus(self.status).phrase
        except ValueError:
            return f"HTTP {self.status}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: what :meth:`from_dict` accepts, plus ``fired``."""
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from JSON; ``ValueError`` on unknown keys or bad values."""
        fields = {a.name for a in attrs.fields(cls) if a.init}
        # "fired" is reported by to_dict(); accept it back but never trust it.
        params = {key: value for key, value in data.items() if key != "fired"}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ValueError(f"unknown fault rule field(s): {', '.join(unknown)}")
        if "kind" not in params:
            raise ValueError(f"kind is required: one of {', '.join(_KINDS)}")
        return cls(**params)


class Faults:
    """The ordered fault rules of one emulator.

    :meth:`match` is called once per in-scope request; it consumes one firing
    of the first rule that matches and passes its probability draw.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._rng = rng if rng is not None else random.Random()

    def reseed(self, seed: int | str | None) -> None:
        """Start the probability draws over from ``seed`` (``None``: from the OS)."""
        self._rng.seed(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        """Append ``rule`` (checked after the existing ones) and return it."""
        if any(existing.id == rule.id for existing in self._rules):
            raise ValueError(f"a fault rule with id {rule.id!r} already exists")
        self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule | str) -> bool:
        """Remove a rule (or its id); False if it was not there."""
        rule_id = rule if isinstance(rule, str) else rule.id
        for index, existing in enumerate(self._rules):
            if existing.id == rule_id:
                del self._rules[index]
                return True
        return False

    def clear(self) -> int:
        """Remove every rule; returns how many there were."""
        count = len(self._rules)
        self._rules.clear()
        return count

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The rules, in match order."""
        return tuple(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[FaultRule]:
        return iter(tuple(self._rules))

    def match(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if any (and count its firing)."""
        for rule in self._rules:
            if rule.exhausted or not rule.matches(method, path):
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            rule.fired += 1
            return rule
        return None
