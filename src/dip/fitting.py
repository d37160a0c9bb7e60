"""How a run's fits are made: each item (an image, a tile, a restart) prepared as a network, its
input and target; fits of one shape fitted together (`dip.batched`) or in worker processes
(`dip.workers`); a fit its problem's watchdog finds stuck made again; fits read from and saved
to a fit store (`dip.fitstore`); restarts averaged and refined; big images fitted tile by tile.
`dip.run` builds the `Settings` and `Item`s and turns the `Fitted` results into a
`Restoration`.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .accel import Acceleration
from .batched import Member, fit_batch
from .callbacks import (
    Checkpoint,
    EarlyStopping,
    FitCounter,
    ProgressBar,
    ReferenceMetrics,
    saving_on_signals,
    to_numpy_image,
)
from .canvas import make_input, padded_size
from .errors import DipError
from .fit import Callback, FitResult
from .fitstore import UNFINISHED_SAVE_SECONDS, FitStore, SavedFit, fit_key
from .nets import count_parameters
from .nets.layers import center_crop_to
from .presets import Preset, StopRule
from .problems import Problem, to_tensor
from .tiling import restore_tiled, tile_boxes

log = logging.getLogger("dip")

RESTARTS = 3  # runs of a problem whose watchdog finds a run stuck (flash / no-flash)


@dataclass
class Settings:
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
    warm_tiles: bool = True  # tiles start from the weights of a fitted tile (`fit_tiled`)

    @property
    def config(self):
        fit_config = self.preset.fit
        return fit_config if self.steps is None else dataclasses.replace(fit_config, steps=self.steps)


@dataclass
class Fitted:
    """What the fits of one item made: its pixels and how its (first) fit ended, with what a
    `Restoration` reports of it."""

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
class Item:
    """One fit to make: a problem, its observation and seed, and the callbacks that follow it;
    `start`: the weights its network starts from, one set per restart (none: drawn from the
    seed); `keep`: return the weights each fit ends with; `unfinished`: where the fit keeps its
    state as it runs, and continues from (a fit store's, `FitStore.unfinished`)."""

    problem: Problem
    pixels: np.ndarray | None
    seed: int
    reference: np.ndarray | None = None
    extra: Sequence[Callback] = ()
    label: str = ""
    start: tuple[dict[str, torch.Tensor], ...] = ()
    keep: bool = False
    unfinished: Path | None = None


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


def _canvas(item: Item, preset: Preset) -> tuple[tuple[int, int], int]:
    """The network's canvas for an item (its result's size, padded to what the network accepts)
    and the result's channels."""
    pixels = item.pixels
    height, width, channels = item.problem.output_shape(pixels.shape if pixels is not None else None)
    return padded_size(height, width, preset.net.stride, preset.net.min_size), channels


def _prepare(item: Item, settings: Settings) -> _Prepared:
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
    stopped = stops(preset, settings.early_stop) and pixels is not None
    noise_variance = problem.known_noise_variance(pixels) if stopped else None
    watchdog = problem.watchdog(pixels, settings.config.steps) if pixels is not None else None
    fitted, held_out = problem, None
    watched = stopped and noise_variance is None
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


def _groups(prepared: list[_Prepared], settings: Settings) -> list[tuple[list[int], int]]:
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


def _progress(items: list[Item], group: list[int], places: int) -> tuple[str, list[Callback]]:
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


Judged = Callable[[int, Fitted, Callback | None], None]  # (item's index, its fit, its watchdog)


def _fit_items(items: list[Item], settings: Settings, on_fitted: Judged) -> None:
    """One fit of each item; `on_fitted` gets each, with the watchdog that judged it, as it ends.
    On a CPU with cores to share, fits run in worker processes (`_fit_with_workers`), else here
    (`_fit_here`)."""
    here, away, processes = _placed(items, settings)
    if processes > 1:
        _fit_with_workers(items, here, away, processes, settings, on_fitted)
    else:
        _fit_here(items, settings, on_fitted)


def _placed(items: list[Item], settings: Settings) -> tuple[list[int], list[int], int]:
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


def _fit_away(item: Item, settings: Settings) -> tuple[Fitted, bool]:
    """One fit in a worker process: the fit, and whether its watchdog found it stuck."""
    ended: list[tuple[Fitted, bool]] = []
    _fit_here([item], settings, lambda _, fitted, watchdog: ended.append((fitted, bool(watchdog and watchdog.stuck))))
    return ended[0]


def _fit_with_workers(
    items: list[Item], here: list[int], away: list[int], processes: int, settings: Settings, on_fitted: Judged
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

    def ended(index: int, fitted: Fitted, watchdog: Callback | None) -> None:
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
        log.info("%s", batch_summary(results, time.perf_counter() - started))


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Torch's thread count for this process, for a while."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_here(items: list[Item], settings: Settings, on_fitted: Judged) -> None:
    """One fit of each item in this process (fits of one shape together, as many at once as the
    batch allows); `on_fitted` gets each, with the watchdog that judged it, as it ends."""
    prepared = [_prepare(item, settings) for item in items]

    savers: dict[int, Checkpoint] = {}

    def ended(group: list[int], position: int, result: FitResult) -> None:
        index = group[position]
        if index in savers and savers[index].interrupted:  # a stopped fit is kept as its state, never as a fit
            raise KeyboardInterrupt
        one = prepared[index]
        weights = (_copied(one.member.net.state_dict()),) if items[index].keep else ()
        done = Fitted(
            to_numpy_image(result.image), result, one.parameters, one.metrics, seed=items[index].seed, weights=weights
        )
        on_fitted(index, done, one.watchdog)

    groups = _groups(prepared, settings)
    for number, (group, places) in enumerate(groups, 1):
        members = [prepared[i].member for i in group]
        if places == 1 and not settings.acceleration.cuda_graph:  # the plain loop, one fit at a time
            for index, member in zip(group, members):
                saver = _resumable(items[index], settings)
                if saver is not None:
                    savers[index] = saver
                    member.callbacks.append(saver)  # before the progress displays, which keep no state
        told = settings.progress and (len(groups) > 1 or len(group) > places)  # a log, a pipe: no bar shows
        if settings.progress:
            name, shown = _progress(items, group, places)
            for member, callback in zip(members, shown):
                member.callbacks.append(callback)
            if told:
                log.info("batch %d/%d: %s", number, len(groups), name)
        started = time.perf_counter()
        listening = [savers[index] for index in group if index in savers]
        with saving_on_signals(listening):  # Ctrl-C, SIGTERM: the fit saves its state at that step
            fitted = fit_batch(
                members, settings.config, settings.acceleration, slots=places, on_result=functools.partial(ended, group)
            )
        if any(saver.requested for saver in listening):  # asked between two fits' steps
            raise KeyboardInterrupt
        if told:
            log.info("batch %d/%d: %s", number, len(groups), batch_summary(fitted, time.perf_counter() - started))


def _resumable(item: Item, settings: Settings) -> Checkpoint | None:
    """Where an item names a place for its unfinished fit, the checkpoint that keeps the fit's
    state there as it runs, continuing it from there when a state was kept before. The state
    belongs to the fit the store's key names (so `best` continues a fit `default` began); one
    that cannot be continued (unreadable, or another fit's) is a stale cache: dropped, with a
    warning, and the fit starts afresh."""
    path = item.unfinished
    if path is None:
        return None
    name = item.label or item.problem.name
    meta = {"fit": path.stem}  # the store names the file by the fit's key: everything that decides the fit
    try:
        saver = Checkpoint(path, every=1, meta=meta, resume=path.exists(), interval=UNFINISHED_SAVE_SECONDS)
    except DipError as error:
        log.warning("%s: starting its fit afresh: %s", name, error)
        path.unlink(missing_ok=True)
        saver = Checkpoint(path, every=1, meta=meta, interval=UNFINISHED_SAVE_SECONDS)
    if saver.data is not None:
        log.info("%s: continuing its fit from step %d (%s)", name, saver.data["step"], path)
    return saver


def _copied(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict on the CPU, apart from the network it was read from (to send, to start from)."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in weights.items()}


def batch_summary(results: list[FitResult], seconds: float) -> str:
    """'16 fits, 2210-8000 steps (mean 3480), 37 s': how a group's stops spread, for the log."""
    steps = [r.steps_run for r in results]
    if len(steps) == 1:
        return f"1 fit, {steps[0]} steps, {seconds:.0f} s"
    if len(set(steps)) == 1:
        return f"{len(steps)} fits, {steps[0]} steps each, {seconds:.0f} s"
    mean = sum(steps) / len(steps)
    return f"{len(steps)} fits, {min(steps)}-{max(steps)} steps (mean {mean:.0f}), {seconds:.0f} s"


def _fit_watched(
    items: list[Item], settings: Settings, on_done: Callable[[int, Fitted], None] | None = None
) -> list[Fitted]:
    """One fit of each item; a fit its problem's watchdog finds stuck is made again with the next
    seed, up to RESTARTS attempts. `on_done(index, fit)` hears of each good fit as it ends."""
    done: list[Fitted | None] = [None] * len(items)
    pending = list(range(len(items)))
    for attempt in range(RESTARTS):
        tries = [  # a retry starts afresh: what an unfinished first attempt kept is not its own
            dataclasses.replace(
                items[i], seed=items[i].seed + attempt, unfinished=items[i].unfinished if not attempt else None
            )
            for i in pending
        ]

        def judged(position: int, fitted: Fitted, watchdog: Callback | None, attempt=attempt, tried=tuple(pending)):
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


def fit_all(items: list[Item], settings: Settings) -> list[Fitted]:
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


def _restart(item: Item, index: int) -> Item:
    """Fit `index` of an item's ensemble: seeded seed + index, from its own starting weights; the
    callbacks and the reference follow the first fit only."""
    start = item.start[index : index + 1]
    if index == 0:
        return dataclasses.replace(item, start=start)
    return dataclasses.replace(item, seed=item.seed + index, reference=None, extra=(), start=start)


def _fit_stored(items: list[Item], settings: Settings) -> list[Fitted]:
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
    followed = [bool(settings.callbacks or item.extra) or item.reference is not None for item in items]
    done = [None if seen else _from_store(store.load(key), item.seed) for item, key, seen in zip(items, keys, followed)]
    missing = [index for index, fitted in enumerate(done) if fitted is None]

    def save(position: int, fitted: Fitted) -> None:  # as each fit ends: a stopped run keeps those made
        store.save(keys[missing[position]], SavedFit(fitted.pixels, fitted.fit, fitted.parameters, fitted.attempts))
        done[missing[position]] = fitted

    made = [  # a followed fit (callbacks, reference metrics) is seen whole: never read, nor continued
        items[i] if followed[i] else dataclasses.replace(items[i], unfinished=store.unfinished(keys[i]))
        for i in missing
    ]
    _fit_watched(made, settings, save)
    return done


def _from_store(saved: SavedFit | None, seed: int) -> Fitted | None:
    if saved is None:
        return None
    return Fitted(saved.pixels, saved.fit, saved.parameters, None, saved.attempts, seed + saved.attempts - 1, read=1)


def _refined(item: Item, run: Fitted, settings: Settings) -> Fitted:
    if not settings.preset.refine:
        return run
    pixels = item.problem.refined(run.pixels, item.pixels, device=settings.device)
    return run if pixels is run.pixels else dataclasses.replace(run, pixels=pixels, refined=True, unrefined=run.pixels)


def _mean(runs: list[Fitted], settings: Settings) -> Fitted:
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


def fingerprint(
    problem: Problem, observation: np.ndarray | None, settings: Settings, reference: np.ndarray | None
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
        "problem": problem.describe_fit(),
        "preset": f"{settings.preset.task}/{settings.preset.name}",
        "seed": settings.seed,
        "steps": settings.config.steps,
        "early_stop": settings.early_stop,
        "arithmetic": settings.acceleration.describe(),
        "deterministic": settings.acceleration.deterministic,
        "reference": reference is not None,
    }


def fit_tiled(problem: Problem, pixels: np.ndarray, settings: Settings, tile: int, overlap: int) -> Fitted:
    """Restore tile by tile (the tiles' fits in batches) and blend (see `dip.tiling`); the fit
    result sums every tile's steps."""
    boxes = tile_boxes(pixels.shape[0], pixels.shape[1], tile, overlap)
    items = {
        index: Item(sub, pixels[top : top + h, left : left + w], settings.seed, label=f"tile {index + 1}/{len(boxes)}")
        for index, (top, left, h, w) in enumerate(boxes)
        if (sub := problem.tile((top, left, h, w))) is not None  # None: nothing to do in this tile
    }
    if not items:
        raise DipError(f"no tile of this image needs {problem.name}")
    done = _fit_tiles(items, boxes, pixels.shape, settings)

    def blended(result: Callable[[Fitted], np.ndarray]) -> np.ndarray:
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
    items: dict[int, Item], boxes: list[tuple[int, int, int, int]], shape: tuple, settings: Settings
) -> dict[int, Fitted]:
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
        return dict(zip(items, fit_all(list(items.values()), settings)))
    [centred] = fit_all([dataclasses.replace(first, keep=True)], settings)
    others = [index for index in items if index != source]
    started = [dataclasses.replace(items[index], start=centred.weights) for index in others]
    done = dict(zip(others, fit_all(started, settings)))
    done[source] = dataclasses.replace(centred, weights=())
    return dict(sorted(done.items()))


def _box_centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    top, left, height, width = box
    return top + height / 2, left + width / 2
