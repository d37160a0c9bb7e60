"""`dip bench speed`: milliseconds per fitting step, GFLOP per step and achieved GFLOP/s (next
to this machine's measured fp32 matrix-multiply rate), and peak memory, per network and size.

Each (network, size) is measured in a fresh child process so that its peak resident memory
is its own.
"""
from __future__ import annotations

import datetime
import multiprocessing
import resource
import statistics
import time
from pathlib import Path

import torch

from ..presets import get_preset
from ..tasks import resolve_device


def gemm_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 matrix-multiply rate: the machine's practical peak for convolutions."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    _sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - started) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _measure(task: str, preset_name: str, size: int, steps: int, warmup: int, device_name: str, queue) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device(device_name)
    preset = get_preset(task, preset_name)
    torch.manual_seed(0)
    net = preset.net.build(preset.input_channels, 3).to(device)
    z = torch.rand(1, preset.input_channels, size, size, device=device) * 0.1
    target = torch.rand(1, 3, size, size, device=device)
    optimizer = torch.optim.Adam(net.parameters(), lr=preset.fit.lr)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.mean((net(z + 0.03 * torch.randn_like(z)) - target) ** 2)
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        _sync(device)
        started = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - started)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    queue.put({"ms": statistics.median(times) * 1000, "gflop": flops / 1e9, "peak_mb": peak / 2 ** 20})


def measure(task: str, preset: str, size: int, steps: int = 10, warmup: int = 2, device: str = "auto") -> dict:
    """Median ms/step and the rest for one network at size x size, in a child process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_measure, args=(task, preset, size, steps, warmup,
                                                   str(resolve_device(device)), queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def run_speed(sizes: list[int], steps: int, device: str, out_dir: Path, command: str,
              presets: list[tuple[str, str]] | None = None, ttq: dict | None = None, log=print) -> Path:
    """Measure every (task, preset) at every size; append each row to the results file as it finishes."""
    from .quality import fresh_path, machine

    presets = presets or [("denoise", "paper")]
    dev = resolve_device(device)
    date = datetime.date.today().isoformat()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = fresh_path(out_dir / f"speed-{dev.type}-{date}.md")
    peak = gemm_gflops(dev)
    with open(path, "w") as out:
        out.write(f"# Per-step speed\n\n- command: `{command}`\n- date: {date}; machine: {machine()}; "
                  f"torch {torch.__version__}\n- fp32 GEMM (2048x2048) measured: {peak:.0f} GFLOP/s\n"
                  f"- median of {steps} steps after 2 warm-up steps; one Adam step = forward + backward + update\n\n"
                  "| task/preset | parameters | size | ms/step | GFLOP/step | GFLOP/s | % of GEMM | peak memory MB |\n"
                  "|---|---|---|---|---|---|---|---|\n")
    log(f"fp32 GEMM: {peak:.0f} GFLOP/s")
    for task, preset in presets:
        parameters = get_preset(task, preset).parameters(3)
        for size in sizes:
            r = measure(task, preset, size, steps, device=device)
            rate = r["gflop"] / (r["ms"] / 1000)
            line = (f"| {task}/{preset} | {parameters:,} | {size} | {r['ms']:.0f} | {r['gflop']:.1f} | {rate:.0f} | "
                    f"{100 * rate / peak:.0f}% | {r['peak_mb']:.0f} |")
            with open(path, "a") as out:
                out.write(line + "\n")
            log(line)
    if ttq is not None:
        time_to_quality(path=path, device=device, log=log, **ttq)
    return path


TTQ_IMAGES = ("F16", "peppers", "baboon")  # smooth, mixed, textured


def time_to_quality(data: Path, presets: list[str], crop: int, steps: int | None, device: str,
                    path: Path, images: tuple[str, ...] = TTQ_IMAGES, log=print) -> None:
    """Each denoising preset, run to completion on the same noisy crops (the paper's published
    sigma-25 noise): final PSNR, best PSNR over the run (an oracle that knows the clean image),
    wall time, and time and PSNR relative to the first preset. Rows are appended to `path`."""
    from ..bench.quality import centre_box, cut
    from ..io import read_image
    from ..tasks import denoise

    folder = data / "Denoising" / "Color" / "25"
    with open(path, "a") as out:
        out.write(f"\n## Time to quality: denoising sigma 25, {crop}x{crop} centre crops of the published noisy "
                  f"images\n\n| image | preset | steps | final PSNR | best PSNR (step) | seconds | time vs "
                  f"{presets[0]} |\n|---|---|---|---|---|---|---|\n")
    for name in images:
        truth = read_image(folder / f"{name}_GT.png").pixels
        box = centre_box(*truth.shape[:2], crop, 1)
        clean, noisy = cut(truth, box), cut(read_image(folder / f"{name}_noisy.png").pixels, box)
        first_seconds = None
        for preset in presets:
            _, info = denoise(noisy, 25, preset=preset, steps=steps, device=device, reference=clean,
                              return_info=True)
            final = info.metrics.history[-1][1]
            best_step, best = info.metrics.best
            first_seconds = first_seconds or info.seconds
            line = (f"| {name} | {preset} | {info.fit.steps_run} | {final:.2f} | {best:.2f} ({best_step}) | "
                    f"{info.seconds:.0f} | {info.seconds / first_seconds:.2f} |")
            with open(path, "a") as out:
                out.write(line + "\n")
            log(line)
