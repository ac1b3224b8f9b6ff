"""Pure retry math: which failures to retry and how long to wait. No sleeping, no I/O."""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

from ._config import WAKE_CODES, RetryPolicy
from .errors import APIConnectionError, APIError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def parse_retry_after(
    header: str | None, body_value: object = None, *, now: float | None = None
) -> float | None:
    """Seconds to wait, from a ``Retry-After`` header (seconds or a date) or a body ``retry_after``.

    The body value wins when both are present: it is the more precise (a float).
    Returns ``None`` when neither parses to a non-negative finite number.
    """
    if isinstance(body_value, int | float) and not isinstance(body_value, bool):
        if math.isfinite(body_value) and body_value >= 0:
            return float(body_value)
    if not header:
        return None
    header = header.strip()
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(0.0, seconds)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def is_retryable_status(status: int, code: str | None, method: str) -> bool:
    """Whether an error answer may succeed when repeated.

    429, 503 and the wake codes mean the request was not carried out, so any
    method may repeat it; other 5xx only idempotent ones.
    """
    if status in (429, 503) or (code is not None and code in WAKE_CODES):
        return True
    return status >= 500 and method in IDEMPOTENT_METHODS


def is_retryable_error(exc: Exception, method: str, *, idempotent: bool | None = None) -> bool:
    """Whether a failed attempt may be repeated."""
    if isinstance(exc, APIError):
        return exc.retryable
    if isinstance(exc, APIConnectionError):
        if not exc.retryable:
            return False
        if not exc.sent:
            return True
        return method in IDEMPOTENT_METHODS if idempotent is None else idempotent
    return False


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff for the given retry number (0 for the first retry)."""
    ceiling = min(policy.backoff_max, policy.backoff_base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0.0, ceiling)


def next_delay(
    exc: Exception, attempt: int, policy: RetryPolicy, rng: random.Random | None = None
) -> float | None:
    """How long to wait before retry number ``attempt`` after ``exc``; ``None`` to stop retrying.

    Honours the server's ``retry_after`` when it is within the policy's bound.
    """
    if attempt + 1 >= policy.max_attempts:
        return None
    retry_after = exc.retry_after if isinstance(exc, APIError) else None
    if retry_after is not None:
        if retry_after > policy.max_retry_after:
            return None
        return retry_after
    return backoff(attempt, policy, rng)


def error_fields(body: object) -> Mapping[str, object]:
    """Orgo's error fields from a decoded body, flat or OpenAI-style nested."""
    if not isinstance(body, dict):
        return {}
    inner = body.get("error")
    if isinstance(inner, dict):
        # {"error": {"type", "message", "code"}} (the chat endpoints)
        merged = dict(body)
        merged.update(inner)
        merged["error"] = inner.get("message")
        return merged
    return body
