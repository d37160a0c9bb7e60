"""Big images, tile by tile: each tile is restored on its own and the tiles are blended with
raised-cosine weights over their overlaps, so no seam shows and memory depends on the tile
size only."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .errors import DipError

Box = tuple[int, int, int, int]  # top, left, height, width


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of `tile` pixels covering `length`, neighbours sharing at least `overlap`
    pixels, spread evenly (the last tile ends at the border)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[Box]:
    if overlap < 0 or overlap >= tile:
        raise DipError(f"the tile overlap must be at least 0 and less than the tile size ({tile}), got {overlap}")
    return [
        (top, left, min(tile, height), min(tile, width))
        for top in tile_starts(height, tile, overlap)
        for left in tile_starts(width, tile, overlap)
    ]


def ramp(length: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    """1-D weights: a raised-cosine rise over the first `overlap` pixels and fall over the last
    (only on sides that meet another tile), 1 in between; never 0, so every pixel counts."""
    weights = np.ones(length, np.float64)
    if overlap > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        if rise:
            weights[:overlap] = np.minimum(weights[:overlap], edge)
        if fall:
            weights[-overlap:] = np.minimum(weights[-overlap:], edge[::-1])
    return weights


def restore_tiled(
    image: np.ndarray,
    restore_tile: Callable[[np.ndarray, Box, int], np.ndarray],
    tile: int,
    overlap: int,
    scale: int = 1,
) -> np.ndarray:
    """Restore (H, W, C) `image` tile by tile: `restore_tile(tile_pixels, box, index)` returns the
    tile's result, `scale` times larger (super-resolution) or the same size; results are
    blended by weight."""
    height, width = image.shape[:2]
    boxes = tile_boxes(height, width, tile, overlap)
    total = weights = None
    for index, (top, left, h, w) in enumerate(boxes):
        result = restore_tile(image[top : top + h, left : left + w], (top, left, h, w), index)
        if total is None:
            total = np.zeros((height * scale, width * scale, result.shape[2]), np.float64)
            weights = np.zeros((height * scale, width * scale, 1), np.float64)
        window = np.outer(
            ramp(h * scale, overlap * scale, top > 0, top + h < height),
            ramp(w * scale, overlap * scale, left > 0, left + w < width),
        )[:, :, None]
        region = (slice(top * scale, (top + h) * scale), slice(left * scale, (left + w) * scale))
        total[region] += result * window
        weights[region] += window
    return (total / weights).astype(np.float32)
