"""The retry math is pure: no clock, no sleeping."""

from __future__ import annotations

import random

import pytest

from orgo_async import APIConnectionError, RateLimitError, RetryPolicy, ServerError
from orgo_async._retry import (
    backoff,
    is_retryable_error,
    is_retryable_status,
    next_delay,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        ("3", None, 3.0),
        ("0", None, 0.0),
        (None, 1.5, 1.5),
        ("3", 0.25, 0.25),
        ("-1", None, None),
        ("soon", None, None),
        (None, True, None),
        (None, float("inf"), None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", None, 10.0),
    ],
)
def test_parse_retry_after(header: str | None, body: object, expected: float | None) -> None:
    now = 1445412480.0  # ten seconds before the date above
    assert parse_retry_after(header, body, now=now) == expected


@pytest.mark.parametrize(
    ("status", "code", "method", "retry"),
    [
        (429, None, "POST", True),
        (503, None, "POST", True),
        (409, "computer_waking", "POST", True),
        (409, "resume_in_progress", "GET", True),
        (409, "name_exists", "POST", False),
        (500, None, "GET", True),
        (500, None, "POST", False),
        (502, None, "DELETE", True),
        (404, None, "GET", False),
        (400, None, "GET", False),
    ],
)
def test_retryable_statuses(status: int, code: str | None, method: str, retry: bool) -> None:
    assert is_retryable_status(status, code, method) is retry


def test_connection_errors_retry_when_unsent_or_idempotent() -> None:
    unsent = APIConnectionError("refused", sent=False)
    lost = APIConnectionError("dropped", sent=True)
    assert is_retryable_error(unsent, "POST")
    assert not is_retryable_error(lost, "POST")
    assert is_retryable_error(lost, "GET")
    assert is_retryable_error(lost, "POST", idempotent=True)
    assert not is_retryable_error(lost, "GET", idempotent=False)


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=4.0)
    rng = random.Random(1)
    samples = [backoff(5, policy, rng) for _ in range(2000)]
    assert max(samples) <= 4.0
    assert min(samples) >= 0.0
    assert max(samples) > 3.5 and min(samples) < 0.5  # spread over the whole range
    assert max(backoff(0, policy, rng) for _ in range(200)) <= 0.5


def test_next_delay_honours_retry_after_and_attempt_budget() -> None:
    policy = RetryPolicy(max_attempts=3, max_retry_after=10.0)
    limited = RateLimitError(status=429, message="slow down", retry_after=2.0, retryable=True)
    assert next_delay(limited, 0, policy) == 2.0
    assert next_delay(limited, 1, policy) == 2.0
    assert next_delay(limited, 2, policy) is None  # the third attempt was the last
    too_long = RateLimitError(status=429, message="x", retry_after=11.0, retryable=True)
    assert next_delay(too_long, 0, policy) is None
    plain = ServerError(status=503, message="x", retryable=True)
    delay = next_delay(plain, 0, policy, random.Random(2))
    assert delay is not None and 0 <= delay <= policy.backoff_base


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff_base"):
        RetryPolicy(backoff_base=0)
    assert RetryPolicy.off().max_attempts == 1
