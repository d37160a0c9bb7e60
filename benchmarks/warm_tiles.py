"""Warm tiles against cold tiles, through `dip.run` as a user runs a big photo.

`dip.run(..., tile=T)` restores a big image tile by tile. Cold: every tile's network drawn from
the seed. Warm (the default): the tile nearest the centre is fitted first and every other tile
starts from the weights its fit ended with. Both runs in turn on each image (cold first), one
fit at a time (`batch=1`, as on a CPU), the task's default preset with its own stop. Per image:
the tiles, the steps all fits took, the seconds, and the PSNR of the blended result (the
preset's; for denoising, fit + Wiener step) and of the fits alone.

CBSD68 (the settings-choice set), centre crops: Gaussian noise sigma 25 (seed 0; `--sigma`),
Lanczos downscaling by `--factor`, or holes of `--kind` (`dip.bench.choice.holes`). `--tile`
and `--overlap` count observation pixels.

    python benchmarks/warm_tiles.py [--task denoise|super-resolve|inpaint] [--images 5:6]
        [--crop 256] [--tile 128] [--overlap 32] [--factor 4] [--kind strokes]

Appends one row per image to benchmarks/results/warm-tiles-[TASK-]DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import time
from pathlib import Path

from pilot_probe import noise_tag, probe_parser

import dip
from dip.bench import data_root
from dip.bench.choice import cases, image_span
from dip.bench.results import append_mean, append_row, results_file
from dip.metrics import psnr


def main() -> None:
    parser = probe_parser(__doc__, images="5:6")
    parser.set_defaults(crop=256)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--task", default="denoise", choices=("denoise", "super-resolve", "inpaint"))
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--kind", default="strokes")
    args = parser.parse_args()
    degradation = {
        "denoise": f"Gaussian noise sigma {args.sigma:g} (seed 0)",
        "super-resolve": f"Lanczos downscaling x{args.factor}",
        "inpaint": f"holes: {args.kind} (seeded)",
    }[args.task]
    start, stop = image_span(args.images)
    tag = "" if args.task == "denoise" else f"{args.task}-"
    path = results_file(
        Path(__file__).parent / "results",
        f"warm-tiles-{tag}{args.device}" + (noise_tag(args.sigma) if args.task == "denoise" else ""),
        "Warm tiles against cold tiles",
        [
            f"CBSD68 (the settings-choice set), images {start + 1}-{stop} sorted by name, centre {args.crop} px "
            f"crops, {degradation}, restored in tiles of {args.tile} observation px overlapping by {args.overlap}",
            "`dip.run(problem, observation, tile=..., overlap=..., warm_tiles=..., batch=1, seed=0)`, default "
            "preset, cold then warm on each image; steps: all tiles' fits summed; PSNR: the blended result, "
            "and the fits alone (before a refine step such as denoising's Wiener step)",
        ],
        [
            "image",
            "tiles",
            "steps cold",
            "steps warm",
            "warm / cold steps",
            "s cold",
            "s warm",
            "warm / cold s",
            "cold",
            "warm",
            "cold fits",
            "warm fits",
        ],
    )
    rows = []
    chosen = cases(args.task, stop - start, args.crop, data_root(), start, args.factor, args.kind, args.sigma)
    for name, problem, observed, clean in chosen:
        done = {}
        for warm in (False, True):
            started = time.perf_counter()
            result = dip.run(
                problem,
                observed,
                tile=args.tile,
                overlap=args.overlap,
                warm_tiles=warm,
                batch=1,
                seed=0,
                device=args.device,
            )
            done[warm] = (result, time.perf_counter() - started)
        (cold, cold_s), (warm, warm_s) = done[False], done[True]
        tiles = int(cold.fit.stop_reason.split()[0])
        alone = [r.image if r.unrefined is None else r.unrefined for r in (cold, warm)]
        numbers = [psnr(r.image, clean) for r in (cold, warm)] + [psnr(a, clean) for a in alone]
        rows.append(numbers)
        append_row(
            path,
            [
                name,
                tiles,
                cold.fit.steps_run,
                warm.fit.steps_run,
                f"{warm.fit.steps_run / cold.fit.steps_run:.2f}",
                f"{cold_s:.0f}",
                f"{warm_s:.0f}",
                f"{warm_s / cold_s:.2f}",
                *(f"{n:.2f}" for n in numbers),
            ],
        )
    append_mean(path, ["**average**", "", "", "", "", "", "", ""], rows)


if __name__ == "__main__":
    main()
