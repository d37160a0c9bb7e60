"""Preset variants side by side (`dip.bench.choice.variant`: PRESET[+fourier][+no-halving]
[+last][+steps=N][+unclipped]) on the settings-choice set CBSD68 (`--task`), or on a suite of the paper's
images (`--suite`, to explain a gap: the paper's own noisy F16 at full size needs a GPU). Each row:
the result's PSNR, the best PSNR over the run (an oracle that knows the clean image), steps, time.

    python benchmarks/variants.py --task denoise --variants default,default+fourier --images 4 --crop 128
    python benchmarks/variants.py --suite denoise25 --images F16 --mode full --device cuda \\
        --variants paper,paper+no-halving,paper+last,paper+fourier+steps=1800

Appends one row per run to benchmarks/results/variants-TASK-DEVICE-DATE.md as it finishes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import dip
from dip.bench import data_root
from dip.bench.choice import cases, image_span, problem_variant, variant
from dip.bench.quality import SUITES, load_case, suite_preset
from dip.bench.results import append_row, results_file
from dip.metrics import psnr


def paper_cases(suite_name: str, names: list[str], mode: str, data: Path):
    suite = SUITES[suite_name]
    for relative in suite.folders:
        for name in names:
            if (data / "paper" / relative / f"{name}_GT.png").exists():
                case = load_case(suite, data / "paper" / relative, name, mode)
                yield name, case.problem, case.observed, case.reference


def suite_variant(suite: str, text: str) -> str:
    """PRESET+CHANGES with PRESET as the suite names it (`paper` is the suite's paper setting)."""
    name, plus, changes = text.partition("+")
    return suite_preset(SUITES[suite], name).name + plus + changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--task", help="denoise, super-resolve or inpaint, on CBSD68 crops")
    where.add_argument("--suite", help="a suite of the paper's images (dip bench quality's names)")
    parser.add_argument("--variants", required=True, help="comma-separated PRESET[+CHANGE...]; none: classical only")
    parser.add_argument(
        "--images",
        default="4",
        help="CBSD68: how many (N, or FIRST:LAST counting from 1); a suite: names, comma-separated",
    )
    parser.add_argument("--crop", type=int, default=128, help="CBSD68 centre crop side")
    parser.add_argument("--factor", type=int, default=4, help="CBSD68 super-resolution factor")
    parser.add_argument("--mask", default="pixels", help="CBSD68 inpainting holes: pixels, box or strokes")
    parser.add_argument("--sigma", type=float, default=25, help="CBSD68 denoising: the noise's sigma (0-255)")
    parser.add_argument("--mode", default="full", help="a suite's protocol: quick, mid or full")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = data_root()
    if args.task:
        start, stop = image_span(args.images)
        which = f"images {start + 1} to {stop}" if ":" in args.images else f"the first {stop} images"
        task, source = args.task, f"CBSD68 (sorted by name), {which}, centre {args.crop} px crops"
        if task == "super-resolve":
            source += f", x{args.factor}"
        if task == "inpaint":
            source += f", holes: {args.mask}"
        if task == "denoise":
            source += f", sigma {args.sigma:g}"
        found = list(cases(task, stop - start, args.crop, data, start, args.factor, args.mask, args.sigma))
    else:
        task = SUITES[args.suite].task
        source = f"the paper's {args.suite} images {args.images}, {args.mode} protocol"
        found = list(paper_cases(args.suite, args.images.split(","), args.mode, data))
    texts = [] if args.variants == "none" else args.variants.split(",")
    presets = {text: variant(task, text if args.task else suite_variant(args.suite, text)) for text in texts}
    suffix = {
        "super-resolve": f"-x{args.factor}",
        "inpaint": f"-{args.mask}",
        "denoise": "" if args.sigma == 25 else f"-sigma{args.sigma:g}",
    }.get(task, "")
    suffix = suffix if args.task else ""
    path = results_file(
        Path(__file__).parent / "results",
        f"variants-{task}{suffix}-{args.device}",
        f"Preset variants: {task}",
        [
            source,
            "RGB PSNR against the clean image; classical: the problem's classical methods on the same input; "
            "best: the highest over the run (knows the clean image)",
        ],
        ["image", "variant", "input PSNR", "classical", "result PSNR", "best PSNR (step)", "steps", "seconds"],
    )
    for name, problem, observed, clean in found:
        before = psnr(problem.before(observed), clean)
        classical = ", ".join(
            f"{method} {psnr(dip.run(problem, observed, method=method).pixels, clean):.2f}"
            for method in problem.baselines()
        )
        if not presets:
            append_row(path, [name, "none", f"{before:.2f}", classical, "", "", "", ""])
        for text, preset in presets.items():
            own = problem_variant(problem, text)
            done = dip.run(own, observed, preset=preset, reference=clean, device=args.device)
            step, best = done.metrics.best
            append_row(
                path,
                [
                    name,
                    text,
                    f"{before:.2f}",
                    classical,
                    f"{psnr(done.pixels, clean):.2f}",
                    f"{best:.2f} ({step})",
                    done.fit.steps_run,
                    f"{done.seconds:.0f}",
                ],
            )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
