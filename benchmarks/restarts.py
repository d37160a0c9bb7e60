"""Ensembles of restarts (`restarts=K`: the mean of K independently seeded fits) on the
settings-choice set CBSD68: centre crops with seeded Gaussian noise, the default preset, K fits
per image (seeds 0..K-1) and the PSNR of the mean of the first 1, 2, ..., K of them.

    python benchmarks/restarts.py [--images 4] [--crop 96] [--sigma 25] [--k 4]

Appends one row per image to benchmarks/results/restarts-cpu-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import dip
from dip.bench.quality import centre_box, cut, fresh_path, machine
from dip.degrade import add_noise
from dip.io import read_image
from dip.metrics import psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="the first N images of CBSD68, sorted by name")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--sigma", type=float, default=25)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = Path(os.environ.get("DIP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "CBSD68"
    date = datetime.date.today().isoformat()
    path = fresh_path(Path(__file__).parent / "results" / f"restarts-{args.device}-{date}.md")
    counts = range(1, args.k + 1)
    with open(path, "w") as out:
        out.write(
            f"# Restarts: the mean of K fits\n\n- command: `python {' '.join(sys.argv)}`\n- date: {date}; machine: "
            f"{machine()}; torch {torch.__version__}\n- CBSD68, centre {args.crop} px crops, Gaussian noise sigma "
            f"{args.sigma:g} (seed 0), preset denoise/default; RGB PSNR of the mean of the first K fits\n\n"
            "| image | noisy | "
            + " | ".join(f"K={k}" for k in counts)
            + " | seconds per fit |\n"
            + "|---" * (args.k + 3)
            + "|\n"
        )
    rows = []
    for file in sorted(data.glob("*.png"))[: args.images]:
        truth = read_image(file).pixels
        clean = cut(truth, centre_box(*truth.shape[:2], args.crop, 1))
        noisy = add_noise(clean, args.sigma, seed=0)
        started = time.perf_counter()
        fits = [dip.run(dip.Denoising(args.sigma), noisy, seed=s, device=args.device).image for s in range(args.k)]
        seconds = (time.perf_counter() - started) / args.k
        scores = [psnr(np.mean(fits[:k], axis=0), clean) for k in counts]
        rows.append(scores)
        row = (
            f"| {file.stem} | {psnr(noisy, clean):.2f} | "
            + " | ".join(f"{v:.2f}" for v in scores)
            + f" | {seconds:.0f} |"
        )
        with open(path, "a") as out:
            out.write(row + "\n")
        print(row, flush=True)
    mean = np.mean(rows, axis=0)
    with open(path, "a") as out:
        out.write("| **average** | | " + " | ".join(f"**{v:.2f}**" for v in mean) + " | |\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
