"""Assemble a Report from a finished run or from existing result files."""

from __future__ import annotations

import numpy as np

from ..metrics import psnr, ssim
from .page import Panel, Report, Section


def score(image: np.ndarray, reference: np.ndarray | None) -> tuple[float | None, float | None]:
    """(PSNR, SSIM) against the reference, or (None, None) without one or when sizes differ."""
    if reference is None or image.shape[:2] != reference.shape[:2]:
        return None, None
    reference = reference[:, :, : image.shape[2]]
    return psnr(image, reference), ssim(image, reference)


def comparison_panels(done, observed: np.ndarray | None, reference: np.ndarray | None) -> list[Panel]:
    """The input, the result and every classical method of the problem (each run through
    `dip.run(..., method=NAME)`), scored against the reference when there is one. A method
    that fails shows its one-line error instead of an image: a comparison must not sink the run."""
    from ..run import run

    def scored(label: str, image: np.ndarray, note: str = "") -> Panel:
        value, structure = score(image, reference)
        return Panel(label, image, psnr=value, ssim=structure, note=note)

    panels = [scored("input", observed)] if observed is not None else []
    panels.append(scored(f"dip ({done.preset.name})", done.pixels, f"step {done.fit.step} of {done.fit.steps_run}"))
    for name in done.problem.baselines() if observed is not None else ():
        try:
            panels.append(scored(name, run(done.problem, observed, method=name).pixels))
        except Exception as error:
            panels.append(
                Panel(name, note=f"failed: {error.__class__.__name__}: {(str(error).splitlines() or [''])[0]}")
            )
    if reference is not None:
        panels.append(Panel("reference", reference[:, :, : done.pixels.shape[2]]))
    return panels


def run_report(done, observed: np.ndarray | None, reference: np.ndarray | None = None, command: str = "") -> Report:
    """The report of one `dip.run`: process, curves, comparison with the problem's baselines."""
    preset, fit = done.preset, done.fit
    settings = {
        "problem": done.problem.name,
        "preset": preset.name,
        "network": preset.net.describe(),
        "trainable parameters": f"{done.parameters:,}",
        "input z": f"{preset.input} x{preset.input_channels}",
        "steps run": f"{fit.steps_run} (preset: {preset.fit.steps})",
        "learning rate": f"{preset.fit.lr:g}",
        "reg_noise_std": f"{preset.fit.reg_noise_std:.4g}",
        "EMA": "off" if preset.fit.ema is None else f"{preset.fit.ema:g}",
        "result from step": str(fit.step),
        "stopped": fit.stop_reason,
        "steps undone (backtracking)": str(fit.backtracks),
        "seed": str(done.seed),
        "device": done.device,
        "wall time": f"{done.seconds:.1f} s",
    }
    if command:
        settings["command"] = command
    psnrs = done.metrics.history if done.metrics is not None else []
    return Report(
        title=f"dip {done.problem.name}: restoration report",
        settings=settings,
        frames=list(done.frames),
        total_steps=fit.steps_run,
        chosen_step=fit.step,
        stop_note=f"Result from step {fit.step}; {fit.stop_reason}.",
        losses=list(done.losses),
        psnrs=list(psnrs),
        sections=[Section("Comparison with other methods", comparison_panels(done, observed, reference))],
    )
