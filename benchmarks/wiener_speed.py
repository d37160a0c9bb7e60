"""What the denoising presets' Wiener step costs (`dip.wiener.wiener`), with and without block
matching, by image size: seconds and the process's peak memory so far.

    python benchmarks/wiener_speed.py [--sizes 256,1024] [--device cpu] [--out benchmarks/results]

scikit-image's astronaut photo (512 px) cropped or resized to each size, Gaussian noise sigma 25
(seed 0), the clean image as the pilot (the time does not depend on the pilot). Appends one row
per size and filter to wiener-speed-DEVICE-DATE.md in the results folder as it finishes.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from skimage import data
from skimage.transform import resize

from dip.bench.quality import centre_box, cut
from dip.bench.results import append_row, results_file
from dip.degrade import add_noise
from dip.wiener import wiener

FILTERS = {"unmatched": {"match": False}, "matched, every third": {"step": 3}, "matched": {"step": 2}}


def photo(side: int) -> np.ndarray:
    """The astronaut at `side` px: a centre crop up to 512, resized above."""
    image = data.astronaut() / 255.0
    if side > image.shape[0]:
        return resize(image, (side, side), anti_aliasing=True)
    return cut(image, centre_box(*image.shape[:2], side, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,1024", help="image sides in px, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="the results folder")
    args = parser.parse_args()
    path = results_file(
        args.out,
        f"wiener-speed-{args.device}",
        "What the Wiener step costs",
        [
            "astronaut, Gaussian noise sigma 25 (seed 0), two passes as the presets run it; `matched`: block "
            "matching, a reference block every second pixel (the presets' step at sigma 25), `matched, every "
            "third`: every third pixel (their step above sigma 40), `unmatched`: every block alone; peak memory: "
            "the process's so far"
        ],
        ["size", "filter", "seconds", "peak memory (MB)"],
    )
    for side in (int(s) for s in args.sizes.split(",")):
        clean = photo(side)
        noisy = add_noise(clean, 25, seed=0)
        for name, options in FILTERS.items():
            started = time.perf_counter()
            wiener(noisy, clean, 25 / 255, device=args.device, **options)  # returns on the CPU: synced
            seconds = time.perf_counter() - started
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            append_row(path, [f"{side} px", name, f"{seconds:.1f}", f"{peak:.0f}"])
    print(f"results: {path}")


if __name__ == "__main__":
    main()
