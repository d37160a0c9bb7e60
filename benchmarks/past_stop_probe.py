"""Ensemble members fitted past the stop (or cut before it): a probe on the settings-choice set
CBSD68, denoising at sigma 25 (or `--sigma`) with the default preset.

One fit stops where its data term reaches the noise level (the discrepancy rule): there it has
explained the image and starts on the noise. The mean of K fits carries less of each fit's noise
than one fit does, so the mean may do better with members that ran on a little further (sharper,
noisier). Each member here runs past its own stop step s and keeps its running average at
f x s for each factor f (a factor below 1: the estimate kept every 10 steps before the stop
nearest below f x s); the row gives, per factor, the PSNR of one member (the average over the
members) and of the mean of all K. With `--refine` each cell adds the same after the problem's
refine step (`Problem.refined`: the Wiener step), each member refined before the mean as
`dip.run` does: does the step want a fit stopped elsewhere?

    python benchmarks/past_stop_probe.py --images 3 --crop 128 --fits 4 --factors 1,1.15,1.3,1.5,1.75,2
    python benchmarks/past_stop_probe.py --images 4 --crop 128 --fits 1 --factors 0.7,0.85,1,1.15,1.3,1.5 --refine

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
    round(f x s) for each factor f (below 1: the last of the estimates kept every `EVERY` steps
    up to there); the run stops once the last is kept."""

    EVERY = 10

    def __init__(self, noise_variance: float, factors: list[float]):
        super().__init__(warmup=StopRule().warmup, noise_variance=noise_variance)
        self.factors, self.crossed = factors, None
        self.kept: dict[float, np.ndarray] = {}
        self.before: dict[int, np.ndarray] = {}

    def on_step(self, state: FitState) -> None:
        if self.crossed is None:
            super().on_step(state)
            if not state.stop:
                if any(f < 1 for f in self.factors) and state.step % self.EVERY == 0:
                    self.before[state.step] = to_numpy_image(state.estimate.clamp(0, 1))
                return
            state.stop, state.stop_reason, self.crossed = False, "", state.step
            for factor in (f for f in self.factors if f < 1):
                earlier = [step for step in self.before if step <= round(factor * self.crossed)]
                self.kept[factor] = self.before[max(earlier)] if earlier else self.before[min(self.before)]
            self.before.clear()
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
    parser.add_argument("--sigma", type=float, default=25, help="noise level (0-255)")
    parser.add_argument("--skip", type=int, default=0, help="start after the first N images")
    parser.add_argument("--refine", action="store_true", help="score each cell after the refine step too")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    factors = [float(f) for f in args.factors.split(",")]
    preset = get_preset("denoise", dip.Denoising(args.sigma).preset_name("default"))
    cell = f"one / mean of {args.fits}" + (" / refined: one / mean" if args.refine else "")
    columns = [f"x{f:g}: {cell}" for f in factors]
    path = results_file(
        Path(__file__).parent / "results",
        f"past-stop-probe-{args.device}" + ("" if args.sigma == 25 else f"-sigma{args.sigma:g}"),
        "Ensemble members fitted past the discrepancy stop: denoising, default preset",
        [
            f"CBSD68 (sorted by name), images {args.skip + 1} to {args.skip + args.images}, centre {args.crop} px "
            f"crops, sigma {args.sigma:g}; preset {preset.task}/{preset.name}",
            f"each cell: PSNR of one member (averaged over the {args.fits}) / of the mean of the {args.fits}, "
            "the members kept at factor x their own stop step"
            + ("; then the same with each member refined (the Wiener step) before the mean" if args.refine else ""),
        ],
        ["image", "stop steps", *columns],
    )
    chosen = cases("denoise", args.images, args.crop, data_root(), start=args.skip, sigma=args.sigma)
    for name, problem, observed, clean in chosen:
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
            scores = _one_and_mean(kept, clean)
            if args.refine:
                scores += " / " + _one_and_mean([problem.refined(image, observed) for image in kept], clean)
            cells.append(scores)
        append_row(path, [name, ", ".join(str(m.crossed) for m in members), *cells])
    print(f"results: {path}")


def _one_and_mean(images: list[np.ndarray], clean: np.ndarray) -> str:
    one = np.mean([psnr(image, clean) for image in images])
    return f"{one:.2f} / {psnr(np.mean(images, axis=0), clean):.2f}"


if __name__ == "__main__":
    main()
