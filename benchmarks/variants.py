"""Preset variants side by side (`dip.bench.choice.variant`:
PRESET[+fourier][+no-halving][+last][+steps=N][+unclipped]) on the settings-choice set CBSD68
(`--task`), or on a suite of the paper's images (`--suite`, to explain a gap: the paper's own noisy
F16 at full size, a minute a fit on a GPU, hours on a CPU). Each row: the result's PSNR, the best
PSNR over the run (an oracle that knows the clean image), the last raw output's PSNR (what `+last`
would return from the same fit, before any refine step), steps, time.

    python benchmarks/variants.py --task denoise --variants default,default+fourier --images 4 --crop 128
    python benchmarks/variants.py --suite denoise25 --images F16 --mode full --device cuda \\
        --variants paper,paper+no-halving,paper+fourier+steps=3000

Appends one row per run to benchmarks/results/variants-TASK-DEVICE-DATE.md as it finishes (the file
is started with the first row); a progress bar, or in a log a line every five minutes, tells how a
fit goes. A fit longer than a sitting (the paper's F16 at full size on a CPU: hours) can be split:
with `--checkpoints DIR` each fit saves its state there every 100 steps and on Ctrl-C or SIGTERM
(`timeout -s TERM 100m python benchmarks/variants.py ...`), and the same command run again continues
it where it stopped (its seconds add up over the sittings; fits that ended in earlier sittings are
not run again, their rows repeated, so the last sitting's file holds every row).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

import dip
from dip.bench import data_root
from dip.bench.choice import cases, image_span, problem_variant, variant
from dip.bench.quality import SUITES, load_case, suite_preset
from dip.bench.results import append_row, results_file
from dip.callbacks import ProgressBar
from dip.errors import DipError
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


def file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=+-]", "_", text)


class Sittings:
    """What a fit split over sittings keeps in its folder: its checkpoint, the seconds its earlier
    sittings took, and once it ends, its row (so the same command run again goes on to the next)."""

    def __init__(self, folder: Path | None, image: str, text: str):
        name = file_safe(f"{image}-{text}")
        self.checkpoint = folder / f"{name}.pt" if folder else None
        self.clock = folder / f"{name}.seconds" if folder else None
        self.ended = folder / f"{name}.row" if folder else None

    def options(self) -> dict:
        """`dip.run` keywords: checkpointed, resumed where a checkpoint is left."""
        if self.checkpoint is None:
            return {}
        return {"checkpoint": self.checkpoint, "resume": self.checkpoint.exists()}

    def earlier(self) -> float:
        return float(self.clock.read_text()) if self.clock and self.clock.exists() else 0.0

    def pause(self, seconds: float) -> None:
        self.clock.write_text(f"{self.earlier() + seconds:.1f}\n")

    def row(self) -> list[str] | None:
        """The cells of the row of a fit that ended in an earlier sitting."""
        if not (self.ended and self.ended.exists()):
            return None
        return [cell.strip() for cell in self.ended.read_text().strip().strip("|").split("|")]

    def end(self, row: str) -> None:
        if self.ended:
            self.ended.write_text(row + "\n")
            self.clock.unlink(missing_ok=True)


def classical_scores(problem, observed, clean, keep: Path | None) -> str:
    """The problem's classical methods' PSNRs, read from `keep` where an earlier sitting saved them."""
    if keep is not None and keep.exists():
        return keep.read_text().strip()
    scores = ", ".join(
        f"{method} {psnr(dip.run(problem, observed, method=method).pixels, clean):.2f}"
        for method in problem.baselines()
    )
    if keep is not None:
        keep.write_text(scores + "\n")
    return scores


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        run_variants(sys.argv[1:])
    except dip.Interrupted as stop:
        sys.exit(f"variants: interrupted at step {stop.step}; state saved in {stop.path}: run the same command again")
    except DipError as error:
        sys.exit(f"variants: {error}")


def run_variants(argv: list[str]) -> None:
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
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="results folder")
    parser.add_argument("--checkpoints", type=Path, help="a folder where each fit saves its state, to continue")
    args = parser.parse_args(argv)
    if args.checkpoints and not args.checkpoints.is_dir():
        raise DipError(f"checkpoint folder does not exist: {args.checkpoints}")
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
    started = None

    def row(cells: list) -> str:
        nonlocal started
        started = started or results_file(
            args.out,
            f"variants-{task}{suffix}-{args.device}",
            f"Preset variants: {task}",
            [
                source,
                "RGB PSNR against the clean image; classical: the problem's classical methods on the same input; "
                "best: the highest over the run (knows the clean image)",
            ],
            [
                "image",
                "variant",
                "input PSNR",
                "classical",
                "result PSNR",
                "best PSNR (step)",
                "last output PSNR",
                "steps",
                "seconds",
            ],
        )
        return append_row(started, cells)

    for name, problem, observed, clean in found:
        before = psnr(problem.before(observed), clean)
        keep = args.checkpoints / f"{file_safe(name)}.classical" if args.checkpoints else None
        classical = classical_scores(problem, observed, clean, keep)
        if not presets:
            row([name, "none", f"{before:.2f}", classical, "", "", "", "", ""])
        for text, preset in presets.items():
            own = problem_variant(problem, text)
            sitting = Sittings(args.checkpoints, name, text)
            if earlier := sitting.row():
                row(earlier)  # the last sitting's file holds every row
                continue
            began = time.perf_counter()
            try:
                done = dip.run(
                    own,
                    observed,
                    preset=preset,
                    reference=clean,
                    device=args.device,
                    callbacks=[ProgressBar(f"{name} {text}", every=300.0)],
                    **sitting.options(),
                )
            except dip.Interrupted:
                sitting.pause(time.perf_counter() - began)
                raise
            step, best = done.metrics.best
            ended = row(
                [
                    name,
                    text,
                    f"{before:.2f}",
                    classical,
                    f"{psnr(done.pixels, clean):.2f}",
                    f"{best:.2f} ({step})",
                    f"{done.metrics.last_output:.2f}",
                    done.fit.steps_run,
                    f"{sitting.earlier() + done.seconds:.0f}",
                ],
            )
            sitting.end(ended)
    if started:
        print(f"results: {started}")


if __name__ == "__main__":
    main()
