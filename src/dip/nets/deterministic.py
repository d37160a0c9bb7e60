"""Same layers, reproducible gradients on CUDA.

The backward passes of reflection padding and of 2x up-sampling accumulate with atomic adds on
CUDA, so torch refuses them under `torch.use_deterministic_algorithms(True)`. Written with
slices, flips, concatenation and weighted sums instead, their gradients are plain copies and
sums: the same numbers (up to rounding), computed the same way every run. They are swapped in
only when a deterministic run is asked for; the native layers are faster.
"""

from __future__ import annotations

import torch
from torch import nn


class FlipReflectionPad2d(nn.Module):
    """`nn.ReflectionPad2d(margin)` built from flipped slices."""

    def __init__(self, margin: int):
        super().__init__()
        self.margin = margin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.margin
        x = torch.cat([x[..., 1 : m + 1].flip(-1), x, x[..., -m - 1 : -1].flip(-1)], dim=-1)
        return torch.cat([x[..., 1 : m + 1, :].flip(-2), x, x[..., -m - 1 : -1, :].flip(-2)], dim=-2)


def _interleave(even: torch.Tensor, odd: torch.Tensor, dim: int) -> torch.Tensor:
    """[e0, o0, e1, o1, ...] along `dim`."""
    stacked = torch.stack([even, odd], dim=dim + 1 if dim >= 0 else dim)
    shape = list(even.shape)
    shape[dim] *= 2
    return stacked.reshape(shape)


def _bilinear_x2(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Bilinear 2x along `dim` (align_corners=False): output 2i sits at input i - 1/4, 2i+1 at
    i + 1/4; the border repeats."""
    n = x.shape[dim]
    previous = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim=dim)
    following = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim=dim)
    return _interleave(0.75 * x + 0.25 * previous, 0.75 * x + 0.25 * following, dim)


class SumUpsample2x(nn.Module):
    """`nn.Upsample(scale_factor=2, mode='nearest' | 'bilinear')` from sums and copies."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return _interleave(_interleave(x, x, -1), _interleave(x, x, -1), -2)
        return _bilinear_x2(_bilinear_x2(x, -1), -2)


def _replacement(module: nn.Module) -> nn.Module | None:
    if isinstance(module, nn.ReflectionPad2d) and len(set(module.padding)) == 1:
        return FlipReflectionPad2d(module.padding[0])
    if (
        isinstance(module, nn.Upsample)
        and module.scale_factor in (2, 2.0, (2.0, 2.0))
        and (module.mode == "nearest" or (module.mode == "bilinear" and not module.align_corners))
    ):
        return SumUpsample2x(module.mode)
    return None


def make_deterministic(net: nn.Module) -> nn.Module:
    """Swap, in place, every layer this module knows a reproducible twin of; returns `net`.
    The layers have no weights, so the state_dict is unchanged."""
    for name, child in net.named_children():
        twin = _replacement(child)
        if twin is not None:
            setattr(net, name, twin)
        else:
            make_deterministic(child)
    return net
