"""One function per task, in the style of `skimage.restoration`: numpy in, numpy out.

Each is one line over `dip.run` with the task's Problem; every keyword of `dip.run` (preset,
steps, seed, device, reference, tile, checkpoint, report, ...) passes through. With
`return_info=True` they return `(image, Restoration)`.
"""

from __future__ import annotations

import numpy as np

from .problems import (
    ActivationMaximisation,
    Deblocking,
    Deblurring,
    Denoising,
    FeatureInversion,
    FlashNoFlash,
    Inpainting,
    SuperResolution,
)
from .run import Restoration, run


def _out(done: Restoration, return_info: bool):
    return (done.image, done) if return_info else done.image


def denoise(
    image: np.ndarray, sigma: float | None = None, *, wiener: bool = True, return_info: bool = False, **options
):
    """Remove noise with the Deep Image Prior.

    Parameters
    ----------
    image : ndarray
        (H, W) or (H, W, C) image, C in 1-4 (alpha is kept as is); integers are scaled by their
        type's maximum, floats taken in [0, 1].
    sigma : float, optional
        Gaussian noise level on the 0-255 scale. Without it the run is blind (the level is
        estimated for the automatic stop), suited to real camera noise.
    wiener : bool
        With sigma, the default and best presets end with a Wiener filter of the noisy image that
        takes the fit as its pilot (`dip.wiener`); False returns the network's result as it is.
    return_info : bool
        Also return the `Restoration` (preset, steps, time, metrics).
    **options
        Any keyword of `dip.run`.

    Returns
    -------
    ndarray
        float32, the shape of `image`.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> clean = data.astronaut()[:64, :64] / 255
    >>> noisy = (clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)).clip(0, 1)
    >>> denoise(noisy, sigma=25, steps=2, device="cpu").shape
    (64, 64, 3)
    """
    return _out(run(Denoising(sigma, wiener=wiener), image, **options), return_info)


def deblock(image: np.ndarray, *, return_info: bool = False, **options):
    """Remove JPEG compression artifacts (blocking, ringing); same conventions as `denoise`.

    Examples
    --------
    >>> import numpy as np
    >>> deblock(np.full((32, 32), 0.5), steps=2, device="cpu").shape
    (32, 32)
    """
    return _out(run(Deblocking(), image, **options), return_info)


def super_resolve(image: np.ndarray, factor: int = 4, *, return_info: bool = False, **options):
    """Super-resolve a real low-resolution image by `factor` (2, 4 or 8).

    The network draws the high-resolution image; the loss compares its Lanczos-2 downsampling
    (the paper's operator) with `image`. Returns (H * factor, W * factor[, C]); alpha is
    upscaled by bicubic interpolation.

    Examples
    --------
    >>> import numpy as np
    >>> super_resolve(np.random.default_rng(0).random((16, 16, 3)), 2, steps=2, device="cpu").shape
    (32, 32, 3)
    """
    return _out(run(SuperResolution(factor), image, **options), return_info)


def inpaint(image: np.ndarray, mask: np.ndarray, *, paste_known: bool = True, return_info: bool = False, **options):
    """Fill the holes of `image` where `mask` is black (0); white (1) marks known pixels.

    The loss sees known pixels only. Presets: default (fast, stops itself), text (the paper's,
    for scribbles), blob (one object), large-holes (and its -unet / -resnet comparisons),
    pixels (random missing pixels). Known pixels are copied from `image` into the result;
    `paste_known=False` returns the network's values there too (as the paper's outputs).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.ones((32, 32))
    >>> mask[8:16, 8:16] = 0
    >>> inpaint(np.full((32, 32, 3), 0.5), mask, steps=2, device="cpu")[0, 0]
    array([0.5, 0.5, 0.5], dtype=float32)
    """
    return _out(run(Inpainting(mask, paste_known), image, **options), return_info)


def deblur(image: np.ndarray, kernel: np.ndarray, sigma: float | None = None, *, return_info: bool = False, **options):
    """Undo a known blur: A is convolution with `kernel` (2-D, non-negative, normalised to sum 1);
    `sigma`, the noise level on the 0-255 scale if known (else estimated from the image).

    Examples
    --------
    >>> import numpy as np
    >>> from dip.operators import gaussian_kernel
    >>> deblur(np.full((32, 32, 3), 0.5), gaussian_kernel(1.0), steps=2, device="cpu").shape
    (32, 32, 3)
    """
    return _out(run(Deblurring(kernel, sigma), image, **options), return_info)


def flash(flash_image: np.ndarray, noflash_image: np.ndarray, *, return_info: bool = False, **options):
    """Restore a noisy no-flash photo, with the flash photo of the same scene as the network's
    input z: the result has the no-flash lighting and the flash photo's detail. A run that gets
    stuck is restarted with the next seed (see `dip.FlashNoFlash`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> flash(rng.random((32, 32, 3)), rng.random((32, 32, 3)), steps=2, device="cpu").shape
    (32, 32, 3)
    """
    return _out(run(FlashNoFlash(flash_image), noflash_image, **options), return_info)


def invert(
    image: np.ndarray,
    network: str = "alexnet",
    layer: str = "conv5",
    *,
    weights: str | None = None,
    return_info: bool = False,
    **options,
):
    """Feature inversion: the 224x224 image whose `network` features at `layer` match those of
    `image` (resized to 224x224). Needs the classifier weights (`dip weights install`).

    Examples
    --------
    >>> import numpy as np
    >>> invert(np.full((64, 64, 3), 0.5), "alexnet", "conv1", steps=1, device="cpu").shape
    (224, 224, 3)
    """
    return _out(run(FeatureInversion(network, layer, weights=weights), image, **options), return_info)


def visualize(
    network: str = "mobilenet_v2",
    layer: str = "logits",
    unit: int = 0,
    *,
    weights: str | None = None,
    return_info: bool = False,
    **options,
):
    """Activation maximisation: the 224x224 image that most excites channel (or ImageNet class)
    `unit` of `network` at `layer`. Needs the classifier weights (`dip weights install`).

    Examples
    --------
    >>> visualize("alexnet", "conv1", 3, steps=1, device="cpu").shape
    (224, 224, 3)
    """
    return _out(run(ActivationMaximisation(network, layer, unit, weights=weights), None, **options), return_info)
