"""zlib compression of large buffers on several cores, as pigz does it.

:func:`compress` returns a zlib stream (RFC 1950) that any inflater reads as
it reads ``zlib.compress(data, level)``'s: the same header, one deflate
stream, the Adler-32 of all the data at the end. Above :data:`PARALLEL_MIN`
bytes, on a machine with more than one core, the data is cut into one piece
per core (at most :data:`MAX_PIECES`), and each piece is deflated on its own
thread (zlib lets go of the GIL while it works):

* each piece is raw deflate primed with the 32 KiB that precede it (the
  inflater has just produced them, so references into them stay valid);
* every piece but the last ends with a sync flush (the empty stored block
  that aligns it to a byte), the last one with the final block;
* each piece's Adler-32 is taken on its thread, and the checksums are
  combined here (the arithmetic of zlib's ``adler32_combine``).

On a 1280x720 screenshot at level 1 (2.7 MB of scanlines) two cores take
1.7 ms for a flat screen and 3.7 ms for a busy one, against 3.0 ms and 5.5 ms
on one, for 1-4 % more bytes.

The worker threads belong to a module-level pool created at the first large
call, with room for one thread fewer than the most pieces (the calling
thread deflates the last piece itself); a thread starts only when no idle one
can take a piece. Its threads are idle between calls, and ``concurrent.futures``
joins them when the interpreter exits. A piece that no worker has started by
the time the caller is done with its own is taken back and deflated by the
caller: a busy pool never makes a call slower than deflating it alone.
"""

from __future__ import annotations

import os
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

__all__ = ["MAX_PIECES", "PARALLEL_MIN", "compress", "pieces_for"]

PARALLEL_MIN: Final = 1 << 20
"""The smallest input (bytes) deflated on several threads."""

MAX_PIECES: Final = 4
"""The most pieces (threads, the caller's included) one input is cut into."""

_WINDOW: Final = 32 * 1024  # deflate's window: how far back a match may reach
_ADLER_BASE: Final = 65521
# The zlib header's second byte (FLEVEL and the check bits) by level, as zlib writes it.
_FLG: Final = (0x01, 0x01, 0x5E, 0x5E, 0x5E, 0x5E, 0x9C, 0xDA, 0xDA, 0xDA)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()

Buffer = bytes | bytearray | memoryview


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


_CORES: Final = _cores()


def pieces_for(size: int, cores: int | None = None) -> int:
    """How many pieces :func:`compress` cuts ``size`` bytes into on ``cores`` cores."""
    cores = _CORES if cores is None else cores
    if size < PARALLEL_MIN:
        return 1
    return max(1, min(cores, MAX_PIECES))


def compress(data: Buffer, level: int, *, pieces: int | None = None) -> bytes:
    """``data`` as a zlib stream at ``level`` (0-9), deflated on several threads when large.

    ``pieces`` overrides :func:`pieces_for` (at least 1, at most
    :data:`MAX_PIECES`); one piece is exactly ``zlib.compress(data, level)``.
    Safe to call from any thread, several at once.
    """
    view = memoryview(data).cast("B")
    count = pieces_for(view.nbytes) if pieces is None else max(1, min(pieces, MAX_PIECES))
    count = min(count, view.nbytes // _WINDOW or 1)
    if count == 1:
        return zlib.compress(view, level)
    total = view.nbytes
    size = -(-total // count)
    bounds = [(i * size, min(total, (i + 1) * size)) for i in range(count)]
    pool = _executor()
    futures: list[Future[tuple[bytes, int]]] = [
        pool.submit(_piece, view, start, end, level, False) for start, end in bounds[:-1]
    ]
    last = _piece(view, *bounds[-1], level, True)
    parts: list[tuple[bytes, int]] = []
    for future, (start, end) in zip(futures, bounds[:-1], strict=True):
        # Not started yet (the pool is busy with other calls): do it here.
        parts.append(_piece(view, start, end, level, False) if future.cancel() else future.result())
    parts.append(last)
    checksum = parts[0][1]
    for (start, end), (_, adler) in zip(bounds[1:], parts[1:], strict=True):
        checksum = _adler32_combine(checksum, adler, end - start)
    return b"".join(
        (bytes((0x78, _FLG[level])), *(body for body, _ in parts), checksum.to_bytes(4, "big"))
    )


def _piece(view: memoryview, start: int, end: int, level: int, last: bool) -> tuple[bytes, int]:
    """Raw deflate of ``view[start:end]`` primed with the window before it, and its Adler-32."""
    chunk = view[start:end]
    if start:
        window = view[max(0, start - _WINDOW) : start]
        deflater = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, window)
    else:
        deflater = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = deflater.compress(chunk) + deflater.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return body, zlib.adler32(chunk)


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two buffers end to end, from theirs and the second's length."""
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + second_length * (a1 - 1)) % _ADLER_BASE
    return (b << 16) | a


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # Threads start as pieces need them, and only when none is idle.
            _pool = ThreadPoolExecutor(MAX_PIECES - 1, thread_name_prefix="orgo-deflate")
        return _pool
