"""Probe: the Wiener step's pilot taken later than the default's own stop.

The default denoising preset stops its fit at the noise level (the discrepancy rule) and hands
the result to the Wiener step (`dip.wiener.wiener`) as its pilot. Is that the best pilot, or does
the step do better with a fit that ran on, sharper but noisier? Each image is fitted again with the
default preset (seed 0) and its stop turned off, for twice the steps its own stop took (read from
`benchmarks/pilot_probe.py`'s cache, which holds the default's fit), and the running estimate is
kept at 1, 1.25, 1.5 and 2 times that step: each alone and as the pilot of the step.

CBSD68 (the settings-choice set), centre crops, Gaussian noise sigma 25 (seed 0).

    python benchmarks/later_stop_probe.py [--images 6|FIRST:LAST] [--crop 128] [--sigma 25]

Appends one row per image to benchmarks/results/later-stop-probe-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import time
from pathlib import Path

from pilot_probe import fitted, noise_tag, probe_cases, probe_parser, probe_setting

import dip
from dip.bench.results import append_mean, append_row, results_file
from dip.callbacks import Snapshots
from dip.metrics import psnr
from dip.wiener import wiener

QUARTERS = (4, 5, 6, 8)  # the pilots' steps, in quarters of the default's own stop


def main() -> None:
    args = probe_parser(__doc__, images="6").parse_args()
    times = [f"x{q / 4:g}" for q in QUARTERS]
    path = results_file(
        Path(__file__).parent / "results",
        f"later-stop-probe-{args.device}" + noise_tag(args.sigma),
        "Probe: the Wiener step's pilot taken after the default's stop",
        [
            probe_setting(args),
            "the default preset (seed 0) refitted without its stop for twice the steps its stop took; `xF`: its "
            "running estimate at F times that step, alone and (`+ W`) as the pilot of the presets' Wiener step; "
            "`default + W`: the default's own result (cached) and its step",
        ],
        ["image", "default + W", *(t + suffix for t in times for suffix in ("", " + W")), "own stop", "seconds"],
    )
    rows = []
    for name, problem, observed, clean in probe_cases(args):
        started = time.perf_counter()
        outputs, own, _ = fitted(name, problem, observed, args.crop, 1, args.device)
        sigma = problem.sigma / 255
        quarter = max(1, round(own / 4))
        kept = Snapshots(quarter)
        dip.run(problem, observed, seed=0, early_stop=False, steps=8 * quarter, callbacks=[kept], device=args.device)
        frames = {frame.step: frame.image for frame in kept.frames}
        scores = [psnr(wiener(observed, outputs[0], sigma), clean)]
        for q in QUARTERS:
            pilot = frames[q * quarter]
            scores += [psnr(pilot, clean), psnr(wiener(observed, pilot, sigma), clean)]
        rows.append(scores)
        cells = [name, *(f"{v:.2f}" for v in scores), own, f"{time.perf_counter() - started:.0f}"]
        append_row(path, cells)
    append_mean(path, ["**average**"], rows, blanks=2)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
