"""The paper's encoder-decoder with skip connections ("skip" in the reference code).

Level i, from the outside in: a skip branch (1x1 conv) beside a deeper branch that halves the
size, convolves twice, recurses into level i+1 and upsamples back; the two are concatenated,
normalised and convolved into `channels_up[i]` channels. A final 1x1 conv and a sigmoid map to
the image. Parameter counts match the reference implementation exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .layers import NORM_INITS, UPSAMPLING, center_crop_to, conv, conv_bn_act


def _per_level(value, levels: int, name: str) -> tuple:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * levels
    if len(values) != levels:
        raise ValueError(f"{name} needs {levels} entries (one per level), got {len(values)}")
    return values


def cat_groups(tensors: list[torch.Tensor], groups: int = 1) -> torch.Tensor:
    """Concatenate channels group by group: with `groups` independent networks fused into one,
    each tensor holds its groups' channels one after another, and so must the result."""
    if groups == 1:
        return torch.cat(tensors, 1)
    n, _, height, width = tensors[0].shape
    parts = [t.reshape(n, groups, t.shape[1] // groups, height, width) for t in tensors]
    return torch.cat(parts, 2).reshape(n, -1, height, width)


class SkipLevel(nn.Module):
    """One scale of the skip net; `inner` is the next, coarser level (None at the bottom)."""

    def __init__(
        self,
        in_ch: int,
        down: int,
        up: int,
        skip: int,
        inner_up: int | None,
        inner: SkipLevel | None,
        *,
        k_down: int,
        k_up: int,
        k_skip: int,
        upsample: str,
        downsample: str,
        pad: str,
        act: str,
        need1x1_up: bool,
    ):
        super().__init__()
        self.groups = 1  # independent networks fused into this one (`dip.nets.fused`)
        self.skip = conv_bn_act(in_ch, skip, k_skip, pad=pad, act=act) if skip else None
        deeper: list[nn.Module] = [
            conv_bn_act(in_ch, down, k_down, 2, pad=pad, downsample=downsample, act=act),
            conv_bn_act(down, down, k_down, pad=pad, act=act),
        ]
        if inner is not None:
            deeper.append(inner)
        align = {"bilinear": False, "bilinear-corners": True}.get(upsample)
        mode = upsample if align is None else "bilinear"
        deeper.append(nn.Upsample(scale_factor=2, mode=mode, align_corners=align))
        self.deeper = nn.Sequential(*deeper)
        merged = skip + (inner_up if inner is not None else down)
        merge: list[nn.Module] = [nn.BatchNorm2d(merged), conv_bn_act(merged, up, k_up, pad=pad, act=act)]
        if need1x1_up:
            merge.append(conv_bn_act(up, up, 1, pad=pad, act=act))
        self.merge = nn.Sequential(*merge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.deeper(x)
        if self.skip is not None:
            side = self.skip(x)
            height = min(deep.shape[2], side.shape[2])
            width = min(deep.shape[3], side.shape[3])
            deep = cat_groups([center_crop_to(side, height, width), center_crop_to(deep, height, width)], self.groups)
        return self.merge(deep)


class Skip(nn.Module):
    """Encoder-decoder prior network; its input size must be a multiple of `stride`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels_down: Sequence[int],
        channels_up: Sequence[int],
        channels_skip: Sequence[int],
        *,
        filter_down=3,
        filter_up=3,
        filter_skip: int = 1,
        upsample="bilinear",
        downsample="stride",
        pad: str = "reflection",
        act: str = "leaky_relu",
        need1x1_up: bool = True,
        sigmoid: bool = True,
        norm_init: str = "ones",
    ):
        super().__init__()
        if norm_init not in NORM_INITS:
            raise ValueError(f"norm_init must be one of {NORM_INITS}, got {norm_init!r}")
        levels = len(channels_down)
        if not levels or len(channels_up) != levels or len(channels_skip) != levels:
            raise ValueError("channels_down, channels_up and channels_skip need the same, non-zero length")
        k_down = _per_level(filter_down, levels, "filter_down")
        k_up = _per_level(filter_up, levels, "filter_up")
        ups = _per_level(upsample, levels, "upsample")
        downs = _per_level(downsample, levels, "downsample")
        for mode in ups:
            if mode not in UPSAMPLING:
                raise ValueError(f"upsample must be one of {UPSAMPLING}, got {mode!r}")
        inputs = [in_channels, *channels_down[:-1]]
        inner: SkipLevel | None = None
        for i in reversed(range(levels)):
            inner = SkipLevel(
                inputs[i],
                channels_down[i],
                channels_up[i],
                channels_skip[i],
                channels_up[i + 1] if i + 1 < levels else None,
                inner,
                k_down=k_down[i],
                k_up=k_up[i],
                k_skip=filter_skip,
                upsample=ups[i],
                downsample=downs[i],
                pad=pad,
                act=act,
                need1x1_up=need1x1_up,
            )
        self.body = inner
        self.head = nn.Sequential(conv(channels_up[0], out_channels, 1, pad=pad))
        if sigmoid:
            self.head.append(nn.Sigmoid())
        self.stride = 2**levels
        if norm_init == "uniform":
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    nn.init.uniform_(module.weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))


@dataclass(frozen=True)
class SkipSpec:
    """Plain-data description of a skip net; `build` makes it for given in/out channels."""

    channels_down: tuple[int, ...] = (128,) * 5
    channels_up: tuple[int, ...] = (128,) * 5
    channels_skip: tuple[int, ...] = (4,) * 5
    filter_down: int | tuple[int, ...] = 3
    filter_up: int | tuple[int, ...] = 3
    filter_skip: int = 1
    upsample: str | tuple[str, ...] = "bilinear"
    downsample: str | tuple[str, ...] = "stride"
    pad: str = "reflection"
    need1x1_up: bool = True
    norm_init: str = "ones"  # BatchNorm's scale at the start (`NORM_INITS`)
    kind: str = "skip"

    @property
    def stride(self) -> int:
        return 2 ** len(self.channels_down)

    @property
    def min_size(self) -> int:
        """Smallest input side: the coarsest map must hold more than one value (BatchNorm) and
        be wider than its reflection padding."""
        widest = max(_per_level(self.filter_down, len(self.channels_down), "filter_down"))
        return self.stride * max(2, widest // 2 + 1)

    def build(self, in_channels: int, out_channels: int) -> Skip:
        return Skip(
            in_channels,
            out_channels,
            self.channels_down,
            self.channels_up,
            self.channels_skip,
            filter_down=self.filter_down,
            filter_up=self.filter_up,
            filter_skip=self.filter_skip,
            upsample=self.upsample,
            downsample=self.downsample,
            pad=self.pad,
            need1x1_up=self.need1x1_up,
            norm_init=self.norm_init,
        )

    def describe(self) -> str:
        def short(values) -> str:
            if isinstance(values, tuple) and len(set(values)) == 1:
                return f"{values[0]}x{len(values)}"
            return "/".join(map(str, values)) if isinstance(values, tuple) else str(values)

        return (
            f"skip(down {short(self.channels_down)}, up {short(self.channels_up)}, "
            f"skip {short(self.channels_skip)}, k {short(self.filter_down)}/{short(self.filter_up)}, "
            f"{short(self.upsample)}, {short(self.downsample)}, {self.pad}"
            f"{'' if self.need1x1_up else ', no 1x1 up'}"
            f"{'' if self.norm_init == 'ones' else f', BatchNorm scale {self.norm_init}'})"
        )
