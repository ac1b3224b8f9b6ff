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

Rows the caller names as blank (for a PNG: rows equal to the row above,
Up-filtered to zeros) are deflated once and reused when they run long: past
a window of them, the next :data:`BLANK_BLOCK` bytes of blank rows always
deflate to the same bytes, so a flat screen costs the deflate of a few dozen
rows, not 720 (:func:`~orgo_async.protocol.png.encode_png`: 0.3 ms instead
of 1.6 on a quiet machine).

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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

__all__ = [
    "BLANK_BLOCK",
    "BLANK_CACHE",
    "MAX_PIECES",
    "MEM_LEVEL",
    "PARALLEL_MIN",
    "blank_run_min",
    "compress_rows",
    "pieces_for",
]

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

BLANK_BLOCK: Final = 2 * 32 * 1024
"""Bytes of blank rows (whole rows, rounded up) deflated once and reused: :func:`compress_rows`."""

BLANK_CACHE: Final = 8
"""How many deflated blank blocks are kept (one per blank row, width and level)."""

# The final block that closes a stream whose last piece ended with a sync flush: empty, fixed codes.
_LAST_BLOCK: Final = zlib.compressobj(1, zlib.DEFLATED, -15).flush()

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()

Buffer = bytes | bytearray | memoryview
_Part = tuple[bytes, int, int]  # raw deflate, the Adler-32 of what it holds, and its length


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


def blank_run_min(width: int) -> int:
    """The fewest blank rows of ``width`` bytes in a run :func:`compress_rows` does not deflate."""
    return -(-_WINDOW // width) + -(-BLANK_BLOCK // width)


def compress_rows(
    rows: Callable[[int, int], Buffer],
    count: int,
    width: int,
    level: int,
    *,
    pieces: int | None = None,
    blank: bytes | None = None,
    blank_runs: Sequence[tuple[int, int]] = (),
) -> bytes:
    """The zlib stream at ``level`` (0-9) of ``count`` rows of ``width`` bytes, end to end.

    ``rows(first, stop)`` gives rows ``first`` to ``stop - 1`` as one buffer;
    it is called from the worker threads, each piece building its own rows
    (and the few before them that fill its window), so that copying and
    filtering run on several threads too. ``pieces`` overrides
    :func:`pieces_for` (at least 1, at most :data:`MAX_PIECES`); one piece is
    one zlib stream at :data:`MEM_LEVEL`. Safe to call from any thread,
    several at once.

    ``blank_runs`` names rows that are all the row ``blank`` (``width``
    bytes), as ``(first, stop)`` pairs in ascending order that do not
    overlap; ``rows()`` must give them too. Inside a run longer than
    :data:`BLANK_BLOCK` bytes and a window, the blank rows are not deflated
    again: once the window holds nothing but blank rows, deflating the next
    :data:`BLANK_BLOCK` bytes of them gives the same bytes every time, so
    that block is deflated once per ``blank``, ``width`` and ``level``, kept
    (:data:`BLANK_CACHE` of them), and repeated: each run costs the rows of
    one window and the few after its last whole block. :func:`blank_run_min`
    gives the shortest run that gains.
    """
    context = -(-_WINDOW // width)  # rows that hold a window
    block = -(-BLANK_BLOCK // width)
    # The stream in order: spans of rows to deflate, and counts of the blank block.
    plan: list[tuple[int, int] | int] = []
    at = 0
    if blank is not None:
        if len(blank) != width:
            raise ValueError(f"blank holds {len(blank)} bytes, not a row's {width}")
        for first, stop in blank_runs:
            start = first + context  # from here on, the window holds blank rows only
            repeat = (stop - start) // block
            if repeat > 0:
                if start > at:
                    plan.append((at, start))
                plan.append(repeat)
                at = start + repeat * block
    if at < count or not plan:
        plan.append((at, count))
    deflated = sum(stop - first for first, stop in (i for i in plan if isinstance(i, tuple)))
    wanted = pieces_for(deflated * width) if pieces is None else max(1, min(pieces, MAX_PIECES))
    wanted = min(wanted, deflated * width // _WINDOW or 1, count or 1)
    if len(plan) == 1 and wanted == 1:
        deflater = zlib.compressobj(level, zlib.DEFLATED, 15, MEM_LEVEL)
        return deflater.compress(rows(0, count)) + deflater.flush()

    share = -(-deflated // wanted)  # rows a piece
    stream: list[Callable[[bool], _Part] | int] = []
    for item in plan:
        if isinstance(item, int):
            stream.append(item)
        else:
            stream += [
                functools.partial(_piece, rows, row, min(item[1], row + share), context, level)
                for row in range(item[0], item[1], share)
            ]
    jobs = [item for item in stream if not isinstance(item, int)]
    ends = stream[-1] is jobs[-1]  # the last piece closes the stream itself
    futures = [_executor().submit(job, False) for job in jobs[:-1]] if wanted > 1 else []
    last = jobs[-1](ends)  # the caller deflates the last piece
    pending = iter(futures)
    parts: list[_Part] = []
    for entry in stream:
        if isinstance(entry, int):
            assert blank is not None
            parts += [_blank_block(blank, block, context, level)] * entry
        elif entry is jobs[-1]:
            parts.append(last)
        else:
            # Not sent to the pool (one piece at a time), or not started yet there
            # (the pool is busy with other calls): deflated here.
            future = next(pending, None)
            parts.append(entry(False) if future is None or future.cancel() else future.result())
    if not ends:
        parts.append((_LAST_BLOCK, 1, 0))
    checksum = parts[0][1]
    for _, adler, length in parts[1:]:
        checksum = _adler32_combine(checksum, adler, length)
    return b"".join(
        (bytes((0x78, _FLG[level])), *(body for body, _, _ in parts), checksum.to_bytes(4, "big"))
    )


@functools.lru_cache(maxsize=BLANK_CACHE)
def _blank_block(blank: bytes, count: int, context: int, level: int) -> _Part:
    """Raw deflate of ``count`` rows ``blank`` after a window of nothing but ``blank``."""
    window = (blank * context)[-_WINDOW:]
    data = blank * count
    deflater = zlib.compressobj(
        level, zlib.DEFLATED, -15, MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, window
    )
    body = deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)
    return body, zlib.adler32(data), len(data)


def _piece(
    rows: Callable[[int, int], Buffer], first: int, stop: int, context: int, level: int, last: bool
) -> _Part:
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
