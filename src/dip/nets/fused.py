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

import torch
from torch import nn

from .skip import SkipLevel


def _cat(tensors: list[torch.Tensor]) -> nn.Parameter | torch.Tensor:
    return torch.cat([t.detach() for t in tensors])


def fuse(nets: list[nn.Module]) -> nn.Module:
    """One network computing all of `nets` (same architecture) at once; weights are copied."""
    first = nets[0]
    groups = len(nets)
    if isinstance(first, nn.Conv2d):
        conv = nn.Conv2d(
            first.in_channels * groups,
            first.out_channels * groups,
            first.kernel_size,
            first.stride,
            first.padding,
            first.dilation,
            first.groups * groups,
            first.bias is not None,
            first.padding_mode,
            device=first.weight.device,
            dtype=first.weight.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(_cat([net.weight for net in nets]))
            if first.bias is not None:
                conv.bias.copy_(_cat([net.bias for net in nets]))
        return conv
    if isinstance(first, nn.BatchNorm2d):
        norm = nn.BatchNorm2d(
            first.num_features * groups,
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
                    getattr(norm, name).copy_(_cat([getattr(net, name) for net in nets]))
        return norm
    if not first._modules:
        if any(True for _ in first.parameters()):
            raise TypeError(f"cannot fuse {first.__class__.__name__}: it has weights of its own")
        return copy.deepcopy(first)
    fused = copy.copy(first)  # a container: its attributes, with fused children
    fused._parameters, fused._buffers = {}, {}
    fused._modules = {
        name: None if child is None else fuse([net._modules[name] for net in nets])
        for name, child in first._modules.items()
    }
    if isinstance(fused, SkipLevel):
        fused.groups = first.groups * groups
    return fused
