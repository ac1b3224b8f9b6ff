"""What the JSON protocol cores share: the role, the message codec, the error types.

:func:`load_json` is the one JSON parser for text from a peer, here and in
the emulator's REST routes: ``json.loads`` recurses once per nesting level,
so a frame nested 100,000 deep would raise :class:`RecursionError`, an
exception nobody expects from a parser. It bounds the nesting instead.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Final

from ..errors import ProtocolError

__all__ = ["MAX_JSON_DEPTH", "JsonChannel", "NestingError", "Role", "load_json"]

# Orgo's JSON messages are small; anything much larger is a broken or hostile peer.
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024

MAX_JSON_DEPTH: Final = 64
"""The deepest nesting of arrays and objects :func:`load_json` accepts (Orgo's use two or three)."""


_Container = dict[str, Any] | list[Any]


class NestingError(ValueError):
    """JSON nested deeper than the limit."""


def _too_deep(max_depth: int) -> NestingError:
    return NestingError(f"nested deeper than {max_depth} levels")


def load_json(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for untrusted text: arrays and objects nest at most ``max_depth`` deep.

    Raises:
        NestingError: nested deeper than ``max_depth``.
        ValueError: not JSON (``json.JSONDecodeError``, ``UnicodeDecodeError``).
    """
    if isinstance(text, bytes | bytearray):
        # What json.loads does with bytes, done first so the brackets can be counted.
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    # Fewer brackets than the limit cannot nest past it: most messages stop here.
    if text.count("[") + text.count("{") <= max_depth:
        return json.loads(text)
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep(max_depth) from None
    # Parsed within the recursion limit: walk the containers (long strings cost nothing).
    stack: list[tuple[_Container, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise _too_deep(max_depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return value


class Role(enum.Enum):
    """Which end of a socket a core plays."""

    CLIENT = "client"
    SERVER = "server"


class JsonChannel:
    """A queue of outgoing JSON text frames, and the parser for incoming ones.

    Subclasses add ``send_*`` methods (which only buffer) and turn incoming
    messages into events. After a protocol error the channel is failed for good.
    """

    def __init__(self, role: Role, *, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.role = role
        self.max_message = max_message
        self._out: list[str] = []
        self._failed: ProtocolError | None = None

    def data_to_send(self) -> list[str]:
        """The text frames to send, in order; the buffer is emptied."""
        out, self._out = self._out, []
        return out

    def _send(self, message: dict[str, Any]) -> None:
        self._out.append(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    def _parse(self, text: str | bytes) -> dict[str, Any]:
        """One incoming frame as a JSON object with a string ``type``.

        Raises:
            ProtocolError: too large, not JSON, nested deeper than
                :data:`MAX_JSON_DEPTH`, not an object, or no ``type``.
        """
        if self._failed is not None:
            raise self._failed
        try:
            if len(text) > self.max_message:
                raise ProtocolError(f"message of {len(text)} bytes exceeds {self.max_message}")
            try:
                message = load_json(text)
            except NestingError as exc:
                raise ProtocolError(f"message {exc}") from None
            except ValueError as exc:  # UnicodeDecodeError is one too
                raise ProtocolError(f"message is not JSON: {exc}") from exc
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise ProtocolError("message is not a JSON object with a string 'type'")
        except ProtocolError as exc:
            self._failed = exc
            raise
        return message
