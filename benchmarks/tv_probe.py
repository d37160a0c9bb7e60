"""Total variation beside the data term (DIP-TV, after Liu, Sun, Xu and Kamilov, 2019): a probe
on the settings-choice set CBSD68, denoising at sigma 25 with the default preset.

The fit minimises the data term plus `weight` times the mean anisotropic total variation of the
prediction. The penalty enters the gradient only (its value is added and taken away again), so
the loss the discrepancy stop and the backtracking read is the data term alone, as in the
default.

    python benchmarks/tv_probe.py --weights 0.01,0.03 --images 4 --crop 128
    python benchmarks/tv_probe.py --weights 0,0.01 --images 5:8 --crop 128   # weight 0: the default

Appends one row per fit to benchmarks/results/tv-probe-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

import dip
from dip.bench import data_root
from dip.bench.choice import cases, image_span
from dip.bench.results import append_row, results_file
from dip.metrics import psnr
from dip.problems import Denoising


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbours, across and down (N, C, H, W)."""
    across = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    down = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return across + down


@dataclasses.dataclass
class TVDenoising(Denoising):
    """Denoising whose fit is also pulled towards a smaller total variation."""

    weight: float = 0.0

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        penalty = self.weight * total_variation(prediction)
        return super().loss(prediction, target) + penalty - penalty.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="0.01,0.03", help="comma-separated TV weights")
    parser.add_argument("--images", default="4", help="how many (N, or FIRST:LAST counting from 1), by name")
    parser.add_argument("--crop", type=int, default=128, help="centre crop side")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    start, stop = image_span(args.images)
    path = results_file(
        Path(__file__).parent / "results",
        f"tv-probe-{args.device}",
        "DIP-TV: the default denoising preset with a total-variation term in the gradient",
        [
            f"CBSD68 (sorted by name), images {start + 1} to {stop}, centre {args.crop} px crops, sigma 25",
            "best: the highest PSNR over the run (knows the clean image)",
        ],
        ["image", "TV weight", "result PSNR", "best PSNR (step)", "steps", "seconds"],
    )
    for name, problem, observed, clean in cases("denoise", stop - start, args.crop, data_root(), start):
        for weight in weights:
            own = TVDenoising(sigma=problem.sigma, clipped=problem.clipped, weight=weight)
            done = dip.run(own, observed, preset="default", reference=clean, device=args.device)
            step, best = done.metrics.best
            cells = [name, weight, f"{psnr(done.pixels, clean):.2f}", f"{best:.2f} ({step})"]
            append_row(path, [*cells, done.fit.steps_run, f"{done.seconds:.0f}"])
    print(f"results: {path}")


if __name__ == "__main__":
    main()
