"""Deflate on several threads: zlib streams any inflater reads, and PNGs that decode the same."""

from __future__ import annotations

import io
import random
import struct
import threading
import zlib
from collections.abc import Callable

import pytest

from orgo_async.protocol import _deflate
from orgo_async.protocol.png import decode_png, encode_png


def sample(size: int, seed: int = 1, *, zeros: bool = True) -> bytes:
    """Noise, runs and a repeating pattern: matches near and across the piece boundaries.

    Without ``zeros`` the middle third is a pattern of 251 bytes too, so that no
    two rows of an image repeat (unless its row is a multiple of 251 bytes).
    """
    rng = random.Random(seed)
    third = size // 3
    middle = bytes(third) if zeros else bytes(range(5, 256)) * (third // 251 + 1)
    data = rng.randbytes(third) + middle[:third] + bytes(range(256)) * (size // 256 + 1)
    return data[:size]


def recorded(data: bytes, width: int) -> tuple[Callable[[int, int], bytes], list[tuple[int, int]]]:
    """A ``rows`` callback over ``data``, and the list of the spans it is asked for."""
    asked: list[tuple[int, int]] = []
    lock = threading.Lock()

    def rows(first: int, stop: int) -> bytes:
        with lock:
            asked.append((first, stop))
        return data[first * width : stop * width]

    return rows, asked


def compress(data: bytes, level: int, *, pieces: int | None = None) -> bytes:
    """``data`` as one zlib stream: ``compress_rows`` over a buffer, a byte a row."""
    view = memoryview(data)
    return _deflate.compress_rows(
        lambda first, stop: view[first:stop], len(data), 1, level, pieces=pieces
    )


@pytest.mark.parametrize("size", [_deflate.PARALLEL_MIN - 1, _deflate.PARALLEL_MIN, 3_000_017])
@pytest.mark.parametrize("pieces", [2, 3, 4])
def test_pieces_make_one_zlib_stream(size: int, pieces: int) -> None:
    data = sample(size)
    for level in (0, 1, 6, 9):
        stream = compress(data, level, pieces=pieces)
        assert stream[:2] == zlib.compress(b"", level)[:2]  # the same header as zlib's
        assert stream != whole(data, level)  # cut into pieces: another stream
        assert zlib.decompress(stream) == data  # the inflater checks the Adler-32 too
        inflater = zlib.decompressobj()
        assert inflater.decompress(stream) == data and inflater.eof and not inflater.unused_data


@pytest.mark.parametrize("pieces", [2, 3, 4])
def test_rows_are_built_by_each_piece_with_its_window(pieces: int) -> None:
    width, count = 3841, 400
    data = sample(width * count, seed=9)
    rows, asked = recorded(data, width)
    stream = _deflate.compress_rows(rows, count, width, 1, pieces=pieces)
    assert zlib.decompress(stream) == data
    pieces_asked = sorted(span for span in asked if span[0] == 0 or span[1] - span[0] > 9)
    assert pieces_asked[0][0] == 0 and pieces_asked[-1][1] == count
    assert len(pieces_asked) == pieces
    # Each later piece also asks for the 9 rows (32 KiB) before it, for its window.
    assert sorted(set(asked) - set(pieces_asked)) == [(a - 9, a) for a, _ in pieces_asked[1:]]


def whole(data: bytes, level: int) -> bytes:
    deflater = zlib.compressobj(level, zlib.DEFLATED, 15, _deflate.MEM_LEVEL)
    return deflater.compress(data) + deflater.flush()


def test_one_piece_is_one_zlib_stream_and_small_inputs_stay_whole() -> None:
    data = sample(200_000)
    assert compress(data, 1, pieces=1) == whole(data, 1)
    assert compress(data, 1) == whole(data, 1)  # under PARALLEL_MIN
    tiny = b"abc" * 10
    assert compress(tiny, 6, pieces=4) == whole(tiny, 6)  # under one window
    assert compress(b"", 1, pieces=4) == whole(b"", 1)
    assert zlib.decompress(compress(data, 9, pieces=1)) == data


def test_pieces_follow_the_cores_up_to_four() -> None:
    big = _deflate.PARALLEL_MIN
    assert _deflate.pieces_for(big - 1, cores=8) == 1
    assert [_deflate.pieces_for(big, cores=c) for c in (1, 2, 3, 4, 16)] == [1, 2, 3, 4, 4]


def test_the_adler32_of_pieces_combines_into_the_whole() -> None:
    data = sample(100_000, seed=5)
    for cut in (0, 1, 65520, 65521, 65522, 99_999, 100_000):
        first, second = data[:cut], data[cut:]
        combined = _deflate._adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
        assert combined == zlib.adler32(data)


def test_many_threads_at_once_each_get_their_own_stream() -> None:
    inputs = [sample(_deflate.PARALLEL_MIN + 4096 * i, seed=i) for i in range(8)]
    results: list[bytes | None] = [None] * len(inputs)

    def run(i: int) -> None:
        results[i] = compress(inputs[i], 1, pieces=4)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for data, stream in zip(inputs, results, strict=True):
        assert stream is not None and zlib.decompress(stream) == data


def idat(png: bytes) -> bytes:
    """The concatenated IDAT bodies of a PNG (read here without the codec)."""
    pos, out = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            out += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return out


# Around the 1 MB of scanlines where the deflate goes parallel, odd widths included.
SIZES = [
    (641, 544, "RGB"),
    (641, 545, "RGB"),
    (1280, 720, "RGB"),
    (513, 510, "RGBA"),
    (513, 511, "RGBA"),
]


@pytest.mark.parametrize(("width", "height", "mode"), SIZES)
@pytest.mark.parametrize("filter_", ["none", "sub"])
def test_a_parallel_png_decodes_as_the_single_thread_one(
    width: int, height: int, mode: str, filter_: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = 3 if mode == "RGB" else 4
    pixels = sample(width * height * channels, seed=width + height, zeros=False)
    kwargs = {"mode": mode, "filter": filter_, "compress_level": 1}
    monkeypatch.setattr(_deflate, "_CORES", 1)
    single = encode_png(width, height, pixels, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(_deflate, "_CORES", 4)
    parallel = encode_png(width, height, pixels, **kwargs)  # type: ignore[arg-type]

    scanlines = zlib.decompress(idat(single))
    assert zlib.decompress(idat(parallel)) == scanlines
    large = len(scanlines) >= _deflate.PARALLEL_MIN
    assert (idat(parallel) != idat(single)) is large  # the parallel path ran exactly when large
    assert decode_png(parallel) == decode_png(single)
    assert decode_png(parallel).pixels == pixels


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_pillow_reads_a_parallel_png(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    image_module = pytest.importorskip("PIL.Image")
    monkeypatch.setattr(_deflate, "_CORES", 4)
    width, height = 701, 603
    pixels = sample(width * height * len(mode), seed=3)
    png = encode_png(width, height, pixels, mode=mode, compress_level=1, filter="none")  # type: ignore[arg-type]
    with image_module.open(io.BytesIO(png)) as image:
        assert (image.size, image.mode) == ((width, height), mode)
        assert image.tobytes() == pixels


# -- runs of blank rows: deflated once, then reused ----------------------------------------------


def banded(width: int, count: int, runs: list[tuple[int, int]], blank: bytes, seed: int) -> bytes:
    """``count`` rows of noise, except the rows of ``runs``, which are ``blank``."""
    rng = random.Random(seed)
    rows = [rng.randbytes(width) for _ in range(count)]
    for first, stop in runs:
        rows[first:stop] = [blank] * (stop - first)
    return b"".join(rows)


def blank_stream(
    data: bytes, width: int, runs: list[tuple[int, int]], blank: bytes, **kwargs: object
) -> tuple[bytes, list[tuple[int, int]]]:
    """compress_rows over ``data`` told about ``runs``, and the row spans it asked for."""
    rows, asked = recorded(data, width)
    count = len(data) // width
    stream = _deflate.compress_rows(
        rows,
        count,
        width,
        blank=blank,
        blank_runs=runs,
        **kwargs,  # type: ignore[arg-type]
    )
    return stream, asked


WIDTH = 3841  # a 1280-pixel RGB scanline: 9 rows fill a window, 18 make a blank block
SHORTEST = _deflate.blank_run_min(WIDTH)

RUNS = [
    [(1, 300)],  # from the second row to the middle
    [(1, 400)],  # every row but the first: a flat screen
    [(50, 50 + SHORTEST)],  # just long enough for one block
    [(50, 50 + SHORTEST - 1)],  # one row too short: deflated as usual
    [(10, 100), (100, 170), (200, 400)],  # back to back, and up to the end
    [(3, 40), (41, 90), (91, 399)],  # separated by one row
]


@pytest.mark.parametrize("runs", RUNS)
@pytest.mark.parametrize("pieces", [1, 2, 4])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_blank_runs_make_the_same_rows_without_deflating_them(
    runs: list[tuple[int, int]], pieces: int, level: int
) -> None:
    blank = bytes([2]) + bytes(WIDTH - 1)
    data = banded(WIDTH, 400, runs, blank, seed=len(runs) + pieces)
    stream, asked = blank_stream(data, WIDTH, runs, blank, level=level, pieces=pieces)
    inflater = zlib.decompressobj()
    assert inflater.decompress(stream) == data  # the Adler-32 is checked too
    assert inflater.eof and not inflater.unused_data
    assert stream[:2] == zlib.compress(b"", level)[:2]

    # No piece builds the rows of the reused blocks (9 rows of window into a run,
    # 18 rows a block), but for the 9 before a piece that follows them: its window.
    skipped: set[int] = set()
    for first, stop in runs:
        blocks = (stop - first - 9) // 18
        if blocks > 0:
            end = first + 9 + blocks * 18
            skipped.update(range(first + 9, end if end == 400 else end - 9))
    built = {y for first, stop in asked for y in range(first, stop)}
    assert set(range(400)) - built == skipped
    if not skipped:  # nothing reused: the stream of the rows alone
        assert stream == _deflate.compress_rows(
            lambda first, stop: data[first * WIDTH : stop * WIDTH], 400, WIDTH, level,
            pieces=pieces,
        )  # fmt: skip


def test_a_blank_block_is_deflated_once_and_reused() -> None:
    blank = bytes([9]) * 500
    _deflate._blank_block.cache_clear()
    data = blank * 4000
    for _ in range(3):
        stream, _ = blank_stream(data, 500, [(0, 4000)], blank, level=1)
        assert zlib.decompress(stream) == data
    info = _deflate._blank_block.cache_info()
    assert (info.misses, info.currsize) == (1, 1) and info.hits == 2
    # 2 MB in, about 6 kB out: 30 copies of one deflated 64 KiB block, a window before them.
    assert len(stream) < len(zlib.compress(data, 1)) * 2


def test_a_blank_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="blank holds 3 bytes, not a row's 4"):
        _deflate.compress_rows(lambda a, b: bytes(4 * (b - a)), 100, 4, 1, blank=b"abc")


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("filter_", ["none", "sub"])
def test_a_png_with_flat_bands_uses_up_rows_and_decodes_exactly(wrap: type, filter_: str) -> None:
    image_module = pytest.importorskip("PIL.Image")
    width, height = 1280, 720
    # Bands of one row, over noise: rows 1-199, 301-329 and 401-719 equal the row
    # above (29 rows are enough for a block at this width); 258-259 do too, but too few.
    bands = [(0, 200), (257, 260), (300, 330), (400, 720)]
    row = bytes([30, 60, 90]) * width
    pixels = banded(width * 3, height, bands, row, seed=4)
    png = encode_png(width, height, wrap(pixels), compress_level=1, filter=filter_)  # type: ignore[arg-type]
    assert decode_png(png).pixels == pixels
    with image_module.open(io.BytesIO(png)) as image:
        assert image.tobytes() == pixels
    scanlines = zlib.decompress(idat(png))
    kinds = scanlines[:: width * 3 + 1]
    up = [y for y, kind in enumerate(kinds) if kind == 2]
    long_runs = [(1, 200), (301, 330), (401, 720)]
    assert up == [y for first, stop in long_runs for y in range(first, stop)]
    assert {kind for y, kind in enumerate(kinds) if kind != 2} == {1 if filter_ == "sub" else 0}
    assert png == encode_png(width, height, pixels, compress_level=1, filter=filter_)  # type: ignore[arg-type]


def test_a_flat_screen_deflates_a_fraction_of_its_rows() -> None:
    width, height = 1280, 720
    pixels = bytes([200, 10, 10]) * (width * height)
    asked: list[int] = []
    real = _deflate._piece

    def counting(rows, first, stop, context, level, last):  # type: ignore[no-untyped-def]
        asked.append(stop - first)
        return real(rows, first, stop, context, level, last)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_deflate, "_piece", counting)
        png = encode_png(width, height, pixels, compress_level=1, filter="none")
    assert decode_png(png).pixels == pixels
    assert sum(asked) < 40  # of 720 rows: the first, a window, the rows after the last block
