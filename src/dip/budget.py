"""Before a run: how much memory and time will it take, and will it fit?

Memory is estimated from the network's activations, counted by one small forward pass and
scaled to the image's canvas (training keeps them for the backward pass), plus weights,
gradients and Adam's two moments. The constants were fitted to `dip bench speed`'s measured
peak resident memory on CPU at 128, 256 and 512 px for the paper and default denoising nets
(benchmarks/results/speed-cpu-2026-11-26-4.md), within 10%. Time per step is rough: GFLOP per step
over a fraction of the device's measured matrix-multiply rate.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DipError
from .presets import Preset

PROBE = 64  # side of the probe canvas
BYTES_PER_ACTIVATION = 3.74  # per activation element in a training step (fitted, see module doc)
BASE_BYTES = 461 * 2**20  # the process itself: Python, torch, the image (fitted)
MAX_BATCH = 16  # most fits in one batch
CPU_BATCH_PIXELS = 64 * 64  # largest canvas a CPU batch is used on
EFFICIENCY = 0.25  # achieved fraction of GEMM rate by a DIP step (measured 11-38% on CPU)


@dataclass
class Estimate:
    bytes: float
    gflop_per_step: float
    seconds_per_step: float

    def describe(self, steps: int) -> str:
        return (
            f"about {self.bytes / 2**30:.1f} GB of memory and roughly {self.seconds_per_step:.2g} s a step "
            f"(~{steps * self.seconds_per_step / 60:.0f} min for {steps} steps)"
        )


@functools.lru_cache(maxsize=32)
def _probe(preset: Preset, channels: int) -> tuple[float, float, int]:
    """(activation elements per canvas pixel, FLOP per canvas pixel per step, parameters)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(devices=[]):
        net = preset.net.build(preset.input_channels, channels)
    size = max(PROBE, preset.net.min_size, preset.net.stride)
    z = torch.zeros(1, preset.input_channels, size, size)
    elements = 0

    def count(_module, _inputs, output) -> None:
        nonlocal elements
        if torch.is_tensor(output):
            elements += output.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    with FlopCounterMode(display=False) as flops:
        net(z).mean().backward()
    for hook in hooks:
        hook.remove()
    parameters = sum(p.numel() for p in net.parameters())
    return elements / size**2, flops.get_total_flops() / size**2, parameters


def gemm_rate(device: torch.device, n: int = 512, repeats: int = 8) -> float:
    """FLOP/s of an fp32 matrix multiply: a quick look at the device's speed."""
    a = torch.randn(n, n, device=device)
    torch.mm(a, a)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, a)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * n**3 * repeats / max(time.perf_counter() - started, 1e-9)


def memory(preset: Preset, canvas: tuple[int, int], channels: int) -> float:
    """Bytes a fit of `preset` on a `canvas` (h, w) needs."""
    per_pixel, _, parameters = _probe(preset, channels)
    return BASE_BYTES + per_pixel * canvas[0] * canvas[1] * BYTES_PER_ACTIVATION + parameters * 4 * 4


def gflop_per_step(preset: Preset, canvas: tuple[int, int], channels: int) -> float:
    """Arithmetic of one fitting step (forward + backward) on a `canvas` (h, w)."""
    return _probe(preset, channels)[1] * canvas[0] * canvas[1] / 1e9


def estimate(preset: Preset, canvas: tuple[int, int], channels: int, device: torch.device) -> Estimate:
    gflop = gflop_per_step(preset, canvas, channels)
    return Estimate(memory(preset, canvas, channels), gflop, gflop * 1e9 / (gemm_rate(device) * EFFICIENCY))


def available(device: torch.device) -> float | None:
    """Bytes free for this run: CUDA's free memory, or Linux's MemAvailable; None if unknown."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def batch_size(
    preset: Preset, canvas: tuple[int, int], channels: int, device: torch.device, free: float | None = None
) -> int:
    """How many fits on this canvas to run as one batch (`dip.batched`). On a CPU batching paid
    a little on 64x64 canvases and cost time from 128x128 up (grouped convolutions run slower
    there; `dip bench speed --batches`, benchmarks/README.md): up to MAX_BATCH on canvases up to
    64x64, else 1. On CUDA as many as 80% of the free memory holds, up to MAX_BATCH."""
    if device.type != "cuda":
        return MAX_BATCH if canvas[0] * canvas[1] <= CPU_BATCH_PIXELS else 1
    free = available(device) if free is None else free
    each = memory(preset, canvas, channels) - BASE_BYTES
    return max(1, min(MAX_BATCH, int(0.8 * free / each))) if free else 1


def worker_count(
    preset: Preset, canvas: tuple[int, int], channels: int, fits: int, cores: int, free: float | None = None
) -> int:
    """How many processes to fit `fits` independent fits on a CPU of `cores` cores: one per core
    (a fit uses many cores poorly: `dip.workers`), no more than there are fits, nor than 80% of
    the free memory holds.

    >>> from dip.presets import get_preset
    >>> preset = get_preset("denoise", "default")
    >>> worker_count(preset, (256, 256), 3, fits=4, cores=2, free=16 * 2**30)
    2
    >>> worker_count(preset, (256, 256), 3, fits=4, cores=8, free=1 * 2**30)  # 0.6 GB a fit
    1
    """
    held = int(0.8 * free / memory(preset, canvas, channels)) if free else cores
    return max(1, min(cores, fits, held))


def check_fits(
    preset: Preset,
    canvas: tuple[int, int],
    channels: int,
    device: torch.device,
    tile: int | None = None,
    free: float | None = None,
    scale: int = 1,
) -> Estimate:
    """The estimate for one run (or one tile); a one-line error with a tile size that would fit
    when it needs more memory than is free. `canvas` is in output pixels, `scale` times the
    input's (super-resolution); the suggested tile is in input pixels."""
    needed = estimate(preset, canvas, channels, device)
    free = available(device) if free is None else free
    if free is not None and needed.bytes > 0.9 * free:
        side = max(canvas)
        while side > 128 and memory(preset, (min(side, canvas[0]), min(side, canvas[1])), channels) > 0.9 * free:
            side //= 2
        tile_side = max(32, side // scale)
        hint = (
            f"restore it in tiles of {tile_side} px with {max(8, tile_side // 8)} px overlap"
            if side < max(canvas)
            else "free some memory"
        )
        what = f"a {tile}px tile" if tile else f"this {canvas[1]}x{canvas[0]} image"
        raise DipError(
            f"{what} needs about {needed.bytes / 2**30:.1f} GB with preset {preset.name}, only "
            f"{free / 2**30:.1f} GB are free on {device.type}: {hint}, or use a device with more memory"
        )
    return needed
