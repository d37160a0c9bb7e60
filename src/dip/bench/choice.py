"""Choosing settings without the test images: cases made from the settings-choice set CBSD68
(`../shared/data/CBSD68`), and preset variants named as text for side-by-side runs.

A variant is `PRESET[+CHANGE...]`: a preset of the task with candidate changes, `fourier`
(Fourier-feature input, no input noise), `no-halving` (a bad step is undone without halving the
learning rate), `last` (the last output instead of the running average), `steps=N`, `lr=X`, `net=TASK/PRESET`
(that preset's network and input), and one change of the problem, `unclipped` (denoising: no
clipped-noise data term).

>>> variant("denoise", "paper+fourier+steps=1800").input
'fourier'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..degrade import add_noise, downscale
from ..errors import DipError
from ..io import read_image
from ..presets import Preset, get_preset
from ..problems import Denoising, Inpainting, Problem, SuperResolution
from .quality import centre_box, cut

TASKS = ("denoise", "super-resolve", "inpaint")


def settings_images(data: Path | None = None) -> list[Path]:
    """The images settings are chosen on: CBSD68, sorted by name."""
    folder = (data or Path(os.environ.get("DIP_DATA", "../shared/data"))) / "CBSD68"
    images = sorted(folder.glob("*.png"))
    if not images:
        raise DipError(f"no images in {folder} (give the data folder, or set DIP_DATA)")
    return images


def degrade(task: str, clean: np.ndarray) -> tuple[Problem, np.ndarray, np.ndarray]:
    """(problem, observation, the image it should give) for one clean crop, seeded: Gaussian
    noise sigma 25; x4 Lanczos downscale; half the pixels dropped."""
    if task == "denoise":
        return Denoising(25), add_noise(clean, 25, seed=0), clean
    if task == "super-resolve":
        high, low = downscale(clean, 4)
        return SuperResolution(4), low, high
    if task == "inpaint":
        mask = np.random.default_rng(0).random(clean.shape[:2]) >= 0.5
        return Inpainting(mask), clean * mask[:, :, None], clean
    raise DipError(f"no settings-choice cases for {task!r}; choose from {', '.join(TASKS)}")


Case = tuple[str, Problem, np.ndarray, np.ndarray]  # name, problem, observation, clean


def cases(task: str, count: int, crop: int, data: Path | None = None, start: int = 0) -> Iterator[Case]:
    """(name, problem, observation, clean) for `count` images from the `start`-th (sorted by
    name), centre crops of `crop` px."""
    for path in settings_images(data)[start : start + count]:
        truth = read_image(path).pixels
        problem, observed, clean = degrade(task, cut(truth, centre_box(*truth.shape[:2], crop, 4)))
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
        elif change == "no-halving":
            fit = dataclasses.replace(fit, backtrack_lr_factor=1.0)
        elif change == "last":
            fit = dataclasses.replace(fit, ema=None)
        elif change.startswith("steps="):
            fit = dataclasses.replace(fit, steps=int(change[6:]))
        elif change.startswith("lr="):
            fit = dataclasses.replace(fit, lr=float(change[3:]))
        elif change.startswith("net="):
            other = get_preset(*change[4:].split("/", 1))
            preset = dataclasses.replace(preset, net=other.net, input=other.input, input_channels=other.input_channels)
        elif change not in PROBLEM_CHANGES:
            raise DipError(
                f"unknown change {change!r} in {text!r}: fourier, no-halving, last, steps=N, lr=X, net=TASK/PRESET "
                "or unclipped"
            )
    return dataclasses.replace(preset, name=text, fit=fit)


PROBLEM_CHANGES = ("unclipped",)


def problem_variant(problem: Problem, text: str) -> Problem:
    """The problem with the variant's problem changes (`unclipped`)."""
    if "unclipped" in text.split("+")[1:]:
        if not isinstance(problem, Denoising):
            raise DipError("unclipped is a change of denoising problems")
        return dataclasses.replace(problem, clipped=False)
    return problem
