"""`dip demo`: each task on a photo that ships with scikit-image, degraded here (seeded), so it
runs on a fresh machine with nothing else: clean, degraded and restored images are written,
with a classical method beside them and the PSNR of each."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .problems import Deblurring, Denoising, FlashNoFlash, Inpainting, Problem, SuperResolution

TASKS = ("denoise", "super-resolve", "inpaint", "deblur", "flash")
FACE = (30, 160)  # top, left of the astronaut's face in scikit-image's `astronaut`


@dataclass
class Case:
    """A demo: the truth, the problem and its observation, the files a user can try the
    command on, and the classical method compared with."""

    clean: np.ndarray
    problem: Problem
    observation: np.ndarray
    files: dict[str, np.ndarray] = field(default_factory=dict)
    baseline: str | None = None
    note: str = ""


def photo(size: int) -> np.ndarray:
    """A `size` x `size` crop around the astronaut's face, float RGB in [0, 1]."""
    from skimage import data

    top, left = FACE
    return (data.astronaut()[top : top + size, left : left + size] / 255.0).astype(np.float32)


def strokes(size: int, seed: int) -> np.ndarray:
    """A mask of scribbled strokes (black = hole), 3 px wide, about a tenth of the pixels."""
    from scipy.ndimage import binary_dilation
    from skimage.draw import line

    rng = np.random.default_rng(seed)
    holes = np.zeros((size, size), bool)
    for _ in range(max(4, size // 16)):
        r0, c0, r1, c1 = rng.integers(0, size, 4)
        holes[line(r0, c0, r1, c1)] = True
    holes = binary_dilation(holes, iterations=1)
    return (~holes).astype(np.float32)[:, :, None]


def make_case(task: str, size: int = 128, seed: int = 0) -> Case:
    """The degraded input of `task`, made the way the paper makes its test inputs."""
    from .degrade import add_noise, downscale
    from .operators import gaussian_kernel

    clean = photo(size)
    if task == "denoise":
        noisy = add_noise(clean, 25, seed)
        return Case(clean, Denoising(25), noisy, {"noisy": noisy}, "wavelet", "Gaussian noise, sigma 25")
    if task == "super-resolve":
        clean, low = downscale(clean, 4)
        return Case(clean, SuperResolution(4), low, {"lowres": low}, "bicubic", "x4, Lanczos-downscaled")
    if task == "inpaint":
        mask = strokes(size, seed)
        holed = clean * mask
        return Case(
            clean, Inpainting(mask), holed, {"holes": holed, "mask": mask}, "biharmonic", "scribbled strokes removed"
        )
    if task == "deblur":
        from .degrade import blur

        kernel = gaussian_kernel(1.5)
        blurred = add_noise(blur(clean, kernel), 2, seed)
        return Case(
            clean,
            Deblurring(kernel),
            blurred,
            {"blurred": blurred},
            "Wiener",
            "Gaussian blur (sigma 1.5 px) and noise (sigma 2)",
        )
    if task == "flash":
        ambient = (clean * np.array([0.65, 0.5, 0.35], np.float32)).astype(np.float32)  # dim, warm light
        noflash = add_noise(ambient, 20, seed)
        return Case(
            ambient,
            FlashNoFlash(clean),
            noflash,
            {"noflash": noflash, "flash": clean},
            None,
            "no-flash photo: dim warm light, noise sigma 20; flash photo: the clean crop",
        )
    raise ValueError(f"unknown demo task {task!r}; choose from {', '.join(TASKS)}")


def demo(
    task: str,
    folder: Path,
    size: int = 128,
    steps: int | None = None,
    preset: str = "default",
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
) -> list[str]:
    """Run one demo and write its images into `folder`/TASK/ (the demo's own files there are
    replaced); returns the summary lines."""
    from .io import Picture, write_image
    from .metrics import psnr, ssim
    from .run import run

    case = make_case(task, size, seed)
    folder = folder / task
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / "clean.png", Picture(case.clean))
    for name, image in case.files.items():
        write_image(folder / f"{name}.png", Picture(image))
    lines = [
        f"demo {task}: astronaut crop {size}x{size}, {case.note}; preset {preset}"
        + (f", at most {steps} steps" if steps else "")
    ]
    started = time.perf_counter()
    done = run(
        case.problem,
        case.observation,
        preset=preset,
        steps=steps,
        seed=seed,
        device=device,
        reference=case.clean,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    write_image(folder / "restored.png", Picture(done.image))
    before = case.problem.before(case.observation)
    scores = [("input", before), ("dip", done.image)]
    if case.baseline:
        classical = run(case.problem, case.observation, method=case.baseline).image
        write_image(folder / f"{case.baseline.lower()}.png", Picture(classical))
        scores.append((case.baseline, classical))
    lines.append(
        "PSNR "
        + ", ".join(f"{name} {psnr(image, case.clean):.2f} dB" for name, image in scores)
        + "; SSIM "
        + ", ".join(f"{name} {ssim(image, case.clean):.3f}" for name, image in scores)
    )
    lines.append(
        f"time {seconds:.1f} s on {done.device} for {done.fit.steps_run} steps of a "
        f"{done.parameters:,}-parameter network ({done.fit.stop_reason}); images in {folder}/"
    )
    return lines
