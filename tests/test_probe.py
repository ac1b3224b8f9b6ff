"""The lean probe transport: statuses, framing, keep-alive, timeouts, cancellation, TLS.

Against the emulator, and against tiny scripted HTTP servers on port 0 for the
answers the emulator never gives (split, chunked, interim, broken, silent).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from orgo_async import APIConnectionError, APITimeoutError, Orgo, RetryPolicy, Timeouts
from orgo_async._http import HttpTransport
from orgo_async._probe import ProbeTransport
from orgo_async._session import Session
from orgo_async.emulator import BootTime, Emulator, EmulatorConfig
from orgo_async.models import Workspace

from .conftest import eventually

KEY = "sk_test_key_0123456789"
UA = "orgo_async/test"

# handler(writer, connection number, request number on that connection) -> keep the
# connection (None: say nothing more, and hold it until the client closes it)
Handler = Callable[[asyncio.StreamWriter, int, int], Awaitable[bool | None]]


class Server:
    """A scripted HTTP/1.1 server on 127.0.0.1, port 0, that counts its connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        self.heads: list[bytes] = []
        self.base_url = ""
        self._writers: set[asyncio.StreamWriter] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        number = self.accepted
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self._writers.add(writer)
        try:
            served = 0
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self.heads.append(head)
                served += 1
                keep = await self.handler(writer, number, served)
                await writer.drain()
                if keep is None:
                    while await reader.read(65536):
                        pass
                if not keep:
                    break
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Server]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/api"
        try:
            yield self
        finally:
            server.close()
            for writer in list(self._writers):
                writer.close()
            await eventually(lambda: self.open == 0)
            await server.wait_closed()


def answer(status: int, body: bytes = b"", *, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def replying(*answers: bytes, keep: bool = True) -> Handler:
    """Each request answered with the next of ``answers`` (the last one repeats)."""
    sent = [0]

    async def handle(writer: asyncio.StreamWriter, conn: int, n: int) -> bool | None:
        writer.write(answers[min(sent[0], len(answers) - 1)])
        sent[0] += 1
        return keep

    return handle


@contextlib.asynccontextmanager
async def probing(
    handler: Handler, *, max_connections: int = 8
) -> AsyncIterator[tuple[Server, ProbeTransport]]:
    async with Server(handler).running() as server:
        probe = ProbeTransport(server.base_url, KEY, UA, ssl=None, max_connections=max_connections)
        try:
            yield server, probe
        finally:
            await probe.close()


PATH = "/desktops/abc/proxy/health"


async def test_the_request_is_a_plain_get_with_the_four_headers() -> None:
    async with probing(replying(answer(503, b'{"error":"x"}'))) as (server, probe):
        assert await probe.status(PATH, timeout=5) == 503
        assert await probe.status(PATH, timeout=5) == 503
    head = server.heads[0].decode()
    port = server.base_url.split(":")[2].split("/")[0]
    assert head == (
        "GET /api/desktops/abc/proxy/health HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\n"
        f"User-Agent: {UA}\r\nAccept: application/json\r\n\r\n"
    )
    assert server.accepted == 1  # kept alive


async def test_statuses_from_the_emulator(orgo: Orgo, workspace: Workspace) -> None:
    session = orgo._session
    assert session.probe_transport is not None
    launched = await orgo.computers.launch(workspace_id=workspace.id, name="probe")
    path = f"/desktops/{launched.computer.id}/proxy/health"
    assert await session.probe(path, timeout=5) == 200
    assert await session.probe("/desktops/nope/proxy/health", timeout=5) == 404


async def test_a_booting_computer_answers_503() -> None:
    config = EmulatorConfig(api_key=KEY, boot=BootTime.fixed(60))
    async with Emulator(config) as emu, Orgo(api_key=KEY, base_url=emu.base_url) as orgo:
        workspace = await orgo.workspaces.create("w")
        computer = await orgo.computers.create(workspace_id=workspace.id, name="slow")
        path = f"/desktops/{computer.id}/proxy/health"
        statuses = await asyncio.gather(*(orgo._session.probe(path, timeout=5) for _ in range(20)))
        assert statuses == [503] * 20
        assert emu.counters.health_probes[computer.id] == 20


def test_the_race_runs_on_uvloop() -> None:
    # uvloop's transports are not asyncio.Transport subclasses: the probes and the
    # whole readiness race must not care.
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[int, int]:
        config = EmulatorConfig(api_key=KEY, boot=BootTime.fixed(0.05))
        async with Emulator(config) as emu, Orgo(api_key=KEY, base_url=emu.base_url) as orgo:
            workspace = await orgo.workspaces.create("w")
            launched = await orgo.computers.launch(workspace_id=workspace.id, name="uv")
            path = f"/desktops/{launched.computer.id}/proxy/health"
            status = await orgo._session.probe(path, timeout=5)
            assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
            return status, emu.counters.health_probes[launched.computer.id]

    status, probes = uvloop.run(main())
    assert status == 200 and probes >= 2  # the race's probes and this one


async def test_the_session_falls_back_to_the_aiohttp_transport() -> None:
    async with Server(replying(answer(302, extra="Location: /elsewhere\r\n"))).running() as server:
        transport = HttpTransport(
            base_url=server.base_url, api_key=KEY, max_connections=2, user_agent=UA
        )
        session = Session(transport, timeouts=Timeouts(), retry=RetryPolicy())
        try:
            assert await session.probe(PATH, timeout=5) == 302
        finally:
            await session.close()


async def test_a_redirect_is_just_a_status() -> None:
    async with probing(replying(answer(307, extra="Location: https://x.test/\r\n"))) as (_, probe):
        assert await probe.status(PATH, timeout=5) == 307


async def test_chunked_bodies_with_trailers_keep_the_connection() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    async with probing(replying(chunked, answer(503))) as (server, probe):
        assert await probe.status(PATH, timeout=5) == 200
        assert await probe.status(PATH, timeout=5) == 503
    assert server.accepted == 1


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_an_answer_split_into_single_bytes(framing: str) -> None:
    if framing == "length":
        whole = answer(200, b'{"status":"ok"}', extra="X-Pad: 1\r\n")
    else:
        whole = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"

    async def byte_by_byte(writer: asyncio.StreamWriter, conn: int, n: int) -> bool:
        for i in range(len(whole)):
            writer.write(whole[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.0005)  # one segment each (the server sets TCP_NODELAY)
        return True

    async with probing(byte_by_byte) as (server, probe):
        assert await probe.status(PATH, timeout=5) == 200
        assert await probe.status(PATH, timeout=5) == 200
    assert server.accepted == 1


@pytest.mark.parametrize(
    "close_answer",
    [
        answer(503, b"busy", extra="Connection: close\r\n"),
        b"HTTP/1.0 503 X\r\nContent-Length: 0\r\n\r\n",  # HTTP/1.0: closed unless keep-alive
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_closes_is_not_reused(close_answer: bytes) -> None:
    async with probing(replying(close_answer, keep=False)) as (server, probe):
        assert await probe.status(PATH, timeout=5) == 503
        assert probe.open_connections == 0
        assert await probe.status(PATH, timeout=5) == 503
    assert server.accepted == 2


async def test_an_answer_read_until_the_connection_closes() -> None:
    async with probing(replying(b"HTTP/1.1 500 X\r\n\r\nno length here", keep=False)) as (
        server,
        probe,
    ):
        assert await probe.status(PATH, timeout=5) == 500
        assert await probe.status(PATH, timeout=5) == 500
        assert probe.open_connections == 0
    assert server.accepted == 2


async def test_interim_answers_are_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    async with probing(replying(interim + answer(200, b"{}"))) as (server, probe):
        assert await probe.status(PATH, timeout=5) == 200
        assert await probe.status(PATH, timeout=5) == 200
    assert server.accepted == 1


async def test_a_connection_the_server_closed_while_idle_is_retried_on_a_fresh_one() -> None:
    async def close_the_second(writer: asyncio.StreamWriter, conn: int, n: int) -> bool:
        if conn == 1 and n == 2:  # the request arrived, the connection ends: no byte answered
            return False
        writer.write(answer(503))
        return True

    async with probing(close_the_second) as (server, probe):
        assert await probe.status(PATH, timeout=5) == 503
        assert await probe.status(PATH, timeout=5) == 503  # transparently on a new one
        assert probe.open_connections == 1
    assert server.accepted == 2
    assert len(server.heads) == 3


async def test_a_connection_closed_after_an_idle_period_is_replaced() -> None:
    async def answer_then_close(writer: asyncio.StreamWriter, conn: int, n: int) -> bool:
        writer.write(answer(503))
        return False  # the answer said keep-alive; the server closes anyway

    async with probing(answer_then_close) as (server, probe):
        assert await probe.status(PATH, timeout=5) == 503
        await eventually(lambda: probe.open_connections == 0)  # noticed while idle
        assert await probe.status(PATH, timeout=5) == 503
    assert server.accepted == 2


async def test_a_fresh_connection_closed_without_an_answer_is_an_error() -> None:
    async def hang_up(writer: asyncio.StreamWriter, conn: int, n: int) -> bool:
        return False

    async with probing(hang_up) as (server, probe):
        with pytest.raises(APIConnectionError, match="closed the connection") as info:
            await probe.status(PATH, timeout=5)
        assert info.value.sent is True
        assert not isinstance(info.value, APITimeoutError)
        assert probe.open_connections == 0
    assert server.accepted == 1  # no retry: the connection was new


async def test_a_silent_server_times_out_and_the_connection_is_closed() -> None:
    async def silent(writer: asyncio.StreamWriter, conn: int, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-")  # then nothing more
        return None

    async with probing(silent, max_connections=1) as (server, probe):
        with pytest.raises(APITimeoutError) as info:
            await probe.status(PATH, timeout=0.2)
        assert (info.value.phase, info.value.seconds, info.value.path) == (
            "request",
            0.2,
            "/api" + PATH,
        )
        assert probe.open_connections == 0  # its slot is free again
        await eventually(lambda: server.open == 0)  # the server saw it closed


async def test_waiting_for_a_slot_counts_as_connecting() -> None:
    async def slow(writer: asyncio.StreamWriter, conn: int, n: int) -> bool:
        await asyncio.sleep(0.5)
        writer.write(answer(503))
        return True

    async with probing(slow, max_connections=1) as (_, probe):
        first = asyncio.create_task(probe.status(PATH, timeout=5))
        await eventually(lambda: probe.open_connections == 1)
        with pytest.raises(APITimeoutError) as info:
            await probe.status(PATH, timeout=0.05)
        assert (info.value.phase, info.value.sent) == ("connect", False)
        assert await first == 503
        assert probe.open_connections == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_connection_refused() -> None:
    probe = ProbeTransport(
        f"http://127.0.0.1:{_free_port()}/api", KEY, UA, ssl=None, max_connections=2
    )
    try:
        with pytest.raises(APIConnectionError, match="could not connect") as info:
            await probe.status(PATH, timeout=5)
        assert info.value.sent is False
        assert info.value.retryable is True
        assert not isinstance(info.value, APITimeoutError)
        assert probe.open_connections == 0
        assert KEY not in str(info.value)
    finally:
        await probe.close()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", "headers over 64 KiB"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000, "headers over 64 KiB"),
        (answer(200, b"", extra="").replace(b"Length: 0", b"Length: 2000000"), "body over 1 MiB"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"100000\r\n"
            + b"x" * 0x100000
            + b"\r\n1\r\n",
            "body over 1 MiB",
        ),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    ],
    ids=["headers", "unterminated-headers", "length", "chunks", "not-http", "chunk-size"],
)
async def test_broken_answers_are_errors(bad: bytes, message: str) -> None:
    async def broken(writer: asyncio.StreamWriter, conn: int, n: int) -> None:
        writer.write(bad)
        return None  # no close: the client must give up by itself

    async with probing(broken) as (server, probe):
        with pytest.raises(APIConnectionError, match=message) as info:
            await probe.status(PATH, timeout=5)
        assert not isinstance(info.value, APITimeoutError)
        assert probe.open_connections == 0
        await eventually(lambda: server.open == 0)


async def test_a_cancelled_probe_closes_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def half(writer: asyncio.StreamWriter, conn: int, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        return None

    async with probing(half, max_connections=1) as (server, probe):
        task = asyncio.create_task(probe.status(PATH, timeout=30))
        await eventually(lambda: len(server.heads) == 1)
        await asyncio.sleep(0.01)  # the half answer has arrived
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert probe.open_connections == 0
        await eventually(lambda: server.open == 0)
    assert "never retrieved" not in caplog.text


async def test_a_cancelled_wait_for_a_slot_gives_it_back() -> None:
    release = asyncio.Event()

    async def held(writer: asyncio.StreamWriter, conn: int, n: int) -> bool:
        await release.wait()
        writer.write(answer(503))
        return True

    async with probing(held, max_connections=1) as (server, probe):
        first = asyncio.create_task(probe.status(PATH, timeout=5))
        waiting = asyncio.create_task(probe.status(PATH, timeout=5))
        await eventually(lambda: len(server.heads) == 1)
        waiting.cancel()
        release.set()
        assert await first == 503
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await probe.status(PATH, timeout=5) == 503
        assert server.accepted == 1


async def test_max_connections_holds_under_50_concurrent_probes() -> None:
    async def slowish(writer: asyncio.StreamWriter, conn: int, n: int) -> bool:
        await asyncio.sleep(0.002)
        writer.write(answer(503, b"x" * 100))
        return True

    async with probing(slowish, max_connections=4) as (server, probe):
        statuses = await asyncio.gather(*(probe.status(PATH, timeout=10) for _ in range(50)))
        assert statuses == [503] * 50
        assert probe.open_connections <= 4
    assert server.most_open <= 4
    assert server.accepted <= 4
    assert len(server.heads) == 50


async def test_after_close_every_connection_is_closed() -> None:
    async with probing(replying(answer(200))) as (server, probe):
        await asyncio.gather(*(probe.status(PATH, timeout=5) for _ in range(5)))
        assert server.open >= 1
        await probe.close()
        await eventually(lambda: server.open == 0)
        with pytest.raises(Exception, match="closed"):
            await probe.status(PATH, timeout=5)


async def test_the_key_is_never_shown() -> None:
    probe = ProbeTransport(
        f"http://127.0.0.1:{_free_port()}/api", KEY, UA, ssl=None, max_connections=1
    )
    assert KEY not in repr(probe)
    errors: list[BaseException] = []
    try:
        await probe.status(PATH, timeout=5)
    except APIConnectionError as exc:
        errors.append(exc)
    await probe.close()

    async def silent(writer: asyncio.StreamWriter, conn: int, n: int) -> None:
        return None

    async with probing(silent) as (_, probe):
        try:
            await probe.status(PATH, timeout=0.05)
        except APITimeoutError as exc:
            errors.append(exc)
    async with probing(replying(b"garbage\r\n\r\n")) as (_, probe):
        try:
            await probe.status(PATH, timeout=5)
        except APIConnectionError as exc:
            errors.append(exc)
    assert len(errors) == 3
    for error in errors:
        assert KEY not in str(error) and KEY not in repr(error)


async def test_paths_must_be_api_paths() -> None:
    probe = ProbeTransport("http://127.0.0.1:1/api", KEY, UA, ssl=None, max_connections=1)
    with pytest.raises(ValueError, match="path"):
        await probe.status("desktops/x", timeout=1)
    await probe.close()


async def test_tls_against_the_emulators_self_signed_certificate() -> None:
    pytest.importorskip("cryptography")
    config = EmulatorConfig(api_key=KEY, boot=BootTime.fixed(60), tls=True)
    async with Emulator(config) as emu:
        assert emu.base_url.startswith("https://") and emu.tls_certificate is not None
        trusted = ssl.create_default_context(cadata=emu.tls_certificate)
        probe = ProbeTransport(emu.base_url, KEY, UA, ssl=trusted, max_connections=2)
        try:
            assert await probe.status("/desktops/nope/proxy/health", timeout=5) == 404
            assert await probe.status("/desktops/nope/proxy/health", timeout=5) == 404
        finally:
            await probe.close()
        untrusted = ProbeTransport(emu.base_url, KEY, UA, ssl=None, max_connections=2)
        try:
            with pytest.raises(APIConnectionError, match="TLS failed") as info:
                await untrusted.status(PATH, timeout=5)
            assert (info.value.retryable, info.value.sent) == (False, False)
            assert KEY not in str(info.value)
            assert untrusted.open_connections == 0
        finally:
            await untrusted.close()
