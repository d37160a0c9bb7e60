"""The canvas a network works on and its fixed input z: the image's size padded to what the
network's strides divide, mirrored padding, and the input kinds a preset names (uniform noise,
a coordinate grid, Fourier features of the coordinates, a guide image).

>>> padded_size(37, 64, 32)
(64, 64)
>>> tuple(make_input("noise", 32, (64, 64), torch.Generator().manual_seed(0)).shape)
(1, 32, 64, 64)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .errors import DipError
from .problems import to_tensor

NOISE_SCALE = 0.1  # z ~ U[0, 1) * 0.1, as in the paper


def padded_size(height: int, width: int, stride: int, min_size: int = 1) -> tuple[int, int]:
    """Smallest size >= (height, width), each side at least `min_size`, that `stride` divides."""
    return tuple(max(-(-side // stride) * stride, min_size) for side in (height, width))


def check_size(height: int, width: int, stride: int) -> None:
    if height < stride or width < stride:
        raise DipError(
            f"image is {width}x{height} pixels, too small: this network halves it "
            f"{stride.bit_length() - 1} times and needs at least {stride}x{stride}"
        )


def pad_to(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pad an NCHW tensor symmetrically to `size`, mirroring the border (the centre stays put)."""
    extra_h, extra_w = size[0] - tensor.shape[2], size[1] - tensor.shape[3]
    pads = (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)
    mode = "reflect" if extra_h < tensor.shape[2] and extra_w < tensor.shape[3] else "replicate"
    return nn.functional.pad(tensor, pads, mode=mode) if any(pads) else tensor


def make_input(
    kind: str, channels: int, size: tuple[int, int], generator: torch.Generator, guide: np.ndarray | None = None
) -> torch.Tensor:
    """The network's fixed input z at the padded `size`: uniform noise, a coordinate grid, Fourier
    features of the coordinates, or a guide image (reflect-padded)."""
    height, width = size
    if kind == "noise":
        return torch.rand(1, channels, height, width, generator=generator) * NOISE_SCALE
    if kind == "meshgrid":
        grid_y, grid_x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
        return torch.stack([grid_x, grid_y])[None]
    if kind == "fourier":
        return fourier_features(channels, size)
    if kind == "image":
        if guide is None:
            raise DipError("this preset's network input is a guide image, and the problem has none")
        return pad_to(to_tensor(guide), size)
    raise ValueError(f"unknown input kind {kind!r}")


def fourier_features(channels: int, size: tuple[int, int], highest: float = 256.0) -> torch.Tensor:
    """cos and sin of x and y (in [0, 1] across the canvas) at channels / 4 frequencies spaced
    geometrically from 1 to `highest` radians per canvas side, as the reference code's later
    denoising script feeds its network (8 frequencies, 32 channels)."""
    if channels % 4 or channels < 4:
        raise DipError(f"a Fourier-feature input has 4 channels per frequency, got {channels}")
    count = channels // 4
    freqs = highest ** (torch.arange(count) / max(count - 1, 1))
    grid_y, grid_x = torch.meshgrid(torch.linspace(0, 1, size[0]), torch.linspace(0, 1, size[1]), indexing="ij")
    phases = [freq * grid for grid in (grid_x, grid_y) for freq in freqs]
    return torch.stack([torch.cos(p) for p in phases] + [torch.sin(p) for p in phases])[None]
