"""Score existing results against ground truth: one image with several methods, or a whole
folder laid out as the paper's published results (NAME_GT.png beside NAME_METHOD.png)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DipError
from ..io import read_image
from ..metrics import psnr, ssim, y_psnr
from .page import Panel, Report, Section

METRICS = ("psnr", "y-psnr")
INPUT_NAMES = ("noisy", "masked")  # degraded inputs published beside the results


@dataclass
class Scoring:
    """How to score: the metric, border pixels removed, and a centre crop to a multiple of
    `crop` pixels first (the paper's DIP outputs cover only that crop of Set5/Set14: its code
    cut images to multiples of 32)."""

    metric: str = "psnr"
    shave: int = 0
    crop: int = 1

    def prepare(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[0] // self.crop * self.crop, image.shape[1] // self.crop * self.crop
        top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
        return image[top : top + height, left : left + width]

    def __call__(self, estimate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
        estimate, reference = self.prepare(estimate), self.prepare(reference)
        if estimate.shape[:2] != reference.shape[:2]:
            raise DipError(
                f"sizes differ: {estimate.shape[1]}x{estimate.shape[0]} vs {reference.shape[1]}x{reference.shape[0]}"
            )
        channels = min(estimate.shape[2], reference.shape[2])
        estimate, reference = estimate[:, :, :channels], reference[:, :, :channels]
        if self.metric == "y-psnr":
            value = y_psnr(estimate, reference, self.shave)
        else:
            s = self.shave
            value = psnr(
                estimate[s : estimate.shape[0] - s, s : estimate.shape[1] - s],
                reference[s : reference.shape[0] - s, s : reference.shape[1] - s],
            )
        return value, ssim(estimate, reference)

    def describe(self) -> str:
        text = "PSNR on the Y channel (BT.601, 16-235)" if self.metric == "y-psnr" else "RGB PSNR"
        if self.crop > 1:
            text += f", centre crop to a multiple of {self.crop}"
        if self.shave:
            text += f", {self.shave}-pixel border removed"
        return text


@dataclass
class Comparison:
    images: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    scores: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    def average(self, method: str) -> float | None:
        values = [self.scores[(image, method)][0] for image in self.images if (image, method) in self.scores]
        return float(np.mean(values)) if len(values) == len(self.images) else None

    def table(self) -> list[list[str]]:
        rows = [["image", *self.methods]]
        for image in self.images:
            rows.append(
                [image]
                + [f"{self.scores[(image, m)][0]:.2f}" if (image, m) in self.scores else "–" for m in self.methods]
            )
        rows.append(["average"] + [f"{a:.2f}" if (a := self.average(m)) is not None else "–" for m in self.methods])
        return rows

    def markdown(self) -> str:
        """The table as markdown."""
        head, *rows = self.table()
        return "\n".join(
            ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(row) + " |" for row in rows]
        )


def compare_one(
    name: str, reference_path: Path, methods: dict[str, Path], scoring: Scoring, comparison: Comparison
) -> None:
    """Score every method's file against the reference; add a section of panels."""
    reference = read_image(reference_path).pixels
    panels = []
    for method, path in methods.items():
        image = read_image(path).pixels
        if method not in comparison.methods:
            comparison.methods.append(method)
        try:
            value, structure = scoring(image, reference)
        except DipError as error:
            panels.append(Panel(method, path=str(path), note=str(error)))
            continue
        comparison.scores[(name, method)] = (value, structure)
        panels.append(Panel(method, path=str(path), psnr=value, ssim=structure))
    panels.append(Panel("ground truth", path=str(reference_path)))
    comparison.images.append(name)
    comparison.sections.append(Section(name, panels))


def _method_order(method: str) -> tuple[int, str]:
    return (0 if method in INPUT_NAMES or method == "bicubic" else 2 if "deep_prior" in method else 1, method)


def compare_folder(folder: Path, scoring: Scoring, only: set[str] | None = None) -> Comparison:
    """Every NAME_GT.png in `folder` against its NAME_METHOD.png siblings."""
    truths = sorted(folder.glob("*_GT.png"))
    if not truths:
        raise DipError(f"no NAME_GT.png ground-truth files in {folder}")
    comparison = Comparison()
    for truth in truths:
        name = truth.name[: -len("_GT.png")]
        if only and name not in only:
            continue
        files = {p.stem[len(name) + 1 :]: p for p in folder.glob(f"{name}_*.png") if p != truth}
        ordered = dict(sorted(files.items(), key=lambda item: _method_order(item[0])))
        compare_one(name, truth, ordered, scoring, comparison)
    return comparison


def compare(
    scoring: Scoring,
    *,
    folder: str | Path | None = None,
    images: list[str] | None = None,
    reference: str | Path | None = None,
    methods: list[str] | dict[str, Path] = (),
) -> tuple[Comparison, str]:
    """Score a folder laid out as the paper's results, or METHOD=FILE results (or a dict) against
    one reference image; returns the comparison and a title for its page."""
    if folder is not None:
        return compare_folder(
            Path(folder), scoring, set(images) if images else None
        ), f"Comparison with other methods: {folder}"
    files = dict(methods) if isinstance(methods, dict) else {}
    for item in methods if not isinstance(methods, dict) else ():
        method, sep, path = item.partition("=")
        if not sep or not method or not path:
            raise DipError(f"results are given as METHOD=FILE, got {item!r}")
        files[method] = Path(path)
    comparison = Comparison()
    compare_one(Path(reference).stem, Path(reference), files, scoring, comparison)
    return comparison, f"Comparison with other methods: {Path(reference).name}"


def comparison_report(comparison: Comparison, scoring: Scoring, title: str, command: str = "") -> Report:
    settings = {"metric": scoring.describe(), "images": str(len(comparison.images))}
    if command:
        settings["command"] = command
    return Report(
        title=title,
        settings=settings,
        sections=comparison.sections,
        table=comparison.table(),
        metric="Y-PSNR" if scoring.metric == "y-psnr" else "PSNR",
    )
