"""Building blocks shared by the prior networks."""

from __future__ import annotations

import torch
from torch import nn

PADDING = ("reflection", "zero")
DOWNSAMPLING = ("stride", "avg", "max")
# "bilinear-corners": bilinear with aligned corners, what PyTorch before 0.4 did for "bilinear"
# (the reference code was written for 0.3)
UPSAMPLING = ("nearest", "bilinear", "bilinear-corners")
NORM_INITS = ("ones", "uniform")  # BatchNorm's scale at the start; "uniform": U(0, 1), PyTorch before 1.2


def conv(
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int = 1,
    *,
    pad: str = "reflection",
    downsample: str = "stride",
    bias: bool = True,
) -> nn.Sequential:
    """Same-size convolution ('reflection' or 'zero' padding); with stride 2 it halves the size,
    either by the convolution's own stride or by a pooling layer after it."""
    if pad not in PADDING:
        raise ValueError(f"pad must be one of {PADDING}, got {pad!r}")
    if downsample not in DOWNSAMPLING:
        raise ValueError(f"downsample must be one of {DOWNSAMPLING}, got {downsample!r}")
    layers: list[nn.Module] = []
    margin = (kernel - 1) // 2
    if pad == "reflection" and margin:
        layers.append(nn.ReflectionPad2d(margin))
    conv_stride = stride if downsample == "stride" else 1
    layers.append(nn.Conv2d(in_ch, out_ch, kernel, conv_stride, padding=margin if pad == "zero" else 0, bias=bias))
    if stride != 1 and downsample != "stride":
        pool = nn.AvgPool2d if downsample == "avg" else nn.MaxPool2d
        layers.append(pool(stride, stride))
    return nn.Sequential(*layers)


def activation(name: str = "leaky_relu") -> nn.Module:
    """The paper's LeakyReLU(0.2), or a few alternatives."""
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "elu":
        return nn.ELU(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def conv_bn_act(
    in_ch: int,
    out_ch: int,
    kernel: int,
    stride: int = 1,
    *,
    pad: str = "reflection",
    downsample: str = "stride",
    act: str = "leaky_relu",
) -> nn.Sequential:
    """conv -> BatchNorm -> activation, the unit every layer of the skip net is made of."""
    return nn.Sequential(
        conv(in_ch, out_ch, kernel, stride, pad=pad, downsample=downsample), nn.BatchNorm2d(out_ch), activation(act)
    )


def center_crop_to(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop the middle (height, width) of an NCHW tensor."""
    top = (tensor.shape[2] - height) // 2
    left = (tensor.shape[3] - width) // 2
    return tensor[:, :, top : top + height, left : left + width]


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
