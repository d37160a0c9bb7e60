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
import functools
import hashlib
import logging
import math
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .accel import Acceleration
from .batched import Member, fit_batch
from .callbacks import (
    Checkpoint,
    EarlyStopping,
    FitCounter,
    Frame,
    LossHistory,
    ProgressBar,
    ReferenceMetrics,
    Snapshots,
    to_numpy_image,
)
from .errors import DipError
from .fit import Callback, FitResult
from .fitstore import FitStore, SavedFit, fit_key
from .io import Picture, has_alpha, join_channels, split_channels
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
    over. `fit` is None for a classical method; for a tiled run it sums the tiles' steps. Where
    the preset refines each fit with its problem's classical step (`refined`), `unrefined` is
    what the fits gave without it, to compare or to keep instead."""

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


# -- fits ---------------------------------------------------------------------------------------
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
    batch: int | str = "auto"  # fits of one size run together (`dip.batched`); "auto": `budget.batch_size`
    fits: FitStore | None = None  # saved fits to read instead of fitting, and to save new fits in
    workers: int | str = 1  # processes that fit at once on a CPU (`dip.workers`); "auto": one per core
    warm_tiles: bool = True  # tiles start from the weights of a fitted tile (`_tiled`)

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
    refined: bool = False  # the problem's classical last step ran on it (`Preset.refine`)
    unrefined: np.ndarray | None = None  # where `refined`: the pixels before that step
    read: int = 0  # fits read from a fit store (`FitStore`) rather than made
    weights: tuple[dict[str, torch.Tensor], ...] = ()  # where the item asked to `keep` them: each fit's, at its end


@dataclass
class _Item:
    """One fit to make: a problem, its observation and seed, and the callbacks that follow it;
    `start`: the weights its network starts from, one set per restart (none: drawn from the
    seed); `keep`: return the weights each fit ends with."""

    problem: Problem
    pixels: np.ndarray | None
    seed: int
    reference: np.ndarray | None = None
    extra: Sequence[Callback] = ()
    label: str = ""
    start: tuple[dict[str, torch.Tensor], ...] = ()
    keep: bool = False


@dataclass
class _Prepared:
    member: Member
    parameters: int
    metrics: ReferenceMetrics | None
    watchdog: Callback | None
    shape: tuple  # fits of one shape (canvas, input and output channels) can share a batch


def stops(preset: Preset, early_stop: bool | None) -> bool:
    """Whether a run stops itself: the preset's rule, on unless switched off; a preset without a
    rule (the paper's) stops when `early_stop` is asked for."""
    return early_stop is True or (early_stop is None and preset.stop is not None)


def stopping(
    preset: Preset,
    early_stop: bool | None,
    noise_variance: float | None,
    held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[EarlyStopping]:
    """The automatic-stop callback a run gets (see `stops`), with the preset's rule or the default
    one: the discrepancy rule where the noise level is known, the held-out pixels where some were
    left out of the fit, else the variance of the outputs."""
    if not stops(preset, early_stop):
        return []
    rule = preset.stop or StopRule()
    return [
        EarlyStopping(
            patience=rule.patience,
            warmup=rule.warmup,
            noise_variance=noise_variance if rule.discrepancy else None,
            held_out=held_out,
        )
    ]


def _canvas(item: _Item, preset: Preset) -> tuple[tuple[int, int], int]:
    """The network's canvas for an item (its result's size, padded to what the network accepts)
    and the result's channels."""
    pixels = item.pixels
    height, width, channels = item.problem.output_shape(pixels.shape if pixels is not None else None)
    return padded_size(height, width, preset.net.stride, preset.net.min_size), channels


def _prepare(item: _Item, settings: _Settings) -> _Prepared:
    """Build the preset's network and input at a size it accepts, the target, operator and
    callbacks of one fit. Only the centre (the image) enters the loss."""
    preset, dev, problem, pixels = settings.preset, settings.device, item.problem, item.pixels
    height, width, channels = problem.output_shape(pixels.shape if pixels is not None else None)
    canvas = padded_size(height, width, preset.net.stride, preset.net.min_size)
    generator = torch.Generator().manual_seed(item.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(item.seed)
        net = preset.net.build(preset.input_channels, channels)
    if item.start:
        net.load_state_dict(item.start[0])
    z = make_input(preset.input, preset.input_channels, canvas, generator, problem.guide())
    metrics = ReferenceMetrics(to_tensor(item.reference).to(dev)) if item.reference is not None else None
    noise_variance = problem.known_noise_variance(pixels) if pixels is not None else None
    watchdog = problem.watchdog(pixels, settings.config.steps) if pixels is not None else None
    fitted, held_out = problem, None
    watched = stops(preset, settings.early_stop) and noise_variance is None and pixels is not None
    split = problem.held_out(pixels, item.seed) if watched else None
    if split is not None:
        fitted, where = split
        held_out = (to_tensor(where).to(dev), to_tensor(pixels).to(dev))
    callbacks = (
        ([metrics] if metrics else [])
        + stopping(preset, settings.early_stop, noise_variance, held_out)
        + list(item.extra)
        + ([watchdog] if watchdog else [])
        + list(settings.callbacks)
    )
    member = Member(
        net.to(dev),
        z.to(dev),
        fitted.target(pixels).to(dev),
        fitted.build_operator().to(dev),
        torch.Generator(device=dev).manual_seed(item.seed + 1),
        problem.loss,
        lambda tensor: center_crop_to(tensor, height, width),
        callbacks,
    )
    return _Prepared(member, count_parameters(net), metrics, watchdog, (canvas, z.shape[1], channels))


def _groups(prepared: list[_Prepared], settings: _Settings) -> list[tuple[list[int], int]]:
    """The fits' indices by shape, each group with how many of its fits run at once
    (`settings.batch`; a fit that stops gives its place to the next)."""
    from .budget import batch_size

    by_shape: dict[tuple, list[int]] = {}
    for index, one in enumerate(prepared):
        by_shape.setdefault(one.shape, []).append(index)
    groups = []
    for (canvas, _, channels), indices in by_shape.items():
        size = settings.batch
        if size == "auto":
            size = batch_size(settings.preset, canvas, channels, settings.device)
        groups.append((indices, min(size, len(indices))))
    return groups


def _progress(items: list[_Item], group: list[int], places: int) -> tuple[str, list[Callback]]:
    """What a group of fits is called in the log, and each fit's progress display: one bar of
    steps for fits that run together, a bar each for fits that run one after another, a bar of
    fits done for a queue through several places."""
    labels = [items[i].label or items[i].problem.name for i in group]
    if len(group) == 1:
        return labels[0], [ProgressBar(labels[0])]
    name = f"{labels[0]} and {len(group) - 1} more" + (f", {places} at a time" if len(group) > places else "")
    if places == 1:
        return name, [ProgressBar(label) for label in labels]
    shared = ProgressBar(name) if len(group) <= places else FitCounter(name, len(group))
    return name, [shared] * len(group)


Judged = Callable[[int, _Fitted, Callback | None], None]  # (item's index, its fit, its watchdog)


def _fit_items(items: list[_Item], settings: _Settings, on_fitted: Judged) -> None:
    """One fit of each item; `on_fitted` gets each, with the watchdog that judged it, as it ends.
    On a CPU with cores to share, fits run in worker processes (`_fit_with_workers`), else here
    (`_fit_here`)."""
    here, away, processes = _placed(items, settings)
    if processes > 1:
        _fit_with_workers(items, here, away, processes, settings, on_fitted)
    else:
        _fit_here(items, settings, on_fitted)


def _placed(items: list[_Item], settings: _Settings) -> tuple[list[int], list[int], int]:
    """(items fitted in this process, items sent to workers, processes in all). Fits followed by
    callbacks stay here (theirs follow them here), so do all where the device is not a CPU, the
    problem cannot be sent to another process (an operator given as a lambda), or the settings
    ask for one process or for fused batches (`batch` > 1); "auto" sends none where the fits
    would take less than `dip.workers.WORTH_SECONDS` at most (their step caps)."""
    everything = list(range(len(items)))
    if settings.device.type != "cpu" or settings.workers == 1 or settings.callbacks or len(items) < 2:
        return everything, [], 1
    if settings.workers == "auto" and settings.batch != "auto" and settings.batch > 1:
        return everything, [], 1
    here = [i for i, item in enumerate(items) if item.extra]
    away = [i for i, item in enumerate(items) if not item.extra]
    if not away or not _sendable([items[i].problem for i in away]):
        return everything, [], 1
    processes = settings.workers
    if processes == "auto":
        from .budget import available, estimate, worker_count
        from .workers import WORTH_SECONDS, may_spawn, usable_cores

        canvases = [_canvas(item, settings.preset) for item in items]
        canvas = max((c for c, _ in canvases), key=lambda c: c[0] * c[1])
        channels = canvases[0][1]
        step = estimate(settings.preset, canvas, channels, settings.device).seconds_per_step
        if not may_spawn() or step * settings.config.steps * len(items) < WORTH_SECONDS:
            return everything, [], 1
        processes = worker_count(
            settings.preset, canvas, channels, len(items), usable_cores(), available(settings.device)
        )
    processes = min(processes, len(items))
    return (here, away, processes) if processes > 1 else (everything, [], 1)


def _sendable(problems: list[Problem]) -> bool:
    """Whether a worker process can rebuild these problems: they pickle, and their classes are
    importable there (not defined in the script that runs)."""
    if any(type(problem).__module__ == "__main__" for problem in problems):
        return False
    try:
        pickle.dumps(problems)
        return True
    except (pickle.PicklingError, AttributeError, TypeError):
        return False


@dataclass
class _Verdict:
    """A worker's watchdog, as the fit's judge sees it here."""

    stuck: bool


def _fit_away(item: _Item, settings: _Settings) -> tuple[_Fitted, bool]:
    """One fit in a worker process: the fit, and whether its watchdog found it stuck."""
    ended: list[tuple[_Fitted, bool]] = []
    _fit_here([item], settings, lambda _, fitted, watchdog: ended.append((fitted, bool(watchdog and watchdog.stuck))))
    return ended[0]


def _fit_with_workers(
    items: list[_Item], here: list[int], away: list[int], processes: int, settings: _Settings, on_fitted: Judged
) -> None:
    """The `away` items fitted in worker processes (`dip.workers`), the `here` ones (followed by
    callbacks) in this process meanwhile, each process on its share of the cores."""
    from .workers import Spread, threads_per_worker

    started = time.perf_counter()
    alone = dataclasses.replace(settings, callbacks=(), progress=False, fits=None, workers=1)
    counter = FitCounter(f"{len(items)} fits in {processes} processes", len(items)) if settings.progress else None
    if settings.progress:
        log.info("%d fits in %d processes, %d threads each", len(items), processes, threads_per_worker(processes))
    results: list[FitResult] = []

    def ended(index: int, fitted: _Fitted, watchdog: Callback | None) -> None:
        results.append(fitted.fit)
        if counter is not None:
            counter.ended(fitted.fit.steps_run)
        on_fitted(index, fitted, watchdog)

    tasks = [(dataclasses.replace(items[i], extra=(), label=""), alone) for i in away]
    with Spread(_fit_away, tasks, processes - 1 if here else processes) as spread:
        if here:
            with _torch_threads(threads_per_worker(processes)):
                mine = dataclasses.replace(settings, progress=False, workers=1)
                _fit_here([items[i] for i in here], mine, lambda p, fitted, w: ended(here[p], fitted, w))
        for position, (fitted, stuck) in spread:
            ended(away[position], fitted, _Verdict(True) if stuck else None)
    if settings.progress:
        log.info("%s", _batch_summary(results, time.perf_counter() - started))


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Torch's thread count for this process, for a while."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_here(items: list[_Item], settings: _Settings, on_fitted: Judged) -> None:
    """One fit of each item in this process (fits of one shape together, as many at once as the
    batch allows); `on_fitted` gets each, with the watchdog that judged it, as it ends."""
    prepared = [_prepare(item, settings) for item in items]

    def ended(group: list[int], position: int, result: FitResult) -> None:
        index = group[position]
        one = prepared[index]
        weights = (_copied(one.member.net.state_dict()),) if items[index].keep else ()
        done = _Fitted(
            to_numpy_image(result.image), result, one.parameters, one.metrics, seed=items[index].seed, weights=weights
        )
        on_fitted(index, done, one.watchdog)

    groups = _groups(prepared, settings)
    for number, (group, places) in enumerate(groups, 1):
        members = [prepared[i].member for i in group]
        told = settings.progress and (len(groups) > 1 or len(group) > places)  # a log, a pipe: no bar shows
        if settings.progress:
            name, shown = _progress(items, group, places)
            for member, callback in zip(members, shown):
                member.callbacks.append(callback)
            if told:
                log.info("batch %d/%d: %s", number, len(groups), name)
        started = time.perf_counter()
        fitted = fit_batch(
            members, settings.config, settings.acceleration, slots=places, on_result=functools.partial(ended, group)
        )
        if told:
            log.info("batch %d/%d: %s", number, len(groups), _batch_summary(fitted, time.perf_counter() - started))


def _copied(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict on the CPU, apart from the network it was read from (to send, to start from)."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in weights.items()}


def _batch_summary(results: list[FitResult], seconds: float) -> str:
    """'16 fits, 2210-8000 steps (mean 3480), 37 s': how a group's stops spread, for the log."""
    steps = [r.steps_run for r in results]
    if len(steps) == 1:
        return f"1 fit, {steps[0]} steps, {seconds:.0f} s"
    if len(set(steps)) == 1:
        return f"{len(steps)} fits, {steps[0]} steps each, {seconds:.0f} s"
    mean = sum(steps) / len(steps)
    return f"{len(steps)} fits, {min(steps)}-{max(steps)} steps (mean {mean:.0f}), {seconds:.0f} s"


def _fit_watched(
    items: list[_Item], settings: _Settings, on_done: Callable[[int, _Fitted], None] | None = None
) -> list[_Fitted]:
    """One fit of each item; a fit its problem's watchdog finds stuck is made again with the next
    seed, up to RESTARTS attempts. `on_done(index, fit)` hears of each good fit as it ends."""
    done: list[_Fitted | None] = [None] * len(items)
    pending = list(range(len(items)))
    for attempt in range(RESTARTS):
        tries = [dataclasses.replace(items[i], seed=items[i].seed + attempt) for i in pending]

        def judged(position: int, fitted: _Fitted, watchdog: Callback | None, attempt=attempt, tried=tuple(pending)):
            if watchdog is None or not watchdog.stuck:
                fitted.attempts = attempt + 1
                done[tried[position]] = fitted
                if on_done is not None:
                    on_done(tried[position], fitted)

        _fit_items(tries, settings, judged)
        pending = [index for index in pending if done[index] is None]
        if not pending:
            return done
    item = items[pending[0]]
    raise DipError(
        f"{item.problem.name}: the fit got stuck in all {RESTARTS} attempts "
        f"(seeds {item.seed}-{item.seed + RESTARTS - 1})"
    )


def _fit_all(items: list[_Item], settings: _Settings) -> list[_Fitted]:
    """Each item restored as the mean of `settings.restarts` independent fits, seeded seed,
    seed + 1, ... (an ensemble: each fit's error is partly its own, so averaging removes some of
    it), all fits made in batches. The callbacks in `extra` (and the reference metrics) follow
    the first fit of each item; the step counts are summed. Where the preset asks for it, each
    fit is refined by its problem (`Problem.refined`) before the mean: an ensemble averages, and
    tiles blend, the results a lone fit would give."""
    count = settings.restarts
    seeded = [_restart(item, index) for item in items for index in range(count)]
    runs = [_refined(item, run, settings) for item, run in zip(seeded, _fit_stored(seeded, settings))]
    return [_mean(runs[start : start + count], settings) for start in range(0, len(runs), count)]


def _restart(item: _Item, index: int) -> _Item:
    """Fit `index` of an item's ensemble: seeded seed + index, from its own starting weights; the
    callbacks and the reference follow the first fit only."""
    start = item.start[index : index + 1]
    if index == 0:
        return dataclasses.replace(item, start=start)
    return dataclasses.replace(item, seed=item.seed + index, reference=None, extra=(), start=start)


def _fit_stored(items: list[_Item], settings: _Settings) -> list[_Fitted]:
    """One fit of each item, read from the settings' fit store where it holds one and nothing
    follows the fit (callbacks, reference metrics), made and saved there where not. Fits that
    start from other fits' weights, or keep theirs (warm tiles), pass the store by."""
    store = settings.fits
    if store is None or any(item.start or item.keep for item in items):
        return _fit_watched(items, settings)
    keys = [
        fit_key(
            fingerprint(item.problem, item.pixels, dataclasses.replace(settings, seed=item.seed), None),
            item.problem,
            settings.preset,
        )
        for item in items
    ]
    followed = bool(settings.callbacks)
    done = [
        None if followed or item.extra or item.reference is not None else _from_store(store.load(key), item.seed)
        for item, key in zip(items, keys)
    ]
    missing = [index for index, fitted in enumerate(done) if fitted is None]

    def save(position: int, fitted: _Fitted) -> None:  # as each fit ends: a stopped run keeps those made
        store.save(keys[missing[position]], SavedFit(fitted.pixels, fitted.fit, fitted.parameters, fitted.attempts))
        done[missing[position]] = fitted

    _fit_watched([items[i] for i in missing], settings, save)
    return done


def _from_store(saved: SavedFit | None, seed: int) -> _Fitted | None:
    if saved is None:
        return None
    return _Fitted(saved.pixels, saved.fit, saved.parameters, None, saved.attempts, seed + saved.attempts - 1, read=1)


def _refined(item: _Item, run: _Fitted, settings: _Settings) -> _Fitted:
    if not settings.preset.refine:
        return run
    pixels = item.problem.refined(run.pixels, item.pixels, device=settings.device)
    return run if pixels is run.pixels else dataclasses.replace(run, pixels=pixels, refined=True, unrefined=run.pixels)


def _mean(runs: list[_Fitted], settings: _Settings) -> _Fitted:
    first = runs[0]
    if len(runs) == 1:
        return first
    fit = dataclasses.replace(
        first.fit,
        steps_run=sum(run.fit.steps_run for run in runs),
        stop_reason=f"mean of {len(runs)} fits (seeds {first.seed}-{first.seed + len(runs) - 1}; "
        f"the first: {first.fit.stop_reason})",
    )
    unrefined = None if first.unrefined is None else _average([run.unrefined for run in runs])
    read = sum(run.read for run in runs)
    weights = tuple(weight for run in runs for weight in run.weights)
    return dataclasses.replace(
        first, pixels=_average([run.pixels for run in runs]), fit=fit, unrefined=unrefined, read=read, weights=weights
    )


def _average(images: list[np.ndarray]) -> np.ndarray:
    return np.mean(images, axis=0, dtype=np.float32)


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
    """Restore tile by tile (the tiles' fits in batches) and blend (see `dip.tiling`); the fit
    result sums every tile's steps."""
    from .tiling import restore_tiled, tile_boxes

    boxes = tile_boxes(pixels.shape[0], pixels.shape[1], tile, overlap)
    items = {
        index: _Item(sub, pixels[top : top + h, left : left + w], settings.seed, label=f"tile {index + 1}/{len(boxes)}")
        for index, (top, left, h, w) in enumerate(boxes)
        if (sub := problem.tile((top, left, h, w))) is not None  # None: nothing to do in this tile
    }
    if not items:
        raise DipError(f"no tile of this image needs {problem.name}")
    done = _fit_tiles(items, boxes, pixels.shape, settings)

    def blended(result: Callable[[_Fitted], np.ndarray]) -> np.ndarray:
        def part_of(part: np.ndarray, box: tuple, index: int) -> np.ndarray:
            return result(done[index]) if index in done else part

        return restore_tiled(pixels, part_of, tile, overlap, problem.scale)

    image = blended(lambda fitted: fitted.pixels)
    refined = all(fitted.refined for fitted in done.values())
    unrefined = blended(lambda fitted: fitted.unrefined) if refined else None
    last = done[max(done)]
    summed = dataclasses.replace(
        last.fit,
        steps_run=sum(d.fit.steps_run for d in done.values()),
        stop_reason=f"{len(boxes)} tiles of up to {tile}px, {overlap}px overlap",
    )
    read = sum(fitted.read for fitted in done.values())
    return dataclasses.replace(last, pixels=image, fit=summed, refined=refined, unrefined=unrefined, read=read)


def _fit_tiles(
    items: dict[int, _Item], boxes: list[tuple[int, int, int, int]], shape: tuple, settings: _Settings
) -> dict[int, _Fitted]:
    """Each tile's fit, by the tile's index. Warm (`settings.warm_tiles`, where the fits stop
    at the observation's noise level): the tile nearest the image's centre is fitted first, and
    every other tile's network starts from the weights that fit ended with (restart k's from
    restart k's), Adam starting afresh. The parts of one photo share colours, textures and
    noise, so a started fit reaches that level sooner (benchmarks/README.md, "Warm tiles").
    Elsewhere tiles start cold: a fit of a fixed number of steps would gain nothing and fit
    further into the noise, and super-resolution's fits ran to their cap warm or cold. Cold:
    every tile from weights drawn from the seed, all in batches."""
    centre = (shape[0] / 2, shape[1] / 2)
    source = min(items, key=lambda i: math.dist(_box_centre(boxes[i]), centre))
    first = items[source]
    warm = (
        settings.warm_tiles
        and len(items) > 1
        and stops(settings.preset, settings.early_stop)
        and first.problem.known_noise_variance(first.pixels) is not None  # the stop is at the noise level
    )
    if not warm:
        return dict(zip(items, _fit_all(list(items.values()), settings)))
    [centred] = _fit_all([dataclasses.replace(first, keep=True)], settings)
    others = [index for index in items if index != source]
    started = [dataclasses.replace(items[index], start=centred.weights) for index in others]
    done = dict(zip(others, _fit_all(started, settings)))
    done[source] = dataclasses.replace(centred, weights=())
    return dict(sorted(done.items()))


def _box_centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    top, left, height, width = box
    return top + height / 2, left + width / 2


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
        for canvases from 128x128, where it measured faster; `cuda_graph`: `dip.graphed`,
        "auto": on CUDA, unless fp16, a compile mode or a checkpoint needs the plain loop).
    reference : ndarray, optional
        The clean image: PSNR is tracked in `Restoration.metrics` (never used by the fit).
    early_stop : bool, optional
        Force the automatic stop on or off (default: the preset's choice).
    callbacks, progress
        Extra `dip.fit.Callback` objects; a progress bar on stderr.
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
        done = _tiled(problem, given.pixels, dataclasses.replace(settings, warm_tiles=warm_tiles), tile, overlap)
        frames, losses = [], []
    else:
        history = LossHistory()
        snapshots = _snapshots(settings.config.steps, save_every, snapshot_dir, report, overwrite, animation)
        whole = join_channels(given.picture) if given.picture is not None else None  # alpha is part of the input
        saver = _checkpoint(problem, whole, settings, given.clean, checkpoint, checkpoint_every, resume)
        if fits is not None and saver is None and snapshots is None:
            history = None  # a saved fit has no loss history: without one the fit can be read
        recorders = [callback for callback in (saver, history, snapshots) if callback is not None]
        with _saving_on_signals(saver):
            done = _fit_all([_Item(problem, given.pixels, seed, given.clean, recorders, problem.name)], settings)[0]
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
    done: dict[int, _Fitted] = {}
    for indices in by_preset.values():
        items = [
            _Item(problems[i], given[i].pixels, seeds[i], given[i].clean, label=f"{problems[i].name} {i + 1}")
            for i in indices
        ]
        done.update(zip(indices, _fit_all(items, settings[indices[0]])))
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
) -> _Settings:
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
    settings = _Settings(
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
    done: _Fitted,
    settings: _Settings,
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
