"""Ensemble members fitted past the stop: a probe on the settings-choice set CBSD68, denoising at
sigma 25 with the default preset.

One fit stops where its data term reaches the noise level (the discrepancy rule): there it has
explained the image and starts on the noise. The mean of K fits carries less of each fit's noise
than one fit does, so the mean may do better with members that ran on a little further (sharper,
noisier). Each member here runs past its own stop step s and keeps its running average at
f x s for each factor f; the row gives, per factor, the PSNR of one member (the average over the
members) and of the mean of all K.

    python benchmarks/past_stop_probe.py --images 3 --crop 128 --fits 4 --factors 1,1.15,1.3,1.5,1.75,2

Appends one row per image to benchmarks/results/past-stop-probe-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import dip
from dip.bench import data_root
from dip.bench.choice import cases
from dip.bench.results import append_row, results_file
from dip.callbacks import EarlyStopping, to_numpy_image
from dip.fit import FitState
from dip.metrics import psnr
from dip.presets import StopRule, get_preset


class PastStop(EarlyStopping):
    """The discrepancy rule, but instead of stopping at its step s, the estimate is kept at
    round(f x s) for each factor f; the run stops once the last is kept."""

    def __init__(self, noise_variance: float, factors: list[float]):
        super().__init__(warmup=StopRule().warmup, noise_variance=noise_variance)
        self.factors, self.crossed = factors, None
        self.kept: dict[float, np.ndarray] = {}

    def on_step(self, state: FitState) -> None:
        if self.crossed is None:
            super().on_step(state)
            if not state.stop:
                return
            state.stop, state.stop_reason, self.crossed = False, "", state.step
        for factor in self.factors:
            if factor not in self.kept and state.step >= round(factor * self.crossed):
                self.kept[factor] = to_numpy_image(state.estimate.clamp(0, 1))
        state.stop = len(self.kept) == len(self.factors)

    def on_end(self, state: FitState) -> None:
        """A run that hit its step budget first keeps its last estimate for the factors it missed."""
        for factor in self.factors:
            self.kept.setdefault(factor, to_numpy_image(state.estimate.clamp(0, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3, help="the first N images by name")
    parser.add_argument("--crop", type=int, default=128, help="centre crop side")
    parser.add_argument("--fits", type=int, default=4, help="members, seeded 0 to K - 1")
    parser.add_argument("--factors", default="1,1.15,1.3,1.5,1.75,2", help="multiples of the stop step")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    factors = [float(f) for f in args.factors.split(",")]
    preset = get_preset("denoise", "default")
    columns = [f"x{f:g}: one / mean of {args.fits}" for f in factors]
    path = results_file(
        Path(__file__).parent / "results",
        f"past-stop-probe-{args.device}",
        "Ensemble members fitted past the discrepancy stop: denoising, default preset",
        [
            f"CBSD68 (sorted by name), the first {args.images} images, centre {args.crop} px crops, sigma 25",
            f"each cell: PSNR of one member (averaged over the {args.fits}) / of the mean of the {args.fits}, "
            "the members kept at factor x their own stop step",
        ],
        ["image", "stop steps", *columns],
    )
    for name, problem, observed, clean in cases("denoise", args.images, args.crop, data_root()):
        members = []
        for seed in range(args.fits):
            watch = PastStop(problem.known_noise_variance(observed), factors)
            dip.run(
                problem,
                observed,
                preset=preset,
                steps=round(max(factors) * preset.fit.steps),
                seed=seed,
                early_stop=False,
                callbacks=[watch],
                device=args.device,
            )
            members.append(watch)
        cells = []
        for factor in factors:
            kept = [member.kept[factor] for member in members]
            one = np.mean([psnr(image, clean) for image in kept])
            cells.append(f"{one:.2f} / {psnr(np.mean(kept, axis=0), clean):.2f}")
        append_row(path, [name, ", ".join(str(m.crossed) for m in members), *cells])
    print(f"results: {path}")


if __name__ == "__main__":
    main()
