"""K independent networks of one architecture fused into one network that runs them all in one
pass: every convolution becomes a grouped convolution (group k holds network k's weights),
every BatchNorm covers the K networks' channels side by side (its statistics are per channel,
hence per network), and concatenations keep each network's channels together. Input and output
hold the K networks' channels one after another: (N, K * C, H, W).

>>> import torch
>>> from dip.nets import SkipSpec
>>> spec = SkipSpec(channels_down=(8,) * 2, channels_up=(8,) * 2, channels_skip=(4,) * 2)
>>> nets = [spec.build(4, 3) for _ in range(3)]
>>> z = torch.rand(3, 1, 4, 16, 16)
>>> fused = fuse(nets)
>>> together = fused(z.permute(1, 0, 2, 3, 4).reshape(1, 12, 16, 16)).reshape(3, 3, 16, 16)
>>> alone = torch.cat([net(zk) for net, zk in zip(nets, z)])
>>> bool(torch.allclose(together, alone, atol=1e-5))
True
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .skip import SkipLevel


def fuse(nets: list[nn.Module]) -> nn.Module:
    """One network computing all of `nets` (same architecture) at once; weights are copied."""
    return combine([(net, 1, [0]) for net in nets])


def pick(tensor: torch.Tensor, k: int, keep: torch.Tensor) -> torch.Tensor:
    """The rows of the members `keep` (indices, in order) of a tensor holding k members' rows one
    member after another along its first dimension."""
    return tensor.unflatten(0, (k, -1))[keep].flatten(0, 1)


def combine(parts: Sequence[tuple[nn.Module, int, Sequence[int]]]) -> nn.Module:
    """One network of the members `keep` of each part `(network, k, keep)` (a network fused from
    k, or a lone one with k = 1), in order: weights and BatchNorm statistics as they are now
    (copied). A batch whose fits have partly stopped runs on in the members still fitting, with
    waiting fits joined in."""
    total = sum(len(keep) for _, _, keep in parts)
    first_k = parts[0][1]
    indices = [torch.as_tensor(list(keep), dtype=torch.long) for _, _, keep in parts]

    def rows(tensors: list[torch.Tensor]) -> torch.Tensor:
        picked = [pick(t.detach(), k, index.to(t.device)) for t, (_, k, _), index in zip(tensors, parts, indices)]
        return torch.cat(picked)

    return _rebuild([network for network, _, _ in parts], lambda width: width // first_k * total, rows)


def _rebuild(
    sources: list[nn.Module],
    width: Callable[[int], int],
    rows: Callable[[list[torch.Tensor]], torch.Tensor],
) -> nn.Module:
    """A network shaped like `sources[0]` with its channel counts and groups mapped by `width`,
    each weight and statistic made by `rows` from the sources' tensors of that name."""
    first = sources[0]
    if isinstance(first, nn.Conv2d):
        conv = nn.Conv2d(
            width(first.in_channels),
            width(first.out_channels),
            first.kernel_size,
            first.stride,
            first.padding,
            first.dilation,
            width(first.groups),
            first.bias is not None,
            first.padding_mode,
            device=first.weight.device,
            dtype=first.weight.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(rows([source.weight for source in sources]))
            if first.bias is not None:
                conv.bias.copy_(rows([source.bias for source in sources]))
        return conv
    if isinstance(first, nn.BatchNorm2d):
        norm = nn.BatchNorm2d(
            width(first.num_features),
            first.eps,
            first.momentum,
            first.affine,
            first.track_running_stats,
            device=first.weight.device if first.affine else None,
            dtype=first.weight.dtype if first.affine else None,
        )
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                if getattr(first, name) is not None:
                    getattr(norm, name).copy_(rows([getattr(source, name) for source in sources]))
            if first.num_batches_tracked is not None:
                norm.num_batches_tracked.copy_(first.num_batches_tracked)
        return norm
    if not first._modules:
        if any(True for _ in first.parameters()):
            raise TypeError(f"cannot fuse {first.__class__.__name__}: it has weights of its own")
        return copy.deepcopy(first)
    rebuilt = copy.copy(first)  # a container: its attributes, with rebuilt children
    rebuilt._parameters, rebuilt._buffers = {}, {}
    rebuilt._modules = {
        name: None if child is None else _rebuild([source._modules[name] for source in sources], width, rows)
        for name, child in first._modules.items()
    }
    if isinstance(rebuilt, SkipLevel):
        rebuilt.groups = width(first.groups)
    return rebuilt
