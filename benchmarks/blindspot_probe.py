"""Probe: a Wiener pilot whose error at each pixel owes nothing to that pixel's noise.

The default's fit keeps a share of the very noise it was fitted to (rho > 0), and so do all its
seeded twins: the Wiener step then trusts that noise as signal, and averaging seeds cannot
remove it (benchmarks/README.md, "DIP as the pilot of a Wiener filter"). Here two fits split the
pixels: a random half (seed 0) is fitted by one, the other half by the other (each with the
default denoising preset, its loss and stop on its own half only), and the pilot takes each pixel
from the fit that never saw it (`blind`). Also scored: the pixels each fit saw (`seen`), the mean
of the two fits (`mean`), each as it is and as the pilot of the presets' Wiener step
(`dip.wiener.wiener`), against the default (seed 0, from `benchmarks/pilot_probe.py`'s cache) and
its Wiener step; and the mean of the default's and the blind pilot's Wiener results.

CBSD68 (the settings-choice set), centre crops, Gaussian noise sigma 25 (seed 0).

    python benchmarks/blindspot_probe.py [--images 6|FIRST:LAST] [--crop 128] [--sigma 25]

Appends one row per image to benchmarks/results/blindspot-probe-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from pilot_probe import fitted, noise_tag, probe_cases, probe_parser, probe_setting
from torch import nn

import dip
from dip.bench.results import append_mean, append_row, results_file
from dip.metrics import noise_kept, psnr
from dip.problems import Denoising, to_tensor
from dip.wiener import wiener


class _Seen(nn.Module):
    """A(x) = the denoising operator on the pixels of `keep` (1, 1, H, W), scaled so that the mean
    squared error over the whole image is the error per seen pixel (the discrepancy stop's scale)."""

    def __init__(self, inner: nn.Module, keep: torch.Tensor):
        super().__init__()
        self.inner = inner
        self.register_buffer("weights", keep / math.sqrt(float(keep.mean())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.weights


@dataclasses.dataclass
class HalfDenoising(Denoising):
    """Denoising that fits only the pixels of `keep` ((H, W) booleans) and returns the fit as it is."""

    keep: np.ndarray | None = None

    def _weights(self) -> torch.Tensor:
        return torch.from_numpy(self.keep.astype(np.float32))[None, None]

    def build_operator(self) -> nn.Module:
        return _Seen(super().build_operator(), self._weights())

    def target(self, pixels: np.ndarray) -> torch.Tensor:
        return to_tensor(pixels) * self._weights() / math.sqrt(float(self.keep.mean()))

    def refined(self, restored: np.ndarray, pixels: np.ndarray, device="cpu") -> np.ndarray:
        return restored


def main() -> None:
    args = probe_parser(__doc__, images="6").parse_args()
    pilots = ["default (seed 0)", "blind", "seen", "mean"]
    path = results_file(
        Path(__file__).parent / "results",
        f"blindspot-probe-{args.device}" + noise_tag(args.sigma),
        "Probe: a pilot that never saw the pixel's noise",
        [
            probe_setting(args),
            "two default fits (seeds 0 and 1) on complementary random halves of the pixels (seed 0); `blind`: "
            "each pixel from the fit that did not see it; `seen`: from the fit that did; `mean`: the two fits' "
            "mean; `+ W`: as the pilot of the presets' Wiener step; `avg W`: the mean of the default's and the "
            "blind pilot's Wiener results; rho: the share of the noise kept",
        ],
        [
            "image",
            *(name + suffix for name in pilots for suffix in ("", " + W")),
            "avg W (default, blind)",
            *(f"rho {name}" for name in pilots),
            "steps of the halves",
            "seconds",
        ],
    )
    rows = []
    for name, problem, observed, clean in probe_cases(args):
        started = time.perf_counter()
        default = fitted(name, problem, observed, args.crop, 1, args.device)[0][0]
        keep = np.random.default_rng(0).random(observed.shape[:2]) < 0.5
        halves = [HalfDenoising(sigma=problem.sigma, keep=half) for half in (keep, ~keep)]
        done = [dip.run(half, observed, seed=seed, device=args.device) for seed, half in enumerate(halves)]
        first, second = (d.pixels for d in done)
        mask = keep[..., None]
        results = [default, np.where(mask, second, first), np.where(mask, first, second), (first + second) / 2]
        sigma = problem.sigma / 255
        refined = [wiener(observed, r, sigma) for r in results]
        scores = [psnr(np.clip(v, 0, 1), clean) for r, w in zip(results, refined) for v in (r, w)]
        scores.append(psnr((refined[0] + refined[1]) / 2, clean))
        rhos = [noise_kept(observed - clean, r - clean)[0] for r in results]
        rows.append(scores)
        steps = "+".join(str(d.fit.step) for d in done)
        cells = [name, *(f"{v:.2f}" for v in scores), *(f"{r:.3f}" for r in rhos), steps]
        append_row(path, [*cells, f"{time.perf_counter() - started:.0f}"])
    append_mean(path, ["**average**"], rows, blanks=len(pilots) + 2)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
