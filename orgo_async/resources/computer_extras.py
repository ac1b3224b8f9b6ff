"""``orgo.computers``, continued: RTMP streams, resume, ensure-running, fork, the events catalog.

:class:`ComputerExtras` is a base of :class:`~orgo_async.resources.computers.Computers`:
its methods are reached as ``orgo.computers.start_stream(...)`` and so on.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Final, cast

from .._checks import check_seconds, check_text, optional
from .._config import Timeouts
from .._http import Response
from ..errors import ResponseValidationError
from ..health import wait_ready
from ..models import Computer, ComputerStatus, EventTypeInfo, ResumeResult, StreamInfo
from ._base import Resource, path_id

if TYPE_CHECKING:
    from ..health import StatusReader

__all__ = ["ComputerExtras"]

# An RTMP connection's name as configured in Orgo's account settings.
MAX_CONNECTION_NAME: Final = 100


def _computer_path(ref: str | Computer, rest: str = "") -> str:
    value = ref.id if isinstance(ref, Computer) else ref
    path = f"/computers/{path_id(value, 'computer id')}"
    return f"{path}/{rest}" if rest else path


class ComputerExtras(Resource):
    """Streams, resume, ensure-running, fork and the events catalog of one computer each."""

    # -- RTMP streams ------------------------------------------------------------

    async def start_stream(
        self,
        computer: str | Computer,
        connection_name: str,
        *,
        timeout: Timeouts | float | None = None,
    ) -> StreamInfo:
        """Stream the computer's display over RTMP to a connection set up in Orgo's settings.

        Orgo keeps the RTMP server URL and stream key with the connection: only
        its name is sent, so no stream key passes through this SDK.

        Args:
            connection_name: The RTMP connection's name (e.g. ``"twitch"``).

        Raises:
            ValueError: ``connection_name`` is empty or too long (before any request).
            ConflictError: the computer is not running, or a stream already runs.
            NotFoundError: no such computer, or no connection of that name.
        """
        name = check_text("connection_name", connection_name, max_length=MAX_CONNECTION_NAME)
        return await self._post(
            _computer_path(computer, "stream/start"),
            cast_to=StreamInfo,
            json={"connection_name": name},
            timeout=timeout,
        )

    async def stream_status(
        self, computer: str | Computer, *, timeout: Timeouts | float | None = None
    ) -> StreamInfo:
        """The stream's status: ``idle``, ``streaming`` (with ``pid`` and ``start_time``)
        or ``terminated`` (with a ``message``)."""
        return await self._get(
            _computer_path(computer, "stream/status"), cast_to=StreamInfo, timeout=timeout
        )

    async def stop_stream(
        self, computer: str | Computer, *, timeout: Timeouts | float | None = None
    ) -> None:
        """Stop the computer's stream; stopping when none runs is not an error."""
        await self._post(
            _computer_path(computer, "stream/stop"),
            cast_to=type(None),
            idempotent=True,
            timeout=timeout,
        )

    # -- waking ------------------------------------------------------------------

    async def resume(
        self, computer: str | Computer, *, timeout: Timeouts | float | None = None
    ) -> ResumeResult:
        """Wake a stopped or suspended computer without waiting for it.

        Returns whether it is waking, whether the wake is still pending and
        about how long it should take (``expected_seconds``).

        Raises:
            ConflictError: it is stopping right now (retry after ``retry_after``).
            PaymentRequiredError: no compute hours left.
        """
        return await self._post(
            _computer_path(computer, "resume"),
            cast_to=ResumeResult,
            idempotent=True,
            timeout=timeout,
        )

    async def ensure_running(
        self,
        computer: str | Computer,
        *,
        ready_timeout: float | None = 120.0,
        timeout: Timeouts | float | None = None,
    ) -> Computer:
        """The computer, running: a stopped (or suspended) one is started, then waited for.

        A running computer comes back at once. Otherwise this waits (up to
        ``ready_timeout`` seconds) until its desktop answers, and returns it as
        it is then (with its new ``vnc_password``).

        Raises:
            ReadyTimeout: it did not become ready in time.
            ComputerFailedError: its boot failed.
            ConflictError: it is stopping right now.
        """
        optional(check_seconds)("ready_timeout", ready_timeout, inclusive=False)
        answered = await self._post(
            _computer_path(computer, "ensure-running"),
            cast_to=Computer,
            idempotent=True,
            timeout=timeout,
        )
        if answered.status == ComputerStatus.RUNNING:
            return answered
        # This mixin is only ever a base of Computers, which is a StatusReader.
        reader = cast("StatusReader", self)
        await wait_ready(self._session, reader, answered, timeout=ready_timeout)
        return await self._get(_computer_path(answered.id), cast_to=Computer, timeout=timeout)

    async def fork(
        self, computer: str | Computer, *, timeout: Timeouts | float | None = None
    ) -> Computer:
        """A new computer forked from a running one: its disk and its live memory.

        Raises:
            InvalidRequestError: the source is not running (``NOT_FORKABLE``).
            PermissionDeniedError: the plan allows no more computers.
        """
        return await self._post(_computer_path(computer, "fork"), cast_to=Computer, timeout=timeout)

    # -- catalogs ----------------------------------------------------------------

    async def event_types(
        self, computer: str | Computer, *, timeout: Timeouts | float | None = None
    ) -> builtins.list[EventTypeInfo]:
        """The event types the computer's events socket delivers (``connect(...).events()``).

        Accepts the catalog as objects or as bare names.
        """
        response = await self._get(
            _computer_path(computer, "events"), cast_to=Response, timeout=timeout
        )
        return _catalog(response.json())


def _catalog(body: Any) -> list[EventTypeInfo]:
    items: Any = body
    if isinstance(body, dict):
        items = next((body[k] for k in ("event_types", "events", "types") if k in body), None)
    if not isinstance(items, list):
        raise ResponseValidationError("EventTypeInfo", ["no event_types list in the answer"])
    out: list[EventTypeInfo] = []
    for item in items:
        if isinstance(item, str):
            out.append(EventTypeInfo(type=item))
        elif isinstance(item, dict) and isinstance(item.get("type"), str):
            data = item.get("data")
            fields = (
                data if isinstance(data, list) else list(data) if isinstance(data, dict) else []
            )
            description = item.get("description")
            out.append(
                EventTypeInfo(
                    type=item["type"],
                    description=description if isinstance(description, str) else None,
                    data=tuple(str(f) for f in fields),
                )
            )
        else:
            raise ResponseValidationError("EventTypeInfo", [f"not an event type: {item!r}"])
    return out
