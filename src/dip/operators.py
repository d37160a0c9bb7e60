"""Degradation operators A: what happened to the image. Each maps the network's output
(1, C, H, W) to the space of the observation y, differentiably."""
from __future__ import annotations

import torch
from torch import nn


class Identity(nn.Module):
    """A = I: denoising and JPEG artifact removal fit the observation itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Mask(nn.Module):
    """A = elementwise mask (1 = known pixel, 0 = hole): the loss only sees known pixels."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask
