"""Pretrained ImageNet classifiers, defined here (no torchvision), with torchvision's layer
names so that torchvision-format state dicts load directly. They serve as the operator A for
feature inversion and activation maximisation."""

from __future__ import annotations

import torch
from torch import nn

from .alexnet import AlexNet
from .mobilenet import MobileNetV2
from .vgg import VGG16

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHITECTURES: dict[str, type[nn.Module]] = {"alexnet": AlexNet, "vgg16": VGG16, "mobilenet_v2": MobileNetV2}


def normalize(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB (N, 3, H, W) -> the ImageNet-normalised input torchvision models expect."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return (image - mean) / std


__all__ = ["ARCHITECTURES", "AlexNet", "MobileNetV2", "VGG16", "normalize"]
