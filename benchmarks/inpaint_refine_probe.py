"""Probe: the fit's error at the known pixels, interpolated into the holes, as a last step of
inpainting.

A fit of the known pixels does not meet them exactly: `observed - fit` there is detail the
network missed. Where the network misses the same detail in the holes (a texture it cannot yet
draw), interpolating that error into the holes and adding it to the fit there corrects the
holes too, as super-resolution's refine step corrects its fit from the low-resolution image.
How much of it to add is read from the image: a `--holdout` share of the known pixels is left
out of the fit, and the share `a` is the least-squares factor that maps the error interpolated
from the fitted pixels onto the fit's error at the held-out ones (0 where it tells nothing).

Each row: the fit with the known pixels pasted back (what `dip inpaint` returned before its
refine step), then that plus a fixed share (0.5, 1) of the error interpolated biharmonically
(`skimage.restoration.inpaint_biharmonic`) or the estimated share, or half the error spread by a
normalised Gaussian (linear time), and scikit-image's biharmonic fill of the image alone.
`--holdout 0` fits every known pixel, as the presets do (no estimate). Images: CBSD68 (`--set
cbsd68`, the settings-choice set) or scikit-image's grey textures and moon (`--set skimage`: brick,
grass, gravel, moon), centre crops, holes of `--kind` (`dip.bench.choice.holes`), the default preset
(which picks `default-pixels` for scattered pixels), seed 0, fitted without pasting, saved in
`--store` (a `dip.fitstore` folder).

    python benchmarks/inpaint_refine_probe.py [--set cbsd68|skimage] [--images 4|FIRST:LAST]
        [--crop 128] [--kind pixels] [--holdout 0.05] [--store .probe-cache/fits-inp-choice]

Appends one row per image to benchmarks/results/inpaint-refine-probe-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

import dip
from dip.baselines import fill_small_holes
from dip.bench import data_root
from dip.bench.choice import MASKS, Case, cases, degrade, image_span
from dip.bench.quality import centre_box, cut
from dip.bench.results import append_mean, append_row, results_file
from dip.metrics import psnr

SHARES = (0.5, 1.0)
GAUSSIAN = 0.5  # px: the width of the normalised convolution tried as a linear-time fill
SKIMAGE = ("brick", "grass", "gravel", "moon")


def interpolated(error: np.ndarray, known: np.ndarray) -> np.ndarray:
    """`error` (H, W, C), given at the `known` pixels, filled in the others biharmonically, as
    the refine step does (`dip.baselines.fill_small_holes`)."""
    return fill_small_holes(np.where(known[..., None], error, 0.0), ~known)


def gaussian_fill(error: np.ndarray, known: np.ndarray) -> np.ndarray:
    """`error` filled by normalised convolution: the Gaussian-weighted mean of the known neighbours."""
    weight = gaussian_filter(known.astype(np.float64), GAUSSIAN)
    spread = [gaussian_filter(np.where(known, error[..., c], 0.0), GAUSSIAN) for c in range(error.shape[2])]
    return np.stack(spread, axis=2) / np.maximum(weight, 1e-6)[..., None]


def estimated_share(error: np.ndarray, fitted: np.ndarray, held: np.ndarray) -> float:
    """The least-squares factor from the error interpolated from the `fitted` pixels to the error
    at the `held` ones (pixels the fit never saw, as the holes), at least 0."""
    guess = interpolated(error, fitted)[held]
    return max(float((error[held] * guess).sum() / max((guess * guess).sum(), 1e-12)), 0.0)


def skimage_cases(count: int, crop: int, start: int, kind: str) -> Iterator[Case]:
    """(name, problem, observation, clean) for scikit-image's grey textures and moon, as `cases`."""
    import skimage.data

    for name in SKIMAGE[start : start + count]:
        truth = getattr(skimage.data, name)().astype(np.float32)[..., None] / 255
        yield name, *degrade("inpaint", cut(truth, centre_box(*truth.shape[:2], crop, 1)), kind=kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="cbsd68", choices=("cbsd68", "skimage"))
    parser.add_argument("--images", default="4", help="N (the first N of the set) or FIRST:LAST")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--kind", default="pixels", choices=MASKS)
    parser.add_argument("--holdout", type=float, default=0.05, help="share of the known pixels left out of the fit")
    parser.add_argument("--store", type=Path, default=Path(__file__).parents[1] / ".probe-cache" / "fits-inp-choice")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    start, stop = image_span(args.images)
    labels = ["pasted", *(f"+ a={a:g}" for a in SHARES), "+ a estimated", f"+ Gaussian {GAUSSIAN:g} px, a=0.5"]
    path = results_file(
        Path(__file__).parent / "results",
        f"inpaint-refine-probe-{args.device}",
        "Probe: the fit's error at the known pixels, interpolated into the holes",
        [
            f"{'CBSD68 (the settings-choice set)' if args.set == 'cbsd68' else 'scikit-image: ' + ', '.join(SKIMAGE)}, "
            f"images {start + 1}-{stop}, centre {args.crop} px crops, holes: {args.kind} "
            "(`dip.bench.choice.holes`, seed 0)",
            f"the default preset (seed 0) fitted without {args.holdout:g} of the known pixels (drawn with seed 1; "
            "the holes used seed 0; 0: every known pixel fitted, as the presets do, and no estimate); "
            "RGB PSNR with the known pixels pasted back, then with a share a of the fit's error at the known pixels "
            "interpolated biharmonically into the holes: fixed, or estimated from the held-out pixels (the a "
            "column), or half of it spread by a normalised Gaussian; scikit-image's biharmonic fill alone; "
            "steps: the fit's; seconds: this run's (about 0 where the fit came from the store)",
        ],
        ["image", *labels, "biharmonic fill", "a", "steps", "seconds"],
    )
    chosen = (
        cases("inpaint", stop - start, args.crop, data_root(), start, kind=args.kind)
        if args.set == "cbsd68"
        else skimage_cases(stop - start, args.crop, start, args.kind)
    )
    rows = []
    for name, problem, observed, clean in chosen:
        known = problem.mask[..., 0] > 0
        held = known & (np.random.default_rng(1).random(known.shape) < args.holdout)
        fitted_mask = (known & ~held).astype(np.float32)
        unpasted = dataclasses.replace(problem, mask=fitted_mask, paste_known=False)
        started = time.perf_counter()
        done = dip.run(unpasted, observed, seed=0, device=args.device, fits=args.store)
        seconds = time.perf_counter() - started
        fit = (done.pixels if done.unrefined is None else done.unrefined).astype(np.float64)  # the fit's own result
        observed64 = observed.astype(np.float64)
        error = observed64 - fit
        spread = interpolated(error, known)
        share = estimated_share(error, known & ~held, held) if held.any() else float("nan")
        fills = [a * spread for a in (0.0, *SHARES, share)] + [0.5 * gaussian_fill(error, known)]
        scores = [psnr(np.clip(np.where(known[..., None], observed64, fit + fill), 0, 1), clean) for fill in fills]
        scores.append(psnr(dip.run(problem, observed, method="biharmonic").pixels, clean))
        rows.append(scores)
        append_row(path, [name, *(f"{v:.2f}" for v in scores), f"{share:.2f}", done.fit.step, f"{seconds:.0f}"])
    append_mean(path, ["**average**"], rows, blanks=3)  # nan where no share was estimated
    print(f"results: {path}")


if __name__ == "__main__":
    main()
