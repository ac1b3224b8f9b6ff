"""Deflate on several threads: zlib streams any inflater reads, and PNGs that decode the same."""

from __future__ import annotations

import io
import random
import struct
import threading
import zlib

import pytest

from orgo_async.protocol import _deflate
from orgo_async.protocol.png import decode_png, encode_png


def sample(size: int, seed: int = 1) -> bytes:
    """Noise, runs and a repeating pattern: matches near and across the piece boundaries."""
    rng = random.Random(seed)
    third = size // 3
    data = rng.randbytes(third) + bytes(third) + bytes(range(256)) * (size // 256 + 1)
    return data[:size]


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
    asked: list[tuple[int, int]] = []
    lock = threading.Lock()

    def rows(first: int, stop: int) -> bytes:
        with lock:
            asked.append((first, stop))
        return data[first * width : stop * width]

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
    pixels = sample(width * height * channels, seed=width + height)
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
