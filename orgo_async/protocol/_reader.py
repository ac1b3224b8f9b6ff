"""A byte reader for parsers written as generators.

A sans-I/O parser is a generator that asks the reader for bytes::

    def parse(reader):
        header = yield from reader.read_exact(4)
        ...

Each ``read_*`` method is itself a generator: it returns at once when the
buffer holds enough bytes and yields (``None``) when it does not, so the
parser is suspended until the core feeds more data and resumes it with
``next()``. A message split across any number of network reads therefore
needs no special code. Every read is checked against :attr:`StreamReader.limit`
before the reader waits for it, so a length taken from the wire can never
make the buffer grow without bound.
"""

from __future__ import annotations

from collections.abc import Generator

from ..errors import ProtocolError

__all__ = ["StreamReader"]


class StreamReader:
    """Buffers incoming bytes for a generator-based parser.

    Args:
        limit: The largest single read the parser may ask for. A read above it
            raises :class:`~orgo_async.errors.ProtocolError` before any waiting,
            so while a parser is suspended the buffer holds less than ``limit``
            bytes beyond what the caller fed in one go.

    Reads raise :class:`EOFError` when the stream ends before they are
    satisfied; the core decides whether that is an error.
    """

    def __init__(self, *, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be positive; got {limit}")
        self.limit = limit
        self.buffer = bytearray()
        self.eof = False

    def feed_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes that arrived.

        Raises:
            EOFError: the end of the stream was already fed.
        """
        if self.eof:
            raise EOFError("data received after the end of the stream")
        self.buffer += data

    def feed_eof(self) -> None:
        """Mark the end of the stream (reads that cannot be satisfied now fail)."""
        if self.eof:
            raise EOFError("the end of the stream was already received")
        self.eof = True

    def read_exact(self, n: int) -> Generator[None, None, bytes]:
        """Exactly ``n`` bytes.

        Raises:
            ProtocolError: ``n`` exceeds :attr:`limit`.
            EOFError: the stream ends first.
        """
        if n > self.limit:
            raise ProtocolError(f"a read of {n} bytes exceeds the limit of {self.limit}")
        buffer = self.buffer
        while len(buffer) < n:
            if self.eof:
                raise EOFError(f"the stream ended {n - len(buffer)} bytes short of a {n}-byte read")
            yield
        return self._take(n)

    def read_some(self, n: int) -> Generator[None, None, bytes]:
        """Between 1 and ``n`` bytes: whatever is buffered, once anything is.

        Raises:
            ProtocolError: ``n`` exceeds :attr:`limit`.
            EOFError: the stream ends with nothing buffered.
        """
        if n > self.limit:
            raise ProtocolError(f"a read of {n} bytes exceeds the limit of {self.limit}")
        if n < 1:
            raise ValueError(f"read_some needs a positive size; got {n}")
        buffer = self.buffer
        while not buffer:
            if self.eof:
                raise EOFError(f"the stream ended before a read of up to {n} bytes")
            yield
        return self._take(n)

    def read_line(self, max_size: int, *, delimiter: bytes = b"\n") -> Generator[None, None, bytes]:
        """Bytes up to and including ``delimiter``, at most ``max_size`` of them.

        Raises:
            ProtocolError: no delimiter within ``max_size`` bytes, or
                ``max_size`` exceeds :attr:`limit`.
            EOFError: the stream ends first.
        """
        if max_size > self.limit:
            raise ProtocolError(f"a line of {max_size} bytes exceeds the limit of {self.limit}")
        buffer = self.buffer
        start = 0
        while True:
            at = buffer.find(delimiter, start)
            if at >= 0:
                break
            if len(buffer) >= max_size:
                raise ProtocolError(f"no line end within {max_size} bytes")
            if self.eof:
                raise EOFError(f"the stream ended inside a line ({len(buffer)} bytes)")
            # Search only the new bytes next time (minus a delimiter's overlap).
            start = max(0, len(buffer) - len(delimiter) + 1)
            yield
        end = at + len(delimiter)
        if end > max_size:
            raise ProtocolError(f"no line end within {max_size} bytes")
        return self._take(end)

    def _take(self, n: int) -> bytes:
        """The first ``n`` buffered bytes (or fewer), removed from the buffer."""
        data = bytes(self.buffer[:n])
        # Deleting from the front of a bytearray is amortised O(1) in CPython:
        # it moves the start pointer instead of the bytes.
        del self.buffer[:n]
        return data

    def at_eof(self) -> Generator[None, None, bool]:
        """Wait for a byte or the end: ``True`` when the stream ended with nothing buffered."""
        while not self.buffer:
            if self.eof:
                return True
            yield
        return False
