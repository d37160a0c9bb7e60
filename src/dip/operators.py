"""Degradation operators A: what happened to the image. Each maps the network's output
(1, C, H, W) to the space of the observation y, differentiably."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class Identity(nn.Module):
    """A = I: denoising and JPEG artifact removal fit the observation itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ClippedMean(nn.Module):
    """A(x) = E[clip(x + n, 0, 1)] for Gaussian n of `sigma` (0-1 scale), elementwise: what a noisy
    photo clipped to [0, 1] shows on average. Fitting it instead of x keeps a saturated sky or a
    deep shadow where it was, not at the clipped noise's mean (a white 1.0 reads as about 0.96
    at sigma 25).

    >>> import torch
    >>> [round(v, 4) for v in ClippedMean(0.1)(torch.tensor([0.0, 0.5, 1.0])).tolist()]
    [0.0399, 0.5, 0.9601]
    """

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.sigma
        low, high = -x / s, (1 - x) / s  # the clip's bounds for n / s
        cdf_low, cdf_high = (0.5 * (1 + torch.erf(t / math.sqrt(2))) for t in (low, high))
        pdf_low, pdf_high = (torch.exp(-(t**2) / 2) / math.sqrt(2 * math.pi) for t in (low, high))
        return (1 - cdf_high) + x * (cdf_high - cdf_low) + s * (pdf_low - pdf_high)


class Mask(nn.Module):
    """A = elementwise mask (1 = known pixel, 0 = hole): the loss only sees known pixels."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def lanczos_kernel_1d(factor: int, support: int = 2, phase: float = 0.5) -> np.ndarray:
    """The reference's separable Lanczos downsampling kernel (one axis), normalised to sum 1.

    Width 2 * support * factor taps when phase is 0.5 (the filter sits between pixels),
    as `get_kernel(factor, 'lanczos', 0.5, 2 * support * factor + 1, support)` in the paper's code.
    """
    width = 2 * support * factor + 1
    taps = width - 1 if phase == 0.5 else width
    center = (width + 1) / 2
    offsets = np.arange(1, taps + 1) + (0.5 if phase == 0.5 else 0.0)
    distance = np.abs(offsets - center) / factor
    values = np.ones_like(distance)
    nonzero = distance != 0
    d = distance[nonzero]
    values[nonzero] = support * np.sin(np.pi * d) * np.sin(np.pi * d / support) / (np.pi**2 * d * d)
    return values / values.sum()


class Downsampler(nn.Module):
    """A = Lanczos-2 blur then keep every `factor`-th pixel (the paper's SR operator).

    Border handled by replicating edge pixels so that an (H, W) image maps to (H/f, W/f).
    Applied as two 1-D depthwise convolutions (the 2-D kernel is their outer product).
    """

    def __init__(self, factor: int, support: int = 2):
        super().__init__()
        if factor < 1:
            raise ValueError("factor must be a positive integer")
        self.factor = factor
        kernel = torch.from_numpy(lanczos_kernel_1d(factor, support)).float()
        self.register_buffer("kernel", kernel)
        self.pad = (len(kernel) - factor) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = nn.functional.pad(x, (self.pad,) * 4, mode="replicate")
        k = self.kernel.to(x.dtype)
        x = nn.functional.conv2d(
            x, k.view(1, 1, 1, -1).expand(channels, 1, 1, -1), stride=(1, self.factor), groups=channels
        )
        return nn.functional.conv2d(
            x, k.view(1, 1, -1, 1).expand(channels, 1, -1, 1), stride=(self.factor, 1), groups=channels
        )


class Blur(nn.Module):
    """A = convolution with a known blur kernel (normalised to sum 1), same-size output,
    border replicated."""

    def __init__(self, kernel: np.ndarray | torch.Tensor):
        super().__init__()
        kernel = torch.as_tensor(np.asarray(kernel, dtype=np.float32))
        if kernel.ndim != 2 or kernel.sum() <= 0 or (kernel < 0).any():
            raise ValueError("a blur kernel must be a 2-D array of non-negative values with a positive sum")
        self.register_buffer("kernel", kernel / kernel.sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel.shape
        x = nn.functional.pad(x, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), mode="replicate")
        # conv2d correlates: flip so this is a true convolution
        weight = self.kernel.flip(0, 1).to(x.dtype).expand(x.shape[1], 1, kh, kw)
        return nn.functional.conv2d(x, weight, groups=x.shape[1])


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """2-D Gaussian of standard deviation `sigma` pixels, truncated at 3 sigma."""
    radius = int(np.ceil(3 * sigma)) if radius is None else radius
    axis = np.arange(-radius, radius + 1)
    g = np.exp(-(axis**2) / (2 * sigma**2))
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def box_kernel(size: int) -> np.ndarray:
    return np.full((size, size), 1.0 / (size * size))


class Features(nn.Module):
    """A = a pretrained classifier's activations at `layer`, seen on the centre `crop` x `crop`
    of the image (ImageNet-normalised): feature inversion matches these."""

    def __init__(self, classifier: nn.Module, layer: str, crop: int = 224):
        super().__init__()
        if layer not in classifier.layers:
            raise ValueError(f"unknown layer {layer!r}; this network has: {', '.join(classifier.layers)}")
        self.classifier, self.layer, self.crop = classifier, layer, crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .nets.classifiers import normalize
        from .nets.layers import center_crop_to

        if x.shape[2] > self.crop or x.shape[3] > self.crop:
            x = center_crop_to(x, min(self.crop, x.shape[2]), min(self.crop, x.shape[3]))
        return self.classifier(normalize(x), self.layer)


class Activation(Features):
    """A = the mean activation of one channel (a conv layer) or one class logit: activation
    maximisation makes it as large as possible."""

    def __init__(self, classifier: nn.Module, layer: str, unit: int, crop: int = 224):
        super().__init__(classifier, layer, crop)
        self.unit = unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = super().forward(x)
        if not 0 <= self.unit < features.shape[1]:
            raise ValueError(f"unit {self.unit} out of range: layer {self.layer} has {features.shape[1]} channels")
        return features[:, self.unit].mean().reshape(1)
