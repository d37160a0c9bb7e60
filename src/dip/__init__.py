"""dip: restore images with the Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, 2018).

`dip.run(problem, observation)` restores with any Problem (`Denoising`, `SuperResolution`,
`Inpainting`, ... or your own `Problem(operator=...)`); `dip.denoise`, `dip.super_resolve`, ...
are one-line conveniences over it.
"""

from ._version import __version__ as __version__
from .errors import DipError
from .problems import (
    REGISTRY,
    ActivationMaximisation,
    Deblocking,
    Deblurring,
    Denoising,
    FeatureInversion,
    FlashNoFlash,
    Inpainting,
    Problem,
    SuperResolution,
)
from .run import Interrupted, Restoration, run, run_many
from .tasks import deblock, deblur, denoise, flash, inpaint, invert, super_resolve, visualize

__all__ = [
    "REGISTRY",
    "ActivationMaximisation",
    "Deblocking",
    "Deblurring",
    "Denoising",
    "DipError",
    "FeatureInversion",
    "FlashNoFlash",
    "Inpainting",
    "Interrupted",
    "Problem",
    "Restoration",
    "SuperResolution",
    "deblock",
    "deblur",
    "denoise",
    "flash",
    "inpaint",
    "invert",
    "run",
    "run_many",
    "super_resolve",
    "visualize",
]
