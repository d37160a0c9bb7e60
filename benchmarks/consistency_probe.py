"""Super-resolution's refine step on the settings-choice set CBSD68: the default preset's fit
through one downscale kernel (`--fit-kernel`; `dip` fits through the paper's `lanczos2`), then
moved to the nearest image that each kernel downscales exactly to the observation
(`SuperResolution.refined`, `dip.operators.consistent`). The observations are Pillow's Lanczos
downscales, which `lanczos3` reproduces and the paper's `lanczos2` does not: does the step help,
and does it matter which kernel the fit used?

    python benchmarks/consistency_probe.py --factor 8 --crop 192 --images 6 --fit-kernel lanczos2
    python benchmarks/consistency_probe.py --factor 8 --crop 192 --images 6 --fit-kernel lanczos3

`--seeds N` averages N fits (seeds 0 to N-1) before the step. `--fits FOLDER` keeps the fits (a
`dip.fitstore` folder), so a run of the same fits again only scores them.

Appends one row per image to benchmarks/results/consistency-probe-xFACTOR-DEVICE-DATE.md.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

import dip
from dip.bench import data_root
from dip.bench.choice import cases, image_span
from dip.bench.results import append_mean, append_row, results_file
from dip.metrics import psnr
from dip.problems import KERNELS, SuperResolution


@dataclasses.dataclass
class FittedThrough(SuperResolution):
    """Super-resolution whose fit goes through `through`'s downscale (`SuperResolution.kernel`'s
    names), not the paper's operator; `through` counts in its saved fits' key."""

    through: str = "lanczos2"

    def build_operator(self):
        return dataclasses.replace(self, kernel=self.through).downscale()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, default=8, help="super-resolution factor")
    parser.add_argument("--crop", type=int, default=192, help="high-resolution centre crop side")
    parser.add_argument("--images", default="3", help="how many (N, or FIRST:LAST counting from 1), by name")
    parser.add_argument("--fit-kernel", choices=KERNELS, default="lanczos2", help="the operator the fit uses")
    parser.add_argument("--seeds", type=int, default=1, help="fits averaged before the step")
    parser.add_argument("--fits", help="a folder keeping the fits (dip.fitstore)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    start, stop = image_span(args.images)
    path = results_file(
        Path(__file__).parent / "results",
        f"consistency-probe-x{args.factor}-{args.device}",
        "Super-resolution's refine step: the fit made consistent with the observation",
        [
            f"CBSD68 (sorted by name), images {start + 1} to {stop}, centre {args.crop} px crops, x{args.factor} "
            "downscale by Pillow's Lanczos",
            f"the default preset (as the factor picks it), fitted through `{args.fit_kernel}`, "
            + (f"the mean of {args.seeds} fits (seeds 0-{args.seeds - 1})" if args.seeds > 1 else "seed 0")
            + "; RGB PSNR before the step and after it with each kernel",
        ],
        ["image", "bicubic", "fit", *(f"+ step, {kernel}" for kernel in KERNELS), "seconds"],
    )
    rows = []
    for name, problem, observed, clean in cases(
        "super-resolve", stop - start, args.crop, data_root(), start, args.factor
    ):
        fitted = FittedThrough(problem.factor, through=args.fit_kernel)
        runs = dip.run_many(
            [fitted] * args.seeds, [observed] * args.seeds, seed=range(args.seeds), device=args.device, fits=args.fits
        )
        mean = np.mean([run.pixels if run.unrefined is None else run.unrefined for run in runs], axis=0)
        stepped = [dataclasses.replace(problem, kernel=kernel).refined(mean, observed) for kernel in KERNELS]
        scores = [psnr(problem.before(observed), clean), psnr(mean, clean), *(psnr(s, clean) for s in stepped)]
        rows.append(scores)
        append_row(path, [name, *(f"{v:.2f}" for v in scores), f"{sum(run.seconds for run in runs):.0f}"])
    append_mean(path, ["**average**"], rows, blanks=1)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
