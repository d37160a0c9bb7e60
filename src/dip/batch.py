"""Many images: a folder (recursive) or a glob in, an output folder out.

Each image is one `dip.files.Job`, restored by the same `Recipe` and the same code as a single
image, so a batch behaves exactly like running the images one by one. Jobs run in this process,
in worker processes (torch threads divided between them), or on a Dask cluster. An image whose
output already exists is skipped, so re-running a batch resumes it; a failing image is reported
with its one-line reason and the rest still run.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from .errors import DipError
from .files import Job, Outcome, Recipe, restore_files, run_job
from .io import WRITABLE
from .workers import Spread

log = logging.getLogger("dip")

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


def find_mask(masks: Path, relative: Path, name: str = "mask") -> Path | None:
    """The mask (or other image) for an image, matched by name in its folder: same relative path
    and stem, any image extension, optionally with a `_mask` suffix (kate.png -> kate.png or
    kate_mask.png)."""
    folder = masks / relative.parent
    for stem in (relative.stem, f"{relative.stem}_{name}"):
        for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def plan(
    spec: str,
    out_dir: Path,
    image_folders: dict[str, Path],
    force: bool = False,
    report: Path | None = None,
    checkpoint: Path | None = None,
) -> tuple[list[Job], list[Outcome]]:
    """Jobs for every image of a folder or glob; outputs mirror the input tree as PNG (lossless,
    16-bit capable) in `out_dir`. The problem's image fields (a mask) come from `image_folders`,
    matched by name; reports and checkpoints get a place per image. Images without their mask,
    or whose output exists (unless `force`), are settled at once (failed / skipped)."""
    root, files = collect_inputs(spec)
    if out_dir.exists() and not out_dir.is_dir():
        raise DipError(f"with a folder or pattern as input, the output must be a folder; {out_dir} is a file")
    for name, folder in image_folders.items():
        if not folder.is_dir():
            raise DipError(
                f"with a folder or pattern as input, the {name} must be a folder of images matched by name: {folder}"
            )
    jobs, settled = [], []
    for source in files:
        try:
            relative = source.relative_to(root)
        except ValueError:
            relative = Path(source.name)
        if any(_inside(source, folder) for folder in image_folders.values()):
            continue  # the masks may live under the input folder
        output = out_dir / relative.with_suffix(".png")
        job = Job(
            source,
            output,
            report=report / relative.with_suffix("") if report else None,
            checkpoint_dir=checkpoint / relative.parent if checkpoint else None,
        )
        missing = []
        for name, folder in image_folders.items():
            found = find_mask(folder, relative, name)
            if found is None:
                missing.append(
                    f"no {name} named {relative.stem}.* or {relative.stem}_{name}.* in {folder / relative.parent}"
                )
            else:
                job.images[name] = found
        if missing:
            settled.append(Outcome(job, "failed", "; ".join(missing)))
        elif _finished(output) and not force:
            settled.append(Outcome(job, "skipped", "output exists"))
        else:
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


def execute(
    recipe: Recipe,
    jobs: list[Job],
    workers: int = 1,
    scheduler: str | None = None,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Run the jobs here, in `workers` processes, or on a Dask cluster; outcomes in finishing order.
    Each image of a job run elsewhere is fitted in its one process (the processes are the jobs');
    here, an image's fits run as the recipe's `workers` option says (`dip.workers`)."""
    outcomes = []
    single = dataclasses.replace(recipe, options={**recipe.options, "workers": 1})
    if scheduler:
        for outcome in run_on_dask(single, jobs, scheduler):
            on_outcome(outcome)
            outcomes.append(outcome)
    elif workers > 1 and len(jobs) > 1:
        with Spread(run_job, [(single, job) for job in jobs], workers) as spread:
            for _, outcome in spread:
                on_outcome(outcome)
                outcomes.append(outcome)
    else:
        for outcome in restore_files(recipe, jobs):
            on_outcome(outcome)
            outcomes.append(outcome)
            if outcome.status == "interrupted":
                break
    return outcomes


def run_on_dask(recipe: Recipe, jobs: list[Job], scheduler: str) -> Iterable[Outcome]:
    """Each image is a task on an existing Dask cluster, retried if its worker dies; with a
    CUDA device each task asks for one `GPU` resource, so a worker started with
    `--resources GPU=1` runs one image at a time per GPU."""
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise DipError("a Dask scheduler needs Dask: pip install 'dip-restore[dask]'") from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise DipError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    resources = {"GPU": 1} if str(recipe.options.get("device", "auto")).startswith("cuda") else None
    try:
        futures = [
            client.submit(
                run_job, recipe, job, key=f"dip-{i}-{job.source.name}", retries=3, resources=resources, pure=False
            )
            for i, job in enumerate(jobs)
        ]
        for future in dask_completed(futures):
            try:
                yield future.result()
            except Exception as error:  # retries exhausted (workers kept dying) or a scheduler error
                job = jobs[futures.index(future)]
                yield Outcome(job, "failed", f"cluster task failed: {error.__class__.__name__}: {error}")
    finally:
        client.close()


@dataclass
class Summary:
    """How a batch went: every outcome, and the counts by status."""

    outcomes: list[Outcome]
    seconds: float

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def describe(self) -> str:
        return (
            f"batch: {self.count('done')} restored, {self.count('skipped')} skipped (already done), "
            f"{self.count('failed')} failed, in {self.seconds:.0f} s"
        )


def run_batch(
    recipe: Recipe,
    jobs: list[Job],
    settled: list[Outcome],
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = False,
) -> Summary:
    """Run planned jobs with a progress bar, logging each outcome as it comes."""
    from tqdm import tqdm

    started = time.perf_counter()
    log.info(
        "batch: %d images, %d to restore, %d already done, %d unusable",
        len(jobs) + len(settled),
        len(jobs),
        sum(o.status == "skipped" for o in settled),
        sum(o.status == "failed" for o in settled),
    )
    disable = None if progress else True  # None: shown on a terminal only
    bar = tqdm(total=len(jobs), desc="images", unit="image", disable=disable, file=sys.stderr, dynamic_ncols=True)

    def report(outcome: Outcome) -> None:
        level = logging.WARNING if outcome.status == "failed" else logging.INFO
        with logging_redirect_tqdm():
            log.log(
                level, "%s: %s%s", outcome.status, outcome.job.source, f": {outcome.message}" if outcome.message else ""
            )
        bar.update(1)

    try:
        outcomes = settled + execute(recipe, jobs, workers, scheduler, report)
    finally:
        bar.close()
    return Summary(outcomes, time.perf_counter() - started)
