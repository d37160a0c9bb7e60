"""Restore image files: read, check, run, write atomically.

One image is a `Job` (its input files and output), restored by a `Recipe` (which problem, its
settings and the `dip.run` options), so a batch of images behaves exactly like the same images
run one by one, in this process, in worker processes or on a Dask cluster (both are plain
data, hence picklable). Nothing the user had is overwritten without `force`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DipError
from .io import WRITABLE, Picture, join_channels, read_image, split_channels, write_image
from .problems import REGISTRY, Problem
from .run import Interrupted, Restoration, batch_size_for, run, run_many

log = logging.getLogger("dip")


@dataclass
class Job:
    """One image: the observation file (None for problems without one), the output file, the
    problem's image fields read from files (mask, flash photo), and where its report and
    checkpoint go."""

    source: Path | None
    output: Path
    images: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    checkpoint_dir: Path | None = None
    animation: Path | None = None  # the process as an animated .webp or .gif


@dataclass(frozen=True)
class Recipe:
    """How every job is restored: the registered problem (`dip.problems.REGISTRY` key), its
    settings other than images, `dip.run` keywords, and the options that name files."""

    command: str
    settings: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    reference: Path | None = None
    save_every: int | None = None
    force: bool = False


@dataclass
class Outcome:
    """What became of a job: done, skipped, failed or interrupted, with a one-line message and,
    for a job that ran, the extra lines of its summary (scores, snapshots, report)."""

    job: Job
    status: str
    message: str = ""
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output(output: Path, inputs: Sequence[Path], force: bool) -> None:
    """Refuse, before any work, an output that cannot be written or would destroy something."""
    if output.suffix.lower() not in WRITABLE:
        raise DipError(
            f"cannot write {output}: unknown extension {output.suffix!r} (use one of {', '.join(sorted(WRITABLE))})"
        )
    if not output.parent.is_dir():
        raise DipError(f"output folder does not exist: {output.parent}")
    if output.is_dir():
        raise DipError(f"output is a folder, expected a file name: {output}")
    for source in inputs:
        if _same_file(source, output) and not force:
            raise DipError(f"output {output} is the input file; choose another name or allow overwriting")
    if output.exists() and not force:
        raise DipError(f"output {output} already exists; choose another name or allow overwriting")


@dataclass
class _Loaded:
    """A job's files read and checked: its problem, observation, reference and `dip.run` options."""

    job: Job
    problem: Problem
    picture: Picture | None  # the observation as read
    observation: np.ndarray | None  # the array `run` takes
    reference: np.ndarray | None
    options: dict

    @property
    def batchable(self) -> bool:
        """Can run with others (`dip.run_many`): nothing of its own to write while fitting."""
        own = ("save_every", "checkpoint", "tile")
        alone = self.job.report is not None or self.job.animation is not None
        return not alone and self.observation is not None and not any(self.options.get(k) for k in own)


def _load(recipe: Recipe, job: Job) -> _Loaded:
    cls = REGISTRY[recipe.command]
    picture = read_image(job.source) if job.source is not None else None
    check_output(job.output, [p for p in [job.source, *job.images.values()] if p is not None], recipe.force)
    problem = cls(**recipe.settings, **{name: join_channels(read_image(path)) for name, path in job.images.items()})
    reference = read_image(recipe.reference).pixels if recipe.reference else None
    options = dict(recipe.options)
    if recipe.save_every:
        options.update(save_every=recipe.save_every, snapshot_dir=job.output.parent / f"{job.output.stem}_steps")
    if job.checkpoint_dir is not None:
        if job.checkpoint_dir.exists() and not job.checkpoint_dir.is_dir():
            raise DipError(f"the checkpoint place must be a folder: {job.checkpoint_dir} is a file")
        job.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        options["checkpoint"] = job.checkpoint_dir / f"{job.output.stem}.ckpt"
    observation = join_channels(picture) if picture is not None else None
    return _Loaded(job, problem, picture, observation, reference, options)


def _save(loaded: _Loaded, done: Restoration) -> list[str]:
    """Write the result at the observation's bit depth; the summary lines."""
    from .metrics import psnr, ssim

    job, picture, reference = loaded.job, loaded.picture, loaded.reference
    result = split_channels(done.image)
    result.bit_depth = picture.bit_depth if picture is not None else 8
    write_image(job.output, result)
    lines = [f"wrote {job.output}: {done.summary()}"]
    if reference is not None and picture is not None:
        before = loaded.problem.before(picture.pixels)
        clean = reference[:, :, : done.pixels.shape[2]]
        lines.append(
            f"PSNR {psnr(before, clean):.2f} dB -> {psnr(done.pixels, clean):.2f} dB, "
            f"SSIM {ssim(before, clean):.4f} -> {ssim(done.pixels, clean):.4f} (input -> result, "
            "against the reference)"
        )
    if done.frames and done.frames[0].path is not None and job.report is None:
        lines.append(f"saved {len(done.frames)} snapshots in {done.frames[0].path.parent}")
    if done.report is not None:
        lines.append(f"report: {done.report}")
    if job.animation is not None:
        lines.append(f"animation: {job.animation}")
    return lines


def _restore_loaded(recipe: Recipe, loaded: _Loaded, progress: bool = False, command: str = "") -> tuple:
    done = run(
        loaded.problem,
        loaded.observation,
        reference=loaded.reference,
        report=loaded.job.report,
        animation=loaded.job.animation,
        overwrite=recipe.force,
        progress=progress,
        command=command,
        **loaded.options,
    )
    return done, _save(loaded, done)


def restore_file(recipe: Recipe, job: Job, progress: bool = False, command: str = "") -> tuple[Restoration, list[str]]:
    """Restore one job and write its output; returns the restoration and the summary lines.
    Raises DipError (one line) for anything wrong with the inputs or options."""
    return _restore_loaded(recipe, _load(recipe, job), progress, command)


def restore_files(recipe: Recipe, jobs: Sequence[Job]) -> Iterator[Outcome]:
    """Restore the jobs in this process, one outcome each as it is written. Consecutive images of
    one size are fitted together (`dip.run_many`), as many at a time as the recipe's `batch`
    allows (`dip.run.batch_size_for`); a batch that fails is run again image by image, so each
    image gets its own error."""
    pending: list[_Loaded] = []

    def flush() -> Iterator[Outcome]:
        group, started = list(pending), time.perf_counter()
        pending.clear()
        if len(group) == 1:
            yield _outcome(group[0].job, lambda: _restore_loaded(recipe, group[0])[1])
            return
        try:
            done = run_many(
                [one.problem for one in group],
                [one.observation for one in group],
                references=[one.reference for one in group],
                **_many_options(recipe.options),
            )
        except (DipError, FloatingPointError, RuntimeError) as error:
            log.warning("a batch of %d images failed (%s); running them one by one", len(group), error)
            for one in group:
                yield _outcome(one.job, lambda one=one: _restore_loaded(recipe, one)[1])
            return
        seconds = (time.perf_counter() - started) / len(group)
        note = [f"fitted together with {len(group) - 1} other images"]
        for one, restoration in zip(group, done):
            yield _outcome(one.job, lambda one=one, r=restoration: _save(one, r) + note, seconds)

    for job in jobs:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        try:
            loaded = _load(recipe, job)
        except KeyboardInterrupt:
            raise
        except Exception as error:
            yield Outcome(job, *_failure(error))
            continue
        if pending and (not loaded.batchable or not _fits_with(pending, loaded, recipe)):
            yield from flush()
        if loaded.batchable:
            pending.append(loaded)
        else:
            yield _outcome(job, lambda loaded=loaded: _restore_loaded(recipe, loaded)[1])
    if pending:
        yield from flush()


MANY_OPTIONS = (
    "preset",
    "steps",
    "seed",
    "device",
    "precision",
    "channels_last",
    "compile",
    "deterministic",
    "cuda_graph",
    "early_stop",
    "restarts",
    "batch",
    "workers",
    "fits",
)


def _many_options(options: dict) -> dict:
    return {name: value for name, value in options.items() if name in MANY_OPTIONS}


def _fits_with(pending: list[_Loaded], loaded: _Loaded, recipe: Recipe) -> bool:
    """Whether `loaded` joins the pending batch: same observation size, room left."""
    first = pending[0]
    if loaded.observation.shape != first.observation.shape:
        return False
    options = _many_options(recipe.options)
    limit = batch_size_for(
        first.problem,
        first.observation.shape,
        **{k: v for k, v in options.items() if k in ("preset", "device", "batch")},
    )
    return len(pending) < limit


def _outcome(job: Job, action: Callable[[], list[str]], seconds: float | None = None) -> Outcome:
    """Run `action` (it writes the job's output and returns its summary lines); its errors become
    the outcome (never raised): one bad image must not end a batch."""
    started = time.perf_counter()
    try:
        lines = action()
        status, message, details = "done", lines[0], lines[1:]
    except KeyboardInterrupt:
        raise
    except Exception as error:
        (status, message), details = _failure(error), []
    elapsed = time.perf_counter() - started
    return Outcome(job, status, message, elapsed if seconds is None else seconds + elapsed, details)


def _failure(error: Exception) -> tuple[str, str]:
    """(status, one-line message) for an error of one job."""
    if isinstance(error, Interrupted):
        return "interrupted", str(error)
    if isinstance(error, DipError):
        return "failed", str(error)
    text = (str(error).strip().splitlines() or [""])[0]  # a bug, or a decoder's surprise: still one line
    return "failed", f"unexpected {error.__class__.__name__}: {text}"


def run_job(recipe: Recipe, job: Job) -> Outcome:
    """One job, its errors turned into an outcome (never raised); for worker processes (each
    process's threads are set where it starts: `dip.workers`, a Dask worker)."""
    job.output.parent.mkdir(parents=True, exist_ok=True)
    return _outcome(job, lambda: restore_file(recipe, job)[1])
