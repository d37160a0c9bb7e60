"""Probe: the Deep Image Prior regularised by a classical denoiser (DeepRED: Mataev, Elad and
Milanfar, "DeepRED: Deep Image Prior Powered by RED", ICCV workshops 2019), or with Langevin
noise on its weights (`--method sgld`: Cheng, Gadelha, Maji and Sheldon, "A Bayesian Perspective
on the Deep Image Prior", CVPR 2019), on the settings-choice set (CBSD68 crops, Gaussian noise
sigma 25).

ADMM over the network's output T = f(z) and an image x, with a scaled dual u:

    network:  one Adam step on ||A(T) - y||^2 + mu ||T - (x - u)||^2   (means over pixels)
    image:    x = (beta D(x) + mu (T + u)) / (beta + mu), clipped to [0, 1]
    dual:     u = u + T - x

D is non-local means (scikit-image; recomputed every `--every` steps on the last x, with
`--denoiser-sigma` on the 0-255 scale); beta and mu grow by `--grow` each step the output comes
closer to y than the noise level, as in the authors' code. The network term is the library's
own fit: the operator returns A(T) and sqrt(mu) (T - anchor) side by side, the anchor x - u
moved after every step by a callback. Runs the default preset's network, input and Adam with a
fixed step budget (no stop) and records the PSNR of the running average; the default itself
(with its stop) runs beside it on the same crop. One row per image and setting is appended to
benchmarks/results/red-probe-cpu-DATE.md.

With `--method sgld`, no denoiser: after every Adam step each convolution's weights get Gaussian
noise of std `--weight-noise` x lr (the authors' code: 2 x lr), so the fit samples weights
around a fit of the data instead of converging to one that reproduces the noise; the running
average of the outputs is the estimate (the posterior mean).

    python benchmarks/red_probe.py --images 4 --crop 128 --steps 3000
    python benchmarks/red_probe.py --method sgld --images 2 --crop 128 --steps 4000 --no-default
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import denoise_nl_means
from torch import nn

import dip
from dip.bench import data_root
from dip.bench.choice import cases
from dip.bench.results import append_row, results_file
from dip.fit import Callback, FitState
from dip.problems import Problem


def nl_means(image: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means per channel with the settings of the DeepRED code (5x5 patches, 13x13
    search, h = 0.6 sigma, fast mode); image (H, W, C) in [0, 1], sigma on the 0-255 scale."""
    s = sigma / 255
    channels = [
        denoise_nl_means(image[..., c], h=0.6 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6)
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


class RedOperator(nn.Module):
    """[A(T), sqrt(mu * n_A / n_T) (T - anchor)] flattened: its mean squared distance to
    [y, 0] is the network's ADMM term (up to a constant factor)."""

    def __init__(self, base: nn.Module, mu: float):
        super().__init__()
        self.base, self.mu = base, mu
        self.anchor: torch.Tensor | None = None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        observed = self.base(image)
        anchor = self.anchor if self.anchor is not None else image.detach()
        weight = math.sqrt(self.mu * observed.numel() / image.numel())
        return torch.cat([observed.flatten(), weight * (image - anchor).flatten()])


class RedProblem(Problem):
    """`base` with the ADMM coupling term added to its data term (and `base`'s presets)."""

    task = "denoise"

    def __init__(self, base: Problem, mu: float):
        super().__init__(base.build_operator(), name=f"red-{base.name}")
        self.base, self.mu = base, mu
        self.red: RedOperator | None = None

    def output_shape(self, shape):
        return self.base.output_shape(shape)

    def build_operator(self) -> nn.Module:
        self.red = RedOperator(self.base.build_operator(), self.mu)
        return self.red

    def target(self, pixels: np.ndarray) -> torch.Tensor:
        observed = self.base.target(pixels)
        height, width, channels = self.base.output_shape(pixels.shape)
        return torch.cat([observed.flatten(), torch.zeros(height * width * channels)])

    def known_noise_variance(self, pixels):
        return None

    def preset_variant(self):
        return self.base.preset_variant()


class AdmmStep(Callback):
    """The image and dual updates after each network step; moves the operator's anchor."""

    def __init__(self, problem: RedProblem, noisy: np.ndarray, sigma: float, args: argparse.Namespace):
        self.problem, self.sigma, self.args = problem, sigma, args
        self.y = torch.from_numpy(noisy).permute(2, 0, 1)[None].float()
        self.beta, self.mu = args.beta, args.mu
        self.threshold = 20 * math.log10(255 / sigma) - 0.17  # 20.0 dB at sigma 25, as in the code
        self.x = self.y.clone()
        self.u = torch.zeros_like(self.y)
        self.denoised = self.x.clone()

    def on_step(self, state: FitState) -> None:
        if state.backtracked or state.output is None:
            return
        out = state.output
        if state.step % self.args.every == 0:
            image = self.x[0].permute(1, 2, 0).numpy()
            self.denoised = torch.from_numpy(nl_means(image, self.args.denoiser_sigma)).permute(2, 0, 1)[None]
        self.x = ((self.beta * self.denoised + self.mu * (out + self.u)) / (self.beta + self.mu)).clamp(0, 1)
        self.u = self.u + out - self.x
        close = -10 * math.log10(max(float(torch.mean((out - self.y) ** 2)), 1e-12))
        if close > self.threshold:
            self.beta += self.args.grow
            self.mu += self.args.grow
            self.threshold += 0.01
        self.problem.red.mu = self.mu
        self.problem.red.anchor = self.x - self.u


class WeightNoise(Callback):
    """Langevin noise on the convolutions' weights after each (kept) step, seeded."""

    def __init__(self, std: float, seed: int = 0):
        self.std = std
        self.generator = torch.Generator().manual_seed(seed)

    def on_step(self, state: FitState) -> None:
        if state.backtracked:
            return
        with torch.no_grad():
            for weight in state.net.parameters():
                if weight.ndim == 4:
                    weight.add_(torch.randn(weight.shape, generator=self.generator) * self.std)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("deepred", "sgld"), default="deepred")
    parser.add_argument("--weight-noise", type=float, default=2.0, help="sgld: weight noise, times lr")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--skip", type=int, default=0, help="start after this many images")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--mu", type=float, default=0.5)
    parser.add_argument("--grow", type=float, default=0.03)
    parser.add_argument("--every", type=int, default=10, help="steps between denoiser calls")
    parser.add_argument("--denoiser-sigma", type=float, default=3.0)
    parser.add_argument("--no-default", action="store_true", help="skip the default preset's run")
    args = parser.parse_args()
    data = data_root()
    path = results_file(
        Path(__file__).parent / "results",
        "red-probe-cpu" if args.method == "deepred" else "sgld-probe-cpu",
        f"{args.method} probe: denoising sigma 25",
        [
            f"CBSD68, {args.images} images after the first {args.skip}, centre {args.crop} px crops; "
            f"the default preset's net, input, lr and average; {args.steps} steps",
            f"beta {args.beta}, mu {args.mu}, grow {args.grow}; non-local means with sigma "
            f"{args.denoiser_sigma} every {args.every} steps"
            if args.method == "deepred"
            else f"weight noise {args.weight_noise} x lr on the convolutions after every step",
        ],
        ["image", "method", "result PSNR", "best PSNR (step)", "steps", "seconds"],
    )
    for name, problem, observed, clean in cases("denoise", args.images, args.crop, data, start=args.skip):
        runs = [] if args.no_default else [("default", problem, [])]
        if args.method == "deepred":
            red = RedProblem(problem, args.mu)
            runs.append(("deepred", red, [AdmmStep(red, observed, problem.sigma, args)]))
        else:
            lr = dip.presets.get_preset("denoise", "default").fit.lr
            runs.append(("sgld", problem, [WeightNoise(args.weight_noise * lr)]))
        for label, fitted, callbacks in runs:
            started = time.perf_counter()
            steps = None if label == "default" else args.steps
            result = dip.run(
                fitted, observed, steps=steps, reference=clean, callbacks=callbacks, early_stop=label == "default"
            )
            best = result.metrics.best
            append_row(
                path,
                [
                    name,
                    label,
                    f"{dip.metrics.psnr(result.pixels, clean):.2f}",
                    f"{best[1]:.2f} ({best[0]})",
                    str(result.fit.steps_run),
                    f"{time.perf_counter() - started:.0f}",
                ],
            )
            print(name, label, f"{dip.metrics.psnr(result.pixels, clean):.2f}", flush=True)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
