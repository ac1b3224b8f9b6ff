"""orgo.desktop against the emulator: every action, both routes, errors before sending."""

from __future__ import annotations

import asyncio

import pytest

from orgo_async import (
    Computer,
    InvalidRequestError,
    Orgo,
    RetryPolicy,
    ServerError,
    Workspace,
)
from orgo_async.emulator import Emulator
from orgo_async.protocol.png import decode_png

ROUTES = ("platform", "proxy")


@pytest.fixture
async def computer(orgo: Orgo, workspace: Workspace) -> Computer:
    return (await orgo.computers.launch(workspace_id=workspace.id, name="desk")).computer


def differing(a: bytes, b: bytes) -> int:
    one, two = decode_png(a), decode_png(b)
    assert (one.width, one.height) == (two.width, two.height)
    return sum(x != y for x, y in zip(one.pixels, two.pixels, strict=True))


@pytest.mark.parametrize("route", ROUTES)
async def test_screenshot_pixels_change_after_click_and_typing(
    orgo: Orgo, computer: Computer, route: str
) -> None:
    desktop = orgo.desktop(computer, route=route)  # type: ignore[arg-type]
    first = await desktop.screenshot()
    assert (first.width, first.height, first.mime_type) == (1280, 720, "image/png")
    await desktop.click(200, 300)
    clicked = await desktop.screenshot()
    assert differing(first.data, clicked.data) > 0
    await desktop.type("hello", delay_ms=0)
    typed = await desktop.screenshot()
    assert differing(clicked.data, typed.data) > 0


@pytest.mark.parametrize("form", ["base64", "binary", "url"])
async def test_every_screenshot_form_gives_png_bytes(
    orgo: Orgo, computer: Computer, form: str
) -> None:
    shot = await orgo.desktop(computer).screenshot(response_format=form)  # type: ignore[arg-type]
    assert shot.data.startswith(b"\x89PNG") and (shot.width, shot.height) == (1280, 720)
    assert decode_png(shot.data).width == 1280


async def test_screenshots_of_one_computer_are_serialized(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    emulator.config.screenshot_seconds = 0.1
    desktop = orgo.desktop(computer)
    shots = await asyncio.gather(*(desktop.screenshot() for _ in range(4)))
    assert len(shots) == 4 and emulator.counters.screenshots == 4
    # Two sessions do not share the lock: the emulator then refuses the overlap, as Orgo
    # does (with retries off; the default policy would retry the 500 and succeed).
    off = RetryPolicy.off()
    async with (
        Orgo(api_key=emulator.api_key, base_url=emulator.base_url, retry=off) as one,
        Orgo(api_key=emulator.api_key, base_url=emulator.base_url, retry=off) as two,
    ):
        results = await asyncio.gather(
            one.desktop(computer).screenshot(),
            two.desktop(computer).screenshot(),
            return_exceptions=True,
        )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], ServerError)
    assert failed[0].code == "screenshot_in_progress"


@pytest.mark.parametrize("route", ROUTES)
async def test_pointer_keyboard_and_wait(
    orgo: Orgo, computer: Computer, emulator: Emulator, route: str
) -> None:
    desktop = orgo.desktop(computer, route=route)  # type: ignore[arg-type]
    before = await desktop.screenshot()
    await desktop.click(10, 10, button="right")
    await desktop.click(20, 20, double=True)
    await desktop.drag(10, 10, 300, 200, duration=0)
    await desktop.scroll("down", 3, x=100, y=100)
    await desktop.scroll("up")
    await desktop.key("ctrl+shift+t")
    await desktop.key("Return")
    await desktop.wait(0.01)
    # Each action reached the emulator once, as the action it was sent as...
    assert emulator.counters.actions == {
        "screenshot": 1,
        "click": 2,
        "drag": 1,
        "scroll": 2,
        "key": 2,
        "wait": 1,
    }
    # ...and the synthetic screen shows the markers, the drag line and the new line.
    after = await desktop.screenshot()
    assert differing(before.data, after.data) > 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: d.click(-1, 5), "x must be a whole number from 0 to 1279"),
        (lambda d: d.click(5, 720), "y must be a whole number from 0 to 719"),
        (lambda d: d.click(1, 1, button="middle"), "button must be one of left, right"),
        (lambda d: d.scroll("sideways"), "direction must be one of up, down"),
        (lambda d: d.scroll("up", 0), "amount must be a whole number from 1 to 100"),
        (lambda d: d.scroll("up", x=5), "give both x and y"),
        (lambda d: d.key(""), "key must be a non-empty string"),
        (lambda d: d.key("ctrl+"), "is not an X11 keysym name"),
        (lambda d: d.key("hyperspace+x"), "'hyperspace' is not a modifier"),
        (lambda d: d.type(""), "text must be a non-empty string"),
        (lambda d: d.wait(61), "seconds must be a number of seconds from 0 to 60"),
        (lambda d: d.bash("ls", timeout=301), "timeout must be a whole number from 1 to 300"),
        (lambda d: d.exec("  "), "code must be a non-empty string"),
        (lambda d: d.screenshot(scale=2), "scale"),
    ],
)
async def test_bad_arguments_fail_before_any_request(
    orgo: Orgo, computer: Computer, emulator: Emulator, call: object, message: str
) -> None:
    before = dict(emulator.counters.requests)
    with pytest.raises(ValueError, match=message):
        await call(orgo.desktop(computer))  # type: ignore[operator]
    assert emulator.counters.requests == before


async def test_bash_prints_and_exits_non_zero(orgo: Orgo, computer: Computer) -> None:
    result = await orgo.desktop(computer).bash("echo out; echo err >&2; exit 4")
    assert result.exit_code == 4 and not result.ok
    assert "out" in result.output and "err" in result.output
    assert not result.timed_out


async def test_bash_timeout_is_reported(orgo: Orgo, computer: Computer) -> None:
    result = await orgo.desktop(computer).bash("echo partial; sleep 30", timeout=1)
    assert result.timed_out and "partial" in result.output


@pytest.mark.parametrize("route", ROUTES)
async def test_exec_success_error_and_timeout(orgo: Orgo, computer: Computer, route: str) -> None:
    desktop = orgo.desktop(computer, route=route)  # type: ignore[arg-type]
    ok = await desktop.exec("print(6 * 7)")
    assert ok.success and ok.output.strip() == "42" and not ok.timed_out
    bad = await desktop.exec("1 / 0")
    assert not bad.success and bad.error_type == "ZeroDivisionError"
    slow = await desktop.exec("import time; time.sleep(30)", timeout=1)
    assert slow.timed_out and not slow.success


async def test_actions_on_a_stopped_computer(orgo: Orgo, computer: Computer) -> None:
    await orgo.computers.stop(computer)
    with pytest.raises(InvalidRequestError) as info:
        await orgo.desktop(computer).click(1, 1)
    assert info.value.code == "desktop_unavailable"


async def test_a_lost_click_is_not_replayed(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    from orgo_async import APIConnectionError
    from orgo_async.emulator import FaultRule

    emulator.faults.add(FaultRule(kind="lose_response", method="POST", path="/click$", times=1))
    with pytest.raises(APIConnectionError):
        await orgo.desktop(computer).click(5, 5)
    assert emulator.counters.actions.get("click") == 1


async def test_fleet_wide_bash_over_50_with_failures(
    orgo: Orgo, workspace: Workspace, emulator: Emulator
) -> None:
    result = await orgo.launch_fleet(workspace.id, 50, concurrency=25)
    computers = [r.computer for r in result.ready]
    assert len(computers) == 50
    for victim in computers[:3]:
        await orgo.computers.stop(victim)  # these three will fail
    outcomes = await orgo.bash_all(computers, "echo $HOME; exit 2", concurrency=16)
    assert [o.computer.id for o in outcomes] == [c.id for c in computers]  # one each, in order
    failed = [o for o in outcomes if not o.ok]
    assert {o.computer.id for o in failed} == {c.id for c in computers[:3]}
    assert all(isinstance(o.error, InvalidRequestError) for o in failed)
    for o in outcomes[3:]:
        value = o.unwrap()
        assert value.exit_code == 2
        assert value.output.strip() == emulator.home(o.computer.id)
    shots = await orgo.screenshot_all(computers[3:6])
    assert all(o.ok and o.unwrap().width == 1280 for o in shots)
    execs = await orgo.exec_all(computers[3:5], "print('hi')")
    assert [o.unwrap().output.strip() for o in execs] == ["hi", "hi"]
