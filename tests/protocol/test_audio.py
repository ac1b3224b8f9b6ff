"""The audio core: started, then whole PCM frames however the bytes were split."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from orgo_async.errors import ProtocolError
from orgo_async.protocol import Role
from orgo_async.protocol.audio import AudioChunk, AudioError, AudioProtocol, AudioStarted, Pong


def started(rate: int = 24000, channels: int = 1) -> AudioProtocol:
    core = AudioProtocol(Role.CLIENT)
    core.receive_text(f'{{"type":"started","sample_rate":{rate},"channels":{channels}}}')
    return core


def test_started_then_chunks_with_their_format() -> None:
    core = started(48000, 2)
    core.receive_bytes(bytes(960 * 4))
    core.receive_text('{"type":"pong"}')
    core.receive_text('{"type":"error","message":"no sink"}')
    events = core.events_received()
    assert events[0] == AudioStarted(48000, 2)
    chunk = events[1]
    assert isinstance(chunk, AudioChunk) and chunk.frames == 960
    assert chunk.duration == pytest.approx(0.02)
    assert events[2:] == [Pong(), AudioError("no sink")]


@given(st.lists(st.binary(min_size=0, max_size=50), max_size=20))
def test_any_split_yields_whole_frames_and_loses_nothing(parts: list[bytes]) -> None:
    core = started(24000, 2)
    core.events_received()
    for part in parts:
        core.receive_bytes(part)
    chunks = [e for e in core.events_received() if isinstance(e, AudioChunk)]
    data = b"".join(c.data for c in chunks)
    total = b"".join(parts)
    assert all(len(c.data) % 4 == 0 and c.data for c in chunks)
    assert data == total[: len(total) - len(total) % 4]


def test_pcm_before_started_and_oversized_frames_are_errors() -> None:
    with pytest.raises(ProtocolError, match="before the 'started'"):
        AudioProtocol(Role.CLIENT).receive_bytes(b"\0\0")
    core = AudioProtocol(Role.CLIENT, max_frame=10)
    core.receive_text('{"type":"started","sample_rate":24000,"channels":1}')
    with pytest.raises(ProtocolError, match="exceeds"):
        core.receive_bytes(bytes(12))
    with pytest.raises(ProtocolError, match="impossible audio format"):
        AudioProtocol(Role.CLIENT).receive_text('{"type":"started","sample_rate":5,"channels":1}')
