"""The terminal core: frames in, events out, both roles; and the command runner's parse."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from orgo_async.errors import ProtocolError
from orgo_async.protocol import Role
from orgo_async.protocol.terminal import (
    CommandRun,
    Exit,
    Input,
    Output,
    Ping,
    Pong,
    Resize,
    TerminalError,
    TerminalProtocol,
    UnknownMessage,
    strip_ansi,
)


def pair() -> tuple[TerminalProtocol, TerminalProtocol]:
    return TerminalProtocol(Role.CLIENT), TerminalProtocol(Role.SERVER)


def relay(src: TerminalProtocol, dst: TerminalProtocol) -> list[object]:
    for frame in src.data_to_send():
        dst.receive_text(frame)
    return list(dst.events_received())


def test_client_and_server_speak_the_documented_messages() -> None:
    client, server = pair()
    client.send_input("ls -la\r")
    client.send_resize(120, 40)
    client.send_ping()
    sent = client.data_to_send()
    assert [json.loads(f) for f in sent] == [
        {"type": "input", "data": "ls -la\r"},
        {"type": "resize", "cols": 120, "rows": 40},
        {"type": "ping"},
    ]
    for frame in sent:
        server.receive_text(frame)
    assert server.events_received() == [Input("ls -la\r"), Resize(120, 40), Ping()]
    server.send_output("\x1b[1mhi\x1b[0m")
    server.send_error("oops")
    server.send_exit(3)
    server.send_pong()
    assert relay(server, client) == [
        Output("\x1b[1mhi\x1b[0m"),
        TerminalError("oops"),
        Exit(3),
        Pong(),
    ]


def test_unknown_types_are_kept_and_roles_enforced() -> None:
    client, server = pair()
    client.receive_text('{"type": "title", "data": "x"}')
    [event] = client.events_received()
    assert isinstance(event, UnknownMessage) and event.type == "title"
    with pytest.raises(RuntimeError, match="only the server"):
        client.send_output("x")
    with pytest.raises(RuntimeError, match="only the client"):
        server.send_input("x")
    with pytest.raises(ValueError, match="cols must be an int from 1"):
        client.send_resize(0, 10)


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '{"no": "type"}',
        '{"type": "output", "data": 5}',
        "x" * (4 * 1024 * 1024 + 1),
    ],
)
def test_bad_frames_are_protocol_errors_and_fail_the_core(frame: str) -> None:
    client = TerminalProtocol(Role.CLIENT)
    with pytest.raises(ProtocolError):
        client.receive_text(frame)
    with pytest.raises(ProtocolError):  # failed for good
        client.receive_text('{"type": "pong"}')


def test_server_rejects_impossible_sizes() -> None:
    server = TerminalProtocol(Role.SERVER)
    with pytest.raises(ProtocolError, match="malformed 'resize'"):
        server.receive_text('{"type": "resize", "cols": -1, "rows": 3}')


def test_strip_ansi() -> None:
    raw = "\x1b[?2004h\x1b]0;title\x07\x1b[32mgreen\x1b[0m\tok\r\n\x08"
    assert strip_ansi(raw) == "green\tok\r\n"


def _transcript(run: CommandRun, output: str, code: int) -> str:
    """What a shell shows: the echoed line, then the markers around the output."""
    echo = run.input().replace("\r", "\r\n")
    return (
        f"prompt$ {echo}<<ORGO:{run.nonce}:B>>\x1b[31m{output}\x1b[0m"
        f"<<ORGO:{run.nonce}:E:{code}>>prompt$ "
    )


def test_command_run_finds_output_and_exit_code() -> None:
    run = CommandRun("echo hi; exit 3")
    assert "echo hi" not in run.input()  # it travels encoded
    assert f"<<ORGO:{run.nonce}:B>>" not in run.input()  # the echo cannot end the parse
    result = run.feed(_transcript(run, "hi\r\n", 3))
    assert result is not None and result.output == "hi\n" and result.exit_code == 3


def test_command_run_is_not_fooled_by_look_alike_markers() -> None:
    run = CommandRun("cat trap.txt")
    fake = "<<ORGO:0123456789abcdef:E:0>>\r\n<<ORGO:%s:E:0>>\r\n"
    result = run.feed(_transcript(run, fake, 1))
    assert result is not None and result.exit_code == 1
    assert result.output == fake.replace("\r\n", "\n")


@given(st.data())
def test_command_run_survives_any_split_of_the_stream(data: st.DataObject) -> None:
    run = CommandRun("printf 'a\\nb'")
    text = _transcript(run, "a\r\nb", 0)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    result = None
    last = 0
    for cut in [*cuts, len(text)]:
        result = run.feed(text[last:cut]) or result
        last = cut
    assert result is not None and result.output == "a\nb" and result.exit_code == 0


def test_command_run_validates() -> None:
    with pytest.raises(ValueError, match="command must be a non-empty string"):
        CommandRun("  ")


def test_a_lone_escape_does_not_hold_back_the_end_marker() -> None:
    run = CommandRun("true")
    head, tail = _transcript(run, "x\x1b", 0).split("<<ORGO:" + run.nonce + ":E", 1)
    assert run.feed(head) is None
    result = run.feed("<<ORGO:" + run.nonce + ":E" + tail)
    assert result is not None and result.output == "x"
