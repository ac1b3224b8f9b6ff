"""The Orgo session: configuration, transport, retries, and the resources."""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from ._config import RetryPolicy, Timeouts, env_api_key, env_base_url
from ._http import HttpTransport, Response, status_error
from ._observe import current_observer
from ._retry import is_retryable_error, next_delay
from ._version import __version__
from .connect import Connection, ReconnectPolicy
from .errors import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    MissingAPIKeyError,
    OrgoError,
)
from .fanout import Outcome, for_each
from .fleet import AdaptiveLimiter, Fleet, FleetResult, collect, fleet_specs, reap
from .health import BootModel, ReadyInfo
from .models import BashResult, Computer, ComputerSpec, ExecResult, Screenshot
from .resources.computers import Computers
from .resources.desktop import Desktop, Route
from .resources.files import Files
from .resources.workspaces import Workspaces

__all__ = ["Orgo"]

T = TypeVar("T")

log = logging.getLogger("orgo_async")

class Orgo:
    """A session with Orgo's API: one pooled HTTP connection pool, timeouts and retries.

    Use it as an async context manager; leaving the block closes everything the
    session opened::

        async with Orgo() as orgo:
            ws = await orgo.workspaces.create("agents")
            computer = await orgo.computers.create(workspace_id=ws.id, name="agent-1")

    Args:
        api_key: The API key; defaults to ``ORGO_API_KEY``.
        base_url: The API root; defaults to ``ORGO_BASE_URL``, else ``https://www.orgo.ai/api``.
        timeouts: Per-phase timeouts; every call also takes ``timeout=``.
        retry: When and how long to retry failed requests.
        max_connections: Size of the connection pool, shared by everything the
            session does (large enough that a fleet of hundreds does not queue).

    Raises:
        MissingAPIKeyError: neither ``api_key`` nor ``ORGO_API_KEY`` is set.
        ValueError: ``base_url`` is not an http(s) URL, or ``max_connections`` < 1.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 1000,
    ) -> None:
        key = api_key if api_key is not None else env_api_key()
        if not key:
            raise MissingAPIKeyError(
                "no API key: pass api_key= or set ORGO_API_KEY (keys live at orgo.ai/workspaces)"
            )
        url = (base_url or env_base_url()).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://; got {url!r}")
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(f"max_connections must be an int >= 1; got {max_connections!r}")
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._transport = HttpTransport(
            base_url=url,
            api_key=key,
            max_connections=max_connections,
            user_agent=f"orgo_async/{__version__} aiohttp/{aiohttp.__version__}",
        )
        self._closed = False
        self._rng = random.Random()
        self._boot_model = BootModel()
        # One lock per computer: Orgo fails overlapping screenshots of one computer.
        self._screenshot_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self.workspaces = Workspaces(self)
        """Workspaces: create, list, get, get by name, delete."""
        self.computers = Computers(self)
        """Computers: create, get, list, delete, lifecycle, resize, credentials."""
        self.files = Files(self)
        """Files: upload, list, export, download, delete."""

    # -- public -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root every path is relative to."""
        return self._transport.base_url

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def boot_model(self) -> BootModel:
        """The boot times this session has seen; they place the readiness probes."""
        return self._boot_model

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Orgo base_url={self.base_url!r} {state}>"

    async def __aenter__(self) -> Orgo:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections. Idempotent."""
        self._closed = True
        await self._transport.close()

    async def wait_ready(
        self, computer: Computer, *, timeout: float | None = 120.0, since: float | None = None
    ) -> ReadyInfo:
        """Wait until the computer answers its health probe; see ``computers.wait_ready``."""
        return await self.computers.wait_ready(computer, timeout=timeout, since=since)

    def desktop(self, computer: Computer, *, route: Route = "platform") -> Desktop:
        """Desktop actions on ``computer`` (screenshot, click, type, key, bash, exec...).

        ``route="proxy"`` sends them through ``/desktops/{instance_id}/proxy/`` instead
        of the platform routes ``/computers/{id}/``.
        """
        self._check_open()
        return Desktop(self, computer, route=route)

    async def each(
        self,
        computers: Sequence[Computer],
        action: Callable[[Desktop], Awaitable[T]],
        *,
        concurrency: int = 16,
        route: Route = "platform",
    ) -> list[Outcome[T]]:
        """Run ``action(desktop)`` on every computer, ``concurrency`` at a time.

        One :class:`~orgo_async.fanout.Outcome` per computer, in order: a value or
        the exception that computer's action raised.
        """
        return await for_each(self, computers, action, concurrency=concurrency, route=route)

    async def bash_all(
        self,
        computers: Sequence[Computer],
        command: str,
        *,
        timeout: int = 200,
        concurrency: int = 16,
    ) -> list[Outcome[BashResult]]:
        """``bash(command)`` on every computer; one outcome each."""
        return await self.each(
            computers, lambda d: d.bash(command, timeout=timeout), concurrency=concurrency
        )

    async def exec_all(
        self,
        computers: Sequence[Computer],
        code: str,
        *,
        timeout: int = 10,
        concurrency: int = 16,
    ) -> list[Outcome[ExecResult]]:
        """``exec(code)`` on every computer; one outcome each."""
        return await self.each(
            computers, lambda d: d.exec(code, timeout=timeout), concurrency=concurrency
        )

    async def screenshot_all(
        self, computers: Sequence[Computer], *, concurrency: int = 16
    ) -> list[Outcome[Screenshot]]:
        """A screenshot of every computer; one outcome each."""
        return await self.each(computers, lambda d: d.screenshot(), concurrency=concurrency)

    def _screenshot_lock(self, computer_id: str) -> asyncio.Lock:
        lock = self._screenshot_locks.get(computer_id)
        if lock is None:
            lock = self._screenshot_locks[computer_id] = asyncio.Lock()
        return lock

    def connect(
        self,
        computer: Computer,
        *,
        reconnect: ReconnectPolicy | None = None,
        keepalive: float | None = 20.0,
        ready_timeout: float = 60.0,
    ) -> Connection:
        """The computer's WebSockets: ``terminal()``, ``audio()``, ``events()``, ``vnc()``.

        No I/O happens until a socket is opened. See :class:`~orgo_async.connect.Connection`.
        """
        self._check_open()
        return Connection(
            self, computer, reconnect=reconnect, keepalive=keepalive, ready_timeout=ready_timeout
        )

    def fleet(
        self,
        workspace_id: str,
        count: int | None = None,
        *,
        specs: Sequence[ComputerSpec] | None = None,
        prefix: str = "fleet",
        concurrency: int = 16,
        rate: float | None = None,
        limiter: AdaptiveLimiter | None = None,
        ready_timeout: float | None = 120.0,
        deadline: float | None = None,
        ram: int | None = None,
        cpu: int | None = None,
        disk_size_gb: int | None = None,
        resolution: str | None = None,
        auto_stop_minutes: int | None = None,
        template_ref: str | None = None,
    ) -> Fleet:
        """A launch of ``count`` computers (or of ``specs``); enter it, then iterate it.

        Computers are named ``{prefix}-{run}-{n}``, so :meth:`reap` can find the
        leftovers of a crashed run. See :class:`~orgo_async.fleet.Fleet`.

        Args:
            concurrency: Launches in progress at once.
            rate: At most this many creates per second (``None``: as fast as allowed;
                429s slow the fleet down either way).
            limiter: The pacing of the creates; pass one to share it between fleets
                (``rate`` then does not apply).
            ready_timeout: Per computer, from its create's answer.
            deadline: For the whole launch; what is unfinished then fails.

        Raises:
            ValueError: bad counts, fields or options (before any request).
        """
        fields = {
            k: v
            for k, v in {
                "ram": ram,
                "cpu": cpu,
                "disk_size_gb": disk_size_gb,
                "resolution": resolution,
                "auto_stop_minutes": auto_stop_minutes,
                "template_ref": template_ref,
            }.items()
            if v is not None
        }
        items = fleet_specs(workspace_id, count=count, specs=specs, prefix=prefix, **fields)
        return Fleet(
            self,
            items,
            concurrency=concurrency,
            rate=rate,
            limiter=limiter,
            ready_timeout=ready_timeout,
            deadline=deadline,
        )

    async def launch_fleet(
        self,
        workspace_id: str,
        count: int | None = None,
        *,
        raise_on_failure: bool = False,
        **options: Any,
    ) -> FleetResult:
        """Launch a whole fleet and return every ready computer and every failure.

        Takes the arguments of :meth:`fleet`.

        Raises:
            FleetError: with ``raise_on_failure``, if any computer failed: all or
                nothing, so the ready ones are deleted first (you never receive
                them); the group holds one exception per failure.
        """
        fleet = self.fleet(workspace_id, count, **options)
        return await collect(fleet, raise_on_failure=raise_on_failure)

    async def reap(self, prefix: str, *, workspace_id: str | None = None) -> list[Computer]:
        """Delete the computers named ``{prefix}-...``: the leftovers of crashed fleets."""
        return await reap(self, prefix, workspace_id=workspace_id)

    # -- the request loop, used by the resources -----------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this Orgo session is closed; open a new one")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: Timeouts | float | None = None,
        idempotent: bool | None = None,
        retry: RetryPolicy | None = None,
        data: Callable[[], aiohttp.FormData] | None = None,
    ) -> Response:
        """Send a request, retrying per policy within the call's total timeout.

        Returns the 2xx answer. Raises the APIError of the last error answer, or
        the APIConnectionError of the last failed attempt.
        """
        self._check_open()
        timeouts = self.timeouts.resolve(timeout)
        policy = retry or self.retry
        loop = asyncio.get_running_loop()
        deadline = None if timeouts.total is None else loop.time() + timeouts.total
        attempt = 0
        # A DELETE whose earlier attempt may have been carried out: a 404 then means done.
        maybe_deleted = False
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    response = await self._transport.send(
                        method,
                        path,
                        timeouts=timeouts,
                        json_body=json,
                        params=params,
                        data=None
                        if data is None
                        else data(),  # a form is read once: one per attempt
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
            observer = current_observer()
            if observer is not None:
                observer.on_retry(failure, delay)
            attempt += 1
            await policy.sleep(delay)
            self._check_open()
