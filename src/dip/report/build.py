"""Assemble a Report from a finished run or from existing result files."""
from __future__ import annotations

import numpy as np

from .. import baselines
from ..metrics import psnr, ssim
from .page import Panel, Report, Section


def score(image: np.ndarray, reference: np.ndarray | None) -> tuple[float | None, float | None]:
    """(PSNR, SSIM) against the reference, or (None, None) without one or when sizes differ."""
    if reference is None or image.shape[:2] != reference.shape[:2]:
        return None, None
    reference = reference[:, :, :image.shape[2]]
    return psnr(image, reference), ssim(image, reference)


def run_report(task: str, observed: np.ndarray | None, restored: np.ndarray, info, *, frames=(), losses=(),
               reference: np.ndarray | None = None, problem: baselines.Problem | None = None,
               command: str = "") -> Report:
    """The report of one `dip` run: process, curves, comparison with the task's baselines."""
    problem = problem or baselines.Problem()
    def scored(label: str, image: np.ndarray, note: str = "") -> Panel:
        value, structure = score(image, reference)
        return Panel(label, image, psnr=value, ssim=structure, note=note)

    panels = [scored("input", observed)] if observed is not None else []
    panels.append(scored(f"dip ({info.preset.name})", restored, f"step {info.fit.step} of {info.fit.steps_run}"))
    for name, image in (baselines.run(task, observed, problem) if observed is not None else {}).items():
        panels.append(Panel(name, note=image) if isinstance(image, str) else scored(name, image))
    if reference is not None:
        panels.append(Panel("reference", reference[:, :, :restored.shape[2]]))
    preset = info.preset
    settings = {
        "task": task, "preset": preset.name, "network": preset.net.describe(),
        "trainable parameters": f"{info.parameters:,}", "input z": f"{preset.input} x{preset.input_channels}",
        "steps run": f"{info.fit.steps_run} (preset: {preset.fit.steps})", "learning rate": f"{preset.fit.lr:g}",
        "reg_noise_std": f"{preset.fit.reg_noise_std:.4g}",
        "EMA": "off" if preset.fit.ema is None else f"{preset.fit.ema:g}",
        "result from step": str(info.fit.step), "stopped": info.fit.stop_reason,
        "steps undone (backtracking)": str(info.fit.backtracks), "seed": str(info.seed), "device": info.device,
        "wall time": f"{info.seconds:.1f} s",
    }
    if command:
        settings["command"] = command
    psnrs = info.metrics.history if info.metrics is not None else []
    note = f"Result from step {info.fit.step}; {info.fit.stop_reason}."
    return Report(title=f"dip {task}: restoration report", settings=settings, frames=list(frames),
                  total_steps=info.fit.steps_run, chosen_step=info.fit.step, stop_note=note,
                  losses=list(losses), psnrs=list(psnrs),
                  sections=[Section("Comparison with other methods", panels)])
