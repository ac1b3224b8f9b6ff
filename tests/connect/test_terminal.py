"""The terminal connector against the emulator's real PTY shell."""

from __future__ import annotations

import asyncio
import logging

import pytest

from orgo_async import (
    CommandTimeout,
    Computer,
    ConnectionClosedError,
    HandshakeError,
    Orgo,
    ReconnectPolicy,
    Terminal,
    Workspace,
)
from orgo_async.connect import Connection
from orgo_async.emulator import Emulator

from ..conftest import client_tasks, eventually


async def read_until(term: Terminal, needle: str, timeout: float = 10.0) -> str:
    seen = ""
    async with asyncio.timeout(timeout):
        async for chunk in term:
            seen += chunk
            if needle in seen:
                return seen
    raise AssertionError(f"terminal ended before {needle!r}; saw {seen!r}")


async def test_run_returns_output_and_exit_code(orgo: Orgo, computer: Computer) -> None:
    async with orgo.connect(computer).terminal() as term:
        result = await term.run("echo hi; exit 3")
        assert (result.output, result.exit_code) == ("hi\n", 3)
        ok = await term.run("printf 'a\\nb'; echo; true")
        assert (ok.output, ok.exit_code) == ("a\nb\n", 0)


async def test_runs_are_serialized_and_not_fooled(orgo: Orgo, computer: Computer) -> None:
    async with orgo.connect(computer).terminal() as term:
        lookalike = "echo '<<ORGO:0000000000000000:E:0>>'; sleep 0.1; echo real"
        results = await asyncio.gather(
            term.run(lookalike), term.run("echo second; exit 7"), term.run("echo third")
        )
    assert results[0].output == "<<ORGO:0000000000000000:E:0>>\nreal\n"
    assert (results[1].output, results[1].exit_code) == ("second\n", 7)
    assert results[2].output == "third\n"


async def test_resize_shows_in_stty_and_cwd_is_the_computers_dir(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    async with orgo.connect(computer).terminal(cols=100, rows=30) as term:
        assert (await term.run("stty size")).output.strip() == "30 100"
        await term.resize(120, 40)
        assert (await term.run("stty size")).output.strip() == "40 120"
        assert (await term.run("pwd")).output.strip() == emulator.home(computer.id)


async def test_iterate_send_and_exit(orgo: Orgo, computer: Computer) -> None:
    async with orgo.connect(computer).terminal() as term:
        await term.send("echo MARK-$((40+2))\r")
        await read_until(term, "MARK-42")
        await term.send("exit 5\r")
        async with asyncio.timeout(10):
            async for _ in term:
                pass
        assert term.exit_code == 5
        with pytest.raises(ConnectionClosedError):
            await term.send("echo after\r")


async def test_a_command_timeout_interrupts_and_keeps_the_terminal(
    orgo: Orgo, computer: Computer
) -> None:
    async with orgo.connect(computer).terminal() as term:
        with pytest.raises(CommandTimeout) as info:
            await term.run("echo started; sleep 30", timeout=0.5)
        assert info.value.output == "started\n"
        assert (await term.run("echo still here")).output == "still here\n"


async def test_restart_rotates_the_token_and_the_terminal_recovers(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    conn = orgo.connect(computer)
    async with conn.terminal() as term:
        assert (await term.run("echo before")).output == "before\n"
        await orgo.computers.restart(computer)  # 1001 now; the old password is dead
        await eventually(lambda: term.reconnects == 1)
        result = await term.run("echo after")
        assert result.output == "after\n"
        assert term.reconnects == 1
        assert conn.refreshes == 1
    assert emulator.counters.ws_rejections.get(4401, 0) >= 1


async def test_a_dropped_socket_reconnects(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    async with orgo.connect(computer).terminal() as term:
        await term.run("true")
        assert emulator.drop_sockets(computer.id) == 1
        await eventually(lambda: term.reconnects == 1)
        assert (await term.run("echo back")).output == "back\n"
        assert term.reconnects == 1


async def test_reconnect_can_be_switched_off(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    async with orgo.connect(computer, reconnect=ReconnectPolicy.off()).terminal() as term:
        await term.run("true")
        emulator.drop_sockets(computer.id)
        with pytest.raises(ConnectionClosedError) as info:
            async with asyncio.timeout(5):
                async for _ in term:
                    pass
        assert info.value.code == 1006


@pytest.mark.parametrize(
    ("mode", "learned"), [("query_only", "query"), ("header_only", "bearer"), ("close", "bearer")]
)
async def test_auth_falls_back_between_header_and_query(
    orgo: Orgo, computer: Computer, emulator: Emulator, mode: str, learned: str
) -> None:
    emulator.config.ws_auth = mode  # type: ignore[assignment]
    conn = orgo.connect(computer)
    async with conn.terminal() as term:
        assert (await term.run("echo ok")).output == "ok\n"
    assert conn.auth_mode == learned
    assert conn.refreshes == 0


async def test_a_stale_token_is_refreshed_once(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    emulator.config.ws_auth = "reject"  # HTTP 401 on the handshake
    stale = Computer(**{**_fields(computer), "vnc_password": "0" * 16})
    conn = orgo.connect(stale)
    async with conn.terminal() as term:
        assert (await term.run("echo fresh")).output == "fresh\n"
    assert conn.refreshes == 1


class _BadTokens(Connection):
    """A token provider that only ever hands out a wrong token."""

    async def refresh_token(self) -> None:
        self._token = "f" * 16
        self.refreshes += 1


async def test_a_bad_token_fails_clearly_after_one_refresh(
    orgo: Orgo, computer: Computer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stale = Computer(**{**_fields(computer), "vnc_password": "0" * 16})
    conn = _BadTokens(orgo, stale)
    with pytest.raises(HandshakeError, match="refused, also after re-reading") as info:
        await conn.terminal().open()
    assert info.value.status == 401
    assert conn.refreshes == 1
    text = "\n".join(r.getMessage() for r in caplog.records) + str(info.value)
    assert "GET /desktops" in text  # the wire log was exercised...
    for secret in ("0" * 16, "f" * 16, computer.vnc_password or "x"):
        assert secret not in text  # ...with every token redacted


async def test_a_computer_not_running_yet_is_waited_for(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    c = await orgo.computers.create(workspace_id=workspace.id, name="early")
    async with orgo.connect(c).terminal() as term:  # 4404 first, then ready
        assert (await term.run("echo up")).output == "up\n"
    assert emulator.counters.ws_rejections.get(4404, 0) >= 1


async def test_a_stopped_computer_fails_fast(orgo: Orgo, computer: Computer) -> None:
    await orgo.computers.stop(computer)
    with pytest.raises(ConnectionClosedError, match="not running") as info:
        await orgo.connect(computer).terminal().open()
    assert info.value.code == 4404


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.01, 0.05])
async def test_cancelling_at_any_point_leaves_nothing_open(
    orgo: Orgo, computer: Computer, emulator: Emulator, delay: float
) -> None:
    baseline = client_tasks()

    async def use() -> None:
        async with orgo.connect(computer).terminal() as term:
            await term.run("sleep 5")

    task = asyncio.create_task(use())
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(5):
        while emulator.sockets.sockets(computer.id):  # noqa: ASYNC110 - server-side state
            await asyncio.sleep(0.01)
    assert client_tasks() == baseline


def _fields(computer: Computer) -> dict[str, object]:
    import attrs

    return attrs.asdict(computer, recurse=False)


async def test_a_command_caught_by_a_reconnect_fails_clearly(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    async with orgo.connect(computer).terminal() as term:
        running = asyncio.create_task(term.run("sleep 30"))
        await asyncio.sleep(0.2)
        emulator.drop_sockets(computer.id)
        with pytest.raises(ConnectionClosedError, match="result is unknown"):
            await running
        assert (await term.run("echo next")).output == "next\n"


async def test_the_wire_log_keeps_no_payload_or_token(
    orgo: Orgo, computer: Computer, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.config.ws_auth = "query_only"  # the token travels in the URL
    async with orgo.connect(computer).terminal() as term:
        await term.run("echo hunter2-typed-secret")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "[payload not logged]" in text and "token=[redacted]" in text
    assert "hunter2" not in text
    assert computer.vnc_password is not None and computer.vnc_password not in text
