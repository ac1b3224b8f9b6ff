"""The session: configuration, closing, timeouts, and the error tree built from real answers."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from orgo_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ClientClosedError,
    MissingAPIKeyError,
    Orgo,
    RetryPolicy,
    ServerError,
    Timeouts,
)
from orgo_async.emulator import Emulator, FaultRule

from .conftest import RecordedSleeps


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORGO_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="ORGO_API_KEY"):
        Orgo()


def test_environment_supplies_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORGO_API_KEY", "sk_from_env")
    monkeypatch.setenv("ORGO_BASE_URL", "http://127.0.0.1:9/api/")
    orgo = Orgo()
    assert orgo.base_url == "http://127.0.0.1:9/api"
    monkeypatch.delenv("ORGO_BASE_URL")
    assert Orgo().base_url == "https://www.orgo.ai/api"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "ftp://x"}, "base_url must start with http"),
        ({"max_connections": 0}, "max_connections must be a whole number >= 1"),
    ],
)
def test_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Orgo(api_key="k", **kwargs)  # type: ignore[arg-type]


def test_timeouts_validate_and_resolve() -> None:
    with pytest.raises(ValueError, match="Timeouts.read"):
        Timeouts(read=0)
    base = Timeouts()
    assert base.resolve(None) is base
    assert base.resolve(3.0).total == 3.0
    custom = Timeouts(read=None)
    assert base.resolve(custom) is custom


async def test_closing_closes_the_pool_and_use_after_close_is_clear(emulator: Emulator) -> None:
    orgo = Orgo(api_key=emulator.api_key, base_url=emulator.base_url)
    async with orgo:
        await orgo.workspaces.list()
        session = orgo._session.transport._session
        assert session is not None and not session.closed
    assert session.closed
    assert orgo.closed
    with pytest.raises(ClientClosedError, match="closed"):
        await orgo.workspaces.list()
    await orgo.close()  # idempotent


async def test_bad_key_is_an_authentication_error(emulator: Emulator) -> None:
    async with Orgo(api_key="sk_wrong", base_url=emulator.base_url) as orgo:
        with pytest.raises(AuthenticationError) as info:
            await orgo.workspaces.list()
    err = info.value
    assert err.status == 401
    assert err.code == "invalid_api_key"
    assert err.request_id and err.request_id.startswith("req_")
    assert not err.retryable
    assert "sk_wrong" not in str(err)


async def test_refused_connection_is_mapped_and_retried(sleeps: RecordedSleeps) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Orgo(
        api_key="k",
        base_url=f"http://127.0.0.1:{port}/api",
        retry=RetryPolicy(max_attempts=3, sleep=sleeps),
    ) as orgo:
        with pytest.raises(APIConnectionError) as info:
            await orgo.workspaces.list()
    assert not info.value.sent
    assert "could not connect" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)  # chained, never escaping bare
    assert len(sleeps.delays) == 2


async def test_read_timeout_names_its_phase(emulator: Emulator) -> None:
    emulator.faults.add(FaultRule(kind="delay", delay=0.5, path=r"^/api/workspaces$"))
    async with Orgo(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        timeouts=Timeouts(read=0.05),
        retry=RetryPolicy.off(),
    ) as orgo:
        with pytest.raises(APITimeoutError) as info:
            await orgo.workspaces.list()
    assert info.value.phase == "read"
    assert "timed out during read" in str(info.value)


async def test_total_timeout_bounds_the_retries(emulator: Emulator) -> None:
    emulator.faults.add(FaultRule(kind="status", status=503, code="resuming", retry_after=0.05))
    async with Orgo(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        retry=RetryPolicy(max_attempts=100),
    ) as orgo:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises((ServerError, APITimeoutError)) as info:
            await orgo.workspaces.list(timeout=0.2)
    # Either the last 503 (the next wait would pass the deadline) or the deadline itself.
    if isinstance(info.value, ServerError):
        assert info.value.status == 503 and info.value.code == "resuming"
    else:
        assert info.value.phase == "total"
    assert loop.time() - started < 1.0


async def test_redirects_are_refused_so_the_key_never_travels() -> None:
    seen: list[str | None] = []

    async def target(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"workspaces": []})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location=f"http://localhost:{port}/elsewhere")

    app = web.Application()
    app.router.add_get("/api/workspaces", redirect)
    app.router.add_get("/elsewhere", target)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with Orgo(api_key="sk_secret_key", base_url=f"http://127.0.0.1:{port}/api") as orgo:
            with pytest.raises(APIError, match="redirected to http://localhost") as info:
                await orgo.workspaces.list()
    finally:
        await runner.cleanup()
    assert info.value.status == 301
    assert seen == []
    assert "sk_secret_key" not in str(info.value)
