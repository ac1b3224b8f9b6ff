"""zlib compression of large buffers on several cores, as pigz does it.

:func:`compress_rows` returns a zlib
stream (RFC 1950) that any inflater reads as it reads ``zlib.compress(data,
level)``'s: the same header, one deflate stream, the Adler-32 of all the
data at the end (deflated with a smaller hash table than zlib's default,
:data:`MEM_LEVEL`). Above :data:`PARALLEL_MIN` bytes, on a machine with more
than one core, the rows are cut into one piece per core (at most
:data:`MAX_PIECES`), and each piece is built (a PNG's scanlines: a copy, and
the filter) and deflated on its own thread (zlib lets go of the GIL while it
works):

* each piece is raw deflate primed with the 32 KiB that precede it (the
  inflater has just produced them, so references into them stay valid);
* every piece but the last ends with a sync flush (the empty stored block
  that aligns it to a byte), the last one with the final block;
* each piece's Adler-32 is taken on its thread, and the checksums are
  combined here (the arithmetic of zlib's ``adler32_combine``).

A 1280x720 screenshot at level 1 without a filter (2.7 MB of scanlines) took
:func:`~orgo_async.protocol.png.encode_png` 3.7 ms on two cores against 5.0
ms on one for a flat screen, and 6.9 ms against 8.2 ms for a busy desktop
(a copy, the scanlines and ``zlib.compress`` had taken 6.8 ms and 11.1 ms),
for at most 4 % more bytes; measured on a 2-core machine shared with other
work, where the second core is not always free.

The worker threads belong to a module-level pool created at the first large
call, with room for one thread fewer than the most pieces (the calling
thread deflates the last piece itself); a thread starts only when no idle one
can take a piece. Its threads are idle between calls, and ``concurrent.futures``
joins them when the interpreter exits. A piece that no worker has started by
the time the caller is done with its own is taken back and deflated by the
caller: a busy pool never makes a call slower than deflating it alone.
"""

from __future__ import annotations

import functools
import os
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

__all__ = ["MAX_PIECES", "MEM_LEVEL", "PARALLEL_MIN", "compress_rows", "pieces_for"]

PARALLEL_MIN: Final = 1 << 20
"""The smallest input (bytes) deflated on several threads."""

MAX_PIECES: Final = 4
"""The most pieces (threads, the caller's included) one input is cut into."""

MEM_LEVEL: Final = 5
"""zlib's memLevel (its default is 8): a hash table of 4096 heads instead of 32768.

Deflate clears the table at the start and slides it every 32 KiB, and on
screenshots a smaller one finds the same matches: on 1280x720 scanlines at
level 1 a flat screen deflated in 1.5 ms instead of 2.4 and a busy desktop
in 4.2 ms instead of 4.9, within 0.6 % of the bytes (level 6: 2-14 % faster,
the same size within 1 %)."""

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
    """How many pieces :func:`compress_rows` cuts ``size`` bytes into on ``cores`` cores."""
    cores = _CORES if cores is None else cores
    if size < PARALLEL_MIN:
        return 1
    return max(1, min(cores, MAX_PIECES))


def compress_rows(
    rows: Callable[[int, int], Buffer],
    count: int,
    width: int,
    level: int,
    *,
    pieces: int | None = None,
) -> bytes:
    """The zlib stream at ``level`` (0-9) of ``count`` rows of ``width`` bytes, end to end.

    ``rows(first, stop)`` gives rows ``first`` to ``stop - 1`` as one buffer;
    it is called from the worker threads, each piece building its own rows
    (and the few before them that fill its window), so that copying and
    filtering run on several threads too. ``pieces`` overrides
    :func:`pieces_for` (at least 1, at most :data:`MAX_PIECES`); one piece is
    one zlib stream at :data:`MEM_LEVEL`. Safe to call from any thread,
    several at once.
    """
    total = count * width
    wanted = pieces_for(total) if pieces is None else max(1, min(pieces, MAX_PIECES))
    wanted = min(wanted, total // _WINDOW or 1, count or 1)
    if wanted == 1:
        deflater = zlib.compressobj(level, zlib.DEFLATED, 15, MEM_LEVEL)
        return deflater.compress(rows(0, count)) + deflater.flush()
    step = -(-count // wanted)
    context = -(-_WINDOW // width)  # rows before a piece that hold its window
    jobs = [
        functools.partial(_piece, rows, first, min(count, first + step), context, level)
        for first in range(0, count, step)
    ]
    pool = _executor()
    futures = [pool.submit(job, False) for job in jobs[:-1]]
    last = jobs[-1](True)
    parts: list[tuple[bytes, int, int]] = []
    for future, job in zip(futures, jobs, strict=False):
        # Not started yet (the pool is busy with other calls): do it here.
        parts.append(job(False) if future.cancel() else future.result())
    parts.append(last)
    checksum = parts[0][1]
    for _, adler, length in parts[1:]:
        checksum = _adler32_combine(checksum, adler, length)
    return b"".join(
        (bytes((0x78, _FLG[level])), *(body for body, _, _ in parts), checksum.to_bytes(4, "big"))
    )


def _piece(
    rows: Callable[[int, int], Buffer], first: int, stop: int, context: int, level: int, last: bool
) -> tuple[bytes, int, int]:
    """Raw deflate of rows ``first`` to ``stop - 1`` primed with the window before them.

    Returns the deflate bytes, the rows' Adler-32 and their length.
    """
    chunk = memoryview(rows(first, stop)).cast("B")
    if first:
        window = memoryview(rows(max(0, first - context), first)).cast("B")[-_WINDOW:]
        deflater = zlib.compressobj(
            level, zlib.DEFLATED, -15, MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, window
        )
    else:
        deflater = zlib.compressobj(level, zlib.DEFLATED, -15, MEM_LEVEL)
    body = deflater.compress(chunk) + deflater.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return body, zlib.adler32(chunk), chunk.nbytes


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
