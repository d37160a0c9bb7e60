"""Restoration tasks: numpy in, numpy out, in the style of `skimage.restoration`.

Each task is an operator A plus a preset; `restore` does the rest for all of them: it builds
the network and its input at a size the network accepts, fits, and crops back to the image.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .callbacks import ReferenceMetrics, to_numpy_image
from .errors import DipError
from .fit import Callback, FitResult, fit
from .io import Picture, join_channels, split_channels
from .nets import count_parameters
from .nets.layers import center_crop_to
from .operators import Identity
from .presets import Preset, get_preset

NOISE_SCALE = 0.1  # z ~ U[0, 1) * 0.1, as in the paper


@dataclass
class Restoration:
    """A restored image and how it was made."""

    image: np.ndarray  # float32 (H, W, C) in [0, 1]
    preset: Preset
    parameters: int
    device: str
    seconds: float
    fit: FitResult
    metrics: ReferenceMetrics | None = None


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; asking for a missing device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DipError("--device cuda asked for, but PyTorch sees no CUDA GPU here (use --device auto or cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DipError(f"unknown device {name!r} (use auto, cpu or cuda)") from None


def padded_size(height: int, width: int, stride: int, min_size: int = 1) -> tuple[int, int]:
    """Smallest size >= (height, width), each side at least `min_size`, that `stride` divides."""
    return tuple(max(-(-side // stride) * stride, min_size) for side in (height, width))


def check_size(height: int, width: int, stride: int) -> None:
    if height < stride or width < stride:
        raise DipError(f"image is {width}x{height} pixels, too small: this network halves it "
                       f"{stride.bit_length() - 1} times and needs at least {stride}x{stride}")


def make_input(kind: str, channels: int, size: tuple[int, int], generator: torch.Generator,
               guide: np.ndarray | None = None) -> torch.Tensor:
    """The network's fixed input z at the padded `size`: uniform noise, a coordinate grid, or a
    guide image (reflect-padded)."""
    height, width = size
    if kind == "noise":
        return torch.rand(1, channels, height, width, generator=generator) * NOISE_SCALE
    if kind == "meshgrid":
        ys = torch.linspace(0, 1, height)
        xs = torch.linspace(0, 1, width)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([grid_x, grid_y])[None]
    if kind == "image":
        if guide is None:
            raise ValueError("input kind 'image' needs a guide image")
        return pad_to(to_tensor(guide), size)
    raise ValueError(f"unknown input kind {kind!r}")


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """float (H, W, C) array -> (1, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def pad_to(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pad an NCHW tensor symmetrically to `size`, mirroring the border (the centre stays put)."""
    extra_h, extra_w = size[0] - tensor.shape[2], size[1] - tensor.shape[3]
    pads = (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)
    mode = "reflect" if extra_h < tensor.shape[2] and extra_w < tensor.shape[3] else "replicate"
    return nn.functional.pad(tensor, pads, mode=mode) if any(pads) else tensor


def restore(observation: np.ndarray, preset: Preset, *, operator: nn.Module | None = None,
            image_size: tuple[int, int] | None = None, out_channels: int | None = None,
            guide: np.ndarray | None = None, steps: int | None = None, seed: int = 0,
            device: str = "auto", reference: np.ndarray | None = None,
            callbacks: Sequence[Callback] = ()) -> Restoration:
    """Fit the preset's network so that A(f(z)) matches `observation` (float (h, w, c)).

    `image_size` and `out_channels` describe the image to produce (default: those of the
    observation). The network works on a canvas padded to a size it accepts; only the centre
    (the image) enters the loss, so no border is lost.
    """
    started = time.perf_counter()
    dev = resolve_device(device)
    height, width = image_size or observation.shape[:2]
    channels = out_channels or observation.shape[2]
    stride = preset.net.stride
    check_size(height, width, stride)
    canvas = padded_size(height, width, stride, preset.net.min_size)
    config = preset.fit if steps is None else dataclasses.replace(preset.fit, steps=steps)
    if config.steps < 1:
        raise DipError(f"--steps must be at least 1, got {config.steps}")

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = preset.net.build(preset.input_channels, channels)
    z = make_input(preset.input, preset.input_channels, canvas, generator, guide)
    net, z = net.to(dev), z.to(dev)
    target = to_tensor(observation).to(dev)
    operator = (operator or Identity()).to(dev)
    step_generator = torch.Generator(device=dev).manual_seed(seed + 1)

    metrics = None
    if reference is not None:
        if reference.shape[:2] != (height, width) or reference.shape[2] != channels:
            raise DipError(f"reference is {reference.shape[1]}x{reference.shape[0]}x{reference.shape[2]}, "
                           f"the result will be {width}x{height}x{channels}: they must match")
        metrics = ReferenceMetrics(to_tensor(reference).to(dev))
    callbacks = ([metrics] if metrics else []) + list(callbacks)

    def crop(tensor: torch.Tensor) -> torch.Tensor:
        return center_crop_to(tensor, height, width)

    result = fit(net, z, target, operator, config, crop=crop, generator=step_generator,
                 callbacks=callbacks)
    return Restoration(to_numpy_image(result.image), preset, count_parameters(net), str(dev),
                       time.perf_counter() - started, result, metrics)


def _restore_picture(image: np.ndarray, task: str, preset: str | Preset, return_info: bool,
                     **options) -> np.ndarray | tuple[np.ndarray, Restoration]:
    """Shared wrapper: split off alpha, restore the colour channels, put alpha back, keep shape."""
    picture = split_channels(image)
    if isinstance(preset, str):
        preset = get_preset(task, preset)
    reference = options.pop("reference", None)
    if reference is not None:
        reference = split_channels(reference).pixels
    done = restore(picture.pixels, preset, reference=reference, **options)
    out = join_channels(Picture(done.image, picture.alpha))
    if np.ndim(image) == 2:
        out = out[:, :, 0]
    return (out, done) if return_info else out


def denoise_preset(sigma: float | None, name: str) -> str:
    """The paper used more input noise for strong noise (sigma 50)."""
    if name == "paper" and sigma is not None and sigma > 40:
        return "paper-sigma50"
    return name


def denoise(image: np.ndarray, sigma: float | None = None, *, preset: str = "paper",
            steps: int | None = None, seed: int = 0, device: str = "auto",
            reference: np.ndarray | None = None, callbacks: Sequence[Callback] = (),
            return_info: bool = False):
    """Remove noise with the Deep Image Prior.

    `image`: (H, W) or (H, W, C) array, C in 1-4 (alpha is kept as is); integers are scaled by
    their type's maximum, floats are taken in [0, 1]. `sigma` (on the 0-255 scale) is optional:
    without it the run is blind, suited to real noise. Returns a float32 array of the same shape.

    >>> from skimage import data
    >>> noisy = data.astronaut()[:64, :64] / 255 + 0.1 * np.random.default_rng(0).normal(size=(64, 64, 3))
    >>> denoise(noisy.clip(0, 1), sigma=25, steps=2, device="cpu").shape
    (64, 64, 3)
    """
    if sigma is not None and not 0 < sigma <= 255:
        raise DipError(f"sigma must be in (0, 255] on the 0-255 scale, got {sigma:g}")
    return _restore_picture(image, "denoise", denoise_preset(sigma, preset) if isinstance(preset, str) else preset,
                            return_info, steps=steps, seed=seed, device=device, reference=reference,
                            callbacks=callbacks)


def deblock(image: np.ndarray, *, preset: str = "paper", steps: int | None = None, seed: int = 0,
            device: str = "auto", reference: np.ndarray | None = None,
            callbacks: Sequence[Callback] = (), return_info: bool = False):
    """Remove JPEG compression artifacts (blocking, ringing); same conventions as `denoise`."""
    return _restore_picture(image, "deblock", preset, return_info, steps=steps, seed=seed,
                            device=device, reference=reference, callbacks=callbacks)
