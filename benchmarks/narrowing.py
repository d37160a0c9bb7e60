"""What a batch saves by running on in the network of its live members (`dip.batched.narrows`),
and by letting waiting fits take the places of stopped ones (`fit_batch(..., slots=K)`).

K problems of one size (the default denoising net, random targets, as `dip bench speed`),
fitted together in one process, the runs alternating: every member runs N steps (`full`), and
member j stops after N (j + 1) / K steps (`staggered`: a stop callback, as early stopping would).
Before narrowing, the staggered batch ran its full width to the last stop and cost what the full
one costs. `member-steps`: the share of the full batch's member steps the staggered one takes,
what it would cost if a step's time were proportional to the batch's width. Then 2K problems
with those stops (twice each, in a seeded shuffled order) through K places: as two batches of
K one after the other (`chunks`, how tiles ran before), and as one queue (`queue`). Median of
`--repeats` runs each.

    python benchmarks/narrowing.py [--sizes 64,128] [--ks 4,16] [--steps 40] [--repeats 3]
                                   [--device cuda --acceleration tf32+graph]

Appends one row per size and K to benchmarks/results/narrowing-DEVICE-DATE.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time
from pathlib import Path

import torch

from dip.accel import Acceleration
from dip.batched import Member, fit_batch
from dip.bench.results import append_row, results_file
from dip.bench.speed import random_problem
from dip.fit import Callback
from dip.operators import Identity
from dip.presets import get_preset
from dip.run import resolve_device


class _StopAfter(Callback):
    def __init__(self, steps: int):
        self.steps = steps

    def on_step(self, state) -> None:
        if state.step >= self.steps:
            state.stop, state.stop_reason = True, f"stopped after {self.steps}"


def _members(size: int, k: int, stops: list[int] | None, device: torch.device) -> list[Member]:
    """K seeded problems; member j stops after stops[j] steps (None: none stop early)."""
    preset = get_preset("denoise", "default")
    members = []
    for index in range(k):
        net, z, target = random_problem(preset, size, device, seed=index)
        callbacks = [_StopAfter(stops[index])] if stops else []
        members.append(
            Member(net, z, target, Identity(), torch.Generator(device).manual_seed(index), callbacks=callbacks)
        )
    return members


def _seconds(
    members: list[Member],
    steps: int,
    acceleration: Acceleration,
    device: torch.device,
    slots: int | None = None,
    chunk: int | None = None,
) -> float:
    """Seconds to fit `members`: as one batch with `slots` places, or in batches of `chunk`."""
    config = dataclasses.replace(get_preset("denoise", "default").fit, steps=steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    if chunk:
        for start in range(0, len(members), chunk):
            fit_batch(members[start : start + chunk], config, acceleration)
    else:
        fit_batch(members, config, acceleration, slots=slots)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--ks", default="4,16")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--acceleration", default="fp32", help="dip bench speed's variant names, e.g. tf32+graph")
    args = parser.parse_args()
    device = resolve_device(args.device)
    acceleration = Acceleration.parse(args.acceleration)
    acceleration.check(device)
    path = results_file(
        Path(__file__).parent / "results",
        f"narrowing-{device.type}",
        "A batch that narrows to its live members",
        [
            f"the default denoising net, {args.steps} steps, arithmetic {acceleration.describe()}; "
            f"median of {args.repeats} runs of each, in turn; staggered: member j of K stops after "
            "steps (j + 1) / K; 2K: those stops twice over, shuffled, through K places",
        ],
        [
            "size",
            "K",
            "full s",
            "staggered s",
            "staggered / full",
            "member-steps",
            "2K: chunks s",
            "2K: queue s",
            "queue / chunks",
        ],
    )
    for size in [int(s) for s in args.sizes.split(",")]:
        for k in [int(k) for k in args.ks.split(",")]:
            stops = [max(1, round(args.steps * (j + 1) / k)) for j in range(k)]
            _seconds(_members(size, k, None, device), 3, acceleration, device)  # warm-up
            mixed = [stops[j % k] for j in random.Random(0).sample(range(2 * k), 2 * k)]
            full, staggered, chunks, queue = [], [], [], []
            for _ in range(args.repeats):
                full.append(_seconds(_members(size, k, None, device), args.steps, acceleration, device))
                staggered.append(_seconds(_members(size, k, stops, device), args.steps, acceleration, device))
                chunks.append(_seconds(_members(size, 2 * k, mixed, device), args.steps, acceleration, device, chunk=k))
                queue.append(_seconds(_members(size, 2 * k, mixed, device), args.steps, acceleration, device, slots=k))
            full_s, staggered_s = statistics.median(full), statistics.median(staggered)
            chunks_s, queue_s = statistics.median(chunks), statistics.median(queue)
            share = sum(stops) / (k * args.steps)
            append_row(
                path,
                [
                    size,
                    k,
                    f"{full_s:.2f}",
                    f"{staggered_s:.2f}",
                    f"{staggered_s / full_s:.2f}",
                    f"{share:.2f}",
                    f"{chunks_s:.2f}",
                    f"{queue_s:.2f}",
                    f"{queue_s / chunks_s:.2f}",
                ],
            )


if __name__ == "__main__":
    main()
