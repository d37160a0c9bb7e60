"""Ensembles of restarts (`restarts=K`: the mean of K independently seeded fits) on the
settings-choice set CBSD68, per task: centre crops, degraded with a fixed seed (denoising: Gaussian
noise; super-resolution: the paper's Lanczos downscale; inpainting: half the pixels dropped), the
default preset, 8 fits per image (seeds 0-7, fitted together by `dip.run_many`) and the PSNR of the
mean of the first 1, 2, 4, 8 of them; with the time of one fit alone and of the 8 fitted together.

    python benchmarks/restarts.py [--tasks denoise,super-resolve,inpaint] [--images 4] [--crop 96]

Appends one row per image to benchmarks/results/restarts-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import dip
from dip.bench.choice import cases
from dip.bench.results import append_row, results_file
from dip.metrics import psnr

COUNTS = (1, 2, 4, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="denoise,super-resolve,inpaint")
    parser.add_argument("--images", type=int, default=4, help="the first N images of CBSD68, sorted by name")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = Path(os.environ.get("DIP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = results_file(
        Path(__file__).parent / "results",
        f"restarts-{args.device}",
        "Restarts: the mean of K fits",
        [
            f"CBSD68 (the settings-choice set), centre {args.crop} px crops; denoising: Gaussian noise sigma 25 "
            "(seed 0); super-resolution x4: the crop downscaled (Lanczos); inpainting: half the pixels dropped at "
            "random (seed 0)",
            "default presets; RGB PSNR of the mean of the first K of 8 fits (seeds 0-7, made by one "
            "`dip.run_many` call: batched where `batch='auto'` batches). Seconds: one fit alone (seed 0), and "
            "the 8 fits",
        ],
        ["task", "image", "input", *(f"K={k}" for k in COUNTS), "s, 1 fit", "s, 8 fits"],
    )
    for task in args.tasks.split(","):
        rows = []
        for name, problem, observed, clean in cases(task, args.images, args.crop, data):
            started = time.perf_counter()
            dip.run(problem, observed, seed=0, device=args.device)
            alone = time.perf_counter() - started
            started = time.perf_counter()
            fits = dip.run_many([problem] * 8, [observed] * 8, seed=range(8), device=args.device)
            together = time.perf_counter() - started
            scores = [psnr(np.mean([f.pixels for f in fits[:k]], axis=0), clean) for k in COUNTS]
            before = psnr(problem.before(observed), clean)
            rows.append(scores)
            append_row(
                path,
                [task, name, f"{before:.2f}", *(f"{v:.2f}" for v in scores), f"{alone:.0f}", f"{together:.0f}"],
            )
        mean = np.mean(rows, axis=0)
        with open(path, "a") as out:
            out.write(f"| **{task}** | **average** | | " + " | ".join(f"**{v:.2f}**" for v in mean) + " | | |\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
