"""Many images in one command: a folder (recursive) or a glob as INPUT, an output folder.

Each image is one job: the single-image command itself, run with that image's input, output
(and mask) filled in, so a batch behaves exactly like running the images one by one. Jobs run
in this process, in `--workers` local processes (torch threads divided between them), or on a
Dask cluster (`--scheduler`). An image whose output already exists is skipped, so re-running a
batch resumes it; a failing image is reported and the rest still run.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import glob
import io
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .errors import DipError
from .io import WRITABLE

IMAGE_SUFFIXES = tuple(WRITABLE)  # the formats dip reads and writes
GLOB_CHARACTERS = set("*?[")


def is_batch(spec: str) -> bool:
    """INPUT names a folder or a glob pattern (not a single file)."""
    return Path(spec).is_dir() or bool(GLOB_CHARACTERS & set(spec)) and not Path(spec).exists()


def collect_inputs(spec: str) -> tuple[Path, list[Path]]:
    """(root, files): every image file in a folder (recursively) or matching a glob, sorted.
    `root` is what output paths are made relative to."""
    if Path(spec).is_dir():
        root = Path(spec)
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        root = _fixed_prefix(spec)
        files = [Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file()]
    files = sorted(p for p in files if not p.name.startswith("."))
    if not files:
        raise DipError(f"no image files found in {spec}")
    return root, files


def _fixed_prefix(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if GLOB_CHARACTERS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def find_mask(masks: Path, relative: Path) -> Path | None:
    """The mask for an image, matched by name in the mask folder: same relative path and stem,
    any image extension, optionally with a `_mask` suffix (kate.png -> kate.png or kate_mask.png)."""
    folder = masks / relative.parent
    for stem in (relative.stem, f"{relative.stem}_mask"):
        for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


@dataclass
class Job:
    source: Path
    output: Path
    mask: Path | None = None


@dataclass
class Outcome:
    job: Job
    status: str  # done, skipped, failed
    message: str = ""
    seconds: float = 0.0


def plan(args: argparse.Namespace, image_arg: str = "input") -> tuple[list[Job], list[Outcome]]:
    """Jobs for every input image; images without a mask or with a finished output are settled
    at once (failed / skipped)."""
    root, files = collect_inputs(getattr(args, image_arg))
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise DipError(f"with a folder or pattern as input, -o must be a folder; {out_dir} is a file")
    masks = Path(args.mask) if getattr(args, "mask", None) else None
    if masks is not None and not masks.is_dir():
        raise DipError(f"with a folder or pattern as input, --mask must be a folder of masks matched by name: {masks}")
    jobs, settled = [], []
    for source in files:
        try:
            relative = source.relative_to(root)
        except ValueError:
            relative = Path(source.name)
        if masks is not None and _inside(source, masks):
            continue  # the masks may live under the input folder
        output = out_dir / relative.with_suffix(".png")  # lossless, 16-bit capable
        job = Job(source, output)
        if masks is not None:
            job.mask = find_mask(masks, relative)
            if job.mask is None:
                settled.append(Outcome(job, "failed", f"no mask named {relative.stem}.* or "
                                                      f"{relative.stem}_mask.* in {masks / relative.parent}"))
                continue
        if _finished(output) and not args.force:
            settled.append(Outcome(job, "skipped", "output exists"))
            continue
        jobs.append(job)
    return jobs, settled


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _finished(output: Path) -> bool:
    """Outputs are written atomically (temporary file, then rename), so an existing one is
    complete; it is still checked to open as an image."""
    if not output.is_file():
        return False
    from PIL import Image

    try:
        with Image.open(output) as image:
            image.verify()
        return True
    except Exception:
        return False


def run_job(args: argparse.Namespace, job: Job, image_arg: str = "input", threads: int | None = None) -> Outcome:
    """One image through the single-image command; its output and errors are captured, never raised."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    one = copy.copy(args)
    setattr(one, image_arg, str(job.source))
    one.output = str(job.output)
    if job.mask is not None:
        one.mask = str(job.mask)
    one.quiet = True
    if getattr(one, "checkpoint", None):
        one.checkpoint = str(Path(one.checkpoint) / job.output.parent.relative_to(Path(args.output)))
    if getattr(one, "report", None):
        one.report = str(Path(one.report) / job.output.relative_to(Path(args.output)).with_suffix(""))
    job.output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            code = args.handler(one)
        if code == 130:  # Ctrl-C or SIGTERM with --checkpoint: state saved, the batch stops here
            status, message = "interrupted", "state saved; run again with --resume"
        else:
            status, message = ("done", captured.getvalue().strip().splitlines()[0]) if code == 0 else \
                ("failed", f"exit status {code}")
    except DipError as error:
        status, message = "failed", str(error)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # one bad image must not end the batch
        text = (str(error).strip().splitlines() or [""])[0]
        status, message = "failed", f"unexpected {error.__class__.__name__}: {text}"
    return Outcome(job, status, message, time.perf_counter() - started)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of `workers` processes so that together they use every core once."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def execute(args: argparse.Namespace, jobs: list[Job], image_arg: str = "input",
            on_outcome: Callable[[Outcome], None] = lambda outcome: None) -> list[Outcome]:
    """Run the jobs here, in worker processes, or on a Dask cluster; outcomes in finishing order."""
    workers = getattr(args, "workers", 1) or 1
    scheduler = getattr(args, "scheduler", None)
    outcomes = []
    if scheduler:
        for outcome in run_on_dask(args, jobs, scheduler, image_arg):
            on_outcome(outcome)
            outcomes.append(outcome)
    elif workers > 1 and len(jobs) > 1:
        import multiprocessing

        threads = threads_per_worker(workers)
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_job, args, job, image_arg, threads) for job in jobs]
            for future in as_completed(futures):
                outcome = future.result()
                on_outcome(outcome)
                outcomes.append(outcome)
    else:
        for job in jobs:
            outcome = run_job(args, job, image_arg)
            on_outcome(outcome)
            outcomes.append(outcome)
            if outcome.status == "interrupted":
                break
    return outcomes


def run_on_dask(args: argparse.Namespace, jobs: list[Job], scheduler: str, image_arg: str) -> Iterable[Outcome]:
    """Each image is a task on an existing Dask cluster, retried if its worker dies; with a
    CUDA device each task asks for one `GPU` resource, so a worker started with
    `--resources GPU=1` runs one image at a time per GPU."""
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise DipError("--scheduler needs Dask: pip install 'dip[dask]'") from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise DipError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    resources = {"GPU": 1} if str(getattr(args, "device", "auto")).startswith("cuda") else None
    try:
        futures = [client.submit(run_job, args, job, image_arg, key=f"dip-{i}-{job.source.name}",
                                 retries=3, resources=resources, pure=False)
                   for i, job in enumerate(jobs)]
        for future in dask_completed(futures):
            try:
                yield future.result()
            except Exception as error:  # retries exhausted (workers kept dying) or a scheduler error
                job = jobs[futures.index(future)]
                yield Outcome(job, "failed", f"cluster task failed: {error.__class__.__name__}: {error}")
    finally:
        client.close()


def run_batch(args: argparse.Namespace, image_arg: str = "input") -> int:
    """Plan, run and summarise a batch; exit status 1 if any image failed."""
    from tqdm import tqdm

    started = time.perf_counter()
    jobs, settled = plan(args, image_arg)
    total = len(jobs) + len(settled)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    print(f"batch: {total} images, {len(jobs)} to restore, "
          f"{sum(o.status == 'skipped' for o in settled)} already done, "
          f"{sum(o.status == 'failed' for o in settled)} unusable; output in {args.output}", file=sys.stderr)
    bar = tqdm(total=len(jobs), desc="images", unit="image", disable=True if args.quiet else None,
               file=sys.stderr, dynamic_ncols=True)

    def report(outcome: Outcome) -> None:
        line = f"{outcome.status}: {outcome.job.source}" + (f": {outcome.message}" if outcome.message else "")
        bar.write(line, file=sys.stderr)
        bar.update(1)

    try:
        outcomes = settled + execute(args, jobs, image_arg, report)
    finally:
        bar.close()
    counts = {status: sum(o.status == status for o in outcomes)
              for status in ("done", "skipped", "failed", "interrupted")}
    print(f"batch: {counts['done']} restored, {counts['skipped']} skipped (already done), "
          f"{counts['failed']} failed, in {time.perf_counter() - started:.0f} s")
    for outcome in outcomes:
        if outcome.status == "failed":
            print(f"  failed: {outcome.job.source}: {outcome.message}")
    if counts["interrupted"]:
        print("batch: interrupted; run the same command with --resume to continue")
        return 130
    return 1 if counts["failed"] else 0
