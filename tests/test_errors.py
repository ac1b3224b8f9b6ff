"""The error classes behave as exceptions: their messages, reprs, equality and pickling."""

from __future__ import annotations

import pickle

import pytest

from orgo_async import APIConnectionError, APIError, NotFoundError, RateLimitError


def test_an_api_error_reads_as_its_description_and_keeps_its_fields() -> None:
    error = RateLimitError(
        status=429,
        message="slow down",
        code="rate_limited",
        request_id="req_1",
        retry_after=2.0,
        retryable=True,
        method="POST",
        path="/computers",
    )
    text = "POST /computers -> 429 rate_limited: slow down (request_id=req_1)"
    assert str(error) == text
    assert error.args == (text,)
    assert repr(error) == f"RateLimitError({text!r})"
    assert (error.status, error.code, error.retry_after, error.retryable) == (
        429,
        "rate_limited",
        2.0,
        True,
    )
    assert error.upstream_status is None and error.body is None
    assert isinstance(error, APIError)


def test_api_errors_are_equal_only_to_themselves_and_hashable() -> None:
    one = NotFoundError(status=404, message="gone")
    other = NotFoundError(status=404, message="gone")
    assert one == one and one != other
    assert len({one, other}) == 2


def test_an_api_error_takes_keywords_only() -> None:
    with pytest.raises(TypeError):
        APIError(404, "gone")  # type: ignore[call-arg]


def test_a_connection_error_survives_pickling() -> None:
    error = APIConnectionError("reset", method="GET", path="/computers", sent=False)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is APIConnectionError
    assert str(copy) == str(error)
    assert (copy.method, copy.path, copy.sent, copy.retryable) == ("GET", "/computers", False, True)

