"""Degradation operators A: what happened to the image. Each maps the network's output
(1, C, H, W) to the space of the observation y, differentiably."""

from __future__ import annotations

import math
from collections.abc import Callable

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
    """A = Lanczos blur then keep every `factor`-th pixel: the paper's SR operator (`support` 2,
    borders replicated, as the reference code), or with `support` 3 and `border="renormalise"`
    exactly what Pillow's `resize(..., LANCZOS)` does at an integer factor (the kernel cut at the
    border and scaled back to sum 1), which is how the paper's and most low-resolution images
    were made.

    Applied as two 1-D depthwise convolutions (the 2-D kernel is their outer product); an
    (H, W) image maps to (H/f, W/f).

    >>> x = torch.rand(1, 3, 64, 48)
    >>> Downsampler(8, 3, "renormalise")(x).shape
    torch.Size([1, 3, 8, 6])
    """

    BORDERS = ("replicate", "renormalise")

    def __init__(self, factor: int, support: int = 2, border: str = "replicate"):
        super().__init__()
        if factor < 1:
            raise ValueError("factor must be a positive integer")
        if border not in self.BORDERS:
            raise ValueError(f"border must be one of {', '.join(self.BORDERS)}, got {border!r}")
        self.factor, self.border = factor, border
        kernel = torch.from_numpy(lanczos_kernel_1d(factor, support)).float()
        self.register_buffer("kernel", kernel)
        self.pad = (len(kernel) - factor) // 2

    def _along(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """Blur and subsample along width (dim 3) or height (dim 2)."""
        across = dim == 3
        shape = (1, 1, 1, -1) if across else (1, 1, -1, 1)
        stride = (1, self.factor) if across else (self.factor, 1)
        pad = (self.pad, self.pad, 0, 0) if across else (0, 0, self.pad, self.pad)
        weight = self.kernel.to(x.dtype).view(*shape)
        depthwise = weight.expand(x.shape[1], *shape[1:])
        if self.border == "replicate":
            return nn.functional.conv2d(
                nn.functional.pad(x, pad, mode="replicate"), depthwise, stride=stride, groups=x.shape[1]
            )
        blurred = nn.functional.conv2d(nn.functional.pad(x, pad), depthwise, stride=stride, groups=x.shape[1])
        ones = x.new_ones((1, 1, 1, x.shape[3]) if across else (1, 1, x.shape[2], 1))
        return blurred / nn.functional.conv2d(nn.functional.pad(ones, pad), weight, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._along(self._along(x, 3), 2)


def consistent(
    operator: nn.Module, image: torch.Tensor, target: torch.Tensor, rounds: int = 3, iterations: int = 30
) -> torch.Tensor:
    """The image moved towards those that a linear `operator` A maps exactly onto `target` y,
    and into [0, 1]: alternately the nearest x with A x = y (x + Aᵀ (A Aᵀ)⁻¹ (y - A x), solved by
    conjugate gradients) and clipping, `rounds` times. Both sets hold the true image when A made y
    without noise, and a projection onto a convex set that holds it never moves away from it, so
    neither step can make the image worse (but for y's 8-bit rounding).

    >>> a = Downsampler(4, 3, "renormalise")
    >>> x, guess = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    >>> moved = consistent(a, guess, a(x))
    >>> bool((moved - x).norm() < (guess - x).norm())
    True
    """
    image = image.detach()
    pullback = torch.func.vjp(operator, torch.zeros_like(image))[1]  # A is linear: one Aᵀ serves every step

    def transpose(value: torch.Tensor) -> torch.Tensor:
        return pullback(value)[0]

    for _ in range(rounds):
        image = image + transpose(_solve_gram(operator, transpose, target - operator(image), iterations))
        image = image.clamp(0, 1)
    return image


def _solve_gram(operator: nn.Module, transpose: Callable, residual: torch.Tensor, iterations: int) -> torch.Tensor:
    """v with A Aᵀ v = r, by conjugate gradients (A Aᵀ is symmetric, positive definite for an A
    that keeps every observed value's information); `transpose` applies Aᵀ."""
    solution, left, direction = torch.zeros_like(residual), residual, residual
    size = (left * left).sum()
    for _ in range(iterations):
        if size <= 1e-20 * residual.numel():
            break
        applied = operator(transpose(direction))
        step = size / (direction * applied).sum()
        solution, left = solution + step * direction, left - step * applied
        size, previous = (left * left).sum(), size
        direction = left + (size / previous) * direction
    return solution


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
