"""`dip bench quality`: the paper's protocol on the paper's images, scored with the paper's
metric, beside every published method re-scored on the same pixels.

Each finished image is appended to the results file at once, so an interrupted run keeps what
it measured. Quick mode runs the same protocol on centre crops with a step budget, for a CPU.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..baselines import missing
from ..degrade import downscale
from ..errors import DipError
from ..io import read_image
from ..presets import Preset, get_preset
from ..problems import Denoising, Inpainting, Problem, SuperResolution
from ..report.compare import Scoring
from ..run import batch_size_for, resolve_device, run, run_many
from .results import fresh_path, machine

log = logging.getLogger("dip")


@dataclass(frozen=True)
class Suite:
    name: str
    task: str
    folders: tuple[str, ...]
    scoring: Scoring
    factor: int = 1
    sigma: float | None = None
    input_name: str | None = None  # the published degraded input (noisy / masked)
    quick_crop: int = 64  # centre crop side in quick mode (high-resolution side for SR)
    quick_steps: int = 500


SR_SCORING = Scoring("y-psnr", shave=4, crop=32)
SUITES = {
    "sr4": Suite(
        "sr4", "super-resolve", ("SR/Set5/x4", "SR/Set14/x4"), SR_SCORING, factor=4, quick_crop=64, quick_steps=600
    ),
    "sr8": Suite(
        "sr8", "super-resolve", ("SR/Set5/x8", "SR/Set14/x8"), SR_SCORING, factor=8, quick_crop=64, quick_steps=600
    ),
    "denoise25": Suite(
        "denoise25",
        "denoise",
        ("Denoising/Color/25",),
        Scoring("psnr"),
        sigma=25,
        input_name="noisy",
        quick_crop=96,
        quick_steps=600,
    ),
    "denoise50": Suite(
        "denoise50",
        "denoise",
        ("Denoising/Color/50",),
        Scoring("psnr"),
        sigma=50,
        input_name="noisy",
        quick_crop=96,
        quick_steps=600,
    ),
    "inpaint50": Suite(
        "inpaint50",
        "inpaint",
        ("Reconstruction/Gray/50p",),
        Scoring("psnr"),
        input_name="masked",
        quick_crop=96,
        quick_steps=600,
    ),
}


def centre_box(height: int, width: int, side: int | None, multiple: int) -> tuple[int, int, int, int]:
    """(top, left, h, w): a centred `side` x `side` crop (or the whole image) cut to a multiple."""
    h = min(height, side or height) // multiple * multiple
    w = min(width, side or width) // multiple * multiple
    return (height - h) // 2, (width - w) // 2, h, w


def cut(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, h, w = box
    return image[top : top + h, left : left + w]


@dataclass
class Run:
    """One preset's result on one benchmark image."""

    preset: str
    score: float
    steps: int
    seconds: float
    unrefined: float | None = None  # the score without the preset's refine step (`Restoration.unrefined`)


@dataclass
class ImageResult:
    name: str
    runs: list[Run]
    published: dict[str, float]  # every other method: the published outputs, the classical ones run here
    group: str = ""  # the benchmark set it belongs to (Set5, Set14): the paper averages per set


MODES = ("quick", "mid", "full")
MID_CROP = 256  # centre crop side in mid mode (high-resolution side for SR)


def crop_side(suite: Suite, mode: str) -> int | None:
    """The centre crop a mode restores: small (quick), 256 px (mid) or none (full)."""
    if mode not in MODES:
        raise DipError(f"unknown protocol {mode!r}; choose from {', '.join(MODES)}")
    return {"quick": suite.quick_crop, "mid": MID_CROP, "full": None}[mode]


def budget(suite: Suite, preset: str, mode: str, steps: int | None) -> int | None:
    """Steps for one preset: --steps if given; in quick mode the suite's budget for presets that
    run a fixed number of steps (the paper's), while presets that stop themselves keep their own
    rule and cap; in mid and full mode the preset's own settings."""
    if steps:
        return steps
    if mode != "quick":
        return None
    return None if suite_preset(suite, preset).stop is not None else suite.quick_steps


def suite_problem(suite: Suite, observed: np.ndarray | None = None) -> Problem:
    """The suite's problem; for inpainting the mask is recovered from the published masked image."""
    if suite.task == "super-resolve":
        return SuperResolution(suite.factor)
    if suite.task == "denoise":
        return Denoising(suite.sigma)
    return Inpainting(known_pixels(observed))


def preset_problem(preset: str, problem: Problem) -> Problem:
    """The problem a preset runs: under the paper's settings inpainting returns the network's
    values at known pixels too, as the paper's published outputs do."""
    if preset == "paper" and isinstance(problem, Inpainting):
        return dataclasses.replace(problem, paste_known=False)
    return problem


def preset_name(suite: Suite, preset: str) -> str:
    """The name each problem of the suite resolves for itself (`paper` in the 50% inpainting
    suite is the paper's `pixels` setting; elsewhere the problem's own rules pick it)."""
    return "pixels" if suite.task == "inpaint" and preset == "paper" else preset


def suite_preset(suite: Suite, preset: str, problem: Problem | None = None) -> Preset:
    """The task preset that `preset` names for the suite's problem (`paper` is the paper's setting
    for the suite's factor, noise level or mask); a one-line error for an unknown name.
    Inpainting needs the problem (its mask) to resolve `default` and `best`."""
    name = preset_name(suite, preset)
    if problem is None and suite.task != "inpaint":
        problem = suite_problem(suite)
    return get_preset(suite.task, problem.preset_name(name) if problem is not None else name)


@dataclass
class Case:
    """One benchmark image ready to restore: the observation, its problem, the reference and the
    published methods' scores, all on the same pixels."""

    name: str
    group: str
    observed: np.ndarray
    reference: np.ndarray
    problem: Problem
    published: dict[str, float]


def load_case(suite: Suite, folder: Path, name: str, mode: str) -> Case:
    """Read one benchmark image (cropped as the mode says) and score every published method on
    it; in mid and full mode also the problem's classical methods, run here on the same input."""
    truth = read_image(folder / f"{name}_GT.png").pixels
    side = crop_side(suite, mode)
    multiple = 32 if suite.task == "super-resolve" else 1
    box = centre_box(*truth.shape[:2], side, multiple)
    reference = cut(truth, box)
    if suite.task == "super-resolve":
        reference, observed = downscale(reference, suite.factor)
    else:
        observed = cut(read_image(folder / f"{name}_{suite.input_name}.png").pixels, box)
    published = {}
    for path in sorted(folder.glob(f"{name}_*.png")):
        method = path.stem[len(name) + 1 :]
        if method != "GT":
            pixels = cut(read_image(path).pixels, box)[:, :, : reference.shape[2]]
            published[method] = suite.scoring(pixels, reference)[0]
    problem = suite_problem(suite, observed)
    if mode != "quick":
        for method in problem.baselines():
            restored = run(problem, observed, method=method).pixels.reshape(reference.shape)
            published[f"{method} (run here)"] = suite.scoring(restored, reference)[0]
    return Case(name, _group(suite, folder), observed, reference, problem, published)


def run_cases(
    suite: Suite,
    cases: list[Case],
    presets: list[str],
    mode: str,
    steps: int | None,
    device: str,
    seed: int = 0,
    batch: int | str = "auto",
    fits: str | Path | None = None,
    progress: bool = False,
    precision: str = "auto",
) -> list[ImageResult]:
    """Restore the cases the paper's way with each preset (cases of one size fitted together,
    `dip.run_many`; fits saved in `fits` are read from there) and score them; `progress` shows
    each fit's progress (a bar, or log lines where stderr is not a terminal)."""
    runs: list[list[Run]] = [[] for _ in cases]
    for preset in presets:
        done = run_many(
            [preset_problem(preset, case.problem) for case in cases],
            [case.observed for case in cases],
            preset=preset_name(suite, preset),
            steps=budget(suite, preset, mode, steps),
            seed=seed,
            device=device,
            batch=batch,
            fits=fits,
            progress=progress,
            precision=precision,
        )
        for case, result, own in zip(cases, done, runs):
            score = suite.scoring(result.pixels.reshape(case.reference.shape), case.reference)[0]
            unrefined = None
            if result.unrefined is not None:
                unrefined = suite.scoring(result.unrefined.reshape(case.reference.shape), case.reference)[0]
            own.append(Run(preset, score, result.fit.steps_run, result.seconds, unrefined))
    return [ImageResult(case.name, own, case.published, case.group) for case, own in zip(cases, runs)]


def _chunks(suite: Suite, cases: Iterable[Case], presets: list[str], device: str, batch: int | str) -> Iterator:
    """Consecutive cases of one observation size, as many as a batch holds."""
    chunk: list[Case] = []
    for case in cases:
        if chunk and case.observed.shape != chunk[0].observed.shape:
            yield chunk
            chunk = []
        chunk.append(case)
        limit = (
            batch_size_for(
                case.problem, case.observed.shape, preset=preset_name(suite, presets[0]), device=device, batch=batch
            )
            if presets
            else 1
        )
        if len(chunk) >= limit:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


BLACK_RUN = 32  # zeros in a straight line this long are black in the image: 2**-32 by chance
BLACK_TRIM = 8  # a run's last pixels inside the image stay holes: dropped neighbours join a run (2**-9 past 8)


def known_pixels(masked: np.ndarray) -> np.ndarray:
    """The 50% inpainting mask, recovered from the published masked image: a pixel is known
    where it is not exactly 0 (dropped pixels were set to 0), or where it lies on a row or
    column run of at least `BLACK_RUN` zeros: with half the pixels dropped at random such a run
    is black in the image itself (peppers256's black top row and left column, montage's black
    bar), not holes. The dropped pixels next to a run's end join the run (one a run end on
    average, 9 of the 258 zeros on montage's bar), so its last `BLACK_TRIM` pixels before each
    end inside the image stay holes. Any other black pixel counts as a hole, which only makes
    the task harder.

    >>> masked = np.zeros((64, 64, 1), np.float32)
    >>> masked[1:, 1:] = np.random.default_rng(0).random((63, 63, 1)) >= 0.5
    >>> mask = known_pixels(masked)
    >>> int(mask.sum() - (masked > 0).sum())  # the black top row and left column, no more
    127
    """
    from scipy.ndimage import binary_erosion, binary_opening

    zero = masked.max(axis=2) == 0
    black = np.zeros_like(zero)
    for line in ((1, BLACK_RUN), (BLACK_RUN, 1)):
        runs = binary_opening(zero, np.ones(line, bool))
        trim = np.ones(tuple(1 if n == 1 else 2 * BLACK_TRIM + 1 for n in line), bool)
        black |= binary_erosion(runs, trim, border_value=1)
    return (~zero | black)[:, :, None].astype(np.float32)


def run_suite(
    suite_name: str,
    data: Path,
    presets: list[str],
    *,
    mode: str = "full",
    steps: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    images: Sequence[str] | None = None,
    max_minutes: float | None = None,
    out_dir: Path = Path("benchmarks/results"),
    command: str = "",
    batch: int | str = "auto",
    fits: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """Run a suite with each preset side by side, appending one table row per finished image;
    returns the results file. With `fits` (a folder, `dip.fitstore`), fits made before are read
    from there and new ones saved: the results file says so, as the seconds of a read fit are
    those of its refine step only. `progress` shows each fit's progress, as `dip.run` does;
    `precision` is `dip.run`'s (fits saved in one arithmetic are not read in another)."""
    from ..accel import Acceleration

    suite = SUITES[suite_name]
    resolved = resolve_device(device)
    device_name = resolved.type
    arithmetic = Acceleration.resolve(resolved, precision).precision  # checked before any file
    date = datetime.date.today().isoformat()
    side = crop_side(suite, mode)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = "+".join(presets) or "published"
    path = fresh_path(out_dir / f"{suite.name}-{label}-{mode}-{device_name}-{date}.md")
    entries = named_images(suite_images(suite, data), images, suite_name)
    refined = [preset for preset in presets if suite_preset(suite, preset).refine]  # checks each name too
    crop = f"centre crops of {side} px" if side else "full images"
    quick = mode == "quick"
    budgets = (
        ", ".join(
            f"{p}: {budget(suite, p, mode, steps) or 'its own (stops itself)' if quick else 'its own'}" for p in presets
        )
        or "none (no preset runs: the published methods only)"
    )
    title = _title(presets)
    absent = [] if quick else missing(suite.task)
    if absent:
        log.warning("not run here: %s", "; ".join(absent))
    with open(path, "w") as out:
        out.write(
            f"# {suite.name}: {title}, {mode} mode\n\n"
            f"- command: `{command}`\n- date: {date}; machine: {machine()}; torch {torch.__version__}; "
            f"arithmetic: {arithmetic}\n"
            f"- protocol: {crop}; metric: {suite.scoring.describe()}; steps: {budgets}\n"
            f"- every preset and every published method scored on the same pixels"
            + ("; classical methods marked (run here) restored the same input here" if not quick else "")
            + "\n"
            + (f"- not run here: {'; '.join(absent)}\n" if absent else "")
            + (
                f"- fits: read from `{fits}` where made before (steps as then; seconds: the steps after the fit "
                "only), new ones saved there\n"
                if fits is not None
                else ""
            )
            + "\n"
        )
    started = time.perf_counter()
    results: list[ImageResult] = []
    methods: list[str] = []
    cases = (load_case(suite, folder, name, mode) for folder, name in entries)
    for chunk in _chunks(suite, cases, presets, device, batch):
        if max_minutes is not None and (time.perf_counter() - started) / 60 > max_minutes:
            log.info("stopping: the %g-minute budget ran out before %s", max_minutes, chunk[0].name)
            break
        names = ", ".join(case.name for case in chunk)
        log.info("[%d-%d/%d] %s ...", len(results) + 1, len(results) + len(chunk), len(entries), names)
        for result in run_cases(
            suite, chunk, presets, mode, steps, device, batch=batch, fits=fits, progress=progress, precision=precision
        ):
            _write_row(path, result, presets, methods, results, refined)
    _write_averages(path, results, methods, presets, len(entries), device_name, refined)
    return path


def suite_images(suite: Suite, data: Path) -> list[tuple[Path, str]]:
    """(folder, name) of every image of the suite in `data`, in the suite's order."""
    entries = []
    for relative in suite.folders:
        folder = data / relative
        if not folder.is_dir():
            raise DipError(f"benchmark folder not found: {folder} (give the data folder, or set DIP_DATA)")
        entries += [(folder, truth.name[: -len("_GT.png")]) for truth in sorted(folder.glob("*_GT.png"))]
    return entries


def named_images(
    entries: list[tuple[Path, str]], names: Sequence[str] | None, suite_name: str
) -> list[tuple[Path, str]]:
    """The `entries` (folder, name) named in `names`, in the order named, each once; all of them
    when `names` is None. A name the suite lacks is an error, not a silent skip.

    >>> entries = [(Path("Set5"), "baby"), (Path("Set5"), "bird")]
    >>> [name for _, name in named_images(entries, ["bird", "baby", "bird"], "sr4")]
    ['bird', 'baby']
    >>> named_images(entries, ["babe"], "sr4")
    Traceback (most recent call last):
    dip.errors.DipError: no image babe in suite sr4 (its images: baby, bird)
    """
    if names is None:
        return entries
    if not names:
        raise DipError(f"no images selected in suite {suite_name}")
    wanted, known = list(dict.fromkeys(names)), [name for _, name in entries]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise DipError(f"no image {', '.join(unknown)} in suite {suite_name} (its images: {', '.join(known)})")
    return [entry for name in wanted for entry in entries if entry[1] == name]


def images_by_suite(suite_names: Sequence[str], data: Path, names: Sequence[str] | None) -> dict[str, list[str] | None]:
    """For a run over several suites: each suite with the `names` it holds, in the order named
    (None: all its images); suites holding none are left out. A name no suite holds is an error."""
    if names is None:
        return dict.fromkeys(suite_names)
    wanted = list(dict.fromkeys(names))
    held = {}
    for suite_name in suite_names:
        known = {name for _, name in suite_images(SUITES[suite_name], data)}
        held[suite_name] = [name for name in wanted if name in known]
    unheld = [name for name in wanted if not any(name in kept for kept in held.values())]
    if unheld:
        raise DipError(f"no image {', '.join(unheld)} in any of the suites {', '.join(suite_names)}")
    return {suite_name: kept for suite_name, kept in held.items() if kept}


def _group(suite: Suite, folder: Path) -> str:
    """The set an image belongs to (Set5, Set14 for SR): the paper averages per set."""
    return folder.parent.name if suite.task == "super-resolve" else ""


def _title(presets: list[str]) -> str:
    return f"presets {', '.join(f'`{p}`' for p in presets)}" if presets else "the published methods only"


def _header(presets: list[str], methods: list[str], refined: list[str] = ()) -> list[str]:
    """A results table's columns (`read_results` finds its numbers by these names); the presets
    in `refined` refine their fits and get a column scoring the fits without that step."""
    return [
        "image",
        *(f"dip {p}" for p in presets),
        *(f"unrefined {p}" for p in refined),
        *methods,
        *(f"{kind} {p}" for kind in ("steps", "seconds") for p in presets),
    ]


def _refining(presets: list[str], results: list[ImageResult]) -> list[str]:
    """The presets some result scored without its refine step too."""
    return [p for i, p in enumerate(presets) if any(r.runs[i].unrefined is not None for r in results)]


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _write_row(
    path: Path, result: ImageResult, presets: list[str], methods: list[str], results: list, refined: list[str]
) -> None:
    """Append one image's row; the first row brings the header, whose published methods
    (`methods`, filled in here) every later row follows; `refined` names the presets with an
    unrefined column (a row without that score shows -)."""
    if not methods:
        methods.extend(result.published)
        header = _header(presets, methods, refined)
        with open(path, "a") as out:
            out.write("| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|\n")
    results.append(result)
    row = (
        [result.name]
        + [f"{r.score:.2f}" for r in result.runs]
        + [_score(r.unrefined) for p, r in zip(presets, result.runs) if p in refined]
        + [f"{result.published.get(m, float('nan')):.2f}" for m in methods]
        + [str(r.steps) for r in result.runs]
        + [f"{r.seconds:.0f}" for r in result.runs]
    )
    with open(path, "a") as out:
        out.write("| " + " | ".join(row) + " |\n")
    log.info(
        "    %s: %s; %s",
        result.name,
        ", ".join(
            f"dip {r.preset} {r.score:.2f} dB"
            + (f" ({r.unrefined:.2f} unrefined)" if r.unrefined is not None else "")
            + f" ({r.steps} steps, {r.seconds:.0f} s)"
            for r in result.runs
        ),
        ", ".join(f"{m} {v:.2f}" for m, v in result.published.items()),
    )


def _write_averages(
    path: Path,
    results: list[ImageResult],
    methods: list[str],
    presets: list[str],
    total: int,
    device_name: str,
    refined: list[str],
) -> None:
    if results:
        groups = list(dict.fromkeys(r.group for r in results))
        with open(path, "a") as out:
            if len(groups) > 1:
                for group in groups:
                    members = [r for r in results if r.group == group]
                    out.write(
                        "| "
                        + " | ".join(
                            average_row(f"**average {group}** ({len(members)})", members, methods, presets, refined)
                        )
                        + " |\n"
                    )
            label = "**average** (steps, seconds: totals)" if presets else "**average**"
            out.write("| " + " | ".join(average_row(label, results, methods, presets, refined)) + " |\n")
            out.write(f"\n{len(results)} of {total} images; device {device_name}.\n")


def average_row(
    label: str, results: list[ImageResult], methods: list[str], presets: list[str] = (), refined: list[str] = ()
) -> list[str]:
    """A table row: mean PSNR per preset, without the refine step for those in `refined` (over
    the rows that have it, their count shown where some lack it), and per published method;
    total steps and seconds per preset."""
    columns = range(len(results[0].runs))
    return (
        [label]
        + [f"**{np.mean([r.runs[i].score for r in results]):.2f}**" for i in columns]
        + [_unrefined_mean([r.runs[i].unrefined for r in results]) for i, p in enumerate(presets) if p in refined]
        + [f"{np.mean([r.published.get(m, np.nan) for r in results]):.2f}" for m in methods]
        + [str(sum(r.runs[i].steps for r in results)) for i in columns]
        + [f"{sum(r.runs[i].seconds for r in results):.0f}" for i in columns]
    )


def _unrefined_mean(scores: list[float | None]) -> str:
    have = [s for s in scores if s is not None]
    mean = f"{np.mean(have):.2f}" if have else "-"
    return mean if len(have) == len(scores) else f"{mean} ({len(have)} of {len(scores)})"


def read_results(path: Path) -> tuple[str, str, list[str], list[ImageResult]]:
    """What a results file of `run_suite` holds: (suite, mode, presets, one result per image
    row); the average rows are left out."""
    lines = Path(path).read_text().splitlines()
    title = lines[0].removesuffix(", merged") if lines else ""  # a merged table merges again
    if not title.startswith("# ") or ":" not in title or not title.endswith(" mode"):
        raise DipError(f"{path} is not a results file of dip bench quality")
    suite, mode = title[2:].split(":")[0], title.rsplit(", ", 1)[-1].removesuffix(" mode")
    header = next((line for line in lines if line.startswith("| image |")), None)
    if header is None:
        return suite, mode, [], []
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    presets = [c.removeprefix("dip ") for c in columns if c.startswith("dip ")]
    refined = [c.removeprefix("unrefined ") for c in columns if c.startswith("unrefined ")]
    methods = columns[1 + len(presets) + len(refined) : len(columns) - 2 * len(presets)]
    if columns != _header(presets, methods, refined):
        raise DipError(f"{path}: its columns are not those of dip bench quality: {header}")
    results = []
    for line in lines[lines.index(header) + 2 :]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not line.startswith("| ") or cells[0].startswith("**") or len(cells) != len(columns):
            continue
        try:
            row = dict(zip(columns[1:], (None if cell == "-" else float(cell) for cell in cells[1:])))
        except ValueError:
            raise DipError(f"{path}: a row that is not numbers: {line}") from None
        if any(v is None for c, v in row.items() if not c.startswith("unrefined ")):
            raise DipError(f"{path}: a row with a score missing: {line}")
        runs = [
            Run(p, row[f"dip {p}"], int(row[f"steps {p}"]), row[f"seconds {p}"], row.get(f"unrefined {p}"))
            for p in presets
        ]
        results.append(ImageResult(cells[0], runs, {m: row[m] for m in methods}))
    return suite, mode, presets, results


def _keeping(result: ImageResult, presets: list[str]) -> ImageResult:
    """`result` with the runs of `presets` only, in that order."""
    runs = {run.preset: run for run in result.runs}
    return dataclasses.replace(result, runs=[runs[p] for p in presets])


def merge_results(paths: list[Path], data: Path, out_dir: Path = Path("benchmarks/results"), command: str = "") -> Path:
    """One table of a suite run in parts: the results files of one suite and mode, each image's
    row taken from the last file (in the order given) that has it, images in the suite's order
    with its groups (Set5, Set14) read from `data`, and the averages; returns the new file
    (`SUITE-PRESETS-MODE-merged-DATE.md`). The table holds the presets every file has (a
    `default`-only part joins a `default,best` run as a `default` table; the file names what
    was left out). The seconds add runs made under different loads: they are not timings."""
    read = [read_results(path) for path in paths]
    kinds = {(suite, mode) for suite, mode, _, _ in read}
    if len(kinds) != 1:
        found = "; ".join(f"{s} {m}" for s, m in sorted(kinds))
        raise DipError(f"the files must share one suite and mode; found {found}")
    suite_name, mode = kinds.pop()
    if suite_name not in SUITES:
        raise DipError(f"unknown suite {suite_name!r} in {paths[0]}")
    presets = [p for p in read[0][2] if all(p in listed for _, _, listed, _ in read)]
    dropped = list(dict.fromkeys(p for _, _, listed, _ in read for p in listed if p not in presets))
    if dropped and not presets:
        found = "; ".join("+".join(listed) or "none" for _, _, listed, _ in read)
        raise DipError(f"the files share no preset; found {found}")
    latest = {r.name: (_keeping(r, presets), path) for (_, _, _, results), path in zip(read, paths) for r in results}
    suite = SUITES[suite_name]
    order = [(name, _group(suite, folder)) for folder, name in suite_images(suite, data)]
    date = datetime.date.today().isoformat()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = fresh_path(out_dir / f"{suite.name}-{'+'.join(presets) or 'published'}-{mode}-merged-{date}.md")
    used = {source for _, source in latest.values()}
    sources = [source.name for source in dict.fromkeys(paths) if source in used]
    with open(path, "w") as out:
        out.write(
            f"# {suite.name}: {_title(presets)}, {mode} mode, merged\n\n"
            f"- command: `{command}`\n- date: {date}\n"
            f"- each image's row from the last of these files that has it: {', '.join(sources)} "
            "(their machines, dates and protocol are in each file)\n"
            + (f"- not in every file, left out: {', '.join(f'`{p}`' for p in dropped)}\n" if dropped else "")
            + "- seconds: runs made under different loads, added up; not timings\n\n"
        )
    results: list[ImageResult] = []
    methods: list[str] = []
    refined = _refining(list(presets), [result for result, _ in latest.values()])
    for name, group in order:
        if name in latest:
            result = dataclasses.replace(latest[name][0], group=group)
            _write_row(path, result, list(presets), methods, results, refined)
    _write_averages(path, results, methods, list(presets), len(order), "as in each file", refined)
    return path
