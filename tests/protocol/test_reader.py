"""The byte reader the protocol cores' parsers read through."""

from __future__ import annotations

from typing import Any

import pytest

from orgo_async.errors import ProtocolError
from orgo_async.protocol._reader import StreamReader


def _drive(reader: StreamReader, gen: Any, *chunks: bytes) -> Any:
    """Run a reader generator, feeding one chunk each time it waits."""
    feed = iter(chunks)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
        reader.feed_data(next(feed))


def test_reader_waits_and_limits() -> None:
    reader = StreamReader(limit=10)
    assert _drive(reader, reader.read_exact(5), b"ab", b"cdefg") == b"abcde"
    assert _drive(reader, reader.read_some(10)) == b"fg"
    assert _drive(reader, reader.read_line(10), b"x\r", b"\ny") == b"x\r\n"
    assert reader.buffer == b"y"
    with pytest.raises(ProtocolError, match="exceeds the limit of 10"):
        next(reader.read_exact(11))
    with pytest.raises(ProtocolError, match="no line end within 4"):
        _drive(reader, reader.read_line(4), b"yyyy")
    reader = StreamReader(limit=10)
    reader.feed_data(b"abc")
    reader.feed_eof()
    with pytest.raises(EOFError, match="2 bytes short"):
        next(reader.read_exact(5))
    with pytest.raises(EOFError):
        reader.feed_data(b"late")
    assert _drive(reader, reader.at_eof()) is False
    assert _drive(reader, reader.read_some(3)) == b"abc"
    assert _drive(reader, reader.at_eof()) is True
