"""The audio connector: the emulator's known tone comes back at the requested format."""

from __future__ import annotations

import array
import asyncio
import wave
from pathlib import Path

import pytest

from orgo_async import AudioChunk, Computer, Orgo
from orgo_async.emulator import Emulator

from ..conftest import eventually


def dominant_hz(chunks: list[AudioChunk], channel: int = 0) -> float:
    """Frequency from rising zero crossings of one channel."""
    samples = array.array("h")
    for chunk in chunks:
        samples.frombytes(chunk.data)
    step = chunks[0].channels
    mono = samples[channel::step]
    rising = sum(1 for a, b in zip(mono, mono[1:], strict=False) if a < 0 <= b)
    return rising / (len(mono) / chunks[0].sample_rate)


async def collect(stream: object, seconds: float) -> list[AudioChunk]:
    chunks: list[AudioChunk] = []
    total = 0.0
    async with asyncio.timeout(10):
        async for chunk in stream:  # type: ignore[attr-defined]
            chunks.append(chunk)
            total += chunk.duration
            if total >= seconds:
                return chunks
    raise AssertionError("the stream ended early")


@pytest.mark.parametrize(("rate", "channels"), [(24000, 1), (48000, 2)])
async def test_the_tone_arrives_at_the_requested_format(
    orgo: Orgo, computer: Computer, emulator: Emulator, rate: int, channels: int
) -> None:
    emulator.config.audio_tone_hz = 440.0
    async with orgo.connect(computer).audio(sample_rate=rate, channels=channels) as audio:
        chunks = await collect(audio, 0.5)
    assert audio.format is not None
    assert (audio.format.sample_rate, audio.format.channels) == (rate, channels)
    assert all((c.sample_rate, c.channels) == (rate, channels) for c in chunks)
    for channel in range(channels):
        assert dominant_hz(chunks, channel) == pytest.approx(440.0, rel=0.02)


async def test_another_tone_is_measured_as_such(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    emulator.config.audio_tone_hz = 1000.0
    async with orgo.connect(computer).audio() as audio:
        chunks = await collect(audio, 0.5)
    assert dominant_hz(chunks) == pytest.approx(1000.0, rel=0.02)


async def test_record_wav(orgo: Orgo, computer: Computer, tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    async with orgo.connect(computer).audio(sample_rate=48000) as audio:
        written = await audio.record_wav(path, 0.3)
    assert written == pytest.approx(0.3)
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (48000, 1, 2)
        assert wav.getnframes() == 14400


async def test_a_slow_consumer_loses_the_oldest_chunks_counted(
    orgo: Orgo, computer: Computer
) -> None:
    async with orgo.connect(computer).audio(max_buffered=5) as audio:
        await eventually(lambda: audio.dropped >= 3)
        assert len(audio._chunks) == 5
        first = await anext(aiter(audio))
        assert isinstance(first, AudioChunk)


async def test_bad_options_fail_before_dialling(orgo: Orgo, computer: Computer) -> None:
    conn = orgo.connect(computer)
    # Equal to an allowed value is not enough: a float or a bool is not a count.
    for name, value in (("sample_rate", 24000.0), ("channels", True), ("channels", 2.0)):
        with pytest.raises(ValueError, match=f"{name} must be a whole number; got {value!r}"):
            conn.audio(**{name: value})
    with pytest.raises(ValueError, match="sample_rate must be a whole number; got '24000'"):
        conn.audio(sample_rate="24000")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample_rate must be one of 24000, 48000; got 44100"):
        conn.audio(sample_rate=44100)
    with pytest.raises(ValueError, match="channels must be one of 1, 2; got 3"):
        conn.audio(channels=3)


async def test_audio_resumes_after_a_drop(
    orgo: Orgo, computer: Computer, emulator: Emulator
) -> None:
    async with orgo.connect(computer).audio() as audio:
        await collect(audio, 0.1)
        emulator.drop_sockets(computer.id)
        await eventually(lambda: audio.reconnects == 1)
        chunks = await collect(audio, 0.3)
    assert dominant_hz(chunks) == pytest.approx(440.0, rel=0.05)
