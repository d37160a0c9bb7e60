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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DipError
from .io import WRITABLE, join_channels, read_image, split_channels, write_image
from .problems import REGISTRY
from .run import Interrupted, Restoration, run

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


def restore_file(recipe: Recipe, job: Job, progress: bool = False, command: str = "") -> tuple[Restoration, list[str]]:
    """Restore one job and write its output; returns the restoration and the summary lines.
    Raises DipError (one line) for anything wrong with the inputs or options."""
    from .metrics import psnr, ssim

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
    done = run(
        problem,
        observation,
        reference=reference,
        report=job.report,
        overwrite=recipe.force,
        progress=progress,
        command=command,
        **options,
    )
    result = split_channels(done.image)
    result.bit_depth = picture.bit_depth if picture is not None else 8
    write_image(job.output, result)
    lines = [f"wrote {job.output}: {done.summary()}"]
    if reference is not None and picture is not None:
        before = problem.before(picture.pixels)
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
    return done, lines


def run_job(recipe: Recipe, job: Job, threads: int | None = None) -> Outcome:
    """One job, its errors turned into an outcome (never raised): one bad image must not end a batch."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        _, lines = restore_file(recipe, job)
        status, message, details = "done", lines[0], lines[1:]
    except Interrupted as stop:
        status, message, details = "interrupted", str(stop), []
    except DipError as error:
        status, message, details = "failed", str(error), []
    except KeyboardInterrupt:
        raise
    except Exception as error:  # a bug, or a decoder's surprise: still one line, still one image
        text = (str(error).strip().splitlines() or [""])[0]
        status, message, details = "failed", f"unexpected {error.__class__.__name__}: {text}", []
    return Outcome(job, status, message, time.perf_counter() - started, details)
