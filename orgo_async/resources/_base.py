"""What every resource shares: a back-reference to the session."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from .._client import Orgo


class Resource:
    """A group of API calls bound to one :class:`~orgo_async.Orgo` session."""

    def __init__(self, client: Orgo) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def require_id(value: object, what: str) -> str:
    """An id checked to be a non-empty string.

    Raises:
        ValueError: the id is empty or not a string.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string; got {value!r}")
    return value


def path_id(value: object, what: str) -> str:
    """An id checked (see :func:`require_id`) and escaped as one path segment."""
    return quote(require_id(value, what), safe="")
