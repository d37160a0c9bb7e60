"""`dip.run(problem, observation)`: everything a restoration can do, from Python.

The command line, the benchmarks and the task functions (`dip.denoise`, ...) are skins over
`run`: presets, device and arithmetic, the automatic stop, reference metrics, snapshots,
tiling of big images, checkpoints with resume, the HTML report and the memory check are all
reached from here (the fits themselves are made by `dip.fitting`). The Deep Image Prior and the
classical baselines share this one entry point, so a comparison is a loop over methods.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .accel import Acceleration
from .callbacks import Checkpoint, Frame, LossHistory, ReferenceMetrics, Snapshots, saving_on_signals
from .canvas import check_size, padded_size
from .errors import DipError
from .fit import Callback, FitResult
from .fitstore import FitStore
from .fitting import Fitted, Item, Settings, fingerprint, fit_all, fit_tiled, stops
from .io import Picture, has_alpha, join_channels, split_channels
from .presets import Preset, get_preset
from .problems import Problem

log = logging.getLogger("dip")

REPORT_FRAMES = 50  # snapshots in a report when no interval is given


class Interrupted(DipError):
    """The run was interrupted (Ctrl-C, SIGTERM) and its state saved in its checkpoint."""

    def __init__(self, step: int, path: Path):
        super().__init__(f"interrupted at step {step}; state saved in {path}: run again with resume to continue")
        self.step, self.path = step, path


@dataclass
class Restoration:
    """A restored image and how it was made.

    `image` has the observation's layout: (H, W) in, (H, W) out; an alpha channel is carried
    over. `fit` is None for a classical method; for a tiled run it sums the tiles' steps. Where
    the preset refines each fit with its problem's classical step (`refined`), `unrefined` is
    what the fits gave without it, to compare or to keep instead.

    >>> import numpy as np, dip
    >>> noisy = np.full((16, 16, 3), 0.5, np.float32)
    >>> done = dip.run(dip.Denoising(25), noisy, method="wavelet")  # a classical method: no fit
    >>> done.method, done.fit, done.image.shape
    ('wavelet', None, (16, 16, 3))
    """

    image: np.ndarray
    method: str
    problem: Problem
    seconds: float
    preset: Preset | None = None
    parameters: int = 0
    device: str = "cpu"
    fit: FitResult | None = None
    metrics: ReferenceMetrics | None = None  # PSNR history, best and last raw output, with a reference
    attempts: int = 1  # runs made (more than one when a stuck run was restarted)
    seed: int = 0
    frames: list[Frame] = field(default_factory=list)
    losses: list[tuple[int, float]] = field(default_factory=list)
    report: Path | None = None
    refined: bool = False  # the problem's classical last step ran on each fit (`Preset.refine`)
    unrefined: np.ndarray | None = None  # where `refined`: the result without that step, laid out as `image`
    fits_read: int = 0  # fits read from the `fits` folder instead of made (their time is not in `seconds`)

    @property
    def pixels(self) -> np.ndarray:
        """The result's colour channels as float32 (H, W, C)."""
        return split_channels(self.image).pixels if self.problem.keeps_alpha else self.image

    def summary(self) -> str:
        """One line: what ran, how long, where the result comes from."""
        shape = "x".join(map(str, (self.image.shape[1], self.image.shape[0], *self.image.shape[2:])))
        if self.fit is None:
            return f"{self.method} ({shape}) in {self.seconds:.1f} s"
        fit = self.fit
        return (
            f"{shape} in {self.seconds:.1f} s on {self.device}: preset {self.preset.task}/{self.preset.name}, "
            f"{self.parameters:,} parameters, {fit.steps_run} steps ({fit.stop_reason}), result from step "
            f"{fit.step}"
            + (f", {fit.backtracks} steps undone" if fit.backtracks else "")
            + (f", {self.attempts} attempts" if self.attempts > 1 else "")
            + (f", {self.fits_read} saved fit{'s' if self.fits_read > 1 else ''} read" if self.fits_read else "")
            + (f", then refined ({self.problem.refinement})" if self.refined else "")
        )


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; asking for a missing device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DipError("device cuda asked for, but PyTorch sees no CUDA GPU here (use auto or cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DipError(f"unknown device {name!r} (use auto, cpu or cuda)") from None


# -- options that need files ------------------------------------------------------------------
def _fresh_folder(folder: Path, overwrite: bool) -> Path:
    """A folder to write into: refused if it is a file, or holds files and `overwrite` is off."""
    if folder.exists() and not folder.is_dir():
        raise DipError(f"{folder} exists and is not a folder")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise DipError(f"folder {folder} exists and is not empty; allow replacing its files to use it")
    return folder


def _reference(reference: np.ndarray | None, shape: tuple[int, int, int]) -> np.ndarray | None:
    """The reference's colour channels, checked against the result's size before any work."""
    if reference is None:
        return None
    pixels = split_channels(reference).pixels
    height, width, channels = shape
    if pixels.shape[:2] != (height, width) or pixels.shape[2] < channels:
        raise DipError(
            f"reference is {pixels.shape[1]}x{pixels.shape[0]}x{pixels.shape[2]}, the result will be "
            f"{width}x{height}x{channels}: they must match"
        )
    return pixels[:, :, :channels]


def _assemble(restored: np.ndarray, picture: Picture | None, flat: bool, keeps_alpha: bool) -> np.ndarray:
    """Join the observation's alpha back (resized when the result is larger); (H, W) out if the
    observation was (H, W)."""
    alpha = picture.alpha if picture is not None and keeps_alpha else None
    if alpha is not None and alpha.shape != restored.shape[:2]:
        from skimage.transform import resize

        alpha = resize(alpha, restored.shape[:2], order=3).clip(0, 1).astype(np.float32)
    out = join_channels(Picture(restored, alpha))
    return out[:, :, 0] if flat and out.shape[2] == 1 else out


def _baseline(problem: Problem, method: str, pixels: np.ndarray) -> np.ndarray:
    methods = problem.baselines()
    if method not in methods:
        raise DipError(
            f"unknown method {method!r} for {problem.name}; choose dip" + "".join(f", {name}" for name in methods)
        )
    return np.clip(methods[method](pixels, problem), 0, 1).astype(np.float32)


def run(
    problem: Problem,
    observation: np.ndarray | None = None,
    *,
    method: str = "dip",
    preset: str | Preset = "default",
    steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool | str = "auto",
    compile: bool | str = False,
    deterministic: bool = False,
    cuda_graph: bool | str = "auto",
    reference: np.ndarray | None = None,
    early_stop: bool | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    restarts: int | None = None,
    batch: int | str = "auto",
    workers: int | str = 1,
    fits: str | Path | None = None,
    save_every: int | None = None,
    snapshot_dir: str | Path | None = None,
    tile: int | None = None,
    overlap: int = 32,
    warm_tiles: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    report: str | Path | None = None,
    animation: str | Path | None = None,
    overwrite: bool = False,
    check_memory: bool = True,
    command: str = "",
) -> Restoration:
    """Restore `observation` under `problem` with the Deep Image Prior (or a classical method).

    Parameters
    ----------
    problem : Problem
        The degradation (`dip.Denoising(sigma=25)`, `dip.SuperResolution(4)`, ... or your own).
    observation : ndarray, optional
        (H, W) or (H, W, C) image, C in 1-4 (alpha is carried over); integers are scaled by
        their type's maximum, floats taken in [0, 1]. None for problems without one.
    method : str
        "dip", or a classical baseline of the problem (`problem.baselines()`).
    preset : str or Preset
        Settings by name (`dip presets`): "default" (fast, stops itself), "paper", ...
    steps, seed, device, precision, channels_last, compile, deterministic, cuda_graph
        Step budget (default: the preset's), random seed, "auto"/"cpu"/"cuda", and how the
        arithmetic runs (see `dip.accel.Acceleration`; `channels_last`, "auto": NHWC on a CPU
        for canvases from 64x64, where it measured faster; `cuda_graph`: `dip.graphed`,
        "auto": on CUDA, unless fp16, a compile mode or a checkpoint needs the plain loop).
    reference : ndarray, optional
        The clean image: PSNR is tracked in `Restoration.metrics` (never used by the fit).
    early_stop : bool, optional
        Force the automatic stop on or off (default: the preset's choice).
    callbacks, progress
        Extra `dip.fit.Callback` objects; a progress bar on stderr (where stderr is not a
        terminal, a line through `logging` at most once a minute).
    restarts : int, optional
        Fit this many independently seeded networks (seeds seed, seed + 1, ...) and return the
        mean of their results (an ensemble); snapshots and metrics follow the first fit.
        Default: the preset's (1, or more for the `best` presets).
    batch : int or "auto"
        Fits of one size (restarts, tiles) run together, this many at a time, each with its own
        network and state (`dip.batched`); a fit that stops gives its place to the next one
        waiting. The same results, in less time where batching pays. "auto" sizes batches by
        the device (`dip.budget.batch_size`).
    workers : int or "auto"
        On a CPU, fits (restarts, tiles) run in this many processes at once, each on its share
        of the cores (`dip.workers`); "auto": one per core, as many as memory holds, where the
        fits are long enough to pay for starting them. 1 (the default) fits everything in this
        process: on the 2-core CPU two workers saved 18% at 128 px and nothing at 64 or 256 px
        (benchmarks/README.md). A fit followed by callbacks, snapshots or a checkpoint is made
        in this process.
    fits : path, optional
        A folder of saved fits (`dip.fitstore`): a fit made before with the same observation,
        problem, network and fit settings, seed, steps and arithmetic is read from it instead of
        made again, and each new fit is saved there, before the preset's refine step. To score
        another refine step, or a `best` ensemble, without fitting again. Fits followed by
        callbacks, snapshots or a reference are made, never read; `Restoration.losses` stays
        empty.
    save_every, snapshot_dir
        Keep the estimate every N steps: in `Restoration.frames`, as PNGs in `snapshot_dir`.
    tile, overlap, warm_tiles
        Restore tiles of `tile` observation pixels, blended over `overlap` pixels. Warm tiles
        (the default, where the fits stop at the noise level: denoising): the tile nearest the
        centre is fitted first and the others start from the weights it ended with, so they
        stop sooner; `warm_tiles=False` draws every tile's weights afresh (all tiles then fit
        at once where batches pay).
    checkpoint, checkpoint_every, resume
        Save the whole fitting state into the file `checkpoint` every N steps and on Ctrl-C or
        SIGTERM (`Interrupted` is raised then); `resume` continues it exactly. A checkpoint
        holds tensors and plain data only, and names the run it belongs to: resuming another
        is refused. It is removed once the run completes.
    report, overwrite
        Write an HTML report (process, curves, comparison with the baselines) into the folder
        `report`; `overwrite` allows replacing files in a non-empty folder.
    animation
        Save the restoration process as an animated picture, `.webp` or `.gif`, each frame
        labelled with its step (`overwrite` allows replacing a file).
    check_memory
        Estimate memory and time first; refuse a run that cannot fit, suggesting a tile size.

    Returns
    -------
    Restoration
        `.image` has the observation's layout; `.fit`, `.metrics`, `.frames` tell how it went.

    Examples
    --------
    >>> import numpy as np, dip
    >>> noisy = np.random.default_rng(0).random((32, 32, 3))
    >>> done = dip.run(dip.Denoising(sigma=25), noisy, steps=3, device="cpu")
    >>> done.image.shape, done.fit.steps_run
    ((32, 32, 3), 3)
    >>> dip.run(dip.Denoising(sigma=25), noisy, method="wavelet").image.shape
    (32, 32, 3)
    """
    started = time.perf_counter()
    given = _take(problem, observation, reference)
    if method != "dip":
        return _baseline_restoration(problem, given, method, started)
    arithmetic = (precision, channels_last, compile, deterministic, cuda_graph)
    settings = _settings(
        problem,
        given.shape,
        preset,
        steps,
        seed,
        device,
        arithmetic,
        early_stop,
        callbacks,
        progress,
        restarts,
        batch,
        fits,
        checkpointed=checkpoint is not None,
        workers=workers,
    )
    if settings.restarts > 1 and checkpoint is not None:
        raise DipError("an ensemble of restarts cannot be checkpointed: run it without a checkpoint")
    if fits is not None and checkpoint is not None:
        raise DipError("saved fits and a checkpoint cannot be combined: an interrupted fit is not one to keep")
    if tile:
        if not problem.tileable:
            raise DipError(f"{problem.name} cannot be restored in tiles")
        if report or save_every or checkpoint or animation or reference is not None:
            raise DipError(
                "tiling cannot be combined with a report, snapshots, an animation, a checkpoint or a reference"
            )
    if animation is not None:
        _check_animation(Path(animation), overwrite)
    if check_memory:
        _check_memory(settings.preset, given.shape, problem.scale, settings.device, tile, settings)

    if tile:
        done = fit_tiled(problem, given.pixels, dataclasses.replace(settings, warm_tiles=warm_tiles), tile, overlap)
        frames, losses = [], []
    else:
        history = LossHistory()
        snapshots = _snapshots(settings.config.steps, save_every, snapshot_dir, report, overwrite, animation)
        whole = join_channels(given.picture) if given.picture is not None else None  # alpha is part of the input
        saver = _checkpoint(problem, whole, settings, given.clean, checkpoint, checkpoint_every, resume)
        if fits is not None and saver is None and snapshots is None:
            history = None  # a saved fit has no loss history: without one the fit can be read
        recorders = [callback for callback in (saver, history, snapshots) if callback is not None]
        with saving_on_signals([saver] if saver else []):
            done = fit_all([Item(problem, given.pixels, seed, given.clean, recorders, problem.name)], settings)[0]
        if saver is not None:
            if saver.interrupted:
                raise Interrupted(done.fit.steps_run, saver.path)
            Path(saver.path).unlink(missing_ok=True)  # complete: nothing left to resume
        frames, losses = (snapshots.frames if snapshots else []), (history.history if history else [])
    result = _restoration(problem, given, done, settings, time.perf_counter() - started, frames, losses)
    if report:
        from .report import run_report, write_report

        result.report = write_report(report, run_report(result, given.pixels, given.clean, command))
    if animation is not None:
        from .report.animation import save_animation

        save_animation(frames, animation, settings.config.steps)
    return result


def run_many(
    problems: Sequence[Problem],
    observations: Sequence[np.ndarray | None],
    *,
    references: Sequence[np.ndarray | None] | None = None,
    method: str = "dip",
    preset: str | Preset = "default",
    steps: int | None = None,
    seed: int | Sequence[int] = 0,
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool | str = "auto",
    compile: bool | str = False,
    deterministic: bool = False,
    cuda_graph: bool | str = "auto",
    early_stop: bool | None = None,
    progress: bool = False,
    restarts: int | None = None,
    batch: int | str = "auto",
    workers: int | str = 1,
    fits: str | Path | None = None,
    check_memory: bool = True,
) -> list[Restoration]:
    """Restore several observations, each under its problem, with their fits run in batches.

    Each result is what `run(problem, observation, seed=seed, ...)` returns for that pair (to
    float rounding, which a fit amplifies: see `dip.batched`); problems whose fits share a
    size run as one batch. The options mean what they mean for `run`, and `seed` may give one
    seed per problem (the same observation under other seeds: independent fits of it);
    snapshots, reports, checkpoints and tiles are per image: use `run` for those.

    Examples
    --------
    >>> import numpy as np, dip
    >>> rng = np.random.default_rng(0)
    >>> noisy = [rng.random((32, 32, 3)) for _ in range(3)]
    >>> done = dip.run_many([dip.Denoising(25)] * 3, noisy, steps=3, device="cpu")
    >>> [r.image.shape for r in done], [r.fit.steps_run for r in done]
    ([(32, 32, 3), (32, 32, 3), (32, 32, 3)], [3, 3, 3])
    """
    started = time.perf_counter()
    if len(problems) != len(observations) or (references is not None and len(references) != len(problems)):
        raise DipError("give one observation (and one reference, if any) per problem")
    references = references if references is not None else [None] * len(problems)
    seeds = [seed] * len(problems) if isinstance(seed, int) else list(seed)
    if len(seeds) != len(problems):
        raise DipError(f"give one seed, or one per problem ({len(problems)}), not {len(seeds)}")
    given = [_take(*triple) for triple in zip(problems, observations, references)]
    if method != "dip":
        return [_baseline_restoration(p, g, method, started) for p, g in zip(problems, given)]
    arithmetic = (precision, channels_last, compile, deterministic, cuda_graph)
    settings = [
        _settings(
            p,
            g.shape,
            preset,
            steps,
            s,
            device,
            arithmetic,
            early_stop,
            (),
            progress,
            restarts,
            batch,
            fits,
            workers=workers,
        )
        for p, g, s in zip(problems, given, seeds)
    ]
    if check_memory:
        for p, g, s in zip(problems, given, settings):
            _check_memory(s.preset, g.shape, p.scale, s.device, None, s)
    by_preset: dict[str, list[int]] = {}
    for index, one in enumerate(settings):
        by_preset.setdefault(f"{one.preset.task}/{one.preset.name}", []).append(index)
    done: dict[int, Fitted] = {}
    for indices in by_preset.values():
        items = [
            Item(problems[i], given[i].pixels, seeds[i], given[i].clean, label=f"{problems[i].name} {i + 1}")
            for i in indices
        ]
        done.update(zip(indices, fit_all(items, settings[indices[0]])))
    seconds = (time.perf_counter() - started) / len(problems)  # the batch's time, shared out
    return [_restoration(p, g, done[i], settings[i], seconds) for i, (p, g) in enumerate(zip(problems, given))]


def _preset_for(problem: Problem, preset: str | Preset) -> Preset:
    """The preset a name means for this problem (its own rules: sigma 50, x8, ...), or the preset given."""
    return get_preset(problem.task, problem.preset_name(preset)) if isinstance(preset, str) else preset


def batch_size_for(
    problem: Problem,
    shape: tuple[int, ...],
    *,
    preset: str | Preset = "default",
    device: str = "auto",
    batch: int | str = "auto",
) -> int:
    """How many fits of `problem` on an observation of `shape` `run_many` makes at once."""
    if batch != "auto":
        return int(batch)
    from .budget import batch_size

    channels = shape[2] if len(shape) > 2 else 1
    colour = channels - 1 if has_alpha(channels) else channels
    height, width, channels = problem.output_shape((shape[0], shape[1], colour))
    chosen = _preset_for(problem, preset)
    canvas = padded_size(height, width, chosen.net.stride, chosen.net.min_size)
    return batch_size(chosen, canvas, channels, resolve_device(device))


@dataclass
class _Given:
    """An observation taken apart: colour and alpha, the result's shape, the checked reference."""

    picture: Picture | None
    pixels: np.ndarray | None
    shape: tuple[int, int, int]
    clean: np.ndarray | None
    flat: bool  # (H, W) in, (H, W) out


def _take(problem: Problem, observation: np.ndarray | None, reference: np.ndarray | None) -> _Given:
    picture = split_channels(observation) if observation is not None else None
    pixels = picture.pixels if picture is not None else None
    problem.check(pixels)
    shape = problem.output_shape(pixels.shape if pixels is not None else None)
    flat = observation is not None and np.ndim(observation) == 2
    return _Given(picture, pixels, shape, _reference(reference, shape), flat)


def _settings(
    problem: Problem,
    shape: tuple[int, int, int],
    preset: str | Preset,
    steps: int | None,
    seed: int,
    device: str,
    arithmetic: tuple[str, bool, bool | str, bool, bool | str],
    early_stop: bool | None,
    callbacks: Sequence[Callback],
    progress: bool,
    restarts: int | None,
    batch: int | str,
    fits: str | Path | None = None,
    checkpointed: bool = False,
    workers: int | str = 1,
) -> Settings:
    """The options of a run resolved (device, arithmetic, the problem's preset) and checked;
    `checkpointed`: the run saves checkpoints (also when a `Checkpoint` is among `callbacks`)."""
    dev = resolve_device(device)
    checkpointed = checkpointed or any(isinstance(c, Checkpoint) for c in callbacks)
    acceleration = Acceleration.resolve(dev, *arithmetic, checkpointed=checkpointed)
    chosen = _preset_for(problem, preset)
    check_size(shape[0], shape[1], chosen.net.stride)
    if batch != "auto" and (not isinstance(batch, int) or batch < 1):
        raise DipError(f"batch must be 'auto' or a whole number of at least 1, got {batch!r}")
    if workers != "auto" and (not isinstance(workers, int) or workers < 1):
        raise DipError(f"workers must be 'auto' or a whole number of at least 1, got {workers!r}")
    if workers != "auto" and workers > 1 and dev.type != "cpu":
        raise DipError(f"workers are processes on a CPU; on {dev.type} fits run in batches (batch=N)")
    restarts = chosen.restarts if restarts is None else restarts
    if restarts < 1:
        raise DipError(f"restarts must be at least 1, got {restarts}")
    store = FitStore(fits) if fits is not None else None
    settings = Settings(
        chosen, steps, seed, dev, acceleration, early_stop, callbacks, progress, restarts, batch, store, workers
    )
    if settings.config.steps < 1:
        raise DipError(f"steps must be at least 1, got {settings.config.steps}")
    return settings


def _baseline_restoration(problem: Problem, given: _Given, method: str, started: float) -> Restoration:
    restored = problem.finish(_baseline(problem, method, given.pixels), given.pixels)
    return Restoration(
        _assemble(restored, given.picture, given.flat, problem.keeps_alpha),
        method,
        problem,
        time.perf_counter() - started,
    )


def _restoration(
    problem: Problem,
    given: _Given,
    done: Fitted,
    settings: Settings,
    seconds: float,
    frames: list | None = None,
    losses: list | None = None,
) -> Restoration:
    restored = problem.finish(done.pixels, given.pixels)
    return Restoration(
        _assemble(restored, given.picture, given.flat, problem.keeps_alpha),
        "dip",
        problem,
        seconds,
        settings.preset,
        done.parameters,
        str(settings.device),
        done.fit,
        done.metrics,
        done.attempts,
        done.seed,
        frames=frames or [],
        losses=losses or [],
        refined=done.refined,
        fits_read=done.read,
        unrefined=(
            None
            if done.unrefined is None
            else _assemble(problem.finish(done.unrefined, given.pixels), given.picture, given.flat, problem.keeps_alpha)
        ),
    )


def _check_animation(path: Path, overwrite: bool) -> None:
    from .report.animation import FORMATS

    if path.suffix.lower().lstrip(".") not in FORMATS:
        raise DipError(f"an animation is a .webp or .gif file, not {path.name!r}")
    if not path.parent.is_dir():
        raise DipError(f"the animation's folder does not exist: {path.parent}")
    if path.exists() and not overwrite:
        raise DipError(f"{path} exists; choose another name or allow replacing it")


def _snapshots(
    steps: int,
    save_every: int | None,
    snapshot_dir: str | Path | None,
    report: str | Path | None,
    overwrite: bool,
    animation: str | Path | None = None,
) -> Snapshots | None:
    """Snapshots of the process: into REPORT/frames (about REPORT_FRAMES of them unless
    `save_every` says otherwise), into `snapshot_dir`, or kept in memory (for an animation)."""
    if not (report or save_every or animation):
        return None
    folder = Path(report) / "frames" if report else Path(snapshot_dir) if snapshot_dir is not None else None
    if report:
        _fresh_folder(Path(report), overwrite)
    if folder is not None:
        _fresh_folder(folder, overwrite)
    return Snapshots(save_every or math.ceil(steps / REPORT_FRAMES), folder)


def _checkpoint(
    problem: Problem,
    observation: np.ndarray | None,
    settings: Settings,
    clean: np.ndarray | None,
    path: str | Path | None,
    every: int,
    resume: bool,
) -> Checkpoint | None:
    """The run's checkpoint, bound to what the run is (see `fingerprint`)."""
    if path is None:
        if resume:
            raise DipError("resume needs a checkpoint file to continue from")
        return None
    return Checkpoint(Path(path), every=every, meta=fingerprint(problem, observation, settings, clean), resume=resume)


def _check_memory(
    preset: Preset, shape: tuple[int, int, int], scale: int, device: torch.device, tile: int | None, settings: Settings
) -> None:
    """Estimate memory and time (logged); refuse what cannot fit, with a tile size that can."""
    from .budget import check_fits

    height, width, channels = shape
    if tile:
        height, width = min(height, tile * scale), min(width, tile * scale)
    canvas = padded_size(height, width, preset.net.stride, preset.net.min_size)
    needed = check_fits(preset, canvas, channels, device, scale=scale, tile=tile)
    what = f"each {tile}px tile" if tile else "this run"
    log.info(
        "estimate: %s needs %s%s",
        what,
        needed.describe(settings.config.steps),
        " at most (it stops itself)" if stops(preset, settings.early_stop) else "",
    )
