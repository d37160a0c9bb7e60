"""Probe: tiles fitted from a neighbour's weights (a warm start) instead of from scratch.

A big photo is restored tile by tile, each tile a fit of its own from freshly drawn weights: on a
CPU, hours. Neighbouring tiles of one photo share its textures, colours and noise, so a network
already fitted to one tile may need far fewer steps to fit the next. Each centre crop is cut into
2x2 tiles; every tile is fitted from scratch with the default denoising preset (seed 0, its
discrepancy stop), then tiles 2-4 are fitted again starting from the weights tile 1's fit ended
with (same seed, so the same input z; Adam starts afresh). Per tile: the steps each fit took to
stop, and the PSNR of its result (the preset's: the fit, then the Wiener step) and of the fit
alone.

CBSD68 (the settings-choice set), centre crops, Gaussian noise sigma 25 (seed 0; `--sigma`).

    python benchmarks/warm_probe.py [--images 4|FIRST:LAST] [--crop 256] [--sigma 25]

Appends one row per image to benchmarks/results/warm-probe-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from pilot_probe import noise_tag, probe_cases, probe_parser, probe_setting

import dip
from dip.bench.results import append_mean, append_row, results_file
from dip.fit import Callback, FitState
from dip.metrics import psnr


class KeepWeights(Callback):
    """Copies the network's weights as the fit ends."""

    def __init__(self) -> None:
        self.weights: dict[str, torch.Tensor] | None = None

    def on_end(self, state: FitState) -> None:
        self.weights = {name: value.detach().clone() for name, value in state.net.state_dict().items()}


class StartFrom(Callback):
    """Loads saved weights into the network before its first step."""

    def __init__(self, weights: dict[str, torch.Tensor]) -> None:
        self.weights = weights

    def on_start(self, state: FitState) -> None:
        state.net.load_state_dict(self.weights)


def quarters(image: np.ndarray) -> list[np.ndarray]:
    """The 2x2 tiles of an image, row by row."""
    half_h, half_w = image.shape[0] // 2, image.shape[1] // 2
    return [image[r : r + half_h, c : c + half_w] for r in (0, half_h) for c in (0, half_w)]


def mean_psnr(done: list, truths: list[np.ndarray], pixels: str) -> float:
    """The mean PSNR of the restorations' `pixels` (`image` or `unrefined`) against their truths."""
    return float(np.mean([psnr(getattr(d, pixels), t) for d, t in zip(done, truths)]))


def main() -> None:
    parser = probe_parser(__doc__, images="4")
    parser.set_defaults(crop=256)
    args = parser.parse_args()
    path = results_file(
        Path(__file__).parent / "results",
        f"warm-probe-{args.device}" + noise_tag(args.sigma),
        "Probe: tiles fitted from a neighbour's weights",
        [
            probe_setting(args) + ", each cut into 2x2 tiles",
            "cold: every tile fitted from scratch (default preset, seed 0); warm: tiles 2-4 fitted from the weights "
            "tile 1's cold fit ended with; steps: each fit's stop, tiles 2-4 summed; PSNR: tiles 2-4's mean, the "
            "preset's result (fit + Wiener step) and the fit alone",
        ],
        [
            "image",
            "steps tile 1",
            "steps 2-4 cold",
            "steps 2-4 warm",
            "warm / cold steps",
            "cold",
            "warm",
            "cold fit",
            "warm fit",
            "seconds",
        ],
    )
    rows = []
    for name, problem, observed, clean in probe_cases(args):
        started = time.perf_counter()
        tiles, truths = quarters(observed), quarters(clean)
        kept = KeepWeights()
        cold = [dip.run(problem, tiles[0], seed=0, callbacks=[kept], device=args.device)]
        cold += [dip.run(problem, tile, seed=0, device=args.device) for tile in tiles[1:]]
        warm = [
            dip.run(problem, tile, seed=0, callbacks=[StartFrom(kept.weights)], device=args.device)
            for tile in tiles[1:]
        ]

        cold_steps = sum(d.fit.steps_run for d in cold[1:])
        warm_steps = sum(d.fit.steps_run for d in warm)
        numbers = [
            mean_psnr(done, truths[1:], pixels) for pixels in ("image", "unrefined") for done in (cold[1:], warm)
        ]
        rows.append(numbers)
        append_row(
            path,
            [
                name,
                cold[0].fit.steps_run,
                cold_steps,
                warm_steps,
                f"{warm_steps / cold_steps:.2f}",
                *(f"{n:.2f}" for n in numbers),
                f"{time.perf_counter() - started:.0f}",
            ],
        )
    append_mean(path, ["**average**", "", "", "", ""], rows, blanks=1)


if __name__ == "__main__":
    main()
