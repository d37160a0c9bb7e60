"""Flash / no-flash presets side by side on the synthetic case of `dip demo --task flash` (the
flash photo is a clean crop; the no-flash photo the same crop under dim warm light with noise
sigma 20; PSNR against the noise-free dim image), for several seeds, one process. A preset may
be a variant, `PRESET[+CHANGE...]` (`dip.bench.choice.variant`: `default+ema=0.99+ramp=10`).

    python benchmarks/flash.py [--size 128] [--seeds 0,1] [--presets paper,default]

Appends one row per run to benchmarks/results/flash-cpu-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import dip
from dip.bench.choice import variant
from dip.bench.results import append_row, results_file
from dip.demo import make_case
from dip.metrics import psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--presets", default="paper,default")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    path = results_file(
        Path(__file__).parent / "results",
        f"flash-{args.device}",
        "Flash / no-flash presets",
        [f"case: `dip.demo.make_case('flash', {args.size}, seed)`; PSNR against the noise-free dim image"],
        ["size", "seed", "preset", "parameters", "steps", "PSNR noisy", "PSNR result", "best PSNR (step)", "seconds"],
    )
    for seed in map(int, args.seeds.split(",")):
        case = make_case("flash", args.size, seed)
        for preset in args.presets.split(","):
            started = time.perf_counter()
            done = dip.run(
                case.problem,
                case.observation,
                preset=variant("flash", preset),
                seed=seed,
                device=args.device,
                reference=case.clean,
            )
            seconds = time.perf_counter() - started
            step, best = done.metrics.best
            append_row(
                path,
                [
                    args.size,
                    seed,
                    preset,
                    f"{done.parameters:,}",
                    done.fit.steps_run,
                    f"{psnr(case.observation, case.clean):.2f}",
                    f"{psnr(done.image, case.clean):.2f}",
                    f"{best:.2f} ({step})",
                    f"{seconds:.0f}",
                ],
            )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
