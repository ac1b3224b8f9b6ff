"""Orgo's terminal protocol (``/ws/terminal``), sans I/O, for both ends.

Every frame is a JSON text message with a ``type``::

    client -> server   {"type": "input", "data": "ls -la\\r"}
                       {"type": "resize", "cols": 120, "rows": 40}
                       {"type": "ping"}
    server -> client   {"type": "output", "data": "...ANSI..."}
                       {"type": "error", "message": "..."}
                       {"type": "exit", "code": 0}
                       {"type": "pong"}

:class:`TerminalProtocol` parses what arrives into events and buffers what to
send. :class:`CommandRun` turns "run this command and give me its output and
exit code" into input bytes and an incremental parser of the output stream.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Final

import attrs

from ..errors import ProtocolError
from ._base import JsonChannel, Role

__all__ = [
    "CommandResult",
    "CommandRun",
    "Exit",
    "Input",
    "Output",
    "Ping",
    "Pong",
    "Resize",
    "TerminalError",
    "TerminalEvent",
    "TerminalProtocol",
    "UnknownMessage",
    "strip_ansi",
]


@attrs.frozen
class TerminalEvent:
    """Base class of everything :class:`TerminalProtocol` reports."""


@attrs.frozen
class Output(TerminalEvent):
    """Terminal output (may hold ANSI escape sequences)."""

    data: str


@attrs.frozen
class TerminalError(TerminalEvent):
    """The server reported an error (the socket stays open)."""

    message: str


@attrs.frozen
class Exit(TerminalEvent):
    """The shell ended with this exit code."""

    code: int | None


@attrs.frozen
class Pong(TerminalEvent):
    """The answer to a ping."""


@attrs.frozen
class Input(TerminalEvent):
    """(Server role) keystrokes from the client."""

    data: str


@attrs.frozen
class Resize(TerminalEvent):
    """(Server role) the client's new window size."""

    cols: int
    rows: int


@attrs.frozen
class Ping(TerminalEvent):
    """(Server role) the client's keepalive."""


@attrs.frozen
class UnknownMessage(TerminalEvent):
    """A message of a type this version does not know; kept, not fatal."""

    type: str
    message: dict[str, object]


_MAX_SIZE: Final = 10_000


def _size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_SIZE:
        raise ValueError(f"{name} must be an int from 1 to {_MAX_SIZE}; got {value!r}")
    return value


class TerminalProtocol(JsonChannel):
    """The terminal protocol for one connection.

    Feed each incoming text frame to :meth:`receive_text`, then take
    :meth:`events_received`; call ``send_*`` and send :meth:`data_to_send`.
    """

    def __init__(self, role: Role = Role.CLIENT, *, max_message: int = 4 * 1024 * 1024) -> None:
        super().__init__(role, max_message=max_message)
        self._events: list[TerminalEvent] = []

    # -- incoming -------------------------------------------------------------------

    def receive_text(self, text: str | bytes) -> None:
        """Parse one incoming frame.

        Raises:
            ProtocolError: the frame is not a valid message for this role.
        """
        message = self._parse(text)
        kind = message["type"]
        try:
            event = (
                self._client_event(kind, message)
                if self.role is Role.CLIENT
                else (self._server_event(kind, message))
            )
        except (KeyError, TypeError, ValueError) as exc:
            self._failed = ProtocolError(f"malformed {kind!r} message: {exc}")
            raise self._failed from exc
        self._events.append(event)

    def events_received(self) -> list[TerminalEvent]:
        """The events parsed since the last call."""
        events, self._events = self._events, []
        return events

    def _client_event(self, kind: str, m: dict[str, object]) -> TerminalEvent:
        if kind == "output":
            return Output(_text(m, "data"))
        if kind == "exit":
            code = m.get("code")
            return Exit(code if isinstance(code, int) and not isinstance(code, bool) else None)
        if kind == "error":
            return TerminalError(str(m.get("message", "")))
        if kind == "pong":
            return Pong()
        return UnknownMessage(kind, m)

    def _server_event(self, kind: str, m: dict[str, object]) -> TerminalEvent:
        if kind == "input":
            return Input(_text(m, "data"))
        if kind == "resize":
            return Resize(_size("cols", m["cols"]), _size("rows", m["rows"]))
        if kind == "ping":
            return Ping()
        return UnknownMessage(kind, m)

    # -- outgoing (client) ----------------------------------------------------------

    def send_input(self, data: str) -> None:
        """Keystrokes; use ``\\r`` for Enter."""
        self._require(Role.CLIENT)
        self._send({"type": "input", "data": data})

    def send_resize(self, cols: int, rows: int) -> None:
        self._require(Role.CLIENT)
        self._send({"type": "resize", "cols": _size("cols", cols), "rows": _size("rows", rows)})

    def send_ping(self) -> None:
        self._require(Role.CLIENT)
        self._send({"type": "ping"})

    # -- outgoing (server) ----------------------------------------------------------

    def send_output(self, data: str) -> None:
        self._require(Role.SERVER)
        self._send({"type": "output", "data": data})

    def send_error(self, message: str) -> None:
        self._require(Role.SERVER)
        self._send({"type": "error", "message": message})

    def send_exit(self, code: int | None) -> None:
        self._require(Role.SERVER)
        self._send({"type": "exit", "code": code})

    def send_pong(self) -> None:
        self._require(Role.SERVER)
        self._send({"type": "pong"})

    def _require(self, role: Role) -> None:
        if self.role is not role:
            raise RuntimeError(f"only the {role.value} sends this message")


def _text(m: dict[str, object], key: str) -> str:
    value = m[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


# -- running a command over the stream ------------------------------------------------------

# CSI, OSC (BEL or ST terminated), and other two-byte escapes...
_ESCAPE = (
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[@-Z\\-_]"
)
# What an escape sequence cut short by the end of a frame looks like.
_PARTIAL_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?)?\Z")
# ...and stray control characters (tab, newline and carriage return kept).
_ANSI = re.compile(_ESCAPE + r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_ansi(text: str) -> str:
    """Text without terminal escape sequences and control characters (tabs and newlines kept)."""
    return _ANSI.sub("", text)


@attrs.frozen
class CommandResult:
    """What a command printed (ANSI stripped, ``\\r\\n`` folded to ``\\n``) and its exit code."""

    output: str
    exit_code: int


class CommandRun:
    """One command run through an interactive shell, found again in its output stream.

    The command travels base64-encoded and runs in a subshell (so ``exit 3``
    ends the subshell, not the terminal). Its output is framed by two markers
    carrying a random nonce. ``printf`` assembles each marker at run time, so the
    echo of the typed line never contains one, and output that merely resembles
    a marker (without this run's nonce) cannot end the parse.
    """

    def __init__(self, command: str, *, nonce: str | None = None) -> None:
        if not isinstance(command, str) or not command.strip():
            raise ValueError(f"command must be a non-empty string; got {command!r}")
        self.command = command
        self.nonce = nonce or secrets.token_hex(8)
        self._begin = f"<<ORGO:{self.nonce}:B>>"
        self._end = re.compile(rf"<<ORGO:{self.nonce}:E:(-?\d+)>>")
        self._buffer = ""
        self._pending = ""
        self._started = False
        self.result: CommandResult | None = None

    def input(self) -> str:
        """The keystrokes that run the command (send them as terminal input)."""
        encoded = base64.b64encode(self.command.encode()).decode()
        begin = f"printf '<<ORGO:%s:B>>' {self.nonce}"
        end = f"printf '<<ORGO:%s:E:%d>>' {self.nonce} $__orgo_rc"
        run = f'(eval "$(printf %s {encoded} | base64 -d)")'
        # The leading space keeps the line out of the shell's history.
        return f" {begin}; {run}; __orgo_rc=$?; {end}\r"

    def partial_output(self) -> str:
        """What the command printed so far (empty before it started)."""
        if not self._started:
            return ""
        return self._buffer.replace("\r\n", "\n").replace("\r", "")

    def feed(self, output: str) -> CommandResult | None:
        """Feed terminal output; returns the result once the end marker has arrived."""
        if self.result is not None:
            return self.result
        raw = self._pending + output
        # An escape sequence split across frames is held back until it is whole.
        cut = raw.rfind("\x1b")
        if cut >= 0 and len(raw) - cut < 4096 and _PARTIAL_ESCAPE.match(raw, cut):
            raw, self._pending = raw[:cut], raw[cut:]
        else:
            self._pending = ""
        self._buffer += strip_ansi(raw)
        if not self._started:
            at = self._buffer.find(self._begin)
            if at < 0:
                # Keep only what could be the start of a marker split across frames.
                self._buffer = self._buffer[-len(self._begin) :]
                return None
            self._buffer = self._buffer[at + len(self._begin) :]
            self._started = True
        match = self._end.search(self._buffer)
        if match is None:
            return None
        text = self._buffer[: match.start()].replace("\r\n", "\n").replace("\r", "")
        self.result = CommandResult(output=text, exit_code=int(match.group(1)))
        return self.result
