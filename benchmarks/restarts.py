"""Ensembles of restarts (`restarts=K`: the mean of K fits) on the settings-choice set CBSD68, per
task: centre crops, degraded with a fixed seed (denoising: Gaussian noise; super-resolution: the
paper's Lanczos downscale; inpainting: half the pixels dropped), the default preset, 8 fits per
image (seeds 0-7, fitted together by `dip.run_many`) and the PSNR of the mean of the first 1, 2,
4, 8 of them; with the time of one fit alone and of the 8 fitted together.

    python benchmarks/restarts.py [--tasks denoise,super-resolve,inpaint] [--images 4] [--crop 96]
                                  [--factor 4] [--members seeds|dihedral] [--fits 8] [--preset default]
                                  [--device cuda --acceleration tf32+graph]

`--members seeds` (the default): the fits differ by their seeds only, as `dip.run`'s ensembles.
`--members dihedral` (denoising and super-resolution, whose operators commute with flips and
transposes of a square crop): fit k, still seeded k, restores the k-th of the eight flips and
rotations of the observation (`dihedral`: the first four keep the image's shape) and is turned
back before averaging. `--fits N` fits N members (default 8) and scores the means of 1, 2, 4, 8
of them up to N. `--preset` fits another preset or a variant of one (`PRESET[+CHANGE...]`, as
`benchmarks/variants.py`), e.g. `default+width=16`: are more, cheaper members worth more?
`--acceleration` fits in another arithmetic (`dip bench speed`'s variant names, e.g. `tf32+graph`).

Appends one row per image to benchmarks/results/restarts-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import dip
from dip.accel import Acceleration
from dip.bench import data_root
from dip.bench.choice import cases, variant
from dip.bench.results import append_mean, append_row, results_file
from dip.errors import DipError
from dip.metrics import psnr
from dip.presets import Preset, get_preset

COUNTS = (1, 2, 4, 8)
FLIPS = ((), (0,), (1,), (0, 1))  # none, upside down, mirrored, both


def dihedral(image: np.ndarray, k: int, inverse: bool = False) -> np.ndarray:
    """The k-th (0-7) flip or quarter turn of an (H, W, ...) array, or its inverse. The first four
    keep the shape (none, upside down, mirrored, both: a half turn); the last four are those
    transposed.

    >>> a = np.arange(6).reshape(2, 3)
    >>> all((dihedral(dihedral(a, k), k, inverse=True) == a).all() for k in range(8))
    True
    >>> [dihedral(a, k).shape for k in (3, 4)]
    [(2, 3), (3, 2)]
    """
    flips, transpose = FLIPS[k % 4], k >= 4
    if inverse and transpose:
        image = np.swapaxes(image, 0, 1)
    image = np.flip(image, flips) if flips else image
    return np.swapaxes(image, 0, 1) if transpose and not inverse else image


def _slug(preset: str) -> str:
    """The results file's suffix for a preset other than the default.

    >>> _slug("default+width=16")
    '-default-width16'
    """
    return "" if preset == "default" else "-" + preset.replace("+", "-").replace("=", "")


def _preset(task: str, text: str, factor: int) -> Preset:
    """The preset `text` names for the task's cases (a plain name as the problem picks it)."""
    if "+" in text:
        return variant(task, text)
    problem = next(cases(task, 1, 64, factor=factor))[1]
    return get_preset(task, problem.preset_name(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="denoise,super-resolve,inpaint")
    parser.add_argument("--images", type=int, default=4, help="the first N images of CBSD68, sorted by name")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--factor", type=int, default=4, help="super-resolution factor (x8 fits `default-x8`)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--members", choices=("seeds", "dihedral"), default="seeds")
    parser.add_argument("--fits", type=int, default=8, help="fits per image (at most 8)")
    parser.add_argument("--preset", default="default", help="PRESET[+CHANGE...] (benchmarks/variants.py)")
    parser.add_argument("--acceleration", help="e.g. tf32+graph (default: the device's own)")
    args = parser.parse_args()
    speed = Acceleration.parse(args.acceleration).options() if args.acceleration else {}
    counts = [k for k in COUNTS if k <= args.fits]
    turned = args.members == "dihedral"
    if turned and not set(args.tasks.split(",")) <= {"denoise", "super-resolve"}:
        raise DipError("--members dihedral: denoise and super-resolve only (their operators commute with the views)")
    data = data_root()
    tasks = args.tasks.split(",")
    refining = all(_preset(task, args.preset, args.factor).refine for task in tasks)
    unrefined = [f"K={k} unrefined" for k in (1, counts[-1])] if refining else []
    path = results_file(
        Path(__file__).parent / "results",
        f"restarts-{args.device}"
        + (f"-x{args.factor}" if args.factor != 4 else "")
        + ("-dihedral" if turned else "")
        + _slug(args.preset)
        + (f"-{args.acceleration.replace('+', '-')}" if args.acceleration else ""),
        "Restarts: the mean of K fits" + (", each on its own flip or rotation" if turned else ""),
        [
            f"CBSD68 (the settings-choice set), centre {args.crop} px crops; denoising: Gaussian noise sigma 25 "
            f"(seed 0); super-resolution x{args.factor}: the crop downscaled (Lanczos); inpainting: half the "
            "pixels dropped at random (seed 0)",
            f"preset {args.preset}"
            + (f", {args.acceleration}" if args.acceleration else "")
            + f"; RGB PSNR of the mean of the first K of {args.fits} fits (seeds 0-{args.fits - 1}, "
            "made by one `dip.run_many` call: batched where `batch='auto'` batches). Seconds: one fit alone "
            f"(seed 0), and the {args.fits} fits",
        ],
        ["task", "image", "input", *(f"K={k}" for k in counts), *unrefined, "s, 1 fit", f"s, {args.fits} fits"],
    )
    for task in tasks:
        # a plain name stays a name, so the problem still picks its own (`default-pixels`, ...)
        preset = variant(task, args.preset) if "+" in args.preset else args.preset
        rows = []
        for name, problem, observed, clean in cases(task, args.images, args.crop, data, factor=args.factor):
            started = time.perf_counter()
            dip.run(problem, observed, preset=preset, seed=0, device=args.device, **speed)
            alone = time.perf_counter() - started
            started = time.perf_counter()
            views = [np.ascontiguousarray(dihedral(observed, k)) if turned else observed for k in range(args.fits)]
            fits = dip.run_many(
                [problem] * args.fits, views, preset=preset, seed=range(args.fits), device=args.device, **speed
            )
            results = [dihedral(f.pixels, k, inverse=True) if turned else f.pixels for k, f in enumerate(fits)]
            together = time.perf_counter() - started
            scores = [psnr(np.mean(results[:k], axis=0), clean) for k in counts]
            if refining:
                plain = [dihedral(f.unrefined, k, inverse=True) if turned else f.unrefined for k, f in enumerate(fits)]
                scores += [psnr(np.mean(plain[:k], axis=0), clean) for k in (1, counts[-1])]
            before = psnr(problem.before(observed), clean)
            rows.append(scores)
            append_row(
                path,
                [task, name, f"{before:.2f}", *(f"{v:.2f}" for v in scores), f"{alone:.0f}", f"{together:.0f}"],
            )
        append_mean(path, [f"**{task}**", "**average**", ""], rows, blanks=2)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
