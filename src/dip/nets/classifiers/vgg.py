"""VGG-16, convolutional part (torchvision layout: features.N)."""

from __future__ import annotations

import torch
from torch import nn

CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _layer_names() -> dict[str, int]:
    names, block, number, index = {}, 1, 1, 0
    for item in CONFIG:
        if item == "M":
            block, number = block + 1, 1
            index += 1
        else:
            names[f"conv{block}_{number}"] = index + 1  # the ReLU after the conv
            number += 1
            index += 2
    return names


class VGG16(nn.Module):
    layers = _layer_names()

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, layer: str = "conv5_3") -> torch.Tensor:
        return self.features[: self.layers[layer] + 1](x)
