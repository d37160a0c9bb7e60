"""The ResNet the paper compares on large-hole inpainting (reference `models/resnet.py`):
full resolution throughout, residual blocks of two 3x3 convs with BatchNorm."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import activation, conv


class _Residual(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


def _block(channels: int, act: str) -> _Residual:
    return _Residual(
        nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(channels),
        activation(act),
        nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
        nn.BatchNorm2d(channels),
    )


class ResNet(nn.Sequential):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        blocks: int = 8,
        channels: int = 32,
        pad: str = "reflection",
        act: str = "leaky_relu",
    ):
        super().__init__(
            conv(in_channels, channels, 3, pad=pad),
            activation(act),
            *[_block(channels, act) for _ in range(blocks)],
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.BatchNorm2d(channels),
            conv(channels, out_channels, 3, pad=pad),
            nn.Sigmoid(),
        )
        self.stride = 1


@dataclass(frozen=True)
class ResNetSpec:
    blocks: int = 8
    channels: int = 32
    pad: str = "reflection"
    kind: str = "resnet"

    @property
    def stride(self) -> int:
        return 1

    @property
    def min_size(self) -> int:
        return 2

    def build(self, in_channels: int, out_channels: int) -> ResNet:
        return ResNet(in_channels, out_channels, self.blocks, self.channels, self.pad)

    def describe(self) -> str:
        return f"resnet({self.blocks} blocks x {self.channels} ch, {self.pad} padding)"
