"""`dip bench speed`: milliseconds per fitting step, GFLOP per step and achieved GFLOP/s (next
to this machine's measured fp32 matrix-multiply rate), and peak memory, per network and size.

Each (network, size) is measured in a fresh child process so that its peak resident memory
is its own.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import multiprocessing
import queue as queues
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..accel import Acceleration, cpu_bf16
from ..batched import Member, fit_batch
from ..budget import gemm_rate, gflop_per_step
from ..errors import DipError
from ..fit import Callback, fit
from ..graphed import SYNC_EVERY
from ..operators import Identity
from ..presets import get_preset
from ..run import resolve_device


def gemm_gflops(device: torch.device) -> float:
    """Measured fp32 matrix-multiply rate (2048x2048): the machine's practical peak for convolutions."""
    return gemm_rate(device, n=2048, repeats=10) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class _StepClock(Callback):
    """Time stamps after each step (after the device finished it).

    With the CUDA graph (`dip.graphed`) callbacks hear of the steps in groups of `SYNC_EVERY`
    after the group ran, so only the stamps at group ends are times: `budget` makes the warm-up
    and the timed steps whole groups and `ms` takes the mean over the timed groups; otherwise
    `ms` is the median step."""

    def __init__(self, device: torch.device, acceleration: Acceleration):
        self.device, self.stamps, self.grouped = device, [], acceleration.cuda_graph

    def budget(self, steps: int, warmup: int) -> tuple[int, int]:
        """(steps, warmup) to run: whole groups with the CUDA graph."""
        if not self.grouped:
            return steps, warmup
        return _whole_groups(steps), _whole_groups(warmup)

    def ms(self, warmup: int) -> float:
        if self.grouped:
            return (self.stamps[-1] - self.stamps[warmup]) / (len(self.stamps) - 1 - warmup) * 1000
        return statistics.median(np.diff(self.stamps)[warmup:]) * 1000

    def on_start(self, state) -> None:
        _sync(self.device)
        self.stamps.append(time.perf_counter())

    def on_step(self, state) -> None:
        _sync(self.device)
        self.stamps.append(time.perf_counter())


def _whole_groups(steps: int) -> int:
    return -(-steps // SYNC_EVERY) * SYNC_EVERY


def _measure(
    task: str, preset_name: str, size: int, steps: int, warmup: int, device_name: str, variant: str, queue=None
) -> dict:
    """Run the real fitting loop (`fit`, as every task runs it) for warm-up + timed steps; the
    arithmetic per step comes from the budget's FLOP count (the same whatever the precision)."""
    device = torch.device(device_name)
    preset = get_preset(task, preset_name)
    acceleration = Acceleration.parse(variant)
    acceleration.check(device)

    net, z, target = random_problem(preset, size, device, seed=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    clock = _StepClock(device, acceleration)
    steps, warmup = clock.budget(steps, warmup)
    fit(
        net,
        z,
        target,
        Identity(),
        dataclasses.replace(preset.fit, steps=warmup + steps),
        callbacks=[clock],
        acceleration=acceleration,
    )
    times = np.diff(clock.stamps)
    peak = _peak(device)
    result = {
        "ms": clock.ms(warmup),
        "gflop": gflop_per_step(preset, (size, size), 3),
        "peak_mb": peak / 2**20,
        "first_s": float(times[0]),
    }
    if queue is not None:
        queue.put(result)
    return result


def _measure_batch(
    task: str, preset_name: str, size: int, steps: int, warmup: int, device_name: str, variant: str, k: int, queue=None
) -> dict:
    """K problems of one size through the batched loop (`dip.batched.fit_batch`; K = 1 is the
    plain `fit`): ms per batch step, and per problem-step."""
    device = torch.device(device_name)
    preset = get_preset(task, preset_name)
    acceleration = Acceleration.parse(variant)
    acceleration.check(device)
    members = []
    for index in range(k):
        net, z, target = random_problem(preset, size, device, seed=index)
        members.append(Member(net, z, target, Identity(), torch.Generator(device).manual_seed(index)))
    clock = _StepClock(device, acceleration)
    steps, warmup = clock.budget(steps, warmup)
    members[0].callbacks = [clock]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fit_batch(members, dataclasses.replace(preset.fit, steps=warmup + steps), acceleration)
    ms = clock.ms(warmup)
    result = {"ms": ms, "per_problem": ms / k, "peak_mb": _peak(device) / 2**20}
    if queue is not None:
        queue.put(result)
    return result


def random_problem(preset, size: int, device: torch.device, seed: int) -> tuple:
    """A seeded network of the preset, its input z and a random RGB target of `size` px (what a
    step costs does not depend on the image)."""
    torch.manual_seed(seed)
    net = preset.net.build(preset.input_channels, 3).to(device)
    z = torch.rand(1, preset.input_channels, size, size, device=device) * 0.1
    return net, z, torch.rand(1, 3, size, size, device=device)


def _peak(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(
    task: str, preset: str, size: int, steps: int = 10, warmup: int = 2, device: str = "auto", variant: str = "fp32"
) -> dict:
    """Median ms/step and the rest for one network at size x size. On a CPU in a child process,
    so that the peak resident memory is this network's own; on CUDA in this process (the
    allocator's peak is reset per measurement)."""
    return _in_child(_measure, (task, preset, size, steps, warmup), device, variant)


def measure_batch(
    task: str, preset: str, size: int, k: int, steps: int = 10, warmup: int = 2, device: str = "auto", variant="fp32"
) -> dict:
    """Median ms per step of K problems fitted together, as `measure` runs it."""
    return _in_child(_measure_batch, (task, preset, size, steps, warmup), device, variant, (k,))


def _in_child(function, args: tuple, device: str, variant: str, extra: tuple = ()) -> dict:
    dev = resolve_device(device)
    if dev.type == "cuda":
        return function(*args, str(dev), variant, *extra)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    task, preset, size = args[:3]
    child = context.Process(target=function, args=(*args, str(dev), variant, *extra, queue))
    child.start()
    while True:  # a child that dies (killed, out of memory) must not hang the benchmark
        try:
            result = queue.get(timeout=5)
            break
        except queues.Empty:
            if not child.is_alive():
                raise DipError(
                    f"the measuring process for {task}/{preset} at {size}px died (exit code {child.exitcode})"
                ) from None
    child.join()
    return result


def default_variants(device: torch.device) -> list[str]:
    """What `dip bench speed` compares: on CUDA every precision, the NHWC layout and the CUDA
    graph; on a CPU fp32 in both layouts, and bf16 in NHWC where the CPU has bfloat16
    instructions (`dip.accel.cpu_bf16`)."""
    if device.type == "cuda":
        return ["fp32", "tf32", "bf16", "fp16", "tf32+channels_last", "bf16+channels_last", "tf32+graph", "bf16+graph"]
    return ["fp32", "fp32+channels_last", *(["bf16+channels_last"] if cpu_bf16() else [])]


log = logging.getLogger("dip")
SPEED_PRESETS = [("denoise", "paper"), ("denoise", "default"), ("super-resolve", "default"), ("inpaint", "default")]


@dataclass
class SpeedOptions:
    """What `dip bench speed` measures, checked before anything runs."""

    sizes: list[int]
    presets: list[tuple[str, str]]
    variants: list[str] | None = None
    ttq: dict | None = None  # time-to-quality keywords (see `time_to_quality`), or None
    batches: list[int] | None = None  # K problems fitted together (`batched_rows`), or None

    @classmethod
    def parse(
        cls,
        sizes: str,
        presets: str | None = None,
        variants: str | None = None,
        ttq: bool = False,
        ttq_tasks: str = "denoise",
        ttq_presets: str = "paper,default",
        ttq_images: str | None = None,
        ttq_crop: int | None = None,
        ttq_steps: int | None = None,
        data: Path | None = None,
        batches: str | None = None,
    ) -> SpeedOptions:
        """From comma-separated text; unknown names and bad sizes are one-line errors."""
        try:
            sides = [int(size) for size in sizes.split(",")]
        except ValueError:
            raise DipError(f"sizes are comma-separated integers, got {sizes!r}") from None
        if any(size < 64 or size % 32 for size in sides):
            raise DipError(
                f"sizes must be multiples of 32, at least 64 (the 5-level net's smallest input), got {sizes}"
            )
        pairs = SPEED_PRESETS
        if presets:
            pairs = [tuple(pair.split("/", 1)) for pair in presets.split(",")]
            for pair in pairs:
                if len(pair) != 2:
                    raise DipError(f"presets are TASK/PRESET pairs, got {'/'.join(pair)!r}")
                get_preset(*pair)
        names = variants.split(",") if variants else None
        for variant in names or ():
            Acceleration.parse(variant)
        timing = None
        if ttq:
            tasks = tuple(ttq_tasks.split(","))
            for task in tasks:
                if task not in TTQ_IMAGES:
                    raise DipError(f"unknown time-to-quality task {task!r}; choose from {', '.join(TTQ_IMAGES)}")
                for name in ttq_presets.split(","):
                    name, _, variant = name.partition("@")
                    get_preset(task, PAPER_PRESETS.get(task, name) if name == "paper" else name)
                    if variant:
                        Acceleration.parse(variant)
            if ttq_images and len(tasks) != 1:
                raise DipError("time-to-quality images need exactly one task")
            timing = {
                "data": data,
                "presets": ttq_presets.split(","),
                "crop": ttq_crop,
                "steps": ttq_steps,
                "tasks": tasks,
                "images": {tasks[0]: tuple(ttq_images.split(","))} if ttq_images else None,
            }
        counts = None
        if batches:
            try:
                counts = [int(k) for k in batches.split(",")]
            except ValueError:
                counts = [0]
            if min(counts) < 1:
                raise DipError(f"batch sizes are comma-separated whole numbers of at least 1, got {batches!r}")
        return cls(sides, list(pairs), names, timing, counts)


def run_speed(options: SpeedOptions, steps: int, device: str, out_dir: Path, command: str) -> Path:
    """Measure every (task, preset) at every size in every variant (precision, layout); append
    each row to the results file as it finishes."""
    from .results import fresh_path, machine

    sizes, presets, variants, ttq = options.sizes, options.presets, options.variants, options.ttq
    dev = resolve_device(device)
    variants = variants or default_variants(dev)
    date = datetime.date.today().isoformat()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = fresh_path(out_dir / f"speed-{dev.type}-{date}.md")
    peak = gemm_gflops(dev)
    with open(path, "w") as out:
        out.write(
            f"# Per-step speed\n\n- command: `{command}`\n- date: {date}; machine: {machine()}; "
            f"torch {torch.__version__}\n- fp32 GEMM (2048x2048) measured: {peak:.0f} GFLOP/s\n"
            f"- median of {steps} steps after 2 warm-up steps of the fitting loop itself (`dip.fit`: "
            "forward, backward, Adam update, EMA, undo snapshot); first step = cuDNN autotuning or "
            "compilation included; peak memory: resident set (CPU) or allocated GPU memory (CUDA)\n\n"
            "| task/preset | parameters | size | arithmetic | ms/step | GFLOP/step | GFLOP/s | % of fp32 GEMM "
            "| peak memory MB | first step s |\n|---|---|---|---|---|---|---|---|---|---|\n"
        )
    log.info("fp32 GEMM: %.0f GFLOP/s", peak)
    for task, preset in presets:
        parameters = get_preset(task, preset).parameters(3)
        for size in sizes:
            for variant in variants:
                r = measure(task, preset, size, steps, device=device, variant=variant)
                rate = r["gflop"] / (r["ms"] / 1000)
                line = (
                    f"| {task}/{preset} | {parameters:,} | {size} | {variant} | {r['ms']:.1f} | {r['gflop']:.1f} | "
                    f"{rate:.0f} | {100 * rate / peak:.0f}% | {r['peak_mb']:.0f} | {r['first_s']:.2f} |"
                )
                _append(path, line)
    if options.batches:
        batched_rows(path, presets, sizes, options.batches, variants, steps, device)
    if ttq is not None:
        time_to_quality(path=path, device=device, **ttq)
    return path


def _append(path: Path, line: str) -> None:
    """A table row: appended to the results file at once (an interrupted run keeps it) and logged."""
    with open(path, "a") as out:
        out.write(line + "\n")
    log.info("%s", line)


def batched_rows(
    path: Path,
    presets: list[tuple[str, str]],
    sizes: list[int],
    batches: list[int],
    variants: list[str],
    steps: int,
    device: str,
) -> None:
    """Append a table: ms per problem-step with K problems fitted together (`dip.batched`), and
    against K = 1 (the plain loop, one problem after another). A K whose estimated memory does
    not fit in 80% of what is free is left out, saying so."""
    from ..budget import BASE_BYTES, available, memory

    dev = resolve_device(device)
    with open(path, "a") as out:
        out.write(
            "\n## Batched: K problems in one step\n\nEach problem has its own network, input, Adam state "
            "and stop (`dip.batched`); K = 1 is the plain loop. ms per problem-step = ms per step / K.\n\n"
            "| task/preset | size | arithmetic | K | ms/step | ms per problem-step | vs K = 1 | peak memory MB |\n"
            "|---|---|---|---|---|---|---|---|\n"
        )
    for task, preset in presets:
        for size in sizes:
            for variant in variants:
                single = None
                for k in batches:
                    need = (memory(get_preset(task, preset), (size, size), 3) - BASE_BYTES) * k + BASE_BYTES
                    free = available(dev)
                    if free is not None and need > 0.8 * free:
                        line = (
                            f"| {task}/{preset} | {size} | {variant} | {k} | left out: needs ~{need / 2**30:.1f} GB, "
                            f"{free / 2**30:.1f} GB free | | | |"
                        )
                    else:
                        r = measure_batch(task, preset, size, k, steps, device=device, variant=variant)
                        single = r["per_problem"] if k == 1 else single
                        ratio = f"{r['per_problem'] / single:.2f}x" if single else ""
                        line = (
                            f"| {task}/{preset} | {size} | {variant} | {k} | {r['ms']:.1f} | {r['per_problem']:.1f} "
                            f"| {ratio} | {r['peak_mb']:.0f} |"
                        )
                    _append(path, line)


TTQ_IMAGES = {
    "denoise": ("F16", "peppers", "baboon"),  # smooth, mixed, textured
    "super-resolve": ("baby", "bird", "butterfly", "head", "woman"),  # Set5
    "inpaint": ("kate",),
}
TTQ_TARGETS = {"denoise": 10, "super-resolve": 5, "inpaint": 5}  # wanted speed-up over the paper's full run
TTQ_CROPS = {"denoise": 128, "super-resolve": 64, "inpaint": 64}
PAPER_PRESETS = {"inpaint": "text"}  # the paper's setting for the ttq inpainting case (text mask)


def densest_window(holes: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """(top, left, side, side): the window with the most holes (the text mask is sparse; its
    centre crop of 64 px has none), first one in raster order on ties."""
    total = np.pad(holes.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    counts = total[side:, side:] - total[:-side, side:] - total[side:, :-side] + total[:-side, :-side]
    top, left = np.unravel_index(int(counts.argmax()), counts.shape)
    return int(top), int(left), side, side


def ttq_cases(task: str, data: Path, crop: int | None, images: tuple[str, ...]):
    """(name, clean crop, problem, observation) for each time-to-quality image (`crop` None: the
    whole image): denoising the paper's published sigma-25 noisy files, x4 super-resolution of
    Set5 (LR made the paper's way), inpainting the reference repo's text mask on kate (the crop
    with the most text)."""
    from ..bench.quality import centre_box, cut
    from ..degrade import downscale
    from ..io import read_image
    from ..problems import Denoising, Inpainting, SuperResolution

    for name in images:
        if task == "denoise":
            folder = data / "paper" / "Denoising" / "Color" / "25"
            truth = read_image(folder / f"{name}_GT.png").pixels
            box = centre_box(*truth.shape[:2], crop, 1)
            yield name, cut(truth, box), Denoising(25), cut(read_image(folder / f"{name}_noisy.png").pixels, box)
        elif task == "super-resolve":
            truth = read_image(data / "paper" / "SR" / "Set5" / "x4" / f"{name}_GT.png").pixels
            clean, low = downscale(cut(truth, centre_box(*truth.shape[:2], crop, 32)), 4)
            yield name, clean, SuperResolution(4), low
        else:
            folder = data / "dip" / "inpainting"
            truth, full_mask = read_image(folder / f"{name}.png").pixels, read_image(folder / f"{name}_mask.png").pixels
            box = densest_window(full_mask[:, :, 0] < 0.5, crop) if crop else centre_box(*truth.shape[:2], None, 1)
            clean, mask = cut(truth, box), cut(full_mask, box)
            yield name, clean, Inpainting(mask), clean * (mask >= 0.5)


def time_to_quality(
    data: Path,
    presets: list[str],
    crop: int | None,
    steps: int | None,
    device: str,
    path: Path,
    tasks: tuple[str, ...] = ("denoise",),
    images: dict | None = None,
) -> None:
    """Each preset, run to completion (or to its own stop) on the same inputs: the PSNR of its
    result, its best PSNR over the run (an oracle that knows the clean image), wall time, and
    time relative to the first preset ("paper" means the task's paper setting; "NAME@bf16"
    runs NAME in that arithmetic). `crop` None: each task's usual crop; 0: whole images. Rows are
    appended to `path`, then per task the averages and the target (the first preset's best
    PSNR - 0.3 dB in 1/N of its wall time)."""
    from ..metrics import psnr
    from ..run import run

    with open(path, "a") as out:
        out.write(
            "\n## Time to quality\n\nRGB PSNR against the clean image (crop: centre, or for inpainting the "
            "window with the most text); every preset sees the same input; seconds include building the "
            "network; PRESET@ARITHMETIC names a precision/layout other than the device's default.\n\n"
            f"| task | image | preset | steps run | result PSNR | best PSNR over the run (step) | seconds | "
            f"time vs {presets[0]} |\n|---|---|---|---|---|---|---|---|\n"
        )
    dev = resolve_device(device)
    for task in tasks:
        names = []
        for name in presets:
            preset, at, variant = name.partition("@")
            names.append((PAPER_PRESETS.get(task, preset) if preset == "paper" else preset) + at + variant)
        rows = []
        side = TTQ_CROPS[task] if crop is None else crop or None
        for name, clean, problem, observation in ttq_cases(task, data, side, (images or TTQ_IMAGES)[task]):
            first_seconds = None
            for label in names:
                preset, _, variant = label.partition("@")
                accel = Acceleration.parse(variant) if variant else Acceleration.default(dev)
                info = run(
                    problem, observation, preset=preset, steps=steps, reference=clean, device=device, **accel.options()
                )
                restored = info.image
                result = psnr(restored, clean)
                best_step, best = info.metrics.best
                first_seconds = first_seconds or info.seconds
                rows.append((label, result, best, info.seconds))
                size = f"{side}px" if side else f"{clean.shape[1]}x{clean.shape[0]}"
                line = (
                    f"| {task} | {name} {size} | {label} | {info.fit.steps_run} | {result:.2f} | "
                    f"{best:.2f} ({best_step}) | {info.seconds:.1f} | {info.seconds / first_seconds:.2f} |"
                )
                _append(path, line)
        summary = ttq_summary(task, names, rows)
        with open(path, "a") as out:
            out.write(summary)
        log.info("%s", summary)


def ttq_summary(task: str, presets: list[str], rows: list[tuple[str, float, float, float]]) -> str:
    """Averages per preset and, for each later preset, the target check against the first."""

    def mean(preset: str, index: int) -> float:
        return statistics.mean(row[index] for row in rows if row[0] == preset)

    base, wanted = presets[0], TTQ_TARGETS.get(task, 1)
    text = (
        f"\n**{task}**, averages: "
        + "; ".join(f"`{p}` result {mean(p, 1):.2f} dB, best {mean(p, 2):.2f} dB, {mean(p, 3):.0f} s" for p in presets)
        + ".\n"
    )
    for preset in presets[1:]:
        gap = mean(preset, 1) - mean(base, 2)
        speedup = sum(r[3] for r in rows if r[0] == base) / sum(r[3] for r in rows if r[0] == preset)
        met = gap >= -0.3 and speedup >= wanted
        text += (
            f"`{preset}` vs `{base}`'s best: {gap:+.2f} dB in 1/{speedup:.1f} of the time "
            f"(target: >= -0.30 dB in <= 1/{wanted}): **{'met' if met else 'not met'}**.\n"
        )
    return text + "\n"
