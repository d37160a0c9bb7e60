"""Saved fits: a folder where each finished fit is kept, so that it is never made twice.

A fit is the costly part of a restoration; what follows it (the preset's refine step, the mean
of an ensemble) takes seconds. `dip.run(..., fits=FOLDER)` reads a fit from the folder when one
was made before for the same observation, problem, network and fit settings, seed, step budget
and arithmetic, and writes each fit it makes there. So a changed refine step is scored again
without fitting again, and a `best` preset's ensemble (seeds 0, 1, ...) reuses the `default`
fits of those seeds, which are the same fits.

A fit still running keeps its state beside them (`KEY.part`, a `dip.callbacks.Checkpoint` saved
about every `UNFINISHED_SAVE_SECONDS` where the fit runs alone in the plain loop, and at the step
where Ctrl-C or SIGTERM stops it): a run killed otherwise loses at most that much of it, and the
next run with the same folder continues the fit from there, to the same result an uninterrupted
fit gives.

The key knows the version of dip (and of torch) that made the fit, not the code itself: a fit
made by another release is made again, but after changing how fits are made in a working copy,
start a new folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .errors import DipError
from .fit import FitResult
from .io import atomic_path
from .presets import Preset
from .problems import Problem

UNFINISHED_SAVE_SECONDS = 60.0  # how often a fit in progress saves its state (`FitStore.unfinished`)


@dataclass(frozen=True)
class SavedFit:
    """A fit as the store keeps it: its pixels (float32, H x W x C, before any refine step), how
    it ended (`fit`, whose `image` is those pixels), the network's size and the attempts made."""

    pixels: np.ndarray
    fit: FitResult
    parameters: int
    attempts: int = 1


def fit_key(identity: dict, problem: Problem, preset: Preset) -> str:
    """The name of a fit in a store: a SHA-256 of `identity` (what identifies the run: pixels,
    problem, seed, steps, arithmetic, as `dip.fitting.fingerprint` gives it) with the preset counted by
    its network, input and fit settings, not by its name, restarts or refine step, so presets that
    differ only there share their fits; the versions of dip and torch count too. The problem
    counts by its class and `describe()`; a `Problem(operator=...)` cannot tell its operator apart
    from another's, so it has no key unless its class says what decides the fit in its own
    `describe`.

    >>> from dip.presets import get_preset
    >>> from dip.problems import Denoising
    >>> default, best = get_preset("denoise", "default"), get_preset("denoise", "best")
    >>> identity = {"observation_sha256": "0" * 64, "seed": 0, "steps": 100}
    >>> fit_key(identity, Denoising(25), default) == fit_key(identity, Denoising(25), best)
    True
    >>> fit_key({**identity, "seed": 1}, Denoising(25), default) == fit_key(identity, Denoising(25), default)
    False
    """
    if type(problem).describe is Problem.describe:
        raise DipError(
            f"saved fits need a problem that describes its operator: give {type(problem).__name__} a describe() "
            "that names everything deciding the fit, or run without fits"
        )
    fitted_by = dataclasses.replace(preset, name="", note="", restarts=1, refine=False, picked_for="")
    described = {
        **identity,
        "preset": repr(fitted_by),
        "class": f"{type(problem).__module__}.{type(problem).__qualname__}",
        "torch": torch.__version__,
        "dip": __version__,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:32]


class FitStore:
    """A folder of saved fits, one `.npz` per fit, named by `fit_key`; written atomically, so an
    interrupted run leaves whole fits only.

    >>> import tempfile
    >>> store = FitStore(tempfile.mkdtemp())
    >>> pixels = np.ones((2, 2, 3), np.float32)
    >>> store.save("abc", SavedFit(pixels, FitResult(None, 9, 10, 0.5, 0, "stopped"), 100))
    >>> store.load("abc").fit.steps_run, store.load("abc").fit.image.shape, store.load("xyz")
    (10, torch.Size([1, 3, 2, 2]), None)
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise DipError(f"the fits folder is a file: {self.folder}")

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def unfinished(self, key: str) -> Path:
        """Where the fit of `key` keeps its state while it runs (a checkpoint file; the folder
        is made here)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self._part(key)

    def _part(self, key: str) -> Path:
        return self.folder / f"{key}.part"

    def load(self, key: str) -> SavedFit | None:
        """The saved fit of `key`, or None when there is none."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as saved:
                pixels = saved["pixels"].astype(np.float32)
                about = json.loads(str(saved["about"]))
            image = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]
            fit = FitResult(image, **about.pop("fit"))
            return SavedFit(pixels, fit, **about)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DipError(f"not a saved fit: {path} ({error})") from None

    def save(self, key: str, fit: SavedFit) -> None:
        """Keep `fit` under `key` (replacing one saved before); the state it kept while
        running is no longer needed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        ending = {f.name: getattr(fit.fit, f.name) for f in dataclasses.fields(fit.fit) if f.name != "image"}
        about = {"fit": ending, "parameters": fit.parameters, "attempts": fit.attempts}
        with atomic_path(self._path(key)) as temp, open(temp, "wb") as out:
            np.savez(out, pixels=np.asarray(fit.pixels, np.float32), about=json.dumps(about))
        self._part(key).unlink(missing_ok=True)
