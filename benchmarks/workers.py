"""Fits in worker processes on a CPU against fits in one process, end to end.

`dip.run_many` on N seeded noise images of one size (default denoising preset, its stop off,
a fixed step count, so both runs make the same steps), once with `workers=1` (everything in this
process on every core: the plain loop, or fused batches on canvases up to 64 px, as `batch`
"auto" picks) and once with `workers=W` (W processes, the cores shared out), wall time of each
including the workers' start. The runs alternate, as this CPU's speed drifts by a third from one
minute to the next.

    python benchmarks/workers.py [--cases 64x8,128x4,256x2] [--steps 300] [--workers 2] [--repeats 3]

Appends one row per case to benchmarks/results/workers-cpu-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import dip
from dip.bench.results import append_row, results_file
from dip.workers import usable_cores


def timed(images: list[np.ndarray], steps: int, workers: int) -> float:
    started = time.perf_counter()
    dip.run_many(
        [dip.Denoising(25)] * len(images), images, steps=steps, early_stop=False, workers=workers, device="cpu"
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="64x8,128x4,256x2", help="SIZExCOUNT, comma-separated")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, in turn (this CPU's speed drifts)")
    args = parser.parse_args()
    path = results_file(
        Path(__file__).parent / "results",
        "workers-cpu",
        "Fits in worker processes against fits in one process",
        [
            f"`dip.run_many`, default denoising preset, stop off, {args.steps} steps a fit, seeded noise images; "
            f"{usable_cores()} cores; one process: `workers=1` (`batch` auto); workers: `workers={args.workers}`, "
            "their start included; each run repeated in turn (order swapped each repeat), seconds of each run; ratio: "
            "the median of the paired ratios (their range)"
        ],
        ["size", "fits", "one process s", f"{args.workers} workers s", "workers / one process"],
    )
    rng = np.random.default_rng(0)
    for case in args.cases.split(","):
        size, count = (int(part) for part in case.split("x"))
        images = [rng.random((size, size, 3)).astype(np.float32) for _ in range(count)]
        ones, spreads = [], []
        for repeat in range(args.repeats):  # in turn, the order swapped each time
            order = [(1, ones), (args.workers, spreads)]
            for workers, times in order if repeat % 2 == 0 else order[::-1]:
                times.append(timed(images, args.steps, workers))
        ratios = [spread / one for one, spread in zip(ones, spreads)]
        append_row(
            path,
            [
                size,
                count,
                " / ".join(f"{t:.1f}" for t in ones),
                " / ".join(f"{t:.1f}" for t in spreads),
                f"{np.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
            ],
        )


if __name__ == "__main__":
    main()
