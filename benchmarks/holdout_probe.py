"""Probe: a stop for inpainting that needs no clean image: hold out a few known pixels.

A random `--held`% of the known pixels is left out of the loss; every 10 steps the running
average's squared error on them is measured, and the iterate where it is lowest is the result
(every known pixel, held out or not, pasted back from the input). Held-out pixels are points
the network never fitted, like the hole, so their error should fall and rise with the hole's.

    python benchmarks/holdout_probe.py --mask strokes --images 3 --crop 96

Per image: the task's default (the problem picks its preset) run to its cap without its own stop,
its PSNR at the held-out minimum, at the end, and the best over the run (knows the clean image);
rows append to benchmarks/results/holdout-probe-cpu-DATE.md as each image finishes.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

import dip
from dip.bench import data_root
from dip.bench.choice import cases
from dip.bench.results import append_row, results_file
from dip.callbacks import to_numpy_image
from dip.fit import Callback, FitState
from dip.metrics import psnr


class HeldOut(Callback):
    """Every `every` steps: the estimate's error on the held-out pixels (kept: the lowest's
    image) and its PSNR against the clean image with the known pixels pasted (for the probe's
    table only)."""

    def __init__(self, held: np.ndarray, known: np.ndarray, observed: np.ndarray, clean: np.ndarray, every: int = 10):
        self.held, self.known, self.observed, self.clean, self.every = held, known, observed, clean, every
        self.lowest, self.chosen, self.curve = np.inf, None, []

    def on_step(self, state: FitState) -> None:
        if state.step % self.every or state.estimate is None:
            return
        image = to_numpy_image(state.estimate)
        error = float(np.mean((image - self.observed)[self.held] ** 2))
        score = psnr(np.where(self.known, self.observed, image), self.clean)
        self.curve.append((state.step, score))
        if error < self.lowest:
            self.lowest, self.chosen = error, (state.step, score)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mask", default="strokes")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--held", type=float, default=5.0, help="percent of the known pixels held out")
    args = parser.parse_args()
    data = data_root()
    path = results_file(
        Path(__file__).parent / "results",
        "holdout-probe-cpu",
        "Held-out pixels as the stop: inpainting",
        [
            f"CBSD68, the first {args.images} images, centre {args.crop} px crops, holes: {args.mask}; "
            f"{args.held}% of the known pixels held out (seed 0); known pixels pasted in every column",
            f"the task's default preset without its own stop, run to its cap; torch threads: {torch.get_num_threads()}",
        ],
        ["image", "preset", "at the held-out minimum (step)", "end (steps)", "best (step)", "seconds"],
    )
    for name, problem, observed, clean in cases("inpaint", args.images, args.crop, data, kind=args.mask):
        started = time.perf_counter()
        known2d = problem.mask[:, :, 0] > 0
        held2d = known2d & (np.random.default_rng(0).random(known2d.shape) < args.held / 100)
        fitted = dataclasses.replace(problem, mask=(known2d & ~held2d)[:, :, None].astype(np.float32))
        known = np.broadcast_to(known2d[:, :, None], clean.shape)
        probe = HeldOut(np.broadcast_to(held2d[:, :, None], clean.shape), known, observed, clean)
        out = dip.run(fitted, observed, device="cpu", early_stop=False, callbacks=[probe])
        best = max(probe.curve, key=lambda point: point[1])
        end = psnr(np.where(known, observed, out.image), clean)
        append_row(
            path,
            [
                name,
                out.preset.name,
                f"{probe.chosen[1]:.2f} ({probe.chosen[0]})",
                f"{end:.2f} ({out.fit.steps_run})",
                f"{best[1]:.2f} ({best[0]})",
                f"{time.perf_counter() - started:.0f}",
            ],
        )
        print(name, probe.chosen, f"{end:.2f}", best, flush=True)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
