"""Probe: a share of the noisy image blended back into the Wiener step's pilot.

The default denoising preset stops its fit at the noise level and hands it to the Wiener step
(`dip.wiener.wiener`) as the pilot. A fit stopped there is smoother than the clean image, and the
step keeps each coefficient in the proportion the pilot says is signal, so the texture the fit
missed is filtered away. Here the pilot is `fit + share * (noisy - fit)` for several shares: the
noise blended in raises the pilot's power everywhere by share^2 sigma^2, the texture it brings
back raises it where the fit lost detail. `0` is the step with the pilot as the fit gave it.

CBSD68 (the settings-choice set), centre crops, Gaussian noise sigma 25 (seed 0; `--sigma`); the
default's fits (seed 0, or `--fits` seeded fits, each refined and then averaged as the `best`
preset does) come from `benchmarks/pilot_probe.py`'s cache (`.probe-cache/`, git-ignored),
fitted there when missing.

    python benchmarks/blend_probe.py [--images 10|FIRST:LAST] [--crop 128] [--sigma 25] [--fits 1] \
        [--shares 0,0.05,0.1,0.15,0.2]

Appends one row per image to benchmarks/results/blend-probe-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pilot_probe import fitted, noise_tag, probe_cases, probe_parser, probe_setting

from dip.bench.results import append_mean, append_row, results_file
from dip.metrics import psnr
from dip.wiener import wiener


def main() -> None:
    parser = probe_parser(__doc__, images="10")
    parser.add_argument(
        "--fits", type=int, default=1, help="seeded fits, each refined, then averaged (1: the default alone)"
    )
    parser.add_argument("--shares", default="0,0.05,0.1,0.15,0.2", help="shares of the noisy image, comma-separated")
    args = parser.parse_args()
    shares = [float(share) for share in args.shares.split(",")]
    pilot = "the default's fit (seed 0)" if args.fits == 1 else f"{args.fits} seeded default fits (their mean)"
    path = results_file(
        Path(__file__).parent / "results",
        f"blend-probe-{args.device}" + noise_tag(args.sigma),
        "Probe: the noisy image blended into the Wiener step's pilot",
        [
            probe_setting(args),
            f"RGB PSNR of {pilot} (`the fit`) and of the Wiener step (`dip.wiener.wiener`, the presets' settings) "
            "with the pilot `fit + share * (noisy - fit)`"
            + (", each fit refined, then the mean (what `best` does)" if args.fits > 1 else "")
            + "; steps and seconds: the fits' (as first run, "
            "when they come from the cache)",
        ],
        ["image", "the fit", *(f"share {share:g}" for share in shares), "steps", "seconds"],
    )
    rows = []
    for name, problem, observed, clean in probe_cases(args):
        outputs, steps, seconds = fitted(name, problem, observed, args.crop, args.fits, args.device)
        sigma = problem.sigma / 255
        scores = [psnr(np.clip(outputs.mean(axis=0), 0, 1), clean)]
        for share in shares:  # each fit refined, then the mean: what `best` does
            refined = [wiener(observed, fit, sigma, blend=share) for fit in outputs]
            scores.append(psnr(np.mean(refined, axis=0), clean))
        rows.append(scores)
        append_row(path, [name, *(f"{v:.2f}" for v in scores), steps, f"{seconds:.0f}"])
    append_mean(path, ["**average**"], rows, blanks=2)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
