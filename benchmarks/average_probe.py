"""Longer averages of one fit's outputs, at no extra cost: a probe on the settings-choice set.

One default fit per image (CBSD68, centre crops, degraded as `benchmarks/restarts.py` does); a
callback folds every step's output into several running averages beside the preset's own, and
each is scored at the end (with the problem's last touches, e.g. known pixels pasted back). Fits
that run to their cap (scattered-pixel inpainting, most super-resolution) average the same
trajectory however long the window, so a longer one is free; whether it adds what restarts add
(+0.9 dB at K = 4 on inpainting) is the question.

    python benchmarks/average_probe.py [--task inpaint] [--images 3] [--crop 96]

Averages: `ema=W` folds each output in with weight 1 - W; `ramp=R` keeps min(1, (1 + t) / (R + t))
of the average at step t (`FitConfig.ema=1, ema_ramp=R`): `ramp=2` is about the plain mean of every
output, `ramp=3` weighs output s in proportion to s + 2, a larger R leans further to the later
ones (output s weighs about s^(R - 2)).
`best` is the best PSNR of the preset's own estimate over the run (needs the truth: a ceiling, not
a method).
Appends one row per image to benchmarks/results/average-probe-TASK-DEVICE-DATE.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import dip
from dip.bench import data_root
from dip.bench.choice import cases
from dip.bench.results import append_mean, append_row, results_file
from dip.callbacks import to_numpy_image
from dip.fit import Callback, FitState, ema_weight
from dip.metrics import psnr

AVERAGES = {"ema=0.998": (0.998, None), "ema=0.999": (0.999, None)}
AVERAGES |= {f"ramp={r}": (1.0, r) for r in (2, 3, 4, 10)}


class Averages(Callback):
    """Running averages of the outputs, `label -> (ema, ramp)` weighted as `dip.fit.update_ema`
    weights them (`dip.fit.ema_weight`); undone steps are left out, as there."""

    def __init__(self, kinds: dict[str, tuple[float, float | None]]):
        self.kinds = kinds
        self.means: dict[str, torch.Tensor] = {}

    def on_step(self, state: FitState) -> None:
        if state.backtracked or state.output is None:
            return
        for label, (ema, ramp) in self.kinds.items():
            weight = ema_weight(ema, ramp, state.step)
            mean = self.means.get(label)
            if mean is None:
                self.means[label] = state.output.clone()
            else:
                mean.mul_(weight).add_(state.output, alpha=1 - weight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="inpaint")
    parser.add_argument("--images", type=int, default=3, help="the first N images of CBSD68, sorted by name")
    parser.add_argument("--start", type=int, default=0, help="skip the first N images")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's step cap")
    args = parser.parse_args()
    labels = list(AVERAGES)
    path = results_file(
        Path(__file__).parent / "results",
        f"average-probe-{args.task}-{args.device}",
        "Longer averages of one fit's outputs",
        [
            f"CBSD68 (the settings-choice set), centre {args.crop} px crops, degraded as benchmarks/restarts.py "
            "does; the default preset (as the problem picks it), seed 0, one fit per image",
            "RGB PSNR: the preset's result, each running average of the same fit's outputs (see the script's doc), "
            "and the best PSNR of the preset's own estimate over the run, before the last touches "
            "(a ceiling that needs the truth)",
        ],
        ["image", "input", "preset", *labels, "best (step)", "steps", "s"],
    )
    rows = []
    for name, problem, observed, clean in cases(args.task, args.images, args.crop, data_root(), start=args.start):
        averages = Averages(AVERAGES)
        started = time.perf_counter()
        restored = dip.run(
            problem, observed, seed=0, steps=args.steps, device=args.device, reference=clean, callbacks=[averages]
        )
        seconds = time.perf_counter() - started
        scores = [psnr(restored.pixels, clean)]
        scores += [psnr(problem.finish(to_numpy_image(averages.means[k]), observed), clean) for k in labels]
        rows.append(scores)
        best_step, best = restored.metrics.best
        append_row(
            path,
            [
                name,
                f"{psnr(problem.before(observed), clean):.2f}",
                *(f"{v:.2f}" for v in scores),
                f"{best:.2f} ({best_step})",
                str(restored.fit.steps_run),
                f"{seconds:.0f}",
            ],
        )
    append_mean(path, ["**average**", ""], rows, blanks=3)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
