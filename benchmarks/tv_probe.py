"""Total variation beside the data term (DIP-TV, after Liu, Sun, Xu and Kamilov, 2019): a probe
on the settings-choice set CBSD68 with the default preset, denoising at sigma 25 or
super-resolution (`--task super-resolve --factor 8`: does an explicit prior add quality at x8,
where averaging fits adds little?).

The fit minimises the data term plus `weight` times the mean anisotropic total variation of the
image (the network's output before A; rows before 2026-12-04 took it on A's output, for
denoising the clipped noise's mean, nearly the image). The penalty enters the gradient only (its
value is added and taken away again), so the loss the stop and the backtracking read is the
data term alone, as in the default.

    python benchmarks/tv_probe.py --weights 0.01,0.03 --images 4 --crop 128
    python benchmarks/tv_probe.py --weights 0,0.01 --images 5:8 --crop 128   # weight 0: the default
    python benchmarks/tv_probe.py --task super-resolve --factor 8 --crop 192 --images 3 --weights 0,0.001,0.003

Appends one row per fit to benchmarks/results/tv-probe[-xFACTOR]-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from torch import nn

import dip
from dip.bench import data_root
from dip.bench.choice import cases, image_span
from dip.bench.results import append_row, results_file
from dip.metrics import psnr
from dip.problems import Problem


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbours, across and down (N, C, H, W)."""
    across = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    down = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return across + down


class _Seen(nn.Module):
    """A, keeping the image it was last applied to, for the penalty to read."""

    def __init__(self, operator: nn.Module):
        super().__init__()
        self.operator, self.image = operator, None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.image = image
        return self.operator(image)


def penalised(problem: Problem, weight: float) -> Problem:
    """`problem` (a dataclass) whose fit is also pulled towards a smaller total variation of the
    image. One fit per problem: the penalty reads the image from the operator built last."""

    @dataclasses.dataclass
    class Penalised(type(problem)):
        weight: float = 0.0

        def build_operator(self) -> nn.Module:
            self.seen = _Seen(super().build_operator())
            return self.seen

        def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            penalty = self.weight * total_variation(self.seen.image)
            return super().loss(prediction, target) + penalty - penalty.detach()

    fields = {field.name: getattr(problem, field.name) for field in dataclasses.fields(problem) if field.init}
    return Penalised(**fields, weight=weight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("denoise", "super-resolve"), default="denoise")
    parser.add_argument("--factor", type=int, default=4, help="super-resolution factor")
    parser.add_argument("--weights", default="0.01,0.03", help="comma-separated TV weights")
    parser.add_argument("--images", default="4", help="how many (N, or FIRST:LAST counting from 1), by name")
    parser.add_argument("--crop", type=int, default=128, help="centre crop side")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    start, stop = image_span(args.images)
    path = results_file(
        Path(__file__).parent / "results",
        f"tv-probe{'-x' + str(args.factor) if args.task == 'super-resolve' else ''}-{args.device}",
        f"DIP-TV: the default {args.task} preset with a total-variation term in the gradient",
        [
            f"CBSD68 (sorted by name), images {start + 1} to {stop}, centre {args.crop} px crops, "
            + (f"x{args.factor} Lanczos downscale" if args.task == "super-resolve" else "sigma 25"),
            "best: the highest PSNR over the run (knows the clean image)",
        ],
        ["image", "TV weight", "result PSNR", "best PSNR (step)", "steps", "seconds"],
    )
    for name, problem, observed, clean in cases(args.task, stop - start, args.crop, data_root(), start, args.factor):
        for weight in weights:
            own = penalised(problem, weight)
            done = dip.run(own, observed, preset="default", reference=clean, device=args.device)
            step, best = done.metrics.best
            cells = [name, weight, f"{psnr(done.pixels, clean):.2f}", f"{best:.2f} ({step})"]
            append_row(path, [*cells, done.fit.steps_run, f"{done.seconds:.0f}"])
    print(f"results: {path}")


if __name__ == "__main__":
    main()
