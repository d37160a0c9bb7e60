"""The UNet the paper compares on large-hole inpainting (reference `models/unet.py`):
max-pool down, transposed-conv (or resize + conv) up, concatenated skips, optional norm."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import center_crop_to, conv

NORMS = {"instance": nn.InstanceNorm2d, "batch": nn.BatchNorm2d, "none": None}


def _double_conv(in_ch: int, out_ch: int, norm: str, pad: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in ((in_ch, out_ch), (out_ch, out_ch)):
        layers.append(conv(a, b, 3, pad=pad))
        if NORMS[norm] is not None:
            layers.append(NORMS[norm](b))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _Down(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, norm: str, pad: str):
        super().__init__(nn.MaxPool2d(2, 2), _double_conv(in_ch, out_ch, norm, pad))


class _Up(nn.Module):
    """Upsample the coarse input to `out_ch` channels, concatenate the skip, convolve twice (no norm)."""

    def __init__(self, in_ch: int, out_ch: int, mode: str, pad: str):
        super().__init__()
        if mode == "deconv":
            self.up = nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1)
        else:
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode=mode), conv(in_ch, out_ch, 3, pad=pad))
        self.conv = _double_conv(2 * out_ch, out_ch, "none", pad)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(coarse)
        return self.conv(torch.cat([up, center_crop_to(skip, up.shape[2], up.shape[3])], 1))


class UNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        feature_scale: int = 8,
        more_layers: int = 1,
        upsample: str = "deconv",
        pad: str = "zero",
        norm: str = "instance",
    ):
        super().__init__()
        filters = [f // feature_scale for f in (64, 128, 256, 512, 1024)]
        self.start = _double_conv(in_channels, filters[0], norm, pad)
        widths = filters + [filters[-1]] * more_layers
        self.downs = nn.ModuleList(_Down(a, b, norm, pad) for a, b in zip(widths[:-1], widths[1:]))
        self.ups = nn.ModuleList(_Up(a, b, upsample, pad) for a, b in zip(widths[1:], widths[:-1]))
        self.final = nn.Sequential(conv(filters[0], out_channels, 1, pad=pad), nn.Sigmoid())
        self.stride = 2 ** len(self.downs)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = [self.start(z)]
        for down in self.downs:
            features.append(down(features[-1]))
        x = features.pop()
        for up in reversed(self.ups):
            x = up(x, features.pop())
        return self.final(x)


@dataclass(frozen=True)
class UNetSpec:
    feature_scale: int = 8
    more_layers: int = 1
    upsample: str = "deconv"
    pad: str = "zero"
    norm: str = "instance"
    kind: str = "unet"

    @property
    def stride(self) -> int:
        return 2 ** (4 + self.more_layers)

    @property
    def min_size(self) -> int:
        return 2 * self.stride  # instance norm needs more than one value at the coarsest level

    def build(self, in_channels: int, out_channels: int) -> UNet:
        return UNet(in_channels, out_channels, self.feature_scale, self.more_layers, self.upsample, self.pad, self.norm)

    def describe(self) -> str:
        return (
            f"unet(filters /{self.feature_scale}, {4 + self.more_layers} levels, {self.upsample} up, "
            f"{self.norm} norm, {self.pad} padding)"
        )
