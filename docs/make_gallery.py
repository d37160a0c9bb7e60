"""Make docs/gallery.md (each task's input, result and a classical method, as small images with
their PSNR) and docs/presets.md (the preset table of `dip presets`), so neither can drift from
the code.

    python docs/make_gallery.py              # both (the gallery runs every demo: minutes on a CPU)
    python docs/make_gallery.py --presets    # only docs/presets.md

Every image is a demo case of `dip.demo` (a crop of scikit-image's astronaut, degraded here),
restored with the task's default preset.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch

import dip
from dip.demo import TASKS, make_case
from dip.io import Picture, write_image
from dip.metrics import psnr
from dip.presets import markdown

DOCS = Path(__file__).resolve().parent
SIZE = 96


def write_presets() -> None:
    text = (
        "# Presets\n\nMade by `python docs/make_gallery.py --presets` from `dip presets` (`dip.presets.PRESETS`). "
        "The `default` of each task runs unless `--preset` (or `preset=`) names another; presets marked "
        "`auto` stop by themselves (`steps` is then a cap); `fits`: independently seeded fits averaged "
        "(the `best` presets: the task's default, four times); `refine`: the problem's classical last step runs "
        "after the fit (denoising with a known sigma: the noisy image Wiener-filtered with the fit as its pilot, "
        "`dip.wiener`; super-resolution: the nearest image that downscales exactly to the input; deblurring: "
        "the fit corrected by a Wiener deconvolution, `dip.wiener.deconvolve`). Names ending in `-sigma50`, "
        "`-x8` or `-pixels` "
        "are picked by the problem itself: noise above sigma 40 and super-resolution x8 (for `default`, `best` "
        "and `paper`), a mask of scattered missing pixels (for `default` and `best`). Parameters: trainable "
        "parameters for an RGB image.\n\n" + markdown() + "\n"
    )
    (DOCS / "presets.md").write_text(text)


def side_by_side(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images of one height in a row, white gaps between."""
    height = max(image.shape[0] for image in images)
    parts = []
    for image in images:
        image = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
        if image.shape[0] != height:  # a low-resolution input: nearest-neighbour up to the row's height
            factor = height // image.shape[0]
            image = image.repeat(factor, axis=0).repeat(factor, axis=1)
        parts += [image, np.ones((height, gap, 3), np.float32)]
    return np.concatenate(parts[:-1], axis=1)


def write_gallery(device: str) -> None:
    folder = DOCS / "gallery"
    folder.mkdir(exist_ok=True)
    rows = []
    for task in TASKS:
        case = make_case(task, SIZE, seed=0)
        started = time.perf_counter()
        done = dip.run(case.problem, case.observation, device=device, reference=case.clean)
        seconds = time.perf_counter() - started
        shown = [case.observation, done.image]
        scores = [
            f"input {psnr(case.problem.before(case.observation), case.clean):.2f}",
            f"dip {psnr(done.image, case.clean):.2f}",
        ]
        if case.baseline:
            classical = dip.run(case.problem, case.observation, method=case.baseline).image
            shown.append(classical)
            scores.append(f"{case.baseline} {psnr(classical, case.clean):.2f}")
        shown.append(case.clean)
        write_image(folder / f"{task}.png", Picture(side_by_side(shown)))
        rows.append(
            f"| {task} | ![{task}](gallery/{task}.png) | {case.note} | {', '.join(scores)} | "
            f"{done.fit.steps_run} steps, {seconds:.0f} s |"
        )
        print(rows[-1], flush=True)
    machine = (
        torch.cuda.get_device_name(0)
        if device != "cpu" and torch.cuda.is_available()
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    text = (
        f"# Gallery\n\nEach task on a {SIZE}x{SIZE} crop of scikit-image's `astronaut`, degraded by `dip.demo` "
        "(seeded), restored with the task's `default` preset. Each row: input, `dip`, a classical method "
        "(where the task has one), the truth. PSNR in dB against the truth.\n\n"
        f"Made by `python docs/make_gallery.py` on {datetime.date.today().isoformat()}, {machine}, "
        f"torch {torch.__version__}; `dip demo --task TASK --size {SIZE}` runs the same case.\n\n"
        "| task | input / dip / classical / truth | degradation | PSNR | cost |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    (DOCS / "gallery.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", action="store_true", help="only docs/presets.md")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    write_presets()
    if not args.presets:
        write_gallery(args.device)


if __name__ == "__main__":
    main()
