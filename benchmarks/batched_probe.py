"""How K independent fits could share one step, measured before building it: the default
denoising net's forward + backward (no optimizer) for K problems at a size, three ways:
K separate nets one after another; `torch.func.vmap` over their stacked weights (BatchNorm
without running statistics, as in train mode); the K nets fused into one with grouped
convolutions (`dip.nets.fused`); and one net on a batch of K (shared weights: the lower bound,
not independent fits). Median of 10 steps after 2 warm-ups, one process.

    python benchmarks/batched_probe.py [--sizes 64,128] [--ks 1,4]

Writes benchmarks/results/batched-probe-cpu-DATE.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap

from dip.bench.results import append_row, results_file
from dip.nets.fused import fuse
from dip.presets import get_preset


def median_ms(step, repeats: int = 10) -> float:
    times = []
    for _ in range(repeats + 2):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[2:]) * 1000


def measure(size: int, k: int) -> dict[str, float]:
    preset = get_preset("denoise", "default")
    torch.manual_seed(0)
    nets = [replace_all_batch_norm_modules_(preset.net.build(32, 3)) for _ in range(k)]
    z, y = torch.rand(k, 1, 32, size, size) * 0.1, torch.rand(k, 1, 3, size, size)

    def separate():
        for net, zk, yk in zip(nets, z, y):
            ((net(zk) - yk) ** 2).mean().backward()

    params, buffers = stack_module_state(nets)
    params = {name: value.detach().requires_grad_() for name, value in params.items()}
    base = copy.deepcopy(nets[0]).to("meta")

    def vmapped():
        out = vmap(lambda p, b, zk: functional_call(base, (p, b), (zk,)))(params, buffers, z)
        ((out - y) ** 2).mean(dim=(1, 2, 3, 4)).sum().backward()

    fused = fuse(nets)
    z_fused = z.transpose(0, 1).reshape(1, -1, size, size)
    y_fused = y.transpose(0, 1).reshape(1, -1, size, size)

    def grouped():
        ((fused(z_fused) - y_fused) ** 2).mean().backward()

    def shared():
        ((nets[0](z[:, 0]) - y[:, 0]) ** 2).mean().backward()

    return {
        name: median_ms(step) / k
        for name, step in (("separate", separate), ("vmap", vmapped), ("fused", grouped), ("shared", shared))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--ks", default="1,4")
    args = parser.parse_args()
    path = results_file(
        Path(__file__).parent / "results",
        "batched-probe-cpu",
        "K fits in one step: a probe",
        ["default denoising net, forward + backward, ms per problem-step (median of 10)"],
        ["size", "K", "separate", "vmap", "fused (grouped conv)", "shared weights (bound)"],
    )
    for size in map(int, args.sizes.split(",")):
        for k in map(int, args.ks.split(",")):
            r = measure(size, k)
            append_row(path, [size, k, *(f"{r[name]:.1f}" for name in ("separate", "vmap", "fused", "shared"))])
    print(f"results: {path}")


if __name__ == "__main__":
    main()
