"""The Orgo session: configuration, transport, retries, and the resources."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, Unpack

import aiohttp

from ._boot_model import BootModel
from ._checks import check_count, check_seconds, optional
from ._config import RetryPolicy, Timeouts, env_api_key, env_base_url
from ._http import HttpTransport
from ._probe import PROBE_CONNECTIONS, ProbeTransport
from ._session import Session
from ._version import __version__
from .connect import Connection, ReconnectPolicy
from .errors import MissingAPIKeyError
from .fanout import Outcome, for_each
from .fleet import AdaptiveLimiter, Fleet, FleetOptions, FleetResult, collect, fleet_specs, reap
from .health import ReadyInfo
from .models import (
    BashResult,
    ComputeLimits,
    Computer,
    ComputerFields,
    ComputerSpec,
    ExecResult,
    Screenshot,
)
from .pool import Pool
from .resources.billing import Billing
from .resources.chat import Chat, Completions, Threads
from .resources.computers import Computers
from .resources.desktop import Desktop, Route
from .resources.files import Files
from .resources.screens import Screens
from .resources.templates import Templates
from .resources.workspaces import Workspaces

__all__ = ["Orgo"]

T = TypeVar("T")


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
        ssl: The TLS context for HTTPS and WSS (a private CA, a self-signed test
            server); by default the system's trust store.

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
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        key = api_key if api_key is not None else env_api_key()
        if not key:
            raise MissingAPIKeyError(
                "no API key: pass api_key= or set ORGO_API_KEY (keys live at orgo.ai/workspaces)"
            )
        url = (base_url or env_base_url()).rstrip("/")
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise ValueError(f"ssl must be an ssl.SSLContext or None; got {ssl!r}")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://; got {url!r}")
        check_count("max_connections", max_connections)
        user_agent = f"orgo_async/{__version__} aiohttp/{aiohttp.__version__}"
        transport = HttpTransport(
            base_url=url,
            api_key=key,
            max_connections=max_connections,
            user_agent=user_agent,
            ssl=ssl,
        )
        probe = ProbeTransport(
            url,
            key,
            user_agent,
            ssl=ssl,
            max_connections=min(max_connections, PROBE_CONNECTIONS),
        )
        self._session = Session(
            transport, timeouts=timeouts or Timeouts(), retry=retry or RetryPolicy(), probe=probe
        )
        self.base_url = transport.base_url
        """The API root every path is relative to."""
        self.boot_model: BootModel = self._session.boot_model
        """The boot times this session has seen; they place the readiness probes."""
        self.workspaces = Workspaces(self._session)
        """Workspaces: create, list, get, get by name, delete."""
        self.computers = Computers(self._session, workspaces=self.workspaces)
        """Computers: create, get, list, delete, lifecycle, resize, credentials."""
        self.files = Files(self._session)
        """Files: upload, list, export, download, delete."""
        self.templates = Templates(self._session)
        """Templates (orgo.ai/v1): publish, validate, list, build, build logs, wait_built."""
        self.screens = Screens(self._session)
        """A computer's screens: list, create, update, delete."""
        self.billing = Billing(self._session)
        """Account limits: compute limits and the capacity check."""
        self.chat = Chat(Completions(self._session), Threads(self._session))
        """The hosted agent: chat completions (OpenAI-compatible) and their threads."""

    # -- public -------------------------------------------------------------

    @property
    def timeouts(self) -> Timeouts:
        """The session's timeouts per phase (set them when creating the session;
        every call also takes ``timeout=``)."""
        return self._session.timeouts

    @property
    def retry(self) -> RetryPolicy:
        """When and how long failed requests are retried."""
        return self._session.retry

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Orgo base_url={self.base_url!r} {state}>"

    async def __aenter__(self) -> Orgo:
        self._session.check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections. Idempotent."""
        await self._session.close()

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def compute_limits(self, *, timeout: float | None = None) -> ComputeLimits:
        """The account's compute limits (``GET /billing/compute-limits``)."""
        return await self.billing.compute_limits(timeout=timeout)

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
        self._session.check_open()
        return Desktop(self._session, computer, route=route)

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
        check_count("concurrency", concurrency)
        desktops = [self.desktop(c, route=route) for c in computers]  # checked before any I/O
        return await for_each(desktops, action, concurrency=concurrency)

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
        self._session.check_open()
        optional(check_seconds)("ready_timeout", ready_timeout, inclusive=False)
        return Connection(
            self,
            computer,
            reconnect=reconnect,
            keepalive=keepalive,
            ready_timeout=ready_timeout,
            ssl=self._session.transport.ssl,
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
        check_capacity: bool = True,
        **fields: Unpack[ComputerFields],
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
            check_capacity: On entry, read the account's compute limits and
                raise :class:`CapacityError` (creating nothing) when the fleet
                does not fit; an API without limits (404) skips the check.
            **fields: The computers' fields, as for ``computers.create``
                (:class:`ComputerFields`); not with ``specs``.

        Raises:
            ValueError: bad counts, fields or options (before any request).
        """
        items = fleet_specs(workspace_id, count=count, specs=specs, prefix=prefix, **fields)
        return Fleet(
            self._session,
            self.computers,
            items,
            concurrency=concurrency,
            rate=rate,
            limiter=limiter,
            ready_timeout=ready_timeout,
            deadline=deadline,
            capacity_check=self.billing.check_capacity if check_capacity else None,
        )

    async def launch_fleet(
        self,
        workspace_id: str,
        count: int | None = None,
        *,
        raise_on_failure: bool = False,
        **options: Unpack[FleetOptions],
    ) -> FleetResult:
        """Launch a whole fleet and return every ready computer and every failure.

        Takes the arguments of :meth:`fleet`. With ``template_ref``, the template's
        build is waited for first (up to ``ready_timeout``, else 600 s).

        Raises:
            TemplateBuildError: with ``template_ref``, its build failed or never started.
            FleetError: with ``raise_on_failure``, if any computer failed: all or
                nothing, so the ready ones are deleted first (you never receive
                them); the group holds one exception per failure.
        """
        fleet = self.fleet(workspace_id, count, **options)
        template_ref = options.get("template_ref")
        if template_ref is not None:
            await self.templates.wait_built(
                template_ref, timeout=options.get("ready_timeout") or 600.0
            )
        return await collect(fleet, raise_on_failure=raise_on_failure)

    def pool(
        self,
        workspace_id: str,
        *,
        size: int,
        name_prefix: str = "pool",
        ready_timeout: float | None = 120.0,
        recheck: float | None = 60.0,
        rate: float | None = None,
        limiter: AdaptiveLimiter | None = None,
        **fields: Unpack[ComputerFields],
    ) -> Pool:
        """A warm pool of ``size`` ready computers; enter it, then ``await pool.claim()``.

        Computers are named ``{name_prefix}-{run}-{n}``: ``orgo.reap(name_prefix)``
        deletes what a killed process left. See :class:`~orgo_async.pool.Pool`.

        Args:
            size: Computers kept ready (1 to ``MAX_POOL_SIZE``).
            ready_timeout: Per computer, from its create's answer; a slower boot is
                deleted and replaced.
            recheck: Seconds between health checks of the computers held ready (one
                probe each; a failed one is deleted and replaced); ``None``: never.
            rate, limiter: The pacing of the creates, as for :meth:`fleet`.
            **fields: The computers' fields, as for ``computers.create``
                (:class:`ComputerFields`), ``template_ref`` included.

        Raises:
            ValueError: a bad size, prefix, field or option (before any request).
        """
        return Pool(
            self._session,
            self.computers,
            workspace_id,
            size=size,
            name_prefix=name_prefix,
            ready_timeout=ready_timeout,
            recheck=recheck,
            rate=rate,
            limiter=limiter,
            **fields,
        )

    async def reap(self, prefix: str, *, workspace_id: str | None = None) -> list[Computer]:
        """Delete the computers named ``{prefix}-...``: the leftovers of crashed fleets."""
        return await reap(self.computers, prefix, workspace_id=workspace_id)
