"""Probe: which published denoising outputs were made from the published noisy files.

A restoration x_hat made from a noisy image y = x + n keeps part of that noise: rho = <n, x_hat - x>
/ <n, n> > 0 (for Gaussian noise, sigma^2 rho is the estimator's mean divergence, Stein's lemma:
BM3D keeps a few per cent, a DIP fit stopped at the noise level about MSE / (2 sigma^2)). An output
made from another draw of the noise is blind to n: rho = 0 up to sampling spread. Measured here on
the pixels whose ground truth lies in [0.25, 0.75] (where clipping to [0, 1] cannot tie the noise to
the image), after a 5x5 high-pass of both n and the error (so that an error that follows the image's
brightness cannot pass for kept noise). The spread column is rho's standard error if the output were
blind to n.

    python benchmarks/noise_draw_probe.py [--data ../shared/data] [--draws 4]

Writes benchmarks/results/noise-draw-probe-cpu-DATE.md (numpy only, seconds); with the optional
`bm3d` package, also noise-draw-spread-cpu-DATE.md: how much a draw of the noise moves a 256 px
crop's PSNR (CBM3D on F16's centre crop, seeded draws of sigma 25 noise, clipped to [0, 1]).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

from dip.bench import data_root
from dip.bench.quality import centre_box, cut
from dip.bench.results import append_row, results_file
from dip.io import read_image
from dip.metrics import noise_kept, psnr

IMAGES = ("F16", "baboon", "hill", "kodim01", "kodim02", "kodim03", "kodim12", "lena", "peppers")
METHODS = ("deep_prior", "nlm", "bm3d")


def high_pass(image: np.ndarray) -> np.ndarray:
    return image - uniform_filter(image, size=(5, 5, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="the shared data folder (default: $DIP_DATA or ../shared/data)"
    )
    parser.add_argument("--draws", type=int, default=4, help="noise draws for the spread (needs bm3d)")
    args = parser.parse_args()
    folder = data_root(args.data) / "paper" / "Denoising" / "Color"
    path = results_file(
        Path(__file__).parent / "results",
        "noise-draw-probe-cpu",
        "Probe: the share of the published noise each published denoising output kept",
        [
            f"data: {folder}, full images; rho = <n, x_hat - x> / <n, n> with n = NAME_noisy - NAME_GT, on pixels "
            "with GT in [0.25, 0.75], n and the error high-passed (minus their 5x5 mean); +- its standard error "
            "were the output blind to n",
            "rho > 0: the output was made from this noisy file; rho = 0: from another draw of the noise",
        ],
        ["sigma", "image", *(f"rho {m}" for m in METHODS)],
    )
    for sigma in ("25", "50"):
        for name in IMAGES:
            pixels = {
                k: read_image(folder / sigma / f"{name}_{k}.png").pixels.astype(np.float64) for k in ("GT", "noisy")
            }
            keep = (pixels["GT"] > 0.25) & (pixels["GT"] < 0.75)
            noise = high_pass(pixels["noisy"] - pixels["GT"])[keep]
            cells = []
            for method in METHODS:
                error = read_image(folder / sigma / f"{name}_{method}.png").pixels.astype(np.float64) - pixels["GT"]
                rho, spread = noise_kept(noise, high_pass(error)[keep])
                cells.append(f"{rho:+.4f} +- {spread:.4f}")
            append_row(path, [sigma, name, *cells])
    print(f"results: {path}")
    try:
        import bm3d
    except ImportError:
        return
    truth = read_image(folder / "25" / "F16_GT.png").pixels.astype(np.float64)
    clean = cut(truth, centre_box(*truth.shape[:2], 256, 1))
    spread = results_file(
        Path(__file__).parent / "results",
        "noise-draw-spread-cpu",
        "Probe: how much a draw of the noise moves a crop's PSNR",
        ["F16's 256 px centre crop; clip(x + n, 0, 1) with n seeded Gaussian noise of sigma 25; CBM3D (bm3d_rgb)"],
        ["seed", "CBM3D"],
    )
    for seed in range(args.draws):
        noisy = np.clip(clean + np.random.default_rng(seed).normal(0, 25 / 255, clean.shape), 0, 1)
        append_row(spread, [seed, f"{psnr(bm3d.bm3d_rgb(noisy, 25 / 255), clean):.3f}"])
    print(f"results: {spread}")


if __name__ == "__main__":
    main()
