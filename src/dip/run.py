"""`dip.run(problem, observation)`: everything a restoration can do, from Python.

The command line, the benchmarks and the task functions (`dip.denoise`, ...) are skins over
`run`: presets, device and arithmetic, the automatic stop, reference metrics, snapshots,
tiling of big images, checkpoints with resume, the HTML report and the memory check all live
here. The Deep Image Prior and the classical baselines share this one entry point, so a
comparison is a loop over methods.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .accel import Acceleration
from .callbacks import (
    Checkpoint,
    EarlyStopping,
    Frame,
    LossHistory,
    ProgressBar,
    ReferenceMetrics,
    Snapshots,
    to_numpy_image,
)
from .errors import DipError
from .fit import Callback, FitResult, fit
from .io import Picture, join_channels, split_channels
from .nets import count_parameters
from .nets.layers import center_crop_to
from .presets import Preset, StopRule, get_preset
from .problems import Problem, to_tensor

log = logging.getLogger("dip")

NOISE_SCALE = 0.1  # z ~ U[0, 1) * 0.1, as in the paper
REPORT_FRAMES = 50  # snapshots in a report when no interval is given
RESTARTS = 3  # runs of a problem whose watchdog finds a run stuck (flash / no-flash)


class Interrupted(DipError):
    """The run was interrupted (Ctrl-C, SIGTERM) and its state saved in its checkpoint."""

    def __init__(self, step: int, path: Path):
        super().__init__(f"interrupted at step {step}; state saved in {path}: run again with resume to continue")
        self.step, self.path = step, path


@dataclass
class Restoration:
    """A restored image and how it was made.

    `image` has the observation's layout: (H, W) in, (H, W) out; an alpha channel is carried
    over. `fit` is None for a classical method; for a tiled run it sums the tiles' steps."""

    image: np.ndarray
    method: str
    problem: Problem
    seconds: float
    preset: Preset | None = None
    parameters: int = 0
    device: str = "cpu"
    fit: FitResult | None = None
    metrics: ReferenceMetrics | None = None  # PSNR history and best, with a reference
    attempts: int = 1  # runs made (more than one when a stuck run was restarted)
    seed: int = 0
    frames: list[Frame] = field(default_factory=list)
    losses: list[tuple[int, float]] = field(default_factory=list)
    report: Path | None = None

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
        )


# -- the canvas the network works on ----------------------------------------------------------
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
    """The network's fixed input z at the padded `size`: uniform noise, a coordinate grid, or a
    guide image (reflect-padded)."""
    height, width = size
    if kind == "noise":
        return torch.rand(1, channels, height, width, generator=generator) * NOISE_SCALE
    if kind == "meshgrid":
        grid_y, grid_x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
        return torch.stack([grid_x, grid_y])[None]
    if kind == "image":
        if guide is None:
            raise DipError("this preset's network input is a guide image, and the problem has none")
        return pad_to(to_tensor(guide), size)
    raise ValueError(f"unknown input kind {kind!r}")


# -- one fit ----------------------------------------------------------------------------------
@dataclass
class _Settings:
    """The options of one `run` that every fit of it (each tile, each restart) shares."""

    preset: Preset
    steps: int | None
    seed: int
    device: torch.device
    acceleration: Acceleration
    early_stop: bool | None
    callbacks: Sequence[Callback] = ()
    progress: bool = False
    restarts: int = 1  # independent fits averaged

    @property
    def config(self):
        fit_config = self.preset.fit
        return fit_config if self.steps is None else dataclasses.replace(fit_config, steps=self.steps)


@dataclass
class _Fitted:
    pixels: np.ndarray  # float32 (H, W, C)
    fit: FitResult
    parameters: int
    metrics: ReferenceMetrics | None
    attempts: int = 1
    seed: int = 0


def stopping(preset: Preset, early_stop: bool | None, noise_variance: float | None) -> list[EarlyStopping]:
    """The automatic-stop callback a run gets: the preset's rule, on unless switched off; a preset
    without a rule (the paper's) gets the default rule when `early_stop` is asked for."""
    if early_stop is False or (early_stop is None and preset.stop is None):
        return []
    rule = preset.stop or StopRule()
    return [
        EarlyStopping(
            patience=rule.patience, warmup=rule.warmup, noise_variance=noise_variance if rule.discrepancy else None
        )
    ]


def _fit_once(
    problem: Problem,
    pixels: np.ndarray | None,
    settings: _Settings,
    seed: int,
    reference: np.ndarray | None,
    extra: Sequence[Callback],
    label: str,
) -> _Fitted:
    """Build the preset's network and input at a size it accepts, fit A(f(z)) to the
    observation, crop back to the image. Only the centre (the image) enters the loss."""
    preset, dev = settings.preset, settings.device
    height, width, channels = problem.output_shape(pixels.shape if pixels is not None else None)
    canvas = padded_size(height, width, preset.net.stride, preset.net.min_size)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = preset.net.build(preset.input_channels, channels)
    z = make_input(preset.input, preset.input_channels, canvas, generator, problem.guide())
    target = problem.target(pixels).to(dev)
    metrics = ReferenceMetrics(to_tensor(reference).to(dev)) if reference is not None else None
    noise_variance = problem.known_noise_variance(pixels) if pixels is not None else None
    callbacks = (
        ([metrics] if metrics else [])
        + stopping(preset, settings.early_stop, noise_variance)
        + list(extra)
        + list(settings.callbacks)
    )
    if settings.progress:
        callbacks.append(ProgressBar(label))
    result = fit(
        net.to(dev),
        z.to(dev),
        target,
        problem.build_operator().to(dev),
        settings.config,
        loss_fn=problem.loss,
        crop=lambda tensor: center_crop_to(tensor, height, width),
        generator=torch.Generator(device=dev).manual_seed(seed + 1),
        callbacks=callbacks,
        acceleration=settings.acceleration,
    )
    return _Fitted(to_numpy_image(result.image), result, count_parameters(net), metrics, seed=seed)


def _fit_watched(
    problem: Problem,
    pixels: np.ndarray | None,
    settings: _Settings,
    reference: np.ndarray | None = None,
    extra: Sequence[Callback] = (),
    label: str = "",
) -> _Fitted:
    """One fit, restarted with the next seed while the problem's watchdog finds it stuck."""
    steps = settings.config.steps
    for attempt in range(RESTARTS):
        watchdog = problem.watchdog(pixels, steps) if pixels is not None else None
        seed = settings.seed + attempt
        done = _fit_once(
            problem,
            pixels,
            settings,
            seed,
            reference,
            [*extra, *([watchdog] if watchdog else [])],
            label or problem.name,
        )
        done.attempts = attempt + 1
        if watchdog is None or not watchdog.stuck:
            return done
    raise DipError(
        f"{problem.name}: the fit got stuck in all {RESTARTS} attempts "
        f"(seeds {settings.seed}-{settings.seed + RESTARTS - 1})"
    )


def _fit(
    problem: Problem,
    pixels: np.ndarray | None,
    settings: _Settings,
    reference: np.ndarray | None = None,
    extra: Sequence[Callback] = (),
    label: str = "",
) -> _Fitted:
    """The mean of `settings.restarts` independent fits, seeded seed, seed + 1, ... (an ensemble:
    each fit's error is partly its own, so averaging removes some of it). The recorders in
    `extra` (and the reference metrics) follow the first fit; the step counts are summed."""
    first = _fit_watched(problem, pixels, settings, reference, extra, label)
    if settings.restarts == 1:
        return first
    runs = [first] + [
        _fit_watched(problem, pixels, dataclasses.replace(settings, seed=settings.seed + index), label=label)
        for index in range(1, settings.restarts)
    ]
    fit = dataclasses.replace(
        first.fit,
        steps_run=sum(run.fit.steps_run for run in runs),
        stop_reason=f"mean of {settings.restarts} fits (seeds {settings.seed}-{settings.seed + settings.restarts - 1}; "
        f"the first: {first.fit.stop_reason})",
    )
    return dataclasses.replace(first, pixels=np.mean([run.pixels for run in runs], axis=0, dtype=np.float32), fit=fit)


# -- options that need files ------------------------------------------------------------------
def _fresh_folder(folder: Path, overwrite: bool) -> Path:
    """A folder to write into: refused if it is a file, or holds files and `overwrite` is off."""
    if folder.exists() and not folder.is_dir():
        raise DipError(f"{folder} exists and is not a folder")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise DipError(f"folder {folder} exists and is not empty; allow replacing its files to use it")
    return folder


def fingerprint(
    problem: Problem, observation: np.ndarray | None, settings: _Settings, reference: np.ndarray | None
) -> dict:
    """What a checkpoint belongs to: the observation's pixels (SHA-256), the problem, the preset,
    seed, steps and every option that changes the result."""
    digest = (
        hashlib.sha256(np.ascontiguousarray(observation, dtype=np.float32).tobytes()).hexdigest()
        if observation is not None
        else None
    )
    return {
        "observation_sha256": digest,
        "shape": list(observation.shape) if observation is not None else None,
        "problem": problem.describe(),
        "preset": f"{settings.preset.task}/{settings.preset.name}",
        "seed": settings.seed,
        "steps": settings.config.steps,
        "early_stop": settings.early_stop,
        "arithmetic": settings.acceleration.describe(),
        "deterministic": settings.acceleration.deterministic,
        "reference": reference is not None,
    }


@contextlib.contextmanager
def _saving_on_signals(checkpoint: Checkpoint | None) -> Iterator[None]:
    """While fitting, Ctrl-C and SIGTERM ask the checkpoint to save and stop at the end of the step
    (main thread only: signals cannot be caught elsewhere)."""
    import signal
    import threading

    if checkpoint is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, checkpoint.request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


def _tiled(problem: Problem, pixels: np.ndarray, settings: _Settings, tile: int, overlap: int) -> _Fitted:
    """Restore tile by tile and blend (see `dip.tiling`); the fit result sums every tile's steps."""
    from .tiling import restore_tiled, tile_boxes

    boxes = tile_boxes(pixels.shape[0], pixels.shape[1], tile, overlap)
    done: list[_Fitted] = []

    def one(part: np.ndarray, box: tuple[int, int, int, int], index: int) -> np.ndarray:
        sub = problem.tile(box)
        if sub is None:
            return part  # nothing to do in this tile
        done.append(_fit(sub, part, settings, label=f"tile {index + 1}/{len(boxes)}"))
        return done[-1].pixels

    image = restore_tiled(pixels, one, tile, overlap, problem.scale)
    if not done:
        raise DipError(f"no tile of this image needs {problem.name}")
    last = done[-1]
    summed = dataclasses.replace(
        last.fit,
        steps_run=sum(d.fit.steps_run for d in done),
        stop_reason=f"{len(boxes)} tiles of up to {tile}px, {overlap}px overlap",
    )
    return dataclasses.replace(last, pixels=image, fit=summed)


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
    channels_last: bool = False,
    compile: bool = False,
    deterministic: bool = False,
    reference: np.ndarray | None = None,
    early_stop: bool | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    restarts: int = 1,
    save_every: int | None = None,
    snapshot_dir: str | Path | None = None,
    tile: int | None = None,
    overlap: int = 32,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    report: str | Path | None = None,
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
    steps, seed, device, precision, channels_last, compile, deterministic
        Step budget (default: the preset's), random seed, "auto"/"cpu"/"cuda", and how the
        arithmetic runs (see `dip.accel.Acceleration`).
    reference : ndarray, optional
        The clean image: PSNR is tracked in `Restoration.metrics` (never used by the fit).
    early_stop : bool, optional
        Force the automatic stop on or off (default: the preset's choice).
    callbacks, progress
        Extra `dip.fit.Callback` objects; a progress bar on stderr.
    restarts : int
        Fit this many independently seeded networks (seeds seed, seed + 1, ...) and return the
        mean of their results (an ensemble); snapshots and metrics follow the first fit.
    save_every, snapshot_dir
        Keep the estimate every N steps: in `Restoration.frames`, as PNGs in `snapshot_dir`.
    tile, overlap
        Restore tiles of `tile` observation pixels, blended over `overlap` pixels.
    checkpoint, checkpoint_every, resume
        Save the whole fitting state into the file `checkpoint` every N steps and on Ctrl-C or
        SIGTERM (`Interrupted` is raised then); `resume` continues it exactly. A checkpoint
        holds tensors and plain data only, and names the run it belongs to: resuming another
        is refused. It is removed once the run completes.
    report, overwrite
        Write an HTML report (process, curves, comparison with the baselines) into the folder
        `report`; `overwrite` allows replacing files in a non-empty folder.
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
    picture = split_channels(observation) if observation is not None else None
    pixels = picture.pixels if picture is not None else None
    problem.check(pixels)
    shape = problem.output_shape(pixels.shape if pixels is not None else None)
    clean = _reference(reference, shape)
    flat = observation is not None and np.ndim(observation) == 2
    if method != "dip":
        restored = problem.finish(_baseline(problem, method, pixels), pixels)
        return Restoration(
            _assemble(restored, picture, flat, problem.keeps_alpha), method, problem, time.perf_counter() - started
        )

    dev = resolve_device(device)
    acceleration = Acceleration.resolve(dev, precision, channels_last, compile, deterministic)
    chosen = get_preset(problem.task, problem.preset_name(preset)) if isinstance(preset, str) else preset
    check_size(shape[0], shape[1], chosen.net.stride)
    settings = _Settings(chosen, steps, seed, dev, acceleration, early_stop, callbacks, progress, restarts)
    if restarts < 1:
        raise DipError(f"restarts must be at least 1, got {restarts}")
    if restarts > 1 and checkpoint is not None:
        raise DipError("an ensemble of restarts cannot be checkpointed: run it without a checkpoint")
    if settings.config.steps < 1:
        raise DipError(f"steps must be at least 1, got {settings.config.steps}")
    if tile:
        if not problem.tileable:
            raise DipError(f"{problem.name} cannot be restored in tiles")
        if report or save_every or checkpoint or reference is not None:
            raise DipError("tiling cannot be combined with a report, snapshots, a checkpoint or a reference")
    if check_memory:
        _check_memory(chosen, shape, problem.scale, dev, tile, settings)

    if tile:
        done = _tiled(problem, pixels, settings, tile, overlap)
        frames, losses = [], []
    else:
        history = LossHistory()
        snapshots = _snapshots(settings.config.steps, save_every, snapshot_dir, report, overwrite)
        whole = join_channels(picture) if picture is not None else None  # alpha included: it is part of the input
        saver = _checkpoint(problem, whole, settings, clean, checkpoint, checkpoint_every, resume)
        recorders = [callback for callback in (saver, history, snapshots) if callback is not None]
        with _saving_on_signals(saver):
            done = _fit(problem, pixels, settings, clean, recorders)
        if saver is not None:
            if saver.interrupted:
                raise Interrupted(done.fit.steps_run, saver.path)
            Path(saver.path).unlink(missing_ok=True)  # complete: nothing left to resume
        frames, losses = (snapshots.frames if snapshots else []), history.history
    restored = problem.finish(done.pixels, pixels)
    result = Restoration(
        _assemble(restored, picture, flat, problem.keeps_alpha),
        "dip",
        problem,
        time.perf_counter() - started,
        chosen,
        done.parameters,
        str(dev),
        done.fit,
        done.metrics,
        done.attempts,
        done.seed,
        frames=frames,
        losses=losses,
    )
    if report:
        from .report import run_report, write_report

        result.report = write_report(report, run_report(result, pixels, clean, command))
    return result


def _snapshots(
    steps: int, save_every: int | None, snapshot_dir: str | Path | None, report: str | Path | None, overwrite: bool
) -> Snapshots | None:
    """Snapshots of the process: into REPORT/frames (about REPORT_FRAMES of them unless
    `save_every` says otherwise), into `snapshot_dir`, or kept in memory."""
    if not (report or save_every):
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
    settings: _Settings,
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
    preset: Preset, shape: tuple[int, int, int], scale: int, device: torch.device, tile: int | None, settings: _Settings
) -> None:
    """Estimate memory and time (logged); refuse what cannot fit, with a tile size that can."""
    from .budget import check_fits

    height, width, channels = shape
    if tile:
        height, width = min(height, tile * scale), min(width, tile * scale)
    canvas = padded_size(height, width, preset.net.stride, preset.net.min_size)
    needed = check_fits(preset, canvas, channels, device, scale=scale, tile=tile)
    what = f"each {tile}px tile" if tile else "this run"
    stops = preset.stop is not None and settings.early_stop is not False
    log.info(
        "estimate: %s needs %s%s",
        what,
        needed.describe(settings.config.steps),
        " at most (it stops itself)" if stops else "",
    )
