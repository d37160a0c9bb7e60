"""Degradations as objects: what happened to the image, and what is known about it.

A `Problem` owns the operator A of its degradation (the network's output passes through A
before it is compared with the observation), the size and channels of the image to produce,
the observation's noise level when known, the preset it defaults to, how to cut itself to a
tile, and the classical methods that solve it too. `dip.run(problem, observation)` restores
with the Deep Image Prior or with any of those methods, the same way for every task.

The built-in degradations are registered by command name in `REGISTRY`; the command line
makes one subcommand of each. A degradation of your own is one object too::

    >>> import torch
    >>> grey = Problem(lambda x: x.mean(dim=1, keepdim=True), out_channels=3)
    >>> grey.output_shape((32, 32, 1))
    (32, 32, 3)
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from . import baselines
from .errors import DipError
from .fit import Callback, mse
from .presets import PRESETS

CLASSIFIER_SIZE = 224  # the classifiers see the centre 224x224 of the image


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """float (H, W, C) array -> (1, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


@dataclass(frozen=True)
class Option:
    """How a command-line option fills one field of a Problem: the CLI is generated from these.

    `parse` turns the option's text into the field's value; `image` marks a field read from an
    image file (a mask, a guide photo), which in a batch may be a folder matched by name."""

    flags: tuple[str, ...]
    help: str
    parse: Callable[[str], object] | None = None
    choices: tuple | None = None
    required: bool = False
    image: bool = False
    positional: bool = False  # an image given before the observation (flash's guide photo)
    remote: Callable[[str], object] | None = None  # `parse` for text from a web page: never reads a file

    def parse_remote(self, text: str) -> object:
        """The field's value from text that came over the network (`dip serve`)."""
        if self.remote is not None:
            return self.remote(text)
        return self.parse(text) if self.parse else text


def number(
    kind: type, low: float | None = None, high: float | None = None, low_open: bool = False
) -> Callable[[str], float]:
    """A parser of text to `kind` within a range; ValueError says what was wrong.

    >>> number(float, 0, 255, low_open=True)("25")
    25.0
    """

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be finite, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            bound = f"{'>' if low_open else '>='} {low:g}" if low is not None else ""
            if high is not None:
                bound = f"{bound} and <= {high:g}" if bound else f"<= {high:g}"
            raise ValueError(f"must be {bound}, got {text}")
        return value

    return parse


def option(default=None, kw_only: bool = False, **cli) -> object:
    """A dataclass field with its command-line `Option` (see there)."""
    flags = cli.pop("flags", ())
    return field(default=default, kw_only=kw_only, metadata={"cli": Option(tuple(flags), **cli)})


class _Lambda(nn.Module):
    """A plain function as a module, so any callable can be an operator."""

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def _digest(array: np.ndarray | None) -> str | None:
    if array is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:16]


class Problem:
    """A degradation y = A(x) (+ noise); subclass it, or give your operator A directly.

    Parameters
    ----------
    operator : callable
        A, a differentiable torch function from the image (1, C, H, W) in [0, 1] to the
        observation's space (a tensor of the observation's shape, (1, C', h, w)).
    scale : int
        Output side over observation side (super-resolution-like problems); 1 by default.
    out_channels : int, optional
        Channels of the image to produce; default: the observation's.
    noise_variance : float, optional
        Variance of the observation's noise on the [0, 1] scale, when known: the automatic
        stop then uses the discrepancy principle.
    baselines : dict, optional
        Classical methods for this problem: name -> function(observation, problem) -> image.
    name : str
        How reports and checkpoints call it.

    Examples
    --------
    >>> import numpy as np, dip
    >>> def half(x):  # keep every second column: the observation is half as wide
    ...     return x[..., ::2]
    >>> problem = Problem(half, out_channels=1)
    >>> problem.output_shape((32, 16, 1))
    (32, 16, 1)
    """

    task: ClassVar[str] = "custom"  # the preset family (`dip presets`)
    command: ClassVar[str | None] = None  # the CLI subcommand, for registered problems
    help: ClassVar[str] = ""
    keeps_alpha: ClassVar[bool] = True  # an alpha channel of the observation is carried over
    tileable: ClassVar[bool] = True
    observed: ClassVar[str | None] = "image to restore"  # the observation's help text; None: none is taken
    refinement: ClassVar[str] = "a classical step"  # what `refined` does, for a result's summary
    refine_only: ClassVar[tuple[str, ...]] = ()  # fields of `describe()` that change the refine step only

    def __init__(
        self,
        operator: Callable[[torch.Tensor], torch.Tensor],
        *,
        scale: int = 1,
        out_channels: int | None = None,
        noise_variance: float | None = None,
        baselines: dict[str, Callable] | None = None,
        name: str = "custom",
    ):
        self.operator, self.scale, self.out_channels = operator, scale, out_channels
        self.noise_variance, self.name = noise_variance, name
        self._baselines = dict(baselines or {})

    # -- what `dip.run` asks of every problem ------------------------------------------------
    def check(self, pixels: np.ndarray | None) -> None:
        """Refuse an observation this problem cannot use (one-line DipError)."""
        if pixels is None:
            raise DipError(f"{self.name} needs an observation")

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(H, W, C) of the image to produce from an observation of `shape` (H, W, C)."""
        return shape[0] * self.scale, shape[1] * self.scale, self.out_channels or shape[2]

    def build_operator(self) -> nn.Module:
        """A, as a module (moved to the fit's device)."""
        return self.operator if isinstance(self.operator, nn.Module) else _Lambda(self.operator)

    def target(self, pixels: np.ndarray) -> torch.Tensor:
        """y in A's output space, (1, C, h, w)."""
        return to_tensor(pixels)

    def known_noise_variance(self, pixels: np.ndarray) -> float | None:
        """The observation's noise variance on [0, 1] for the discrepancy stop, or None."""
        return self.noise_variance

    def preset_variant(self) -> str | None:
        """The suffix of the presets this problem picks for itself (`sigma50`, `x8`, `pixels`), if any."""
        return None

    def preset_name(self, name: str) -> str:
        """The preset `name` means for this problem: `NAME-VARIANT` where the task has a preset
        picked for `name` under this problem's variant (e.g. the paper's sigma-50 setting), else `name`."""
        variant = self.preset_variant()
        picked = PRESETS.get((self.task, f"{name}-{variant}")) if variant else None
        return picked.name if picked is not None and picked.picked_for == name else name

    def guide(self) -> np.ndarray | None:
        """An image for presets whose network input z is a guide image (flash / no-flash)."""
        return None

    def held_out(self, pixels: np.ndarray | None, seed: int) -> tuple[Problem, np.ndarray] | None:
        """For a run that stops itself without a noise level: this problem fitting fewer of the
        observed pixels, and where the others are ((H, W, 1), 1 = left out), for the stop to watch
        the fit's error there (`EarlyStopping`'s held-out rule); None where the problem leaves
        nothing out."""
        return None

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The data term: mean squared error."""
        return mse(prediction, target)

    def watchdog(self, pixels: np.ndarray, steps: int) -> Callback | None:
        """A callback that may mark a run on `pixels` as stuck (`.stuck`), to be restarted with the
        next seed."""
        return None

    def before(self, pixels: np.ndarray) -> np.ndarray:
        """What a "before" view shows beside the result (the observation, at the result's size)."""
        return pixels

    def refined(self, restored: np.ndarray, pixels: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
        """The fit's result improved by a classical step that knows this problem's noise, for the
        presets that ask for it (`Preset.refine`), run on `device` (the fit's); the result itself
        where there is no such step."""
        return restored

    def finish(self, restored: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """Last touches on the result (e.g. paste the known pixels back)."""
        return restored

    def tile(self, box: tuple[int, int, int, int]) -> Problem | None:
        """This problem on the observation's tile `box` (top, left, h, w), or None when the tile
        needs no work (an inpainting tile without a hole)."""
        return self

    def baselines(self) -> dict[str, Callable]:
        """Classical methods for this problem that can run here: name -> method(observation, problem)."""
        return dict(self._baselines)

    def describe(self) -> dict:
        """What identifies this problem (for checkpoints and reports): plain, JSON-able data."""
        return {
            "problem": self.name,
            "scale": self.scale,
            "out_channels": self.out_channels,
            "noise_variance": self.noise_variance,
        }

    def describe_fit(self) -> dict:
        """What decides this problem's fit: `describe()` less the fields that change only the
        refine step (`refine_only`), so that saved fits and checkpoints are shared across them."""
        return {key: value for key, value in self.describe().items() if key not in self.refine_only}

    def __repr__(self) -> str:
        return f"Problem({self.operator!r}, scale={self.scale}, out_channels={self.out_channels})"


class _Registered(Problem):
    """The built-in problems: dataclasses whose fields are the degradation's parameters."""

    scale: ClassVar[int] = 1
    out_channels: ClassVar[int | None] = None
    noise_variance: ClassVar[float | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("command"):  # its own name: a subclass of a built-in problem does not take the built-in's
            REGISTRY[cls.command] = cls

    @property
    def name(self) -> str:
        return self.command or self.task

    def build_operator(self) -> nn.Module:
        from .operators import Identity

        return Identity()

    def baselines(self) -> dict[str, Callable]:
        return baselines.for_task(self.task)

    def describe(self) -> dict:
        described = {"problem": self.name}
        for item in fields(self):
            value = getattr(self, item.name)
            described[item.name] = _digest(value) if isinstance(value, np.ndarray) else value
        return described


REGISTRY: dict[str, type[_Registered]] = {}


def check_sigma(sigma: float | None) -> None:
    """Refuse a noise level outside (0, 255] on the 0-255 scale (one-line DipError); None is blind."""
    if sigma is not None and not (math.isfinite(sigma) and 0 < sigma <= 255):
        raise DipError(f"sigma must be in (0, 255] on the 0-255 scale, got {sigma:g}")


# The least noise level (on [0, 1]) deblurring's Wiener step assumes. Below it, the step's guess of
# the fit's error from the residual is mostly chance and the blur's weak frequencies amplify it: on a
# noiseless 64 px crop blurred by 3 px, with the truth blurred by 1 px as the pilot (27.85 dB), the
# step scored 23.62 dB at 8-bit rounding's level (0.29 / 255) and 27.10 at 1 / 255
# (`tests/test_wiener.py`); the settings-choice crops' noise (sigma 2) lies above it.
DEBLUR_NOISE_FLOOR = 1 / 255


def estimated_noise_variance(pixels: np.ndarray) -> float:
    """The variance on [0, 1] of white noise in `pixels` (H, W, C), estimated from the finest
    wavelet coefficients (median absolute deviation, per channel, then the channels' mean)."""
    from skimage.restoration import estimate_sigma

    return float(np.mean(estimate_sigma(pixels, channel_axis=-1, average_sigmas=False)) ** 2)


@dataclass
class Denoising(_Registered):
    """Additive noise: A = I. `sigma` (0-255 scale) when the noise is Gaussian of known level;
    without it the run is blind (the level is estimated for the automatic stop). With sigma, A is
    the mean of noise clipped to [0, 1] around the image (`ClippedMean`), as in any photo stored
    in [0, 1]; `clipped=False` for noise that was not clipped (then A = I).

    >>> Denoising(sigma=50).preset_name("default")
    'default-sigma50'
    """

    sigma: float | None = option(
        None,
        flags=("--sigma",),
        parse=number(float, 0, 255, low_open=True),
        help="noise level on the 0-255 scale, if known (omit for blind mode)",
    )
    clipped: bool = option(
        True,
        flags=("--unclipped",),
        help="the noise was not clipped to [0, 1] (float data): fit the image itself, not the mean of "
        "clipped noise around it (the default with --sigma, as for any 8-bit photo)",
    )
    wiener: bool = option(
        True,
        flags=("--no-wiener",),
        help="return the network's result as it is, without the Wiener filter of the noisy image that "
        "takes it as its pilot (the default and best presets' last step with --sigma)",
    )

    task: ClassVar[str] = "denoise"
    command: ClassVar[str] = "denoise"
    help: ClassVar[str] = "remove noise (Gaussian with --sigma, or blind for real noise)"
    refinement: ClassVar[str] = "the noisy image Wiener-filtered with it as the pilot"
    refine_only: ClassVar[tuple[str, ...]] = ("wiener",)

    def __post_init__(self) -> None:
        check_sigma(self.sigma)

    def build_operator(self) -> nn.Module:
        """With sigma and `clipped`, the mean of clipped noise around the image (`ClippedMean`;
        +0.21 dB on the settings-choice set, benchmarks/README.md); else I."""
        from .operators import ClippedMean, Identity

        return ClippedMean(self.sigma / 255) if self.clipped and self.sigma is not None else Identity()

    def known_noise_variance(self, pixels: np.ndarray) -> float:
        """From sigma, less what clipping to [0, 1] took away (and, when the fit matches the mean
        of clipped noise, about that mean); else estimated from the image (wavelet median
        absolute deviation, per channel)."""
        if self.sigma is not None:
            from .degrade import clipped_noise_variance

            return clipped_noise_variance(pixels, self.sigma, about_mean=self.clipped)
        return estimated_noise_variance(pixels)

    def refined(self, restored: np.ndarray, pixels: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
        """With sigma (and `wiener`): the noisy image Wiener-filtered with the fit as its pilot, each
        8x8 block in a group with its closest blocks in the pilot (BM3D's Wiener stage,
        `dip.wiener.wiener`); blind, the fit itself (real noise is not white)."""
        if self.sigma is None or not self.wiener:
            return restored
        from .wiener import wiener

        return wiener(pixels, restored, self.sigma / 255, clipped=self.clipped, device=device)

    def preset_variant(self) -> str | None:
        """The paper used more input noise for strong noise (sigma 50); so do the default and best."""
        from .wiener import STRONG_SIGMA

        return "sigma50" if self.sigma is not None and self.sigma > STRONG_SIGMA else None


@dataclass
class Deblocking(_Registered):
    """JPEG compression artifacts (blocking, ringing): A = I, the artifacts are the noise.

    >>> {"NLM", "TV", "wavelet"} <= set(Deblocking().baselines())  # and CBM3D with the bm3d extra
    True
    """

    task: ClassVar[str] = "deblock"
    command: ClassVar[str] = "deblock"
    help: ClassVar[str] = "remove JPEG compression artifacts"


KERNELS = ("lanczos2", "lanczos3")  # super-resolution's operators (`SuperResolution.kernel`)


@dataclass
class SuperResolution(_Registered):
    """A real low-resolution image, `factor` (2, 4, 8) times smaller than the one to produce.
    The fit's A is the paper's operator (Lanczos-2 downsampling); `kernel` says how the
    low-resolution image was made, for the refine step (`refined`) of the presets that run it.

    >>> SuperResolution(4).output_shape((16, 20, 3))
    (64, 80, 3)
    """

    factor: int = option(
        4, flags=("-s", "--scale"), parse=int, choices=(2, 4, 8), help="enlargement factor (default 4)"
    )
    kernel: str = option(
        "lanczos3",
        flags=("--kernel",),
        choices=KERNELS,
        help="how the low-resolution image was made, which the result is made to downscale to exactly: "
        "lanczos3 (Pillow's Lanczos resize; the default) or lanczos2 (the paper's operator)",
    )

    task: ClassVar[str] = "super-resolve"
    command: ClassVar[str] = "super-resolve"
    help: ClassVar[str] = "enlarge a real low-resolution image 2, 4 or 8 times"
    observed: ClassVar[str] = "low-resolution image"
    refinement: ClassVar[str] = "moved to the nearest image that downscales exactly to the low-resolution one"
    refine_only: ClassVar[tuple[str, ...]] = ("kernel",)

    def __post_init__(self) -> None:
        if self.factor not in (2, 4, 8):
            raise DipError(f"scale factor must be 2, 4 or 8, got {self.factor}")
        if self.kernel not in KERNELS:
            raise DipError(f"unknown kernel {self.kernel!r}; choose from {', '.join(KERNELS)}")

    @property
    def scale(self) -> int:
        return self.factor

    def build_operator(self) -> nn.Module:
        """The paper's Lanczos-2 downsampling, whatever `kernel` says: the fit does as well or
        better through it than through the kernel that made the image (`downscale`)."""
        from .operators import Downsampler

        return Downsampler(self.factor)

    def downscale(self) -> nn.Module:
        """The downscale `kernel` names: Pillow's exact Lanczos-3 resize, or the paper's operator
        (the fit's, `build_operator`)."""
        from .operators import Downsampler

        if self.kernel == "lanczos3":
            return Downsampler(self.factor, support=3, border="renormalise")
        return self.build_operator()

    def refined(self, restored: np.ndarray, pixels: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
        """The fit moved to the nearest image that `downscale` maps exactly onto the observation,
        and clipped to [0, 1] (`dip.operators.consistent`): where that downscale made the
        low-resolution image, the true image is among those, so the step only brings the result
        closer to it."""
        from .callbacks import to_numpy_image
        from .operators import consistent

        operator = self.downscale().to(device)
        moved = consistent(operator, to_tensor(restored).to(device), self.target(pixels).to(device))
        return to_numpy_image(moved)

    def preset_variant(self) -> str | None:
        """The paper ran x8 longer and with more input noise than x4; so do the default and best."""
        return "x8" if self.factor >= 8 else None

    def before(self, pixels: np.ndarray) -> np.ndarray:
        return baselines.upscale(pixels, self.factor, "bicubic")


def read_mask(mask: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Validate and binarise an inpainting mask: white (>= 0.5) = known, black = hole.

    Accepts (H, W) or (H, W, C) (channels averaged; alpha ignored); returns float (H, W, 1).

    >>> read_mask(np.array([[0, 255], [255, 255]], np.uint8))[:, :, 0]
    array([[0., 1.],
           [1., 1.]], dtype=float32)
    """
    from .io import split_channels

    mask = split_channels(mask).pixels.mean(axis=2, keepdims=True)
    if shape is not None and mask.shape[:2] != tuple(shape):
        raise DipError(
            f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {shape[1]}x{shape[0]}: they must be the same size"
        )
    binary = (mask >= 0.5).astype(np.float32)
    if binary.all():
        raise DipError("mask has no hole (all white = all known): nothing to inpaint")
    if not binary.any():
        raise DipError("mask is all hole (all black = nothing known): there is nothing to fit")
    return binary


SCATTERED = 0.9  # share of hole pixels near a known one above which holes count as scattered / thin
ERROR_SHARE = 0.5  # of the fit's error at known pixels added in the holes (`Inpainting.refined`)
THIN_REACH = 4  # px: holes whose pixels lie this close to a known pixel are thin (strokes, text)


def _holes_near_known(mask: np.ndarray, reach: int) -> bool:
    """Whether a binary (H, W, 1) mask (1 = known) has holes, and at least `SCATTERED` of the hole
    pixels have a known pixel within `reach` pixels (in the square around them)."""
    from scipy.ndimage import binary_dilation

    known = mask[:, :, 0] >= 0.5
    hole = ~known
    if not hole.any():
        return False
    near = binary_dilation(known, np.ones((2 * reach + 1, 2 * reach + 1), bool))
    return bool(near[hole].mean() >= SCATTERED)


def scattered(mask: np.ndarray) -> bool:
    """Whether the holes of a binary (H, W, 1) mask (1 = known) are scattered pixels rather than
    strokes or regions: at least 90% of the hole pixels have a known pixel among their eight
    neighbours (random missing pixels: 99.5% at 50% missing, 94% at 70%; text over a photo: 69%;
    a removed object: under 10%).

    >>> scattered(np.random.default_rng(0).random((64, 64, 1)) >= 0.5)
    True
    >>> scattered(np.pad(np.zeros((8, 8, 1)), ((4, 4), (4, 4), (0, 0)), constant_values=1))
    False
    """
    return _holes_near_known(mask, 1)


def thin(mask: np.ndarray) -> bool:
    """Whether the holes are thin (strokes, text, scattered pixels): at least 90% of the hole
    pixels lie within `THIN_REACH` pixels of a known one (a removed object: far fewer).

    >>> thin(np.pad(np.zeros((40, 5, 1)), ((4, 4), (4, 4), (0, 0)), constant_values=1))
    True
    >>> thin(np.pad(np.zeros((40, 40, 1)), ((4, 4), (4, 4), (0, 0)), constant_values=1))
    False
    """
    return _holes_near_known(mask, THIN_REACH)


@dataclass
class Inpainting(_Registered):
    """Missing pixels: A = the mask (white = known, black = hole); the loss sees known pixels only.

    `mask` is (H, W) or (H, W, C), binarised at 50% grey. With `paste_known` (the default), known
    pixels are copied from the observation into the result, as a user expects of a fill (and
    +0.07 / +0.09 dB on stroke holes / half the pixels missing: `benchmarks/README.md`); without,
    the result is the network's output everywhere, as the paper's published outputs. A run that
    stops itself on thin holes leaves a `holdout` share of the known pixels out of the fit and
    stops where the output meets them best (`held_out`).

    The mask picks the network the `default` preset fits (`preset_name`):

    >>> import numpy as np
    >>> scattered = np.random.default_rng(0).random((64, 64)) > 0.5  # half the pixels missing
    >>> hole = np.ones((64, 64))
    >>> hole[20:40, 20:40] = 0  # one large hole
    >>> Inpainting(scattered).preset_name("default"), Inpainting(hole).preset_name("default")
    ('default-pixels', 'default')
    """

    mask: np.ndarray = option(
        None,
        flags=("--mask",),
        image=True,
        required=True,
        help="mask image of the same size: white (>= 50%% grey) = known pixel, black = hole",
    )
    paste_known: bool = option(
        True,
        flags=("--fit-known",),
        help="return the network's values at known pixels too, as the paper's outputs do "
        "(default: known pixels are copied from the input)",
    )
    holdout: float = option(
        0.05,
        flags=("--holdout",),
        parse=number(float, 0, 0.5),
        help="fraction of the known pixels a self-stopping run leaves out of the fit to tell when the "
        "holes are filled best (default 0.05; 0: judge by how the outputs settle)",
    )

    task: ClassVar[str] = "inpaint"
    command: ClassVar[str] = "inpaint"
    help: ClassVar[str] = "fill holes given by a mask (white = known, black = hole)"
    observed: ClassVar[str] = "image with holes"
    refinement: ClassVar[str] = f"corrected in the holes by {ERROR_SHARE:g} of its error at the known pixels, filled in"

    def __post_init__(self) -> None:
        from .io import split_channels

        if self.mask is None:
            raise DipError("inpainting needs a mask (white = known, black = hole)")
        self.mask = (split_channels(self.mask).pixels.mean(axis=2, keepdims=True) >= 0.5).astype(np.float32)

    def check(self, pixels: np.ndarray | None) -> None:
        super().check(pixels)
        read_mask(self.mask, pixels.shape[:2])

    def build_operator(self) -> nn.Module:
        from .operators import Mask

        return Mask(to_tensor(self.mask))

    def target(self, pixels: np.ndarray) -> torch.Tensor:
        """The known pixels (whatever the holes hold in the file does not enter the loss)."""
        return to_tensor(pixels * self.mask)

    def held_out(self, pixels: np.ndarray | None, seed: int) -> tuple[Inpainting, np.ndarray] | None:
        """For thin holes (strokes, text: `thin`), a random `holdout` share of the known pixels
        (drawn from `seed`) left out of the fit: like the holes, pixels the network never saw, so
        the fit's error there tells when the holes are filled best (benchmarks/README.md, "Held-out
        pixels as the stop"). They are pasted back with the other known pixels. Large holes keep
        the variance rule: there the held-out pixels, each next to known ones, stopped the fit
        before the hole was filled."""
        if not self.holdout or not thin(self.mask):
            return None
        where = (self.mask > 0) & (np.random.default_rng(seed).random(self.mask.shape) < self.holdout)
        if not where.any():
            return None  # too few known pixels to leave any out
        return self._on_mask(self.mask * ~where, holdout=0.0), where.astype(np.float32)

    def _on_mask(self, mask: np.ndarray, **changes) -> Inpainting:
        """This problem with another (already binary) mask and any other `changes` of its fields."""
        other = copy.copy(self)
        other.mask = mask
        for name, value in changes.items():
            setattr(other, name, value)
        return other

    def preset_variant(self) -> str | None:
        """Scattered missing pixels get the fast denoising net (`default-pixels`, `best-pixels`):
        +0.04 to +0.95 dB over the stroke default on half the pixels missing."""
        return "pixels" if scattered(self.mask) else None

    def refined(self, restored: np.ndarray, pixels: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
        """The fit corrected in the holes by `ERROR_SHARE` of its error at the known pixels,
        filled in biharmonically (`dip.baselines.fill_small_holes`): where the network misses a
        texture, it misses it in the holes as at the known pixels next to them (benchmarks/README.md,
        "Inpainting: the refine step"). The known pixels keep the fit's values (`finish` pastes)."""
        known = self.mask[:, :, 0] > 0
        error = np.where(known[:, :, None], pixels - restored, 0.0)
        spread = baselines.fill_small_holes(error, ~known)
        return np.clip(np.where(known[:, :, None], restored, restored + ERROR_SHARE * spread), 0, 1).astype(np.float32)

    def finish(self, restored: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        if not self.paste_known:
            return restored
        return np.where(self.mask > 0, pixels, restored).astype(np.float32)

    def tile(self, box: tuple[int, int, int, int]) -> Inpainting | None:
        top, left, height, width = box
        part = self.mask[top : top + height, left : left + width]
        if part.min() >= 0.5:
            return None  # nothing missing in this tile
        return self._on_mask(part)


def kernel_spec(text: str) -> np.ndarray:
    """A blur kernel from `gaussian:SIGMA` (pixels) or `box:N`; never a file.

    >>> kernel_spec("box:3").shape
    (3, 3)
    """
    from .operators import box_kernel, gaussian_kernel

    kind, _, value = text.partition(":")
    try:
        if kind == "gaussian" and value:
            sigma = float(value)
            if not 0 < sigma <= 50:
                raise ValueError
            return gaussian_kernel(sigma)
        if kind == "box" and value:
            size = int(value)
            if not 1 <= size <= 101:
                raise ValueError
            return box_kernel(size)
    except ValueError:
        raise DipError(
            f"bad kernel {text!r}: gaussian:SIGMA needs 0 < SIGMA <= 50, box:N needs 1 <= N <= 101"
        ) from None
    raise DipError(f"bad kernel {text!r}: use gaussian:SIGMA or box:N")


def kernel_from_spec(text: str) -> np.ndarray:
    """A blur kernel from `gaussian:SIGMA`, `box:N` or the path of an image of it."""
    from pathlib import Path

    if text.partition(":")[0] in ("gaussian", "box"):
        return kernel_spec(text)
    if not Path(text).suffix:
        raise DipError(f"bad kernel {text!r}: use gaussian:SIGMA, box:N or an image file")
    from .io import read_image

    return read_image(text).pixels.mean(axis=2)


@dataclass
class Deblurring(_Registered):
    """A known blur: A = convolution with `kernel` (2-D, non-negative, normalised to sum 1), and
    white noise of level `sigma` (0-255 scale) when known, else estimated from the image: the
    automatic stop waits for the fit to reach it, and the default and best presets end with a
    Wiener deconvolution that takes the fit as its pilot (`refined`).

    >>> Deblurring(np.ones((3, 3)), sigma=2).noise_sigma(np.zeros((8, 8, 1))) * 255
    2.0
    """

    kernel: np.ndarray = option(
        None,
        flags=("--kernel",),
        parse=kernel_from_spec,
        remote=kernel_spec,
        required=True,
        help="gaussian:SIGMA (pixels), box:N, or an image of the kernel",
    )
    sigma: float | None = option(
        None,
        flags=("--sigma",),
        parse=number(float, 0, 255, low_open=True),
        help="the blurred image's noise level on the 0-255 scale, if known (default: estimated from the image)",
    )

    task: ClassVar[str] = "deblur"
    command: ClassVar[str] = "deblur"
    help: ClassVar[str] = "undo a known blur"
    observed: ClassVar[str] = "blurred image"
    refinement: ClassVar[str] = "corrected by a Wiener deconvolution of what it leaves of the blurred image"

    def __post_init__(self) -> None:
        kernel = np.asarray(self.kernel, dtype=np.float64)
        if kernel.ndim != 2 or not np.isfinite(kernel).all() or (kernel < 0).any() or kernel.sum() <= 0:
            raise DipError("a blur kernel must be a 2-D array of non-negative values with a positive sum")
        self.kernel = kernel / kernel.sum()
        check_sigma(self.sigma)

    def build_operator(self) -> nn.Module:
        from .operators import Blur

        return Blur(self.kernel)

    def noise_sigma(self, pixels: np.ndarray) -> float:
        """The noise's standard deviation on [0, 1]: `sigma`, or estimated from the blurred image
        (the blur leaves little of the image in its finest wavelet band, the noise all of it); never
        below `DEBLUR_NOISE_FLOOR`, as the Wiener step that uses it would amplify chance there."""
        sigma = self.sigma / 255 if self.sigma is not None else math.sqrt(estimated_noise_variance(pixels))
        return max(sigma, DEBLUR_NOISE_FLOOR)

    def known_noise_variance(self, pixels: np.ndarray) -> float:
        """For the discrepancy stop: the noise's variance, from `sigma` (less what clipping to
        [0, 1] took away) or estimated; unlike `noise_sigma`, with no floor."""
        if self.sigma is None:
            return estimated_noise_variance(pixels)
        from .degrade import clipped_noise_variance

        return clipped_noise_variance(pixels, self.sigma)

    def refined(self, restored: np.ndarray, pixels: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
        """The fit corrected by the Wiener estimate of its error from the residual blurred image
        (`dip.wiener.deconvolve`), clipped to [0, 1]."""
        from .wiener import deconvolve

        return np.clip(deconvolve(pixels, restored, self.kernel, self.noise_sigma(pixels)), 0, 1)


@dataclass
class FlashNoFlash(_Registered):
    """A noisy no-flash photo (the observation) and a flash photo of the same scene, the
    network's input z: the result keeps the ambient light with the flash photo's detail.

    A run that gets stuck (after 100 steps its loss is still 90% of a flat image's: the paper
    saw flat reddish outputs) is restarted with the next seed; runs shorter than 200 steps are
    not judged (a short run is not a stuck run).

    >>> import numpy as np
    >>> FlashNoFlash(np.zeros((8, 8, 3))).check(np.zeros((6, 8, 3)))
    Traceback (most recent call last):
    dip.errors.DipError: flash image is 8x8, no-flash image is 8x6: they must be the same size
    """

    flash: np.ndarray = option(None, flags=("flash",), image=True, positional=True, help="flash photo (the guide)")

    task: ClassVar[str] = "flash"
    command: ClassVar[str] = "flash"
    help: ClassVar[str] = "restore a no-flash photo guided by a flash photo of the same scene"
    observed: ClassVar[str] = "no-flash photo to restore"
    STUCK_STEP: ClassVar[int] = 100

    def __post_init__(self) -> None:
        from .io import split_channels

        if self.flash is None:
            raise DipError("flash/no-flash needs the flash photo")
        self.flash = split_channels(self.flash).pixels

    def check(self, pixels: np.ndarray | None) -> None:
        super().check(pixels)
        if self.flash.shape[:2] != pixels.shape[:2]:
            raise DipError(
                f"flash image is {self.flash.shape[1]}x{self.flash.shape[0]}, no-flash image "
                f"is {pixels.shape[1]}x{pixels.shape[0]}: they must be the same size"
            )
        if self.flash.shape[2] != pixels.shape[2]:
            raise DipError("flash and no-flash images must both be colour or both grey")

    def guide(self) -> np.ndarray:
        return self.flash

    def known_noise_variance(self, pixels: np.ndarray) -> float:
        """The no-flash photo's noise variance, estimated from it (for a preset that stops itself)."""
        return estimated_noise_variance(pixels)

    def watchdog(self, pixels: np.ndarray, steps: int) -> Callback | None:
        from .callbacks import StuckDetector

        if steps < 2 * self.STUCK_STEP:
            return None
        return StuckDetector(self.target(pixels), at_step=self.STUCK_STEP)

    def tile(self, box: tuple[int, int, int, int]) -> FlashNoFlash:
        top, left, height, width = box
        tiled = FlashNoFlash.__new__(FlashNoFlash)
        tiled.flash = self.flash[top : top + height, left : left + width]
        return tiled


@dataclass
class _Classifier(_Registered):
    """A pretrained ImageNet classifier as A (feature inversion, activation maximisation)."""

    weights: str | None = option(
        None,
        kw_only=True,
        flags=("--weights",),
        help="a torchvision-format state dict (.pth or .safetensors) instead of the installed weights",
    )

    keeps_alpha: ClassVar[bool] = False
    tileable: ClassVar[bool] = False

    def classifier(self) -> nn.Module:
        from .weights import load_classifier

        return load_classifier(self.net, self.weights)

    def make_operator(self) -> nn.Module:
        """A, from the loaded classifier (ValueError for a bad layer or unit)."""
        raise NotImplementedError

    def check(self, pixels: np.ndarray | None) -> None:
        """Load the weights and build A once, so a bad network, layer or unit fails before any work."""
        try:
            self._operator = self.make_operator()
        except ValueError as error:
            raise DipError(str(error)) from None

    def build_operator(self) -> nn.Module:
        return self._operator

    def output_shape(self, shape: tuple[int, ...] | None) -> tuple[int, int, int]:
        return CLASSIFIER_SIZE, CLASSIFIER_SIZE, 3

    def baselines(self) -> dict[str, Callable]:
        return {}


LAYERS_HELP = "alexnet: conv1-conv5; vgg16: conv1_1-conv5_3; mobilenet_v2: block0-block18, logits"
NETS = ("alexnet", "vgg16", "mobilenet_v2")


@dataclass
class FeatureInversion(_Classifier):
    """Feature inversion: the 224x224 image whose `net` features at `layer` match those of the
    observation (resized to 224x224), with the DIP network as the image's parameterisation.

    >>> FeatureInversion(net="alexnet", layer="conv5").output_shape((480, 640, 3))
    (224, 224, 3)
    """

    net: str = option("alexnet", flags=("--net",), choices=NETS, help="classifier (default alexnet)")
    layer: str = option("conv5", flags=("--layer",), help=LAYERS_HELP + " (default conv5)")

    task: ClassVar[str] = "invert"
    command: ClassVar[str] = "invert"
    help: ClassVar[str] = "feature inversion: the image whose classifier features match IMAGE's"
    observed: ClassVar[str] = "image whose features to match"

    def make_operator(self) -> nn.Module:
        from .operators import Features

        return Features(self.classifier(), self.layer, CLASSIFIER_SIZE)

    def check(self, pixels: np.ndarray | None) -> None:
        Problem.check(self, pixels)
        super().check(pixels)

    def target(self, pixels: np.ndarray) -> torch.Tensor:
        from skimage.transform import resize

        if pixels.shape[2] != 3:
            pixels = np.repeat(pixels[:, :, :1], 3, axis=2)
        small = resize(pixels, (CLASSIFIER_SIZE, CLASSIFIER_SIZE), anti_aliasing=True).astype(np.float32)
        with torch.no_grad():
            return self._operator(to_tensor(small))


@dataclass
class ActivationMaximisation(_Classifier):
    """Activation maximisation: the 224x224 image that most excites channel (or ImageNet class)
    `unit` of `net` at `layer`, drawn by the DIP network. It takes no observation.

    >>> problem = ActivationMaximisation(unit=5)  # ImageNet class 5 at mobilenet_v2's logits
    >>> problem.output_shape(None), problem.preset_name("default")
    ((224, 224, 3), 'paper-logits')
    """

    net: str = option("mobilenet_v2", flags=("--net",), choices=NETS, help="classifier (default mobilenet_v2)")
    layer: str = option("logits", flags=("--layer",), help=LAYERS_HELP + " (default logits)")
    unit: int = option(
        0,
        flags=("--unit",),
        parse=number(int, 0),
        required=True,
        help="channel of the layer, or ImageNet class index for logits",
    )

    task: ClassVar[str] = "visualize"
    command: ClassVar[str] = "visualize"
    help: ClassVar[str] = "activation maximisation: the image that most excites a channel or class"
    observed: ClassVar[None] = None

    def __post_init__(self) -> None:
        if self.unit < 0:
            raise DipError(f"unit must be >= 0, got {self.unit}")

    def make_operator(self) -> nn.Module:
        from .operators import Activation

        operator = Activation(self.classifier(), self.layer, self.unit, CLASSIFIER_SIZE)
        with torch.no_grad():
            operator(torch.zeros(1, 3, CLASSIFIER_SIZE, CLASSIFIER_SIZE))  # a unit out of range fails here
        return operator

    def target(self, pixels: np.ndarray | None) -> torch.Tensor:
        return torch.zeros(1)

    def loss(self, activation: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return -activation.mean()

    def preset_name(self, name: str) -> str:
        if name in ("paper", "default"):
            return "paper-logits" if self.layer == "logits" else "paper"
        return name
