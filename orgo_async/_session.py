"""What every part of the client shares: the transport, timeouts, retries and open/closed state.

:class:`Session` is the narrow interface the resources, the readiness race
and the fleet depend on. It owns the request loop (retries within the call's
total timeout) and the single-attempt ``send`` that health probes use, and
nothing else: the public :class:`~orgo_async.Orgo` composes it with the
resources, and nothing below ``Orgo`` reaches into ``Orgo`` itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypedDict, Unpack

import aiohttp
import attrs

from ._boot_model import BootModel
from ._clocks import RttEstimator, ServerClock
from ._config import RetryPolicy, Timeouts
from ._http import HttpTransport, Response, status_error
from ._observe import RetryObserver
from ._probe import ProbeTransport
from ._retry import is_retryable_error, next_delay
from .errors import APIConnectionError, APIError, APITimeoutError, ClientClosedError, OrgoError
from .health import probe_timeouts

log = logging.getLogger("orgo_async")


class RequestOptions(TypedDict, total=False):
    """The options of one request (see :meth:`Session.request`)."""

    json: Any
    """A JSON body."""
    params: Mapping[str, str] | None
    """Query parameters."""
    data: Callable[[], aiohttp.FormData] | None
    """Builds a form body, once per attempt (a form is read once)."""
    timeout: Timeouts | float | None
    """This call's timeouts (a number: its total)."""
    idempotent: bool | None
    """Whether repeating it is safe (``None``: as its method says)."""
    retry: RetryPolicy | None
    """This call's retry policy."""
    observer: RetryObserver | None
    """Told of each retry (a launch counts them; a fleet slows down on 429)."""
    headers: Mapping[str, str] | None
    """Extra request headers (sent to the API's origin only; never logged)."""


@attrs.define(eq=False, repr=False, slots=False)
class Session:
    """One connection pool with its timeouts, retry policy and learned boot times."""

    transport: HttpTransport
    probe_transport: ProbeTransport | None = attrs.field(kw_only=True, default=None, alias="probe")
    """The lean transport of health probes (``None``: they go through ``transport``)."""
    timeouts: Timeouts = attrs.field(kw_only=True)
    retry: RetryPolicy = attrs.field(kw_only=True)
    boot_model: BootModel = attrs.field(init=False, factory=BootModel)
    """The boot times seen so far; they place the readiness probes."""
    probe_rtt: RttEstimator = attrs.field(init=False, factory=RttEstimator)
    """The round trips of health probes sent outside a fleet."""
    server_clock: ServerClock = attrs.field(init=False, factory=ServerClock)
    """The server's clock, read from its create stamps: where boots start."""
    closed: bool = attrs.field(init=False, default=False)
    _rng: random.Random = attrs.field(init=False, factory=random.Random)
    # One lock per computer: Orgo fails overlapping screenshots of one computer.
    _screenshot_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = attrs.field(
        init=False, factory=weakref.WeakValueDictionary
    )

    def __repr__(self) -> str:
        return f"<Session base_url={self.transport.base_url!r}>"

    def check_open(self) -> None:
        """Raise :class:`ClientClosedError` once the session is closed."""
        if self.closed:
            raise ClientClosedError("this Orgo session is closed; open a new one")

    async def close(self) -> None:
        self.closed = True
        if self.probe_transport is not None:
            await self.probe_transport.close()
        await self.transport.close()

    def screenshot_lock(self, computer_id: str) -> asyncio.Lock:
        """The lock that keeps screenshots of one computer from overlapping."""
        lock = self._screenshot_locks.get(computer_id)
        if lock is None:
            lock = self._screenshot_locks[computer_id] = asyncio.Lock()
        return lock

    def send(self, method: str, path: str, *, timeouts: Timeouts) -> Awaitable[Response]:
        """One attempt, whatever its answer: no retries, no error mapping of statuses.

        (The transport's coroutine itself: health probes pay for no extra layer.)

        Raises:
            APIConnectionError: no answer (``APITimeoutError`` naming the phase).
        """
        return self.transport.send(method, path, timeouts=timeouts)

    async def probe(self, path: str, *, timeout: float) -> int:
        """One health probe: ``GET path`` within ``timeout`` seconds, whatever its status.

        No retries; the body is discarded; a redirect is a status like any other.

        Raises:
            APIConnectionError: no answer (``APITimeoutError`` naming the phase).
        """
        if self.probe_transport is not None:
            return await self.probe_transport.status(path, timeout=timeout)
        try:
            response = await self.transport.send("GET", path, timeouts=probe_timeouts(timeout))
        except APIError as exc:  # the transport's redirect error
            if 300 <= exc.status < 400:
                return exc.status
            raise
        return response.status

    async def request(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> Response:
        """Send a request, retrying per policy within the call's total timeout.

        Returns the 2xx answer. Raises the APIError of the last error answer, or
        the APIConnectionError of the last failed attempt.
        """
        self.check_open()
        timeouts = self.timeouts.resolve(options.get("timeout"))
        policy = options.get("retry") or self.retry
        idempotent = options.get("idempotent")
        data = options.get("data")
        loop = asyncio.get_running_loop()
        deadline = None if timeouts.total is None else loop.time() + timeouts.total
        attempt = 0
        # A DELETE whose earlier attempt may have been carried out: a 404 then means done.
        maybe_deleted = False
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    response = await self.transport.send(
                        method,
                        path,
                        timeouts=timeouts,
                        json_body=options.get("json"),
                        params=options.get("params"),
                        # A form is read once: build one per attempt.
                        data=None if data is None else data(),
                        headers=options.get("headers"),
                    )
            except TimeoutError as exc:
                raise APITimeoutError(
                    phase="total", seconds=timeouts.total, method=method, path=path
                ) from exc
            except OrgoError as exc:
                failure: OrgoError = exc
            else:
                if response.status < 400 or (maybe_deleted and response.status == 404):
                    return response
                failure = status_error(response)
            if method == "DELETE" and isinstance(failure, APIConnectionError) and failure.sent:
                maybe_deleted = True
            if not is_retryable_error(failure, method, idempotent=idempotent):
                raise failure
            delay = next_delay(failure, attempt, policy, self._rng)
            if delay is None or (deadline is not None and loop.time() + delay > deadline):
                raise failure
            log.debug("retrying %s %s in %.3f s after: %s", method, path, delay, failure)
            observer = options.get("observer")
            if observer is not None:
                observer.on_retry(failure, delay)
            attempt += 1
            await policy.sleep(delay)
            self.check_open()
