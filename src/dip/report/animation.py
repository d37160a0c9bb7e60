"""The restoration process as one shareable picture: an animated WebP or GIF (Pillow writes
both), each frame labelled with its step burned in.

>>> import numpy as np, io
>>> from PIL import Image
>>> frames = [(np.full((32, 48, 3), v, np.float32), f"step {v}") for v in (0.2, 0.5, 0.8)]
>>> data = animate(frames, "gif")
>>> picture = Image.open(io.BytesIO(data))
>>> picture.format, picture.size, picture.n_frames  # small ones enlarged so that the label fits
('GIF', (336, 224), 3)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..callbacks import Frame
from ..errors import DipError
from ..io import atomic_path, read_image

FORMATS = ("webp", "gif")
FRAME_MS = 120  # display time of each frame; the last one stays 1.5 s
LAST_MS = 1500
LONGEST_SIDE = 768  # larger results are scaled down: a shareable file, not an archive
SHORTEST_LONG_SIDE = 320  # smaller ones are enlarged (pixels kept sharp) so the label fits


def _font(height: int) -> ImageFont.ImageFont:
    size = max(10, height // 18)
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _labelled(image: np.ndarray, label: str) -> Image.Image:
    pixels = np.clip(np.asarray(image, np.float32), 0, 1)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    picture = Image.fromarray((pixels * 255 + 0.5).astype(np.uint8)).convert("RGB")
    scale = LONGEST_SIDE / max(picture.size)
    if scale < 1:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.LANCZOS)
    elif max(picture.size) < SHORTEST_LONG_SIDE:
        times = -(-SHORTEST_LONG_SIDE // max(picture.size))
        picture = picture.resize((picture.width * times, picture.height * times), Image.NEAREST)
    if label:
        draw = ImageDraw.Draw(picture)
        font = _font(picture.height)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        pad = max(2, (bottom - top) // 4)
        box = (0, picture.height - (bottom - top) - 2 * pad - top, right - left + 2 * pad, picture.height)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((pad - left, box[1] + pad - top), label, fill=(255, 255, 255), font=font)
    return picture


def animate(frames: Sequence[tuple[np.ndarray, str]], kind: str = "webp") -> bytes:
    """(image, label) pairs -> the bytes of an animated WebP or GIF that loops."""
    if kind not in FORMATS:
        raise DipError(f"unknown animation format {kind!r}; choose {' or '.join(FORMATS)}")
    if not frames:
        raise DipError("no frames to animate: keep snapshots while fitting")
    pictures = [_labelled(image, label) for image, label in frames]
    durations = [FRAME_MS] * (len(pictures) - 1) + [LAST_MS]
    out = io.BytesIO()
    options = {"quality": 90, "method": 4} if kind == "webp" else {"optimize": False}
    pictures[0].save(
        out, format=kind.upper(), save_all=True, append_images=pictures[1:], duration=durations, loop=0, **options
    )
    return out.getvalue()


def frame_label(frame: Frame, total: int | None = None) -> str:
    """'step 120 / 600 · PSNR 28.31 dB'."""
    text = f"step {frame.step}" + (f" / {total}" if total else "")
    psnr = frame.logs.get("psnr")
    return text + (f" · PSNR {psnr:.2f} dB" if psnr is not None else "")


def save_animation(frames: Sequence[Frame], path: str | Path, total: int | None = None) -> Path:
    """Write a run's snapshots (in memory or as files) as an animation; the format from the
    extension (.webp or .gif), written atomically."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    images = [
        (frame.image if frame.image is not None else read_image(frame.path).pixels, frame_label(frame, total))
        for frame in frames
    ]
    data = animate(images, kind)
    with atomic_path(path) as temp:
        temp.write_bytes(data)
    return path
