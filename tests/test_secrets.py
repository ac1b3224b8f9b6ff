"""Secrets never show: not in logs (at DEBUG), reprs, or exception messages."""

from __future__ import annotations

import logging

import pytest

from orgo_async import Orgo, OrgoError, RetryPolicy
from orgo_async.emulator import Emulator, FaultRule

from .conftest import RecordedSleeps


async def test_a_whole_session_leaks_no_key_or_password(
    emulator: Emulator, sleeps: RecordedSleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    passwords: set[str] = set()
    async with Orgo(
        api_key=emulator.api_key, base_url=emulator.base_url, retry=RetryPolicy(sleep=sleeps)
    ) as orgo:
        shown.append(repr(orgo))
        ws = await orgo.workspaces.create("secrets")
        emulator.faults.add(FaultRule(kind="status", status=429, retry_after=0.1, times=2))
        launched = await orgo.computers.launch(workspace_id=ws.id, name="s1")
        c = launched.computer
        assert c.vnc_password
        passwords.add(c.vnc_password)
        shown += [repr(c), str(c), repr(launched), repr(ws)]
        creds = await orgo.computers.vnc_password(c)
        passwords.update(filter(None, [creds.password, creds.desktop_api_token]))
        shown += [repr(creds), str(creds)]
        await orgo.computers.restart(c)
        fresh = await orgo.computers.get(c)
        assert fresh.vnc_password
        passwords.add(fresh.vnc_password)
        shown.append(repr(fresh))
        for call in (
            orgo.computers.create(workspace_id=ws.id, name="s1"),  # 409
            orgo.computers.get("missing"),  # 404
            orgo.computers.stop("missing"),
        ):
            with pytest.raises(OrgoError) as info:
                await call
            shown += [str(info.value), repr(info.value)]
        await orgo.computers.delete(c)
    async with Orgo(api_key="sk_bad_" + emulator.api_key, base_url=emulator.base_url) as bad:
        with pytest.raises(OrgoError) as info:
            await bad.workspaces.list()
        shown += [str(info.value), repr(info.value), repr(bad)]

    logs = [r.getMessage() for r in caplog.records]
    assert any("POST /api/computers" in line for line in logs), "DEBUG logging was exercised"
    assert any("retrying" in line for line in logs)
    text = "\n".join(logs + shown)
    assert emulator.api_key not in text
    assert len(passwords) >= 3
    for secret in passwords:
        assert secret not in text
