"""The audio connector: the computer's sound as PCM chunks, over ``/ws/audio``."""

from __future__ import annotations

import os
import wave
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection

from .._checks import check_choice, check_int
from ..protocol import Role
from ..protocol.audio import (
    CHANNELS,
    SAMPLE_RATES,
    AudioChunk,
    AudioError,
    AudioProtocol,
    AudioStarted,
    Pong,
)
from ._connection import Connection
from ._link import Frame
from ._socket import Inbox, Socket

__all__ = ["AudioStream"]


class AudioStream(Socket[AudioProtocol]):
    """The computer's audio: iterate it for :class:`AudioChunk` (PCM s16le with its format).

    A slow consumer does not stall the socket: at most ``max_buffered`` chunks
    wait; beyond that the oldest are dropped and counted in :attr:`dropped`.
    After a reconnect the stream resumes (the gap is lost, as on a radio).
    """

    name = "audio"

    def __init__(
        self,
        connection: Connection,
        *,
        sample_rate: int = 24000,
        channels: int = 1,
        max_buffered: int = 500,
    ) -> None:
        # Whole numbers first: 24000.0 and True compare equal to allowed values.
        check_choice("sample_rate", check_int("sample_rate", sample_rate), SAMPLE_RATES)
        check_choice("channels", check_int("channels", channels), CHANNELS)
        super().__init__(
            connection, params={"sample_rate": str(sample_rate), "channels": str(channels)}
        )
        self.format: AudioStarted | None = None
        """The format the server announced."""
        self.errors: list[str] = []
        self._chunks: Inbox[AudioChunk] = Inbox(self, max_buffered)

    def __aiter__(self) -> AsyncIterator[AudioChunk]:
        return aiter(self._chunks)

    @property
    def dropped(self) -> int:
        """Chunks dropped because the consumer was slower than real time."""
        return self._chunks.dropped

    async def record_wav(self, path: str | os.PathLike[str], seconds: float) -> float:
        """Write the next ``seconds`` of audio to a WAV file; returns the seconds written."""
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0; got {seconds!r}")
        written = 0.0
        with wave.open(os.fspath(path), "wb") as out:
            configured = False
            async for chunk in self:
                if not configured:
                    out.setnchannels(chunk.channels)
                    out.setsampwidth(2)
                    out.setframerate(chunk.sample_rate)
                    configured = True
                wanted = round((seconds - written) * chunk.sample_rate)
                frames = min(chunk.frames, wanted)
                out.writeframes(chunk.data[: frames * 2 * chunk.channels])
                written += frames / chunk.sample_rate
                if frames >= wanted:
                    break
        return written

    async def stop(self) -> None:
        """Ask the server to stop streaming (it then closes the socket)."""
        await self._send(lambda core: core.send_stop())

    # -- the socket --------------------------------------------------------------------

    def _new_core(self) -> AudioProtocol:
        return AudioProtocol(Role.CLIENT)

    async def _greet(self, ws: ClientConnection) -> None:
        """The server speaks first (``started``)."""

    def _receive(self, core: AudioProtocol, frame: Frame) -> None:
        if isinstance(frame, bytes):  # PCM
            core.receive_bytes(frame)
        else:
            core.receive_text(frame)

    def _event(self, event: object) -> None:
        if isinstance(event, AudioChunk):
            self._chunks.put(event)
        elif isinstance(event, AudioStarted):
            self.format = event
        elif isinstance(event, Pong):
            self._pong_received()
        elif isinstance(event, AudioError):
            self.errors.append(event.message)

    def _ended_hook(self, error: BaseException | None) -> None:
        self._chunks.wake()
