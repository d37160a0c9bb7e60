"""Probe: deblurring, the fit and a Wiener correction after it, against the classical methods.

The deblurring default fits the blurred image through the known blur and stops itself. Candidates
measured here, on CBSD68 (the settings-choice set), centre crops blurred by a Gaussian of 1.5 px
(`--blur`) and given Gaussian noise (sigma 2 on the 0-255 scale by default, seed 0; the problem is not told
the noise level: it is estimated, as for a user's photo):

- the stop: the discrepancy rule at the estimated noise level (`default`) or the variance rule
  (`default+variance`); the network (`+net=denoise/default`: the fast denoising net);
- the last step (`dip.wiener.deconvolve`): the fit corrected by the Wiener estimate of its error
  from the residual blurred image, the pilot's power spectrum as is or averaged over neighbouring
  frequencies (`smooth`), scaled by `gain`, bounded by what the residual shows beyond the noise
  or not (`unbounded`).

Each variant is fitted once per image with seed 0; the fits are kept in `.probe-cache/fits-deblur`
(git-ignored), so a second run rescores without fitting. Appends one row per image to
benchmarks/results/deblur-probe-DEVICE-DATE.md as it finishes.

    python benchmarks/deblur_probe.py [--images 4|FIRST:LAST] [--crop 128] [--sigma 2] [--blur 1.5]
        [--variants default,default+variance] [--corrections 2:2,2:2:unbounded]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import dip
from dip.baselines import for_task
from dip.bench import data_root
from dip.bench.choice import DEBLUR_BLUR, cases, image_span, variant
from dip.bench.results import append_mean, append_row, results_file
from dip.metrics import psnr
from dip.wiener import deconvolve

FITS = Path(__file__).parents[1] / ".probe-cache" / "fits-deblur"
CORRECTIONS = "2:2,2:2:unbounded,1:1,2:4"  # SMOOTH:GAIN[:unbounded] of each correction scored


def corrections(text: str) -> list[tuple[int, float, bool]]:
    """(smooth, gain, bounded by the residual) from `SMOOTH:GAIN[:unbounded],...`."""
    parts = [item.split(":") for item in text.split(",")]
    return [(int(part[0]), float(part[1]), part[2:] != ["unbounded"]) for part in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="4", help="N (the first N of CBSD68, sorted by name) or FIRST:LAST")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", type=float, default=2, help="the noise added after the blur (0-255 scale)")
    parser.add_argument("--blur", type=float, default=DEBLUR_BLUR, help="the Gaussian blur's sigma (px)")
    parser.add_argument("--variants", default="default,default+variance")
    parser.add_argument("--corrections", default=CORRECTIONS, help="SMOOTH:GAIN,... of the Wiener steps scored")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    names, steps_scored = args.variants.split(","), corrections(args.corrections)
    start, stop = image_span(args.images)
    baselines = for_task("deblur")
    path = results_file(
        Path(__file__).parent / "results",
        f"deblur-probe-{args.device}" + ("" if args.blur == DEBLUR_BLUR else f"-blur{args.blur:g}"),
        "Probe: deblurring, the fit and a Wiener correction after it",
        [
            f"CBSD68 (the settings-choice set), images {start + 1}-{stop} sorted by name, centre {args.crop} px "
            f"crops, Gaussian blur of {args.blur:g} px, Gaussian noise sigma {args.sigma:g} (seed 0), its level "
            "estimated from the image",
            "RGB PSNR of each variant's fit (seed 0), then of the fit corrected by `dip.wiener.deconvolve` "
            "(s: the pilot's power spectrum averaged over (2s+1)^2 frequencies; g: its gain); the classical "
            "methods of `dip deblur --method`; the noise level estimated (0-255); each variant's steps and seconds "
            "(as first run, when its fit comes from the cache)",
        ],
        [
            "image",
            "input",
            *(
                f"{n}{'' if c is None else f' + s{c[0]} g{c[1]:g}' + ('' if c[2] else ' unbounded')}"
                for n in names
                for c in (None, *steps_scored)
            ),
            *baselines,
            "sigma est.",
            *(f"steps {n}" for n in names),
            *(f"s {n}" for n in names),
        ],
    )
    rows = []
    for name, problem, observed, clean in cases(
        "deblur", stop - start, args.crop, data_root(), start, sigma=args.sigma, blur_width=args.blur
    ):
        sigma = problem.noise_sigma(observed)
        scores, steps, seconds = [psnr(observed, clean)], [], []
        for text in names:
            started = time.perf_counter()
            done = dip.run(problem, observed, preset=variant("deblur", text), device=args.device, fits=FITS)
            seconds.append(time.perf_counter() - started)
            fit = done.pixels if done.unrefined is None else done.unrefined
            steps.append(done.fit.steps_run)
            scores.append(psnr(fit, clean))
            for smooth, gain, bounded in steps_scored:
                corrected = deconvolve(
                    observed, fit, problem.kernel, sigma, smooth=smooth, gain=gain, residual_bound=bounded
                )
                scores.append(psnr(np.clip(corrected, 0, 1), clean))
        scores += [psnr(method(observed, problem), clean) for method in baselines.values()]
        rows.append(scores)
        append_row(
            path,
            [
                name,
                *(f"{v:.2f}" for v in scores),
                f"{sigma * 255:.2f}",
                *map(str, steps),
                *(f"{s:.0f}" for s in seconds),
            ],
        )
    append_mean(path, ["**average**"], rows, blanks=1 + 2 * len(names))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
