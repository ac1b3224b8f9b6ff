"""What every resource shares: the session, and the HTTP verbs bound to a ``cast_to``.

A resource method checks its arguments, then makes one call such as::

    return await self._get(f"/computers/{id}", cast_to=Computer, timeout=timeout)

and the base sends it through the session's request loop (retries, timeouts,
error mapping) and turns the answer into ``cast_to`` with the one converter:

- a model class (or ``str``, ``int``...): the JSON body, or its ``key`` member;
- ``list[Model]``: the list under the first of ``keys`` present, or a bare list;
- ``bytes``: the raw body; :class:`Response`: the answer itself; ``None``: nothing.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar, Unpack
from urllib.parse import quote

from .._checks import check_id
from .._converter import structure, structure_list
from .._http import Response
from .._session import RequestOptions
from ..errors import ResponseValidationError

if TYPE_CHECKING:
    from .._session import Session

T = TypeVar("T")


class CallOptions(RequestOptions, total=False):
    """A request's options, and where in the answer the result is."""

    key: str | None
    """The member of the JSON object that holds the result."""
    keys: Sequence[str]
    """For lists: the members that may hold it (the first present wins)."""


class Resource:
    """A group of API calls bound to one session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def _call(
        self,
        method: str,
        path: str,
        *,
        cast_to: type[T],
        key: str | None = None,
        keys: Sequence[str] = (),
        **options: Unpack[RequestOptions],
    ) -> T:
        response = await self._session.request(method, path, **options)
        return cast(response, cast_to, key=key, keys=keys)

    async def _get(self, path: str, *, cast_to: type[T], **options: Unpack[CallOptions]) -> T:
        return await self._call("GET", path, cast_to=cast_to, **options)

    async def _post(self, path: str, *, cast_to: type[T], **options: Unpack[CallOptions]) -> T:
        # Not idempotent unless told: a create or an action must not happen twice.
        options.setdefault("idempotent", False)
        return await self._call("POST", path, cast_to=cast_to, **options)

    async def _patch(self, path: str, *, cast_to: type[T], **options: Unpack[CallOptions]) -> T:
        # Every PATCH of Orgo's sets absolute values: repeating it is safe.
        options["idempotent"] = True
        return await self._call("PATCH", path, cast_to=cast_to, **options)

    async def _delete(self, path: str, **options: Unpack[CallOptions]) -> None:
        await self._call("DELETE", path, cast_to=type(None), **options)


def cast(
    response: Response, cast_to: type[T], *, key: str | None = None, keys: Sequence[str] = ()
) -> T:
    """Turn an answer into ``cast_to`` (see the module docstring)."""
    if cast_to is type(None):
        return None
    if cast_to is Response:
        return response  # type: ignore[return-value]
    if cast_to is bytes:
        return response.content  # type: ignore[return-value]
    body = response.json()
    if typing.get_origin(cast_to) is list:
        (item,) = typing.get_args(cast_to)
        return structure_list(body, item, *keys)  # type: ignore[return-value]
    if key is not None:
        if not isinstance(body, dict) or key not in body:
            raise ResponseValidationError(
                getattr(cast_to, "__name__", str(cast_to)), [f"no {key!r} in the answer"]
            )
        body = body[key]
    return structure(body, cast_to)


def path_id(value: object, what: str) -> str:
    """An id checked (see :func:`~orgo_async._checks.check_id`) and escaped as one path segment."""
    return quote(check_id(what, value), safe="")
