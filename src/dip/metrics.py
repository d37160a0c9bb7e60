"""Image quality metrics: PSNR, SSIM and the paper's super-resolution metric (Y-channel PSNR); the
share of its noise a restoration kept."""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _pair(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    estimate = np.asarray(estimate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if estimate.shape != reference.shape:
        raise ValueError(f"images differ in shape: {estimate.shape} vs {reference.shape}")
    return estimate, reference


def psnr(estimate: np.ndarray, reference: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB over all pixels and channels (images in [0, data_range])."""
    estimate, reference = _pair(estimate, reference)
    return float(peak_signal_noise_ratio(reference, estimate, data_range=data_range))


def ssim(estimate: np.ndarray, reference: np.ndarray, data_range: float = 1.0) -> float:
    """SSIM (scikit-image, Gaussian-free 7x7 window), averaged over channels of (H, W[, C])."""
    estimate, reference = _pair(estimate, reference)
    if estimate.ndim == 3 and estimate.shape[2] == 1:
        estimate, reference = estimate[..., 0], reference[..., 0]
    channel_axis = 2 if estimate.ndim == 3 else None
    if min(estimate.shape[:2]) < 7:
        return float("nan")
    return float(structural_similarity(reference, estimate, data_range=data_range, channel_axis=channel_axis))


def psnr_torch(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of two [0, 1] tensors, computed where they live (no copy to the CPU but one number)."""
    mse = torch.mean((estimate.float() - reference.float()) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)  # a float: checkpoints keep plain data only


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Luma of ITU-R BT.601 YCbCr in the 16-235 range, scaled to [0, 1] of 255 (as MATLAB's rgb2ycbcr)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2 or image.shape[2] == 1:
        return image.reshape(image.shape[:2])
    return (16.0 + 65.481 * image[..., 0] + 128.553 * image[..., 1] + 24.966 * image[..., 2]) / 255.0


def y_psnr(estimate: np.ndarray, reference: np.ndarray, shave: int = 0) -> float:
    """The paper's SR metric: PSNR on the BT.601 Y channel, `shave` border pixels removed."""
    estimate, reference = _pair(estimate, reference)
    y_est, y_ref = rgb_to_y(estimate), rgb_to_y(reference)
    if shave:
        y_est, y_ref = y_est[shave:-shave, shave:-shave], y_ref[shave:-shave, shave:-shave]
    return psnr(y_est, y_ref)


def noise_kept(noise: np.ndarray, error: np.ndarray) -> tuple[float, float]:
    """rho = <n, e> / <n, n>: the share of the noise n that a restoration's error e = x_hat - x kept
    (positive for anything restored from that noisy image: sigma^2 rho is its mean divergence,
    Stein's lemma), and rho's standard error were e independent of n.

    >>> rng = np.random.default_rng(0)
    >>> n = rng.normal(size=100_000)
    >>> rho, spread = noise_kept(n, 0.1 * n + rng.normal(size=n.size))
    >>> round(rho, 1), spread < 0.01
    (0.1, True)
    """
    noise, error = (np.asarray(a, dtype=np.float64).ravel() for a in (noise, error))
    energy = float(noise @ noise)
    return float(noise @ error) / energy, float(np.sqrt(np.sum(noise**2 * error**2))) / energy
