"""Orgo's audio protocol (``/ws/audio``), sans I/O, for both ends.

After authentication the server sends ``{"type": "started", "sample_rate":
24000, "channels": 1}``, then binary frames of raw PCM, signed 16-bit little
endian, interleaved (20 ms = 960 bytes at the defaults; a frame may hold
several). The client may send ``{"type": "stop"}`` and ``{"type": "ping"}``;
the server answers ``{"type": "pong"}`` or ``{"type": "error", "message"}``.
"""

from __future__ import annotations

from typing import Final

import attrs

from ..errors import ProtocolError
from ._base import JsonChannel, Role

__all__ = [
    "CHANNELS",
    "SAMPLE_RATES",
    "AudioChunk",
    "AudioError",
    "AudioProtocol",
    "AudioStarted",
    "Pong",
    "Stop",
]

SAMPLE_RATES: Final = (24000, 48000)
CHANNELS: Final = (1, 2)
BYTES_PER_SAMPLE: Final = 2


@attrs.frozen
class AudioStarted:
    """The stream's format, announced once before the first PCM frame."""

    sample_rate: int
    channels: int


@attrs.frozen
class AudioChunk:
    """PCM s16le samples, interleaved, with the format they are in."""

    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    sample_rate: int
    channels: int

    @property
    def frames(self) -> int:
        """Sample frames (one sample per channel) in this chunk."""
        return len(self.data) // (BYTES_PER_SAMPLE * self.channels)

    @property
    def duration(self) -> float:
        """Seconds of audio in this chunk."""
        return self.frames / self.sample_rate


@attrs.frozen
class AudioError:
    message: str


@attrs.frozen
class Pong:
    """The answer to a ping (server role: a ping to answer)."""


@attrs.frozen
class Stop:
    """(Server role) the client asked to stop."""


AudioEvent = AudioStarted | AudioChunk | AudioError | Pong | Stop


class AudioProtocol(JsonChannel):
    """The audio protocol for one connection.

    PCM that ends in the middle of a sample frame is held until the rest
    arrives, so every :class:`AudioChunk` holds whole frames.
    """

    def __init__(self, role: Role = Role.CLIENT, *, max_frame: int = 1024 * 1024) -> None:
        super().__init__(role)
        self.max_frame = max_frame
        self.format: AudioStarted | None = None
        self._carry = b""
        self._events: list[AudioEvent] = []

    def receive_text(self, text: str | bytes) -> None:
        """Parse one control frame.

        Raises:
            ProtocolError: not a valid message, or an impossible format.
        """
        m = self._parse(text)
        kind = m["type"]
        if self.role is Role.CLIENT:
            if kind == "started":
                rate, channels = m.get("sample_rate"), m.get("channels")
                if not (
                    isinstance(rate, int)
                    and 1000 <= rate <= 384000
                    and isinstance(channels, int)
                    and 1 <= channels <= 8
                ):
                    self._failed = ProtocolError(
                        f"impossible audio format: {rate!r} Hz, {channels!r} channels"
                    )
                    raise self._failed
                self.format = AudioStarted(rate, channels)
                self._events.append(self.format)
            elif kind == "pong":
                self._events.append(Pong())
            elif kind == "error":
                self._events.append(AudioError(str(m.get("message", ""))))
        elif kind == "stop":
            self._events.append(Stop())
        elif kind == "ping":
            self._events.append(Pong())

    def receive_bytes(self, data: bytes) -> None:
        """Take one binary frame of PCM.

        Raises:
            ProtocolError: PCM before ``started``, or a frame over ``max_frame``.
        """
        if self._failed is not None:
            raise self._failed
        if self.format is None:
            self._failed = ProtocolError("audio data arrived before the 'started' message")
            raise self._failed
        if len(data) > self.max_frame:
            self._failed = ProtocolError(
                f"audio frame of {len(data)} bytes exceeds {self.max_frame}"
            )
            raise self._failed
        data = self._carry + data if self._carry else data
        step = BYTES_PER_SAMPLE * self.format.channels
        whole = len(data) - len(data) % step
        self._carry = data[whole:]
        if whole:
            self._events.append(
                AudioChunk(data[:whole], self.format.sample_rate, self.format.channels)
            )

    def events_received(self) -> list[AudioEvent]:
        events, self._events = self._events, []
        return events

    # client
    def send_stop(self) -> None:
        self._send({"type": "stop"})

    def send_ping(self) -> None:
        self._send({"type": "ping"})

    # server
    def send_started(self, sample_rate: int, channels: int) -> None:
        self._send({"type": "started", "sample_rate": sample_rate, "channels": channels})

    def send_pong(self) -> None:
        self._send({"type": "pong"})

    def send_error(self, message: str) -> None:
        self._send({"type": "error", "message": message})
