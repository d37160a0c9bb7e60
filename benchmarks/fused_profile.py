"""Where the time of a batched step goes on a CPU: the convolutions (forward and backward)
against everything else, for one fit (`dip.fit.fit`), K fits fused into one network
(`dip.batched.fit_batch`: grouped convolutions, per-member Adam) and, as a bound no independent
fits can reach, one network on a batch of K inputs (shared weights: its weight gradients are one
product over K times the pixels).

The default denoising net, random targets (as `dip bench speed`), `--steps` steps after 5 of
warm-up, timed without the profiler, then split by `torch.profiler` (self CPU time of the
operators whose name holds "conv", against the rest; the profiler's own cost falls mostly on the
rest). ms per problem-step.

    python benchmarks/fused_profile.py [--sizes 64,128] [--ks 4] [--steps 40]

Appends one row per size and K to benchmarks/results/fused-profile-cpu-DATE.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from dip.batched import Member, fit_batch
from dip.bench.results import append_row, results_file
from dip.bench.speed import random_problem
from dip.fit import fit
from dip.operators import Identity
from dip.presets import get_preset

PRESET = get_preset("denoise", "default")


def _problem(size: int, seed: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    return random_problem(PRESET, size, torch.device("cpu"), seed)


def _lone(size: int, k: int, steps: int) -> None:
    net, z, target = _problem(size, 0)
    fit(net, z, target, Identity(), dataclasses.replace(PRESET.fit, steps=steps))


def _fused(size: int, k: int, steps: int) -> None:
    members = [Member(*_problem(size, i), Identity(), torch.Generator().manual_seed(i)) for i in range(k)]
    fit_batch(members, dataclasses.replace(PRESET.fit, steps=steps))


def _shared(size: int, k: int, steps: int) -> None:
    net, z, target = _problem(size, 0)
    z, target = z.expand(k, -1, -1, -1).contiguous(), target.expand(k, -1, -1, -1).contiguous()
    adam = torch.optim.Adam(net.parameters(), lr=PRESET.fit.lr)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(net(z + torch.randn_like(z) * PRESET.fit.reg_noise_std), target)
        loss.backward()
        adam.step()
        adam.zero_grad(set_to_none=True)


def _split(run: Callable[[int, int, int], None], size: int, k: int, steps: int) -> tuple[float, float, float]:
    """ms per problem-step: timed, and the profiler's convolution and other self time."""
    run(size, k, 5)
    started = time.perf_counter()
    run(size, k, steps)
    timed = (time.perf_counter() - started) * 1000 / (steps * k)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        run(size, k, steps)
    conv = other = 0.0
    for event in profiler.key_averages():
        share = event.self_cpu_time_total / 1000 / (steps * k)
        if "conv" in event.key:
            conv += share
        else:
            other += share
    return timed, conv, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--ks", default="4")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    path = results_file(
        Path(__file__).parent / "results",
        "fused-profile-cpu",
        "Where a batched step's time goes on a CPU",
        [
            f"the default denoising net, {args.steps} steps after 5 of warm-up, {torch.get_num_threads()} threads; "
            "ms per problem-step: timed without the profiler, then the profiler's self time of the "
            "convolutions (forward and backward) and of the rest",
        ],
        ["size", "way", "K", "timed ms", "/ lone", "convolutions ms", "/ lone", "rest ms", "/ lone"],
    )
    for size in [int(s) for s in args.sizes.split(",")]:
        lone = _split(_lone, size, 1, args.steps)
        append_row(path, [size, "lone fit", 1, *_cells(lone, lone)])
        for k in [int(k) for k in args.ks.split(",")]:
            for way, run in (("fused", _fused), ("shared weights", _shared)):
                append_row(path, [size, way, k, *_cells(_split(run, size, k, args.steps), lone)])


def _cells(values: tuple[float, float, float], lone: tuple[float, float, float]) -> list[str]:
    return [cell for value, base in zip(values, lone) for cell in (f"{value:.2f}", f"{value / base:.2f}")]


if __name__ == "__main__":
    main()
