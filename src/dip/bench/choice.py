"""Choosing settings without the test images: cases made from the settings-choice set CBSD68
(`../shared/data/CBSD68`), and preset variants named as text for side-by-side runs.

A variant is `PRESET[+CHANGE...]`: a preset of the task with candidate changes, `fourier`
(Fourier-feature input, no input noise), `refine` / `no-refine` (the problem's classical last step
on or off, `Preset.refine`), `stop` (the automatic stop, `StopRule()`, for a preset without one),
`variance` (the stop's variance rule even where the noise level is known), `no-halving` (a bad step
is undone without halving the learning rate), `last` (the last output instead of the running
average), `bn-uniform` and `corners` (the skip net as the PyTorch of the reference code made it:
BatchNorm scales from U(0, 1), bilinear upsampling with aligned corners), `steps=N`, `lr=X`,
`noise=X` (the input noise's std), `ema=X` and `ramp=N` (the running average's weight, and its ramp:
it spans about the last 1/N of the run), `net=TASK/PRESET` (that preset's network and input),
`width=N` (at most N channels a layer: after `net=`), and changes of the problem: `unclipped`
(denoising: no clipped-noise data term), `no-holdout` (inpainting: no known pixels left out for the
stop), `lanczos2` / `lanczos3` (the downscale super-resolution's refine step makes the result
consistent with, `SuperResolution.kernel`).

>>> variant("denoise", "paper+fourier+steps=1800").input
'fourier'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..degrade import add_noise, blur, downscale
from ..errors import DipError
from ..io import read_image
from ..nets.skip import SkipSpec
from ..operators import gaussian_kernel
from ..presets import Preset, StopRule, get_preset
from ..problems import Deblurring, Denoising, Inpainting, Problem, SuperResolution
from . import data_root
from .quality import centre_box, cut

TASKS = ("denoise", "super-resolve", "inpaint", "deblur")
DEBLUR_BLUR = 1.5  # px: the Gaussian blur of the deblurring cases unless told (as `dip.demo`'s)


def settings_images(data: Path | None = None) -> list[Path]:
    """The images settings are chosen on: CBSD68, sorted by name."""
    folder = data_root(data) / "CBSD68"
    images = sorted(folder.glob("*.png"))
    if not images:
        raise DipError(f"no images in {folder} (give the data folder, or set DIP_DATA)")
    return images


MASKS = ("pixels", "box", "strokes")


def holes(shape: tuple[int, int], kind: str = "pixels") -> np.ndarray:
    """A seeded (H, W) bool mask, True = known: `pixels` drops half the pixels at random; `box`, a
    centred square of a third of the side; `strokes`, six random lines 5 px wide.

    >>> [round(float(1 - holes((96, 96), kind).mean()), 2) for kind in MASKS]  # the share missing
    [0.5, 0.11, 0.17]
    """
    height, width = shape
    rng = np.random.default_rng(0)
    if kind == "pixels":
        return rng.random(shape) >= 0.5
    known = np.ones(shape, bool)
    if kind == "box":
        side = min(shape) // 3
        top, left = (height - side) // 2, (width - side) // 2
        known[top : top + side, left : left + side] = False
        return known
    if kind == "strokes":
        from scipy.ndimage import binary_dilation
        from skimage.draw import line

        for _ in range(6):
            (r0, r1), (c0, c1) = rng.integers(0, height, 2), rng.integers(0, width, 2)
            known[line(int(r0), int(c0), int(r1), int(c1))] = False
        return ~binary_dilation(~known, np.ones((5, 5), bool))
    raise DipError(f"unknown mask kind {kind!r}; choose from {', '.join(MASKS)}")


def degrade(
    task: str,
    clean: np.ndarray,
    factor: int = 4,
    kind: str = "pixels",
    sigma: float = 25,
    blur_width: float = DEBLUR_BLUR,
) -> tuple[Problem, np.ndarray, np.ndarray]:
    """(problem, observation, the image it should give) for one clean crop, seeded: Gaussian
    noise of `sigma`; Lanczos downscale by `factor`; holes of `kind` (`holes`); a Gaussian blur
    of `blur_width` px, then noise of `sigma` (the problem is not told it: blind, as a user's)."""
    if task == "denoise":
        return Denoising(sigma), add_noise(clean, sigma, seed=0), clean
    if task == "super-resolve":
        high, low = downscale(clean, factor)
        return SuperResolution(factor), low, high
    if task == "inpaint":
        mask = holes(clean.shape[:2], kind)
        return Inpainting(mask), clean * mask[:, :, None], clean
    if task == "deblur":
        kernel = gaussian_kernel(blur_width)
        return Deblurring(kernel), add_noise(blur(clean, kernel), sigma, seed=0), clean
    raise DipError(f"no settings-choice cases for {task!r}; choose from {', '.join(TASKS)}")


Case = tuple[str, Problem, np.ndarray, np.ndarray]  # name, problem, observation, clean


def image_span(text: str) -> tuple[int, int]:
    """Which settings images a script's `--images` names: `N` (the first N) or `FIRST:LAST`
    (counting from 1), as (start, stop) indices into the sorted set.

    >>> image_span("4"), image_span("5:8")
    ((0, 4), (4, 8))
    """
    first, _, last = text.rpartition(":")
    return (int(first) - 1 if first else 0), int(last)


def cases(
    task: str,
    count: int,
    crop: int,
    data: Path | None = None,
    start: int = 0,
    factor: int = 4,
    kind: str = "pixels",
    sigma: float = 25,
    blur_width: float = DEBLUR_BLUR,
) -> Iterator[Case]:
    """(name, problem, observation, clean) for `count` images from the `start`-th (sorted by
    name), centre crops of `crop` px; super-resolution by `factor`; inpainting holes of `kind`;
    denoising noise of `sigma`; a deblurring blur of `blur_width` px."""
    for path in settings_images(data)[start : start + count]:
        truth = read_image(path).pixels
        box = centre_box(*truth.shape[:2], crop, factor)
        problem, observed, clean = degrade(task, cut(truth, box), factor, kind, sigma, blur_width)
        yield path.stem, problem, observed, clean


def variant(task: str, text: str) -> Preset:
    """The preset `PRESET[+CHANGE...]` names (see the module doc)."""
    name, *changes = text.split("+")
    preset = get_preset(task, name)
    fit = preset.fit
    for change in changes:
        if change == "fourier":
            preset = dataclasses.replace(preset, input="fourier")
            fit = dataclasses.replace(fit, reg_noise_std=0.0)
        elif change in ("refine", "no-refine"):
            preset = dataclasses.replace(preset, refine=change == "refine")
        elif change == "no-halving":
            fit = dataclasses.replace(fit, backtrack_lr_factor=1.0)
        elif change == "stop":
            preset = dataclasses.replace(preset, stop=preset.stop or StopRule())
        elif change == "variance":
            preset = dataclasses.replace(preset, stop=dataclasses.replace(preset.stop, discrepancy=False))
        elif change == "last":
            fit = dataclasses.replace(fit, ema=None)
        elif change in ("bn-uniform", "corners"):
            preset = dataclasses.replace(preset, net=_old_torch(preset.net, change))
        elif change.startswith("steps="):
            fit = dataclasses.replace(fit, steps=int(change[6:]))
        elif change.startswith("lr="):
            fit = dataclasses.replace(fit, lr=float(change[3:]))
        elif change.startswith("noise="):
            fit = dataclasses.replace(fit, reg_noise_std=float(change[6:]))
        elif change.startswith("ema="):
            fit = dataclasses.replace(fit, ema=float(change[4:]))
        elif change.startswith("ramp="):
            fit = dataclasses.replace(fit, ema_ramp=float(change[5:]))
        elif change.startswith("width="):
            cap, net = int(change[6:]), preset.net
            narrower = {key: tuple(min(c, cap) for c in getattr(net, key)) for key in ("channels_down", "channels_up")}
            preset = dataclasses.replace(preset, net=dataclasses.replace(net, **narrower))
        elif change.startswith("net="):
            other = get_preset(*change[4:].split("/", 1))
            preset = dataclasses.replace(preset, net=other.net, input=other.input, input_channels=other.input_channels)
        elif change not in PROBLEM_CHANGES:
            raise DipError(
                f"unknown change {change!r} in {text!r}: fourier, refine, no-refine, no-halving, stop, variance, last, "
                "bn-uniform, corners, steps=N, lr=X, noise=X, ema=X, ramp=N, net=TASK/PRESET, width=N, unclipped, "
                "no-holdout, lanczos2 or lanczos3"
            )
    return dataclasses.replace(preset, name=text, fit=fit)


def _old_torch(net, change: str):
    """The skip net as the PyTorch the reference code ran on made it: BatchNorm scales drawn
    from U(0, 1) (`bn-uniform`: before 1.2), bilinear upsampling with aligned corners (`corners`:
    before 0.4)."""
    if not isinstance(net, SkipSpec):
        raise DipError(f"{change} is a change of skip nets, not of {net.describe()}")
    if change == "bn-uniform":
        return dataclasses.replace(net, norm_init="uniform")
    ups = net.upsample if isinstance(net.upsample, tuple) else (net.upsample,)
    if "bilinear" not in ups:
        raise DipError(f"corners is a change of bilinear upsampling, not of {net.describe()}")
    aligned = tuple("bilinear-corners" if mode == "bilinear" else mode for mode in ups)
    return dataclasses.replace(net, upsample=aligned if isinstance(net.upsample, tuple) else aligned[0])


PROBLEM_CHANGES = ("unclipped", "no-holdout", "lanczos2", "lanczos3")


def problem_variant(problem: Problem, text: str) -> Problem:
    """The problem with the variant's problem changes (`unclipped`, `no-holdout`)."""
    changes = text.split("+")[1:]
    if "unclipped" in changes:
        if not isinstance(problem, Denoising):
            raise DipError("unclipped is a change of denoising problems")
        problem = dataclasses.replace(problem, clipped=False)
    if "no-holdout" in changes:
        if not isinstance(problem, Inpainting):
            raise DipError("no-holdout is a change of inpainting problems")
        problem = dataclasses.replace(problem, holdout=0.0)
    for kernel in {"lanczos2", "lanczos3"}.intersection(changes):
        if not isinstance(problem, SuperResolution):
            raise DipError(f"{kernel} is a change of super-resolution problems")
        problem = dataclasses.replace(problem, kernel=kernel)
    return problem
