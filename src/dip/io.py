"""Read and write images of any mode and bit depth, safely and atomically.

Pixels travel through `dip` as float32 arrays in [0, 1], shaped (H, W, C) with C = 1 (grey)
or 3 (colour). An alpha channel is split off on reading and put back on writing, untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DipError

MAX_PIXELS = 50_000 * 50_000
"""Images whose header claims more pixels than this are refused before decoding."""

WRITABLE = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")


@dataclass
class Picture:
    """An image as `dip` sees it: colour pixels, optional alpha, and the depth it came in."""

    pixels: np.ndarray  # float32 (H, W, C), C in {1, 3}, values in [0, 1]
    alpha: np.ndarray | None = None  # float32 (H, W) in [0, 1], or None
    bit_depth: int = 8

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.pixels.shape[0], self.pixels.shape[1]


def to_float(array: np.ndarray) -> np.ndarray:
    """Integer or float pixels to float32 in [0, 1] (integers scaled by their type's maximum)."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return (array / np.iinfo(array.dtype).max).astype(np.float32)
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def has_alpha(channels: int) -> bool:
    """Whether an image of `channels` channels carries alpha (grey + alpha, RGBA): it is kept, not fitted."""
    return channels in (2, 4)


def split_channels(array: np.ndarray) -> Picture:
    """(H, W), (H, W, 1|2|3|4) array -> Picture with alpha split off."""
    array = to_float(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise DipError(f"expected an image of shape (H, W) or (H, W, 1-4), got {array.shape}")
    alpha = None
    if has_alpha(array.shape[2]):
        alpha = array[:, :, -1].copy()
        array = array[:, :, :-1]
    return Picture(np.ascontiguousarray(array), alpha)


def join_channels(picture: Picture) -> np.ndarray:
    """Picture -> float array (H, W, C[+1]) with alpha appended when present."""
    if picture.alpha is None:
        return picture.pixels
    return np.concatenate([picture.pixels, picture.alpha[:, :, None]], axis=2)


def read_image(path: str | os.PathLike) -> Picture:
    """Read any common image file; every failure becomes a one-line DipError."""
    path = Path(path)
    if not path.exists():
        raise DipError(f"input file not found: {path}")
    if path.is_dir():
        raise DipError(f"input is a folder, not an image file: {path}")
    if path.stat().st_size == 0:
        raise DipError(f"input file is empty (0 bytes): {path}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(26)
        if head.startswith(PNG_SIGNATURE) and len(head) >= 25 and head[24] == 16:
            return _read_png16(path)
        if head[:4] in TIFF_SIGNATURES:
            return _read_tiff(path)
        return _read_with_pillow(path)
    except DipError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise DipError(f"cannot read {path}: not an image file Pillow recognises ({exc.__class__.__name__})") from None
    except MemoryError:
        raise DipError(f"cannot read {path}: not enough memory to decode it") from None
    except Exception as exc:  # decoders raise anything on damaged data (struct.error, IndexError, ...)
        raise DipError(
            f"cannot read {path}: damaged or unsupported image ({exc.__class__.__name__}: {_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _check_pixels(width: int, height: int, path: Path) -> None:
    if width * height > MAX_PIXELS:
        raise DipError(
            f"refusing {path}: its header claims {width}x{height} pixels, more than the limit of {MAX_PIXELS:,}"
        )
    if width < 1 or height < 1:
        raise DipError(f"cannot read {path}: image has no pixels ({width}x{height})")


def _read_with_pillow(path: Path) -> Picture:
    with Image.open(path) as image:
        _check_pixels(image.width, image.height, path)
        image = ImageOps.exif_transpose(image)
        mode = image.mode
        bit_depth = 8
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image).astype(np.int64)
            array = np.clip(array, 0, 65535).astype(np.uint16)
            bit_depth = 16
        elif mode == "F":
            array = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        else:
            target = {"1": "L", "L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA"}.get(mode)
            if target is None:
                has_alpha = "A" in mode or "transparency" in image.info
                target = "RGBA" if has_alpha else "RGB"
            array = np.asarray(image.convert(target))
    picture = split_channels(array)
    picture.bit_depth = bit_depth
    return picture


def _read_png16(path: Path) -> Picture:
    import png

    reader = png.Reader(filename=str(path))
    width, height, rows, info = reader.asDirect()
    _check_pixels(width, height, path)
    planes = info["planes"]
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, planes)
    picture = split_channels(array)
    picture.bit_depth = 16
    return picture


def _read_tiff(path: Path) -> Picture:
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        shape = page.shape
        _check_pixels(shape[1] if len(shape) > 1 else 1, shape[0], path)
        if int(np.prod(shape, dtype=np.float64)) > 4 * MAX_PIXELS:
            raise DipError(f"refusing {path}: its header claims a {'x'.join(map(str, shape))} array")
        array = page.asarray()
    if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[2] not in (1, 2, 3, 4):
        array = np.moveaxis(array, 0, -1)
    picture = split_channels(array)
    picture.bit_depth = 16 if array.dtype.itemsize >= 2 and np.issubdtype(array.dtype, np.integer) else 8
    return picture


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside `path` to write into; renamed onto `path` when the block ends
    normally, removed when it raises. A crash never leaves a half-written file, and an existing
    file is replaced only once the new one is whole. The file gets the usual mode (0o666 less
    the umask), not mkstemp's private 0o600.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "note.txt") as temp:
    ...     _ = temp.write_text("done")
    >>> (folder / "note.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('done', ['note.txt'])
    """
    path = Path(path)
    handle, temp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        os.chmod(temp, 0o666 & ~_umask())
        yield Path(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_image(path: str | os.PathLike, picture: Picture) -> Path:
    """Write atomically (see `atomic_path`); 16-bit pictures stay 16-bit in PNG and TIFF."""
    path = Path(path)
    fmt = WRITABLE.get(path.suffix.lower())
    if fmt is None:
        raise DipError(
            f"cannot write {path}: unknown extension {path.suffix!r} (use one of {', '.join(sorted(WRITABLE))})"
        )
    if not path.parent.is_dir():
        raise DipError(f"output folder does not exist: {path.parent}")
    array = join_channels(picture)
    deep = picture.bit_depth == 16 and fmt in ("PNG", "TIFF")
    with atomic_path(path) as temp:
        if deep:
            _write_16bit(str(temp), array, fmt)
        else:
            _pillow_image(np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)).save(
                temp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {})
            )
    return path


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _pillow_image(array: np.ndarray) -> Image.Image:
    if array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], "L")
    return Image.fromarray(array, {2: "LA", 3: "RGB", 4: "RGBA"}[array.shape[2]])


def _write_16bit(temp: str, array: np.ndarray, fmt: str) -> None:
    ints = np.round(np.clip(array, 0, 1) * 65535).astype(np.uint16)
    if fmt == "TIFF":
        import tifffile

        tifffile.imwrite(temp, ints[:, :, 0] if ints.shape[2] == 1 else ints)
        return
    import png

    height, width, planes = ints.shape
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[planes] + ";16"
    png.from_array(ints.reshape(height, width * planes), mode).save(temp)
