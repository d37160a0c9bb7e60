"""Make test inputs the paper's way: Lanczos-downscaled, noisy, blurred, or with pixels dropped."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import DipError


def crop_to_multiple(image: np.ndarray, factor: int) -> np.ndarray:
    """Crop (centred, as the paper's code) so both sides are multiples of `factor`."""
    height, width = image.shape[0] - image.shape[0] % factor, image.shape[1] - image.shape[1] % factor
    if height == 0 or width == 0:
        raise DipError(f"image {image.shape[1]}x{image.shape[0]} is smaller than the factor {factor}")
    top = (image.shape[0] - height) // 2
    left = (image.shape[1] - width) // 2
    return image[top : top + height, left : left + width]


def downscale(image: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR cropped to a multiple of `factor`, LR made by Pillow's Lanczos (a=3) resampling),
    both float (H, W, C) in [0, 1]. Works on 8-bit quantised values, as the paper's PIL pipeline."""
    hr = crop_to_multiple(image, factor)
    ints = np.round(np.clip(hr, 0, 1) * 255).astype(np.uint8)
    pil = Image.fromarray(ints[:, :, 0] if ints.shape[2] == 1 else ints)
    lr = np.asarray(pil.resize((hr.shape[1] // factor, hr.shape[0] // factor), Image.Resampling.LANCZOS))
    lr = lr.reshape(lr.shape[0], lr.shape[1], -1)
    return ints.astype(np.float32) / 255, lr.astype(np.float32) / 255


def add_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Add white Gaussian noise of `sigma` on the 0-255 scale, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma / 255, image.shape), 0, 1).astype(np.float32)


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """`image` (H, W, C) convolved with `kernel`, borders replicated: what `dip.operators.Blur`
    does, in NumPy.

    >>> blur(np.eye(3, dtype=np.float32)[:, :, None], np.ones((1, 3)) / 3)[1, :, 0].round(3)
    array([0.333, 0.333, 0.333], dtype=float32)
    """
    from scipy.ndimage import convolve

    kernel = np.asarray(kernel, np.float64) / np.sum(kernel)
    planes = [convolve(image[:, :, c].astype(np.float64), kernel, mode="nearest") for c in range(image.shape[2])]
    return np.stack(planes, axis=2).astype(np.float32)


def clipped_noise_variance(noisy: np.ndarray, sigma: float, about_mean: bool = False) -> float:
    """The mean squared difference between `noisy` = clip(x + n, 0, 1) and the clean x it came
    from, for Gaussian n of `sigma` (0-255 scale): what the data term reaches once the fit has
    explained the image. Clipping shrinks it below sigma^2 in dark and bright regions (5-20% at
    sigma 25, 15-40% at sigma 50 on the paper's images), so a stop at sigma^2 would come early.
    `about_mean`: about E[clip(x + n)] instead of x (the variance of the clipped noise), what a
    fit of the clipped mean (`dip.operators.ClippedMean`) reaches.

    x is unknown: a pixel's local mean (Gaussian, 1.5 px) is matched to the mean of clipped
    noise around x, and E[(clip(x + n) - x)^2] is averaged over the pixels."""
    from scipy.ndimage import gaussian_filter
    from scipy.special import ndtr

    s = sigma / 255
    grid = np.linspace(0.0, 1.0, 2001)
    low, high = -grid / s, (1 - grid) / s  # the clip's bounds for n / s
    pdf_low, pdf_high = np.exp(-(low**2) / 2) / np.sqrt(2 * np.pi), np.exp(-(high**2) / 2) / np.sqrt(2 * np.pi)
    cdf_low, cdf_high = ndtr(low), ndtr(high)
    mean = grid + s * (pdf_low - pdf_high) - grid * cdf_low + (1 - grid) * (1 - cdf_high)
    second = (
        s**2 * (cdf_high - cdf_low - (high * pdf_high - low * pdf_low))
        + grid**2 * cdf_low
        + (1 - grid) ** 2 * (1 - cdf_high)
    )
    local = gaussian_filter(np.asarray(noisy, dtype=np.float64), sigma=(1.5, 1.5) + (0,) * (noisy.ndim - 2))
    clean = np.interp(local, mean, grid)  # mean(x) rises with x: invert it
    if about_mean:
        second = second - (mean - grid) ** 2  # E[(c - x)^2] - (E[c] - x)^2 = Var[c]
    return float(np.mean(np.interp(clean, grid, second)))


def drop_pixels(image: np.ndarray, keep: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Keep each pixel (all channels) with probability `keep`: returns (masked image, mask),
    mask float (H, W, 1) with 1 = known."""
    if not 0 < keep < 1:
        raise DipError(f"the kept fraction must be between 0 and 1, got {keep:g}")
    rng = np.random.default_rng(seed)
    mask = (rng.random(image.shape[:2]) < keep).astype(np.float32)[:, :, None]
    return (image * mask).astype(np.float32), mask
