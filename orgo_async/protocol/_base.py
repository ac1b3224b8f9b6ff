"""What the JSON protocol cores share: the role, the message codec, the error types."""

from __future__ import annotations

import enum
import json
from typing import Any

from ..errors import ProtocolError

__all__ = ["JsonChannel", "Role"]

# Orgo's JSON messages are small; anything much larger is a broken or hostile peer.
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024


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
            ProtocolError: too large, not JSON, not an object, or no ``type``.
        """
        if self._failed is not None:
            raise self._failed
        try:
            if len(text) > self.max_message:
                raise ProtocolError(f"message of {len(text)} bytes exceeds {self.max_message}")
            try:
                message = json.loads(text)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ProtocolError(f"message is not JSON: {exc}") from exc
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise ProtocolError("message is not a JSON object with a string 'type'")
        except ProtocolError as exc:
            self._failed = exc
            raise
        return message
