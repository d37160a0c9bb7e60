"""Per task: the paper's settings (and later, faster defaults), as plain data.

The paper presets are the reference notebooks' settings; `dip presets` prints them all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import DipError
from .fit import FitConfig
from .nets import NetSpec, ResNetSpec, SkipSpec, UNetSpec, count_parameters

INPUT_KINDS = ("noise", "meshgrid", "fourier", "image")


@dataclass(frozen=True)
class StopRule:
    """Automatic early stopping (see `dip.callbacks.EarlyStopping`): the discrepancy rule when the
    noise level is known or estimated, else the variance rule with this patience."""

    patience: int = 300
    warmup: int = 100
    discrepancy: bool = True  # use the noise level when the task knows one


@dataclass(frozen=True)
class Preset:
    """Everything a run needs besides the image: network, its input z, and the fit settings."""

    task: str
    name: str
    net: NetSpec
    fit: FitConfig
    input: str = "noise"  # noise: uniform [0, 0.1); meshgrid: 2-channel coordinates; fourier: cos/sin features
    # of the coordinates (`dip.canvas.fourier_features`); image: a guide image
    input_channels: int = 32
    note: str = ""
    stop: StopRule | None = None  # None: run the full step budget, as the paper did
    restarts: int = 1  # independently seeded fits averaged (`dip.run(restarts=...)` overrides)
    picked_for: str = ""  # the problem picks this preset itself when this name is asked for (sigma 50, x8, ...)
    refine: bool = False  # the problem's classical last step after the fit (`Problem.refined`: for Gaussian
    # denoising, the noisy image Wiener-filtered with the fit as its pilot, `dip.wiener`; for deblurring,
    # a Wiener deconvolution with the fit as its pilot; for super-resolution, the nearest image consistent
    # with the input; for scattered missing pixels, a share of the fit's error at the known pixels filled in)

    def parameters(self, out_channels: int = 3) -> int:
        """Trainable parameters of the network for an image with `out_channels` channels."""
        return count_parameters(self.net.build(self.input_channels, out_channels))


DENOISE_NET = SkipSpec(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(4,) * 5, upsample="bilinear")
PRESETS: dict[tuple[str, str], Preset] = {}


def _register(preset: Preset) -> Preset:
    PRESETS[(preset.task, preset.name)] = preset
    return preset


FAST_NET = SkipSpec(channels_down=(32,) * 5, channels_up=(32,) * 5, channels_skip=(4,) * 5, upsample="bilinear")
# The stop, not the cap, should end a denoising fit: 128 px crops reach the noise level in ~1500
# steps, 256 px ones in 5000-6700 (a cap of 4000 cut them short: -0.14 dB on 3 settings crops).
DENOISE_CAP = 8000
# ema_ramp: these runs stop after a few hundred steps at sigma 50, when a plain 0.99 average
# still holds the first blurry outputs (+1.6 dB on the sigma-50 crops of `bench quality --quick`).
_register(
    Preset(
        "denoise",
        "default",
        FAST_NET,
        FitConfig(steps=DENOISE_CAP, lr=0.01, reg_noise_std=1 / 30, ema=0.99, ema_ramp=10),
        stop=StopRule(),
        refine=True,
        note="fast: the paper's net at 32 channels, stops when the fit reaches the noise level; then the "
        "noisy image Wiener-filtered with the fit as the pilot, blocks matched (BM3D's second stage)",
    )
)
_register(
    Preset(
        "denoise",
        "default-sigma50",
        FAST_NET,
        FitConfig(steps=DENOISE_CAP, lr=0.01, reg_noise_std=1 / 20, ema=0.99, ema_ramp=10),
        stop=StopRule(),
        refine=True,
        note="default, sigma > 40: more input noise, as the paper; then the Wiener step "
        "(+0.80 dB on ten 256 px settings crops at sigma 50)",
        picked_for="default",
    )
)
_register(
    Preset(
        "denoise",
        "paper",
        DENOISE_NET,
        FitConfig(steps=3000, lr=0.01, reg_noise_std=1 / 30, ema=0.99),
        note="paper, sigma <= 40 (denoising.ipynb)",
    )
)
_register(
    Preset(
        "denoise",
        "paper-sigma50",
        DENOISE_NET,
        FitConfig(steps=3000, lr=0.01, reg_noise_std=1 / 20, ema=0.99),
        note="paper, sigma > 40: more input noise",
        picked_for="paper",
    )
)
DEBLOCK_NET = SkipSpec(
    channels_down=(8, 16, 32, 64, 128),
    channels_up=(8, 16, 32, 64, 128),
    channels_skip=(0, 0, 0, 4, 4),
    upsample="bilinear",
)
_register(
    Preset(
        "deblock",
        "default",
        DEBLOCK_NET,
        FitConfig(steps=2400, lr=0.01, reg_noise_std=1 / 30, ema=0.99),
        input_channels=3,
        stop=StopRule(),
        note="the paper's net (already small), stopping itself when the outputs settle",
    )
)
_register(
    Preset(
        "deblock",
        "paper",
        DEBLOCK_NET,
        FitConfig(steps=2400, lr=0.01, reg_noise_std=1 / 30, ema=0.99),
        input_channels=3,
        note="paper, JPEG artifact removal (snail)",
    )
)

_register(
    Preset(
        "inpaint",
        "default",
        SkipSpec(channels_down=(32,) * 5, channels_up=(32,) * 5, channels_skip=(32,) * 5, upsample="nearest"),
        FitConfig(steps=3000, lr=0.01, reg_noise_std=0.03, ema=0.99),
        stop=StopRule(),
        note="fast: the text preset's net at 32 channels, stops itself",
    )
)
_register(
    Preset(
        "inpaint",
        "default-pixels",
        FAST_NET,
        FitConfig(steps=5000, lr=0.01, reg_noise_std=0.03, ema=0.99),
        refine=True,
        note="default for scattered missing pixels (chosen from the mask): the fast denoising net, every step "
        "(nothing to overfit; the variance stop ended barbara 6 dB short); then a share of the fit's error at the "
        "known pixels filled into the holes (`dip.problems.ERROR_SHARE`)",
        picked_for="default",
    )
)
_register(
    Preset(
        "inpaint",
        "text",
        SkipSpec(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(128,) * 5, upsample="nearest"),
        FitConfig(steps=6001, lr=0.01, reg_noise_std=0.03, ema=None),
        note="paper, text or scribbles over a photo (kate)",
    )
)
_register(
    Preset(
        "inpaint",
        "blob",
        SkipSpec(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(0,) * 5, upsample="nearest"),
        FitConfig(steps=5001, lr=0.01, reg_noise_std=0.03, ema=None),
        input="meshgrid",
        input_channels=2,
        note="paper, one object removed (vase)",
    )
)
_register(
    Preset(
        "inpaint",
        "large-holes",
        SkipSpec(
            channels_down=(16, 32, 64, 128, 128, 128),
            channels_up=(16, 32, 64, 128, 128, 128),
            channels_skip=(0,) * 6,
            filter_down=5,
            filter_up=3,
            upsample="nearest",
            need1x1_up=False,
        ),
        FitConfig(steps=3001, lr=0.01, reg_noise_std=0.0, ema=None),
        input_channels=1,
        note="paper, large holes (library), depth-6 skip net",
    )
)
_register(
    Preset(
        "inpaint",
        "large-holes-unet",
        UNetSpec(),
        FitConfig(steps=3001, lr=0.001, reg_noise_std=0.0, ema=None),
        input_channels=1,
        note="paper's comparison: UNet on large holes",
    )
)
_register(
    Preset(
        "inpaint",
        "large-holes-resnet",
        ResNetSpec(),
        FitConfig(steps=3001, lr=0.001, reg_noise_std=0.0, ema=None),
        input_channels=1,
        note="paper's comparison: ResNet on large holes",
    )
)
_register(
    Preset(
        "inpaint",
        "pixels",
        DENOISE_NET,
        FitConfig(steps=11000, lr=0.001, reg_noise_std=0.03, ema=None),
        note="paper, random missing pixels (barbara, 50%)",
    )
)
FLASH_UPSAMPLE = ("nearest", "nearest", "bilinear", "bilinear", "bilinear")
_register(
    Preset(
        "flash",
        "default",
        SkipSpec(channels_down=(32,) * 5, channels_up=(32,) * 5, channels_skip=(4,) * 5, upsample=FLASH_UPSAMPLE),
        FitConfig(steps=601, lr=0.1, reg_noise_std=0.0, ema=0.99, ema_ramp=10),
        input="image",
        input_channels=3,
        note="fast: the paper's flash net at 32 channels, same steps and lr; returns the running average "
        "of its outputs, ramped so that a short run holds no early ones (+1.25 dB over 10 synthetic runs, and "
        "half the spread between runs)",
    )
)
_register(
    Preset(
        "flash",
        "paper",
        SkipSpec(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(4,) * 5, upsample=FLASH_UPSAMPLE),
        FitConfig(steps=601, lr=0.1, reg_noise_std=0.0, ema=None),
        input="image",
        input_channels=3,
        note="paper, flash image as input z (cave)",
    )
)

SR_DEFAULT = _register(
    Preset(
        "super-resolve",
        "default",
        FAST_NET,
        FitConfig(steps=4000, lr=0.01, reg_noise_std=0.03, ema=0.99),
        input_channels=8,
        stop=StopRule(),
        refine=True,
        note="fast: the paper's net at 32 channels, 8 input channels, EMA 0.99, x2/x4, stops itself "
        "(cap 4000: still improving at 1000 steps on 64 and 256 px crops); then made to downscale "
        "exactly to the input (`--kernel`)",
    )
)
_register(
    dataclasses.replace(
        SR_DEFAULT,
        name="default-x8",
        fit=dataclasses.replace(SR_DEFAULT.fit, steps=3000, reg_noise_std=0.05),
        note="default, x8: more input noise, as the paper; cap 3000 (the fit flattens by then at x8)",
        picked_for="default",
    )
)
_register(
    Preset(
        "super-resolve",
        "paper",
        DENOISE_NET,
        FitConfig(steps=2000, lr=0.01, reg_noise_std=0.03, ema=None),
        note="paper, x2 and x4 (sr.ipynb)",
    )
)
_register(
    Preset(
        "super-resolve",
        "paper-x8",
        DENOISE_NET,
        FitConfig(steps=4000, lr=0.01, reg_noise_std=0.05, ema=None),
        note="paper, x8: more steps, more input noise",
        picked_for="paper",
    )
)
# The fit through a blur stays above the noise level for thousands of steps, gaining all the while
# (on four 128 px settings-choice crops, seed 0, before the refine step: 24.89 dB at 2000 steps,
# 25.85 at 5000, 26.25 at 8000: benchmarks/README.md, "Deblurring")
DEBLUR_CAP = 8000
_register(
    Preset(
        "deblur",
        "default",
        FAST_NET,
        FitConfig(steps=DEBLUR_CAP, lr=0.01, reg_noise_std=0.03, ema=0.99),
        stop=StopRule(),
        refine=True,
        note="not in the paper: the fast denoising net with A = the known blur, stops at the (estimated) noise "
        "level; then the fit corrected by a Wiener deconvolution of what it leaves of the blurred image",
    )
)

_register(
    Preset(
        "custom",
        "default",
        FAST_NET,
        FitConfig(steps=3000, lr=0.01, reg_noise_std=0.03, ema=0.99),
        stop=StopRule(),
        note="your own Problem: the fast net, stops itself",
    )
)
_register(
    Preset(
        "custom",
        "paper",
        DENOISE_NET,
        FitConfig(steps=3000, lr=0.01, reg_noise_std=0.03, ema=0.99),
        note="your own Problem: the paper's denoising net, a fixed step count",
    )
)

_register(
    Preset(
        "invert",
        "paper",
        SkipSpec(
            channels_down=(16, 32, 64, 128, 128, 128),
            channels_up=(16, 32, 64, 128, 128, 128),
            channels_skip=(4,) * 6,
            filter_down=(7, 7, 5, 5, 3, 3),
            filter_up=(7, 7, 5, 5, 3, 3),
            upsample="nearest",
            downsample="avg",
            pad="zero",
        ),
        FitConfig(steps=3100, lr=0.001, reg_noise_std=0.0, ema=None),
        note="paper, feature inversion (AlexNet/VGG), 256x256 canvas, 224x224 seen",
    )
)
AM_NET = SkipSpec(
    channels_down=(16, 32, 64, 128, 128, 128),
    channels_up=(16, 32, 64, 128, 128, 128),
    channels_skip=(0, 4, 4, 4, 4, 4),
    filter_down=(5, 3, 5, 5, 3, 5),
    filter_up=(5, 3, 5, 3, 5, 3),
    upsample="bilinear",
    downsample="avg",
    pad="reflection",
)
_register(
    Preset(
        "visualize",
        "paper",
        AM_NET,
        FitConfig(steps=3100, lr=0.001, reg_noise_std=0.03, ema=None, backtrack_db=None),
        note="paper, activation maximisation of a conv channel",
    )
)
_register(
    Preset(
        "visualize",
        "paper-logits",
        AM_NET,
        FitConfig(steps=3100, lr=0.01, reg_noise_std=0.03, ema=None, backtrack_db=None),
        note="paper, activation maximisation of a class logit",
        picked_for="paper",
    )
)

BEST_RESTARTS = 4


def _best(default: Preset) -> Preset:
    """The `best` variant of a fast default: the mean of independently seeded fits (an ensemble
    of K = 4: +0.3 to +0.9 dB over one fit on the settings-choice images, at K times the work;
    after denoising's Wiener step, which removes much of what averaging removes, about +0.03)."""
    name = default.name.replace("default", "best")
    note = f"{default.name} x {BEST_RESTARTS} seeds averaged: more quality for {BEST_RESTARTS}x the work"
    picked_for = "best" if default.picked_for else ""
    return dataclasses.replace(default, name=name, restarts=BEST_RESTARTS, note=note, picked_for=picked_for)


def _register_best() -> None:
    """A `best` for each task's fast default (flash has none: a watchdog judges and restarts its
    fits already), listed with its task's presets."""
    for default in [p for (_, name), p in PRESETS.items() if name.startswith("default") and p.task != "flash"]:
        _register(_best(default))
    tasks = list(dict.fromkeys(task for task, _ in PRESETS))
    by_task = sorted(PRESETS.items(), key=lambda item: tasks.index(item[0][0]))
    PRESETS.clear()
    PRESETS.update(by_task)


_register_best()


def get_preset(task: str, name: str) -> Preset:
    """The preset `name` of `task`, or a one-line error listing the valid names. "default" is
    the task's first preset where the task has no fast default (feature inversion, activation
    maximisation: the paper's settings)."""
    if name == "default" and (task, name) not in PRESETS and presets_for(task):
        return presets_for(task)[0]
    try:
        return PRESETS[(task, name)]
    except KeyError:
        names = ", ".join(n for t, n in PRESETS if t == task)
        raise DipError(f"unknown preset {name!r} for {task}; choose one of: {names}") from None


def presets_for(task: str) -> list[Preset]:
    return [p for (t, _), p in PRESETS.items() if t == task]


def rows(out_channels: int = 3) -> list[tuple[str, ...]]:
    """Every preset as table cells, the header first: what `dip presets` and the docs show."""
    rows = [
        (
            "task",
            "preset",
            "parameters",
            "steps",
            "stop",
            "fits",
            "refine",
            "lr",
            "reg_noise_std",
            "ema",
            "input",
            "network",
        )
    ]
    for preset in PRESETS.values():
        ema = (
            "-"
            if preset.fit.ema is None
            else f"{preset.fit.ema:g}" + (f" ramp {preset.fit.ema_ramp:g}" if preset.fit.ema_ramp else "")
        )
        rows.append(
            (
                preset.task,
                preset.name,
                f"{preset.parameters(out_channels):,}",
                str(preset.fit.steps),
                "auto" if preset.stop else "-",
                str(preset.restarts),
                "yes" if preset.refine else "-",
                f"{preset.fit.lr:g}",
                f"{preset.fit.reg_noise_std:.4g}",
                ema,
                f"{preset.input} x{preset.input_channels}",
                preset.net.describe(),
            )
        )
    return rows


def table(out_channels: int = 3) -> str:
    """A plain-text table of every preset, as `dip presets` prints it."""
    cells = rows(out_channels)
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in cells]
    return "\n".join(lines)


def markdown(out_channels: int = 3) -> str:
    """The same table in markdown, with each preset's note (docs/presets.md is made from it)."""
    head, *body = rows(out_channels)
    notes = [preset.note for preset in PRESETS.values()]
    lines = ["| " + " | ".join((*head, "note")) + " |", "|" + "---|" * (len(head) + 1)]
    lines += ["| " + " | ".join((*row[:-1], f"`{row[-1]}`", note)) + " |" for row, note in zip(body, notes)]
    return "\n".join(lines)
