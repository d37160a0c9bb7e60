"""Probe: Deep Image Prior fitted with Stein's unbiased risk estimate (SURE) instead of the plain
squared error, on the settings-choice set (CBSD68 crops, Gaussian noise sigma 25).

The network's input is the noisy image itself (plus Gaussian noise of `--input-noise` x sigma,
after Jo, Chun and Choi, "Rethinking Deep Image Prior for Denoising", ICCV 2021); the loss is

    ||f(y) - y||^2 / N - sigma^2 + 2 sigma^2 div_y f(y) / N,

the divergence estimated by one Monte-Carlo probe b: b . d(b . f)/dy (double backward). SURE is
an unbiased estimate of the error against the clean image, so the fit should not need an early
stop. Prints the PSNR of the running average of the outputs every 100 steps and appends one row
per image to benchmarks/results/sure-probe-DEVICE-DATE.md.

With `--recorrupt A`, a stop without the clean image: the fit sees y1 = y + A w and is checked
against y2 = y - w / A (w Gaussian, sigma of the noise). For Gaussian noise the noises of y1 and
y2 are independent, so the squared distance of the running average to y2 is the error against
the clean image plus a constant, and its lowest point picks the step (the fit pays for its
noisier data: sigma times sqrt(1 + A^2)).

    python benchmarks/sure_probe.py --images 4 --crop 128 --steps 2000
    python benchmarks/sure_probe.py --images 3 --crop 128 --steps 1200 --recorrupt 0.5

With `--restarts K` (and `--recorrupt A`), an ensemble: K fits, each with its own seed and its own
recorruption w, each stopped at its own lowest distance (and left `--patience` steps after it);
the row gives the PSNR of the mean of the first k stopped outputs, k = 1..K. The members' data
noises differ, so their errors should be less alike than those of restarts of one fit.

    python benchmarks/sure_probe.py --images 2 --crop 128 --steps 2500 --recorrupt 0.25 --restarts 4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dip.bench import data_root
from dip.bench.choice import cases
from dip.bench.results import append_row, results_file
from dip.metrics import psnr
from dip.presets import get_preset


def sure_fit(noisy: np.ndarray, sigma: float, steps: int, lr: float, input_noise: float, seed: int):
    """Fit the default denoising net under the SURE loss; yields (step, smoothed SURE, running
    average of the outputs, output) at each step, the outputs at the perturbed inputs (the
    running average is then the stochastic temporal ensemble of Jo et al.)."""
    torch.manual_seed(seed)
    preset = get_preset("denoise", "default")
    y = torch.from_numpy(noisy).permute(2, 0, 1)[None].float()
    net = preset.net.build(y.shape[1], y.shape[1])
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    variance = (sigma / 255) ** 2
    average, smoothed = None, None
    for step in range(1, steps + 1):
        given = (y + torch.randn_like(y) * input_noise * sigma / 255).requires_grad_()
        out = net(given)
        probe = torch.randn_like(y)
        (grad,) = torch.autograd.grad((probe * out).sum(), given, create_graph=True)
        divergence = (probe * grad).mean()
        loss = ((out - y) ** 2).mean() - variance + 2 * variance * divergence
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        smoothed = value if smoothed is None else 0.98 * smoothed + 0.02 * value
        with torch.no_grad():
            now = out.detach().clamp(0, 1)  # at the perturbed input: the function SURE scores
            average = now if average is None else 0.99 * average + 0.01 * now
        yield step, smoothed, average[0].permute(1, 2, 0).numpy(), now[0].permute(1, 2, 0).numpy()


def recorrupt(observed: np.ndarray, amount: float, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(y + A w, y - w / A, the fitted data's noise sigma) for w Gaussian at sigma 25, drawn from
    `seed` + 1."""
    w = np.random.default_rng(1 + seed).normal(0, 25 / 255, observed.shape).astype(np.float32)
    return observed + amount * w, observed - w / amount, 25.0 * (1 + amount**2) ** 0.5


def recorrupted_fit(observed: np.ndarray, args: argparse.Namespace, seed: int) -> tuple[np.ndarray, int]:
    """One fit of y + A w (w drawn from `seed`), its running average taken where it came closest
    to y - w / A; returns (that average, its step)."""
    fitted, checked, sigma = recorrupt(observed, args.recorrupt, seed)
    lowest, kept, at = np.inf, None, 0
    for step, _, average, _ in sure_fit(fitted, sigma, args.steps, args.lr, args.input_noise, seed=seed):
        if step > 100 and step % 10 == 0:
            distance = float(np.mean((average - checked) ** 2))
            if distance < lowest:
                lowest, kept, at = distance, average.copy(), step
        if kept is not None and step > at + args.patience:
            break
    return kept, at


def ensemble(args: argparse.Namespace, data: Path) -> None:
    """The `--restarts` rows: PSNR of the mean of the first k recorrupted fits, k = 1..K."""
    if args.recorrupt <= 0:
        raise SystemExit("--restarts needs --recorrupt A")
    path = results_file(
        Path(__file__).parent / "results",
        "sure-restarts-cpu",
        "SURE probe: an ensemble of recorrupted fits, denoising sigma 25",
        [
            f"CBSD68, {args.images} images after the first {args.skip}, centre {args.crop} px crops; lr {args.lr}, "
            f"input noise {args.input_noise} sigma, at most {args.steps} steps, patience {args.patience}",
            f"recorrupted: A = {args.recorrupt}; fit k has seed k and its own w",
        ],
        ["image", *(f"K = {k}" for k in range(1, args.restarts + 1)), "stop steps", "seconds"],
    )
    for name, _, observed, clean in cases("denoise", args.images, args.crop, data, start=args.skip):
        started, outputs, steps = time.perf_counter(), [], []
        for seed in range(args.restarts):
            output, step = recorrupted_fit(observed, args, seed)
            outputs.append(output)
            steps.append(str(step))
            print(name, seed, step, f"{psnr(np.mean(outputs, axis=0), clean):.2f}", flush=True)
        scores = [f"{psnr(np.mean(outputs[:k], axis=0), clean):.2f}" for k in range(1, args.restarts + 1)]
        append_row(path, [name, *scores, " ".join(steps), f"{time.perf_counter() - started:.0f}"])
    print(f"results: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--skip", type=int, default=0, help="start after this many images")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--input-noise", type=float, default=0.5, help="input noise, times sigma")
    parser.add_argument("--recorrupt", type=float, default=0.0, help="A > 0: stop at the lowest distance to y - w/A")
    parser.add_argument("--restarts", type=int, default=0, help="K > 0: an ensemble of K recorrupted fits")
    parser.add_argument("--patience", type=int, default=300, help="restarts: steps run past a fit's lowest point")
    args = parser.parse_args()
    data = data_root()
    if args.restarts:
        ensemble(args, data)
        return
    path = results_file(
        Path(__file__).parent / "results",
        "sure-probe-cpu",
        "SURE probe: denoising sigma 25",
        [
            f"CBSD68, {args.images} images after the first {args.skip}, centre {args.crop} px crops; lr {args.lr}, "
            f"input noise {args.input_noise} sigma, {args.steps} steps",
            "the default preset on the same crops: results/variants-denoise-cpu-2026-11-27.md (default+clipped)",
            f"recorrupted: A = {args.recorrupt} (0: off; the stop column is then the lowest smoothed SURE)",
        ],
        [
            "image",
            "SURE average (final)",
            "SURE last (final)",
            "at the stop (step)",
            "SURE average best (step)",
            "seconds SURE",
        ],
    )
    for name, _, observed, clean in cases("denoise", args.images, args.crop, data, start=args.skip):
        started = time.perf_counter()
        curve, lowest = [], (np.inf, 0, 0.0)
        fitted, checked, sigma = observed, None, 25.0
        if args.recorrupt > 0:
            fitted, checked, sigma = recorrupt(observed, args.recorrupt, seed=0)
        for step, sure, average, last in sure_fit(fitted, sigma, args.steps, args.lr, args.input_noise, seed=0):
            score = sure if checked is None else float(np.mean((average - checked) ** 2))
            if step > 100 and score < lowest[0] and (checked is None or step % 10 == 0):
                lowest = (score, step, psnr(average, clean))
            if step % 100 == 0 or step == args.steps:
                curve.append((step, psnr(average, clean), psnr(last, clean)))
                print(name, step, f"{curve[-1][1]:.2f} {curve[-1][2]:.2f} sure {sure:.3g}", flush=True)
        best = max(curve, key=lambda row: row[1])
        append_row(
            path,
            [
                name,
                f"{curve[-1][1]:.2f}",
                f"{curve[-1][2]:.2f}",
                f"{lowest[2]:.2f} ({lowest[1]})",
                f"{best[1]:.2f} ({best[0]})",
                f"{time.perf_counter() - started:.0f}",
            ],
        )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
