"""AlexNet, convolutional part (torchvision layout: features.0/3/6/8/10 are conv1-conv5)."""

from __future__ import annotations

import torch
from torch import nn


class AlexNet(nn.Module):
    layers = {"conv1": 1, "conv2": 4, "conv3": 7, "conv4": 9, "conv5": 11}  # index after each ReLU

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=False),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=False),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(3, 2),
        )

    def forward(self, x: torch.Tensor, layer: str = "conv5") -> torch.Tensor:
        return self.features[: self.layers[layer] + 1](x)
