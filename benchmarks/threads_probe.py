"""Probe: on a CPU of few cores, one fit on every core, or one fit per core side by side?

Long benchmark runs on this project's 2-core CPU fit images one after another, each fit on both
cores. Two fits on one core each, side by side (two processes, or `dip batch --workers 2`), may
get more steps done per second if a step does not scale to two threads. Per size: ms per step of
the default denoising net alone on `--threads` threads, and of `--threads` fits run side by side
on one thread each, their timed steps started together (the fits wait for each other after their
warm-up: a first version of this probe timed each from its own start, so one fit's steps ran
partly alone and side by side looked 1.3-1.6x faster); throughput = fit-steps per second, side by side over alone.

    python benchmarks/threads_probe.py [--sizes 128,256,512] [--steps 20] [--threads 2]

Appends one row per size to benchmarks/results/threads-probe-cpu-DATE.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import time
from pathlib import Path

from dip.bench.results import append_row, results_file
from dip.bench.speed import random_problem
from dip.fit import Callback, fit
from dip.operators import Identity
from dip.presets import get_preset

WARMUP = 3


class _Clock(Callback):
    """Waits at the barrier after the warm-up steps (so side-by-side fits overlap from their first
    timed step to their last), then times the rest."""

    def __init__(self, warmup: int, barrier) -> None:
        self.warmup, self.barrier, self.started, self.ended = warmup, barrier, 0.0, 0.0

    def on_step(self, state) -> None:
        if state.step == self.warmup:
            self.barrier.wait()
            self.started = time.perf_counter()
        self.ended = time.perf_counter()


def _timed(size: int, steps: int, threads: int, barrier, queue) -> None:
    import torch

    torch.set_num_threads(threads)
    preset = get_preset("denoise", "default")
    net, z, target = random_problem(preset, size, torch.device("cpu"), seed=0)
    clock = _Clock(WARMUP, barrier)
    fit(net, z, target, Identity(), dataclasses.replace(preset.fit, steps=WARMUP + steps), callbacks=[clock])
    queue.put((clock.ended - clock.started) / steps * 1000)


def side_by_side(size: int, steps: int, count: int, threads: int) -> list[float]:
    """Mean ms per step of each of `count` fits run at once, on `threads` threads each, timed
    from a common start after their warm-up."""
    context = multiprocessing.get_context("spawn")
    queue, barrier = context.Queue(), context.Barrier(count)
    children = [context.Process(target=_timed, args=(size, steps, threads, barrier, queue)) for _ in range(count)]
    for child in children:
        child.start()
    results = [queue.get(timeout=3600) for _ in children]
    for child in children:
        child.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    cores = args.threads
    path = results_file(
        Path(__file__).parent / "results",
        "threads-probe-cpu",
        "Probe: one fit on every core, or one fit per core side by side",
        [
            f"the default denoising net (`dip.fit`, random RGB target), mean ms per step of {args.steps} steps "
            f"after 3 warm-up steps; alone: one process on {cores} threads; side by side: {cores} processes on 1 "
            "thread each, their timed steps started together (a barrier after the warm-up); throughput: fit-steps "
            "per second, side by side over alone"
        ],
        ["size", f"alone, {cores} threads", "side by side, each", "throughput side by side / alone"],
    )
    for size in (int(s) for s in args.sizes.split(",")):
        alone = side_by_side(size, args.steps, 1, cores)[0]
        each = side_by_side(size, args.steps, cores, 1)
        ratio = sum(alone / ms for ms in each)
        append_row(path, [size, f"{alone:.1f}", " / ".join(f"{ms:.1f}" for ms in each), f"{ratio:.2f}"])


if __name__ == "__main__":
    main()
