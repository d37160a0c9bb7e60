"""Hostile input: damaged and random files never crash the loader, odd argument lists never
crash the command line, and a decompression bomb is refused before anything is allocated."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dip.cli import build_parser, main
from dip.errors import DipError
from dip.io import read_image


def _encoded(fmt: str, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, (24, 20, 3 if mode == "RGB" else 4), dtype=np.uint8)
    image = Image.fromarray(array[:, :, :3]) if mode == "RGB" else Image.fromarray(array, "CMYK")
    if mode == "P":
        image = image.convert("P")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


SEEDS = [
    _encoded("PNG"),
    _encoded("JPEG"),
    _encoded("TIFF"),
    _encoded("BMP"),
    _encoded("JPEG", "CMYK"),
    _encoded("PNG", "P"),
    _encoded("WEBP"),
]
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(tmp_path, data: bytes, name: str = "x.img"):
    path = tmp_path / name
    path.write_bytes(data)
    try:
        picture = read_image(path)
    except DipError as error:
        assert "\n" not in str(error)
        return None
    assert picture.pixels.dtype == np.float32 and picture.pixels.ndim == 3
    assert np.isfinite(picture.pixels).all() and 0 <= picture.pixels.min() and picture.pixels.max() <= 1
    return picture


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    cut=st.integers(0, 10_000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
)
def test_damaged_files_load_or_fail_with_one_line(tmp_path, seed, cut, flips):
    data = bytearray(seed[: max(1, cut % (len(seed) + 1))])
    for position, value in flips:
        data[position % len(data)] = value
    _load(tmp_path, bytes(data))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=400))
def test_random_bytes_fail_with_one_line(tmp_path, data):
    _load(tmp_path, data)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("depth_byte", [8, 16])
def test_decompression_bomb_is_refused_before_decoding(tmp_path, depth_byte):
    data = bytearray(_png_header_only(100_000, 100_000))
    data[24] = depth_byte  # 16-bit PNGs take the other reader
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    started = time.perf_counter()
    with pytest.raises(DipError, match="refusing|not an image|damaged"):
        read_image(path)
    assert time.perf_counter() - started < 1.0


WORDS = [
    "denoise",
    "deblock",
    "super-resolve",
    "inpaint",
    "deblur",
    "compare",
    "degrade",
    "presets",
    "--steps",
    "--sigma",
    "--preset",
    "-o",
    "--mask",
    "--tile",
    "--overlap",
    "--workers",
    "--resume",
    "--checkpoint",
    "--scale",
    "-s",
    "--kernel",
    "--device",
    "--seed",
    "--force",
    "-q",
    "--early-stop",
    "--no-early-stop",
    "0",
    "-1",
    "3",
    "1e9",
    "nan",
    "inf",
    "abc",
    "paper",
    "default",
    "gaussian:2",
    "box:0",
    "cpu",
    "cuda:7",
    "missing.png",
    "out.png",
    "out.xyz",
    "",
    "--",
    "=",
    "--steps=5",
    "\x00",
]


@settings(max_examples=1500, deadline=None)
@given(argv=st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=6)), max_size=8))
def test_argument_parsing_never_crashes(argv):
    try:
        build_parser().parse_args(argv)
    except SystemExit as exit:
        assert exit.code in (0, 2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=st.lists(st.sampled_from(WORDS[8:]), max_size=6))
def test_task_commands_on_a_missing_file_fail_cleanly(options, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("cli")
    for command in ("denoise", "super-resolve", "inpaint"):
        argv = [command, str(folder / "missing.png"), "-o", str(folder / "out.png"), *options]
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse: malformed options
            assert exit.code == 2
            continue
        assert code in (1, 2)
        err = capsys.readouterr().err
        assert "Traceback" not in err and "unexpected" not in err
    assert not (folder / "out.png").exists()
