"""Probe: CBM3D's restoration as the network's input, several seeded fits averaged (denoising).

A fit whose input z holds a classical restoration in its first 3 channels (uniform noise in the
other 29, as the default's z) starts near that restoration and stops early (~250 steps at 128 px);
alone it scored just below CBM3D itself (benchmarks/README.md, "A classical restoration as the
network's input"). Here K such fits, each with its own seed (weights and noise channels), are
averaged, and the mean is also blended half and half with CBM3D. CBSD68 (the settings-choice set),
centre crops, Gaussian noise sigma 25 (seed 0); needs the optional `bm3d` package.

    python benchmarks/guess_probe.py [--images 4] [--crop 128] [--fits 4]

Appends one row per image to benchmarks/results/guess-probe-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

import dip
from dip.baselines import cbm3d
from dip.bench import data_root
from dip.bench.choice import cases
from dip.bench.results import append_mean, append_row, results_file
from dip.canvas import NOISE_SCALE
from dip.metrics import psnr
from dip.presets import get_preset
from dip.problems import Denoising


@dataclasses.dataclass
class GuidedDenoising(Denoising):
    """Denoising whose network input is `guess` and `channels - 3` seeded noise channels."""

    guess: np.ndarray | None = None
    seed: int = 0
    channels: int = 32

    def guide(self) -> np.ndarray:
        height, width, bands = self.guess.shape
        noise = np.random.default_rng(self.seed).random((height, width, self.channels - bands)) * NOISE_SCALE
        return np.concatenate([self.guess, noise], axis=2).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="the first N images of CBSD68, sorted by name")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--fits", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = data_root()
    default = get_preset("denoise", "default")
    preset = dataclasses.replace(default, name="default+guess", input="image", input_channels=32)
    counts = sorted({k for k in (1, 2, args.fits) if k <= args.fits})
    path = results_file(
        Path(__file__).parent / "results",
        f"guess-probe-{args.device}",
        "Probe: CBM3D as the network's input, fits averaged",
        [
            f"CBSD68 (the settings-choice set), the first {args.images} images, centre {args.crop} px crops, "
            "Gaussian noise sigma 25 (seed 0)",
            "RGB PSNR: CBM3D alone; the default preset alone (seed 0); fits with CBM3D in the input's first 3 "
            f"channels (seeds 0-{args.fits - 1}), the mean of the first K; that mean and CBM3D averaged",
        ],
        ["image", "CBM3D", "default", *(f"guess K={k}" for k in counts), "(mean + CBM3D) / 2", "steps", "seconds"],
    )
    rows = []
    for name, problem, observed, clean in cases("denoise", args.images, args.crop, data):
        started = time.perf_counter()
        guess = cbm3d(observed, problem).astype(np.float32)
        plain = dip.run(problem, observed, seed=0, device=args.device)
        guided = [GuidedDenoising(sigma=problem.sigma, guess=guess, seed=k) for k in range(args.fits)]
        fits = [dip.run(one, observed, preset=preset, seed=k, device=args.device) for k, one in enumerate(guided)]
        means = [np.mean([f.pixels for f in fits[:k]], axis=0) for k in counts]
        scores = [
            psnr(guess, clean),
            psnr(plain.pixels, clean),
            *(psnr(m, clean) for m in means),
            psnr((means[-1] + guess) / 2, clean),
        ]
        rows.append(scores)
        steps = "/".join(str(f.fit.steps_run) for f in fits)
        append_row(path, [name, *(f"{v:.2f}" for v in scores), steps, f"{time.perf_counter() - started:.0f}"])
    append_mean(path, ["**average**"], rows, blanks=2)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
