"""The :class:`Emulator` server, its aiohttp application and the request pipeline.

Paths, bodies, status codes and error shapes follow Orgo's documentation
(``docs/orgo-api.md``); where production drifted from the docs,
:class:`~orgo_async.emulator.EmulatorConfig` switches the drift on. Every
response carries ``X-Request-Id``; every error is ``{"error": message, "code":
snake_code, "request_id": id, ...extra}``.

Request pipeline (one middleware), for ``/api/...``:

1. count the request, 2. check ``Authorization: Bearer <api_key>`` (401),
3. apply config drift (``workspaces_path_missing``), 4. let the first firing
:class:`~orgo_async.emulator.FaultRule` break the request, 5. run the handler.

Admin routes under ``/_emulator/`` need the API key too but are neither
counted nor subject to faults.

One ``/api`` route skips step 2: the signed file URL
(``/api/files/blob/{id}?exp=&sig=``), whose signature is its credential.

The handlers live in :mod:`.routes`, one module per resource (workspaces,
computers, health and the desktop proxy, desktop actions, files, templates,
chat, admin, ...), each with its ``add_routes``; :func:`create_app` calls them.
The desktop WebSockets (``/desktops/{instance_id}/ws/{name}``) live in
:mod:`.sockets`: outside ``/api``, authenticated per computer by the socket
handlers themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from ..protocol.events import EVENT_TYPES
from .backends import DesktopBackends
from .chat_state import ChatState
from .commands import CommandRunner
from .config import EmulatorConfig
from .counters import Counters
from .extras import Extras
from .faults import FaultRule, Faults
from .loop_lag import LoopLagMonitor
from .rfb_server import serve_websockify
from .routes import (
    admin,
    chat,
    computers,
    desktop as actions,
    extras,
    files,
    health,
    templates,
    workspaces,
)
from .routes._base import EMULATOR_KEY, emulator_of
from .routes.desktop import DESKTOP_KEY, DesktopService
from .routes.files import FILES_KEY, SIGNED_ROUTE, UPLOAD_ROUTE, FileStore
from .routes.health import HEALTH_ROUTE
from .sandbox import SANDBOX_HOME, Sandboxes, which_inside
from .sockets import SOCKET_NAMES, SOCKETS_KEY, SocketHub, desktop_socket
from .store import ApiError, Clock, Computer, Store, retry_after_header
from .synthetic import SyntheticDesktop
from .template_runs import TemplateRuns
from .templates import TemplateRegistry
from .tls import LOCAL_NAMES, Certificate, self_signed, write_pem
from .xvnc import XvncError

__all__ = ["Emulator", "create_app"]

log = logging.getLogger("orgo_async.emulator")


def _faults_seed(seed: int | None) -> str | None:
    return None if seed is None else f"faults:{seed}"


def _new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


# --------------------------------------------------------------------------- middleware


def _drop(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection so the client sees a disconnect instead of a response.

    Closing the transport before returning makes aiohttp's attempt to write
    the returned response fail with a ``ConnectionError``, which it treats as
    a premature client disconnect: no response bytes, no error log, no 500.
    The client gets EOF and raises ``ServerDisconnectedError``.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=204)


def _error_response(exc: ApiError, request_id: str) -> web.Response:
    body: dict[str, Any] = {"error": exc.message, "code": exc.code, "request_id": request_id}
    body.update(exc.extra)
    return web.json_response(body, status=exc.status, headers=exc.headers)


def _http_exception_response(exc: web.HTTPException, request_id: str) -> web.Response:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    code = codes.get(exc.status, f"http_{exc.status}")
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return _error_response(ApiError(exc.status, code, exc.reason, headers=headers), request_id)


def _authenticate(request: web.BaseRequest, api_key: str) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = api_key.encode()
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise ApiError(401, "invalid_api_key", "Invalid API key")


def _is_workspaces_path(path: str) -> bool:
    return path == "/api/workspaces" or path.startswith("/api/workspaces/")


def _route_key(request: web.Request) -> str:
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else "<unmatched>"
    return f"{request.method} {canonical}"


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name != HEALTH_ROUTE:
        return await _pipeline(request, handler)
    # A probe is in flight from its arrival to its answer, a fault's delay included.
    emu = emulator_of(request)
    computer_id = health.probe_started(emu, request.match_info["instance_id"])
    try:
        return await _pipeline(request, handler)
    finally:
        health.probe_ended(emu, computer_id)


async def _pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    emu = emulator_of(request)
    path = request.path
    api = path == "/api" or path.startswith("/api/")
    admin = path.startswith("/_emulator/")
    request_id = _new_request_id()
    counters = emu.counters
    rule: FaultRule | None = None
    response: web.StreamResponse
    if api:
        key = _route_key(request)
        counters.requests[key] = counters.requests.get(key, 0) + 1
    route_name = request.match_info.route.name
    try:
        if (api or admin) and route_name != SIGNED_ROUTE:
            _authenticate(request, emu.config.api_key)
        if api:
            if emu.config.workspaces_path_missing and _is_workspaces_path(path):
                raise ApiError(404, "not_found", "Not found")
            rule = emu.faults.match(request.method, path)
            if rule is not None:
                counters.faults_injected += 1
                if rule.kind in ("drop", "status") and request.match_info.route.name == (
                    HEALTH_ROUTE
                ):
                    # The client did probe, even if the fault answered.
                    health.count_probe(emu, request.match_info["instance_id"])
                if rule.kind == "drop":
                    return _drop(request)
                if rule.kind == "status":
                    raise _fault_error(rule)
                if rule.kind == "delay":
                    # A slow server has already received the body: read it now, so a
                    # client that gives up during the delay still gets its request
                    # handled (a late create lands), as in production. Not an upload:
                    # its handler streams the multipart body itself.
                    if route_name != UPLOAD_ROUTE:
                        await request.read()
                    await emu._sleep(rule.delay)
        response = await handler(request)
    except ApiError as exc:
        response = _error_response(exc, request_id)
    except web.HTTPException as exc:
        response = _http_exception_response(exc, request_id)
    except ConnectionError:
        # The client went away mid-request: nothing to answer, nothing to log.
        log.debug("client disconnected during %s %s", request.method, path)
        return _drop(request)
    except Exception:
        log.exception("emulator handler failed for %s %s", request.method, path)
        response = _error_response(ApiError(500, "internal_error", "Internal error"), request_id)
    if rule is not None and rule.kind == "lose_response":
        return _drop(request)
    if rule is not None and rule.kind == "slow_answer":
        await emu._sleep(rule.delay)
    if not response.prepared:
        # (A chat completion names itself: its chatcmpl- id is its request id.)
        response.headers.setdefault("X-Request-Id", request_id)
    if not admin and not path.startswith("/desktops/"):
        by_status = counters.responses_by_status
        by_status[response.status] = by_status.get(response.status, 0) + 1
    return response


def _fault_error(rule: FaultRule) -> ApiError:
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        headers["Retry-After"] = retry_after_header(rule.retry_after)
        extra["retry_after"] = rule.retry_after
    return ApiError(rule.status, rule.error_code, rule.error_message, headers=headers, **extra)


# --------------------------------------------------------------------------- app


def create_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving ``emulator``: Orgo's REST routes plus ``/_emulator/``.

    The application holds what the handlers look up (the emulator and its
    services); each resource's module under :mod:`.routes` maps its own paths
    (``add_routes``), called here in order.
    """
    app = web.Application(middlewares=[_middleware])
    app[EMULATOR_KEY] = emulator
    app[extras.EXTRAS_KEY] = emulator.extras
    app[DESKTOP_KEY] = emulator.desktops
    app[FILES_KEY] = emulator.files
    app[chat.CHAT_KEY] = emulator.chat
    app[SOCKETS_KEY] = emulator.sockets
    router = app.router
    # Routes match in the order they were added: the health probe, the busiest, first;
    # the desktop proxy's catch-all after the actions.
    health.add_routes(router)
    workspaces.add_routes(router)
    computers.add_routes(router)
    extras.add_routes(router)
    actions.add_routes(router)
    health.add_fallback(router)
    files.add_routes(router)
    templates.add_routes(router)
    chat.add_routes(router)
    # Desktop WebSockets: /desktops/{instance_id}/ws/{name} (websockify | terminal | audio |
    # events; served by the socket hub's servers). They are outside /api,
    # so the middleware neither checks the API key nor injects faults for them: the
    # socket handler authenticates with the computer's vnc_password itself
    # (?token= or Authorization: Bearer) and closes 4401 / 4404 as Orgo does.
    router.add_route("GET", "/desktops/{instance_id}/ws/{name}", desktop_socket)
    admin.add_routes(router)
    return app


# --------------------------------------------------------------------------- server


class _AccessLogger(AbstractAccessLogger):
    """The access log without query strings: a socket's ``?token=`` must never be logged.

    (aiohttp's default format logs the whole request line.)
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %.1fms',
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


def _url_host(host: str) -> str:
    # A wildcard bind address is not something a client can connect to.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Emulator:
    """A local Orgo API served on ``config.host:config.port`` (port 0 = ephemeral).

    Use it as ``async with Emulator(config) as emu:``; then ``emu.base_url``
    (``http://127.0.0.1:PORT/api``) is what the SDK takes as its base URL and
    ``emu.api_key`` its key. ``emu.state`` is the store, ``emu.faults`` the
    fault rules, ``emu.counters`` what was seen; ``emu.config`` may be changed
    at any time and applies to later requests. ``clock`` drives every
    lifecycle timestamp (inject a fake one to step time by hand).

    With ``config.tls`` it serves HTTPS and WSS (``https://`` base URL) with a
    self-signed certificate whose PEM is :attr:`tls_certificate`; with
    ``config.loop_lag_interval`` it samples its own event loop's lag
    (``counters.loop_lag``).

    Each running computer serves
    ``/desktops/{instance_id}/ws/{websockify|terminal|audio|events}``
    (:meth:`ws_url`): RFB (VNC) over its desktop, real PTY shells in the
    computer's own directory (:meth:`workdir`), a generated audio tone and live
    desktop events (:meth:`publish_event` adds any event). :meth:`close_sockets`
    and :meth:`drop_sockets` break those sockets on purpose.

    The desktop (``/ws/websockify``, REST actions and screenshots) is served by
    the backend ``config.desktop_backend`` names when the computer boots:
    ``synthetic``, one framebuffer per computer
    (``emu.desktops.framebuffer(computer)``), or ``xvnc``, a real TigerVNC
    ``Xvnc`` per computer driven with ``xdotool`` (:meth:`desktop_display`).
    ``bash``/``exec`` run as real processes through ``emu.commands``; uploaded
    and exported files are in ``emu.files``. Where bubblewrap works, every
    process of a computer runs in its sandbox (``emu.sandboxes``,
    ``config.sandbox``).

    Leaving the context stops the server, closes client connections (desktop
    sockets with 1001), kills every shell, command (background jobs
    included) and Xvnc, removes the stored files and the temporary working
    directories and leaves no task behind. Not reusable after :meth:`close`.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Clock = time.monotonic):
        config = config if config is not None else EmulatorConfig()
        seed = config.seed
        self.clock: Final = clock
        """The clock of every lifecycle timestamp (the store's)."""
        self.counters = Counters()
        self.state = Store(config, clock=clock, rng=random.Random(seed), counters=self.counters)
        # A separate stream for faults, so adding a fault does not shift boot times.
        self.faults = Faults(random.Random(_faults_seed(seed)))
        self.sandboxes = Sandboxes(
            self.state,
            mode=config.sandbox,
            network=config.sandbox_network,
        )
        """Each computer's sandbox (:mod:`.sandbox`), where its processes run."""
        backends = DesktopBackends(self.state, sandboxes=self.sandboxes)
        self.sockets = SocketHub(self.state, desktops=backends)
        self.sockets.add_server("websockify", serve_websockify)
        self.commands = CommandRunner(self.state, place=backends.place)
        self.desktops = DesktopService(
            self.state,
            self.commands,
            sleep=self._sleep,
            origin=lambda: self.origin,
            backends=backends,
        )
        self.files = FileStore(self.state, origin=lambda: self.origin)
        self.templates = TemplateRegistry(clock, lambda: self.config.template_build_seconds)
        """Published templates and their builds (:mod:`.templates`)."""
        self.template_runs = TemplateRuns(self.state, self.templates)
        """Template test runs: preview computers (:mod:`.template_runs`)."""
        self.extras = Extras(self.state)
        """Streams, screens, resume and fork (:mod:`.extras`)."""
        self.sockets.screens = self._screen_desktop
        self.chat = ChatState(self.state)
        """The hosted agent's threads and credit balance (:mod:`.chat_state`)."""
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = asyncio.Event()
        self._closed = False
        self._certificate: Certificate | None = None
        self._loop_lag: LoopLagMonitor | None = None

    def _screen_desktop(self, computer: Computer, screen_id: str) -> SyntheticDesktop | None:
        """``&screen=`` on the VNC socket: an added screen's desktop; LookupError if none."""
        try:
            screen = self.extras.screen(computer, screen_id)
        except ApiError as exc:
            raise LookupError(screen_id) from exc
        return None if screen.default else self.desktops.screens.get(computer, screen).desktop

    # ----------------------------------------------------------------- properties

    @property
    def config(self) -> EmulatorConfig:
        """The live configuration (shared with the store)."""
        return self.state.config

    @config.setter
    def config(self, value: EmulatorConfig) -> None:
        self.state.config = value

    def reseed(self, seed: int | None) -> None:
        """Start the boot times, boot failures and fault draws over from ``seed``.

        Two runs that each begin with the same seed face the same sequence of
        boot times (a benchmark's two sides, for one); ``None`` seeds from the OS.
        """
        self.config.seed = seed
        self.state.rng.seed(seed)
        self.faults.reseed(_faults_seed(seed))

    @property
    def port(self) -> int:
        """The bound TCP port; ``RuntimeError`` before :meth:`start`."""
        if self._port is None:
            raise RuntimeError("the emulator is not running")
        return self._port

    @property
    def hostport(self) -> str:
        """``HOST:PORT`` a client connects to (the computers' ``hostname``)."""
        return f"{_url_host(self.config.host)}:{self.port}"

    @property
    def origin(self) -> str:
        """``http://HOST:PORT`` (``https://`` with ``config.tls``)."""
        scheme = "http" if self._certificate is None else "https"
        return f"{scheme}://{self.hostport}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/api``: the REST base URL."""
        return f"{self.origin}/api"

    @property
    def tls_certificate(self) -> str | None:
        """The PEM of the certificate served with ``config.tls`` (``None`` without TLS).

        A client trusts exactly it with ``ssl.create_default_context(cadata=pem)``.
        """
        return None if self._certificate is None else self._certificate.pem

    @property
    def api_key(self) -> str:
        """The key clients must send as ``Authorization: Bearer``."""
        return self.config.api_key

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind and start serving; the socket accepts connections on return.

        With ``config.tls`` the certificate is made first (``ImportError``
        naming the extra to install without ``cryptography``) and written to
        ``config.tls_cert_out`` before this returns; with
        ``config.loop_lag_interval`` the loop lag monitor starts.
        """
        if self._runner is not None or self._closed:
            raise RuntimeError("an Emulator can be started only once")
        config = self.config
        await self._resolve_places()
        ssl_context = None
        if config.tls:
            # A wildcard bind address is no name a client dials (it dials 127.0.0.1).
            bound = () if config.host in ("", "0.0.0.0", "::") else (config.host,)
            self._certificate = self_signed((*LOCAL_NAMES, *bound))
            ssl_context = self._certificate.server_context()
        access_log = logging.getLogger("aiohttp.access") if config.access_log else None
        # A short shutdown timeout: in-flight handlers are ours and finish fast,
        # except fault delays, which close() wakes up.
        runner = web.AppRunner(
            create_app(self),
            access_log=access_log,
            access_log_class=_AccessLogger,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context)
            await site.start()
            self._port = int(runner.addresses[0][1])
            if self._certificate is not None and config.tls_cert_out is not None:
                write_pem(self._certificate.pem, config.tls_cert_out)
        except BaseException:
            await self.close()
            raise
        if config.loop_lag_interval is not None:
            self._loop_lag = LoopLagMonitor(config.loop_lag_interval)
            self.counters.loop_lag = self._loop_lag
            self._loop_lag.start()
        log.info("emulator serving %s", self.base_url)
        # Runs once this returns: after a caller's "serving" line, never before it.
        self.desktops.backends.xvnc.fill_pool()

    async def _resolve_places(self) -> None:
        """Decide whether computers run in sandboxes, and what ``desktop_backend="auto"`` is."""
        reason = await self.sandboxes.resolve()  # SandboxError with sandbox="on"
        if reason is not None and self.config.sandbox == "auto":
            log.info("computers run without a sandbox: %s", reason)
        if self.config.desktop_backend != "synthetic" and reason is None:
            absent = [p for p in ("openbox", "xterm", "xprop") if which_inside(p) is None]
            if absent:
                log.warning(
                    "real desktops will lack %s (Debian: apt-get install openbox xterm x11-utils)",
                    ", ".join(absent),
                )
        if self.config.desktop_backend == "auto":
            missing = self.desktops.backends.xvnc.missing() or reason
            if missing is None:
                self.state.auto_backend = "xvnc"
            else:
                self.state.auto_backend = "synthetic"
                log.warning("desktop backend auto: synthetic desktops, because %s", missing)

    async def close(self) -> None:
        """Stop serving and drop every connection. Idempotent.

        Desktop sockets are closed with 1001 first (and their shells killed
        and reaped), so no handler is cut off mid-way by the server shutdown.
        """
        self._closed = True
        self._closing.set()
        if self._loop_lag is not None:
            await self._loop_lag.stop()
        await self.sockets.shutdown()
        # Desktops and commands first: their requests then answer before the server stops.
        await self.desktops.backends.shutdown()
        await self.commands.shutdown()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.files.close()
        self.state.close_workdirs()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ----------------------------------------------------------------- desktop sockets

    def _computer(self, computer: Computer | str) -> Computer:
        return computer if isinstance(computer, Computer) else self.state.get_computer(computer)

    def workdir(self, computer: Computer | str) -> Path:
        """The computer's own directory (``Desktop/`` and ``Downloads/`` inside), made if missing.

        Its disk: ``/root`` inside its sandbox. Unsandboxed, terminal shells
        start here with ``HOME`` set to it. ``file_change``
        events watch its ``Desktop/`` and ``Downloads/``. Removed when the
        computer is deleted. ``computer`` is a Computer, its UUID or instance
        id; an unknown id raises :class:`~orgo_async.emulator.store.ApiError` (404).
        """
        return self.state.workdir(self._computer(computer))

    def home(self, computer: Computer | str) -> str:
        """The computer's home as its own processes see it: ``/root`` in its sandbox,
        else its directory on the host (:meth:`workdir`)."""
        if self.sandboxes.enabled:
            self._computer(computer)  # 404 for an unknown one, as workdir()
            return SANDBOX_HOME
        return str(self.workdir(computer))

    def ws_url(self, computer: Computer | str, name: str) -> str:
        """``ws://HOST:PORT/desktops/{instance_id}/ws/{name}`` (``wss://`` with TLS; no token)."""
        if name not in SOCKET_NAMES:
            raise ValueError(f"name must be one of {', '.join(SOCKET_NAMES)}, got {name!r}")
        scheme = "ws" if self._certificate is None else "wss"
        instance_id = self._computer(computer).instance_id
        return f"{scheme}://{self.hostport}/desktops/{instance_id}/ws/{name}"

    async def desktop_display(self, computer: Computer | str) -> str:
        """The X display (``":N"``) of an ``xvnc`` computer, once its Xvnc is ready.

        For X clients of your own (``DISPLAY=:N xdotool ...``) when the
        computer is not sandboxed; a sandboxed display is reachable only from
        inside the computer (REST ``bash``, its terminal). Raises
        ``LookupError`` when the computer's current boot has no working Xvnc
        (another backend, a failed boot, stopped) and ApiError (404) for an
        unknown computer.
        """
        try:
            server = await self.desktops.backends.xvnc.ready(self._computer(computer))
        except XvncError as exc:
            raise LookupError(str(exc)) from None
        assert server.display is not None
        return server.display

    def publish_event(
        self, computer: Computer | str, event_type: str, data: Mapping[str, Any] | None = None
    ) -> int:
        """Send an event to the computer's ``/ws/events`` subscribers of ``event_type``.

        Returns how many subscribers it was queued for (0 when nobody listens).
        This is how other parts of the emulator report ``screen_change``,
        window and clipboard events. Raises ``ValueError`` for a type outside
        Orgo's twelve and ApiError (404) for an unknown computer.
        """
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        return self.sockets.publish(self._computer(computer).id, event_type, data or {})

    def close_sockets(
        self, computer: Computer | str, code: int = 1001, reason: str = "Computer stopping"
    ) -> int:
        """Close the computer's open desktop sockets with ``code``; returns how many.

        Their shells are killed. ApiError (404) for an unknown computer.
        """
        return self.sockets.close_sockets(self._computer(computer).id, code, reason)

    def drop_sockets(self, computer: Computer | str) -> int:
        """Cut the TCP connections of the computer's sockets, no close frame (client: 1006).

        Returns how many were cut; their shells are killed. ApiError (404)
        for an unknown computer.
        """
        return self.sockets.drop_sockets(self._computer(computer).id)

    async def _sleep(self, seconds: float) -> None:
        """Sleep for a delay fault, cut short when the emulator closes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
