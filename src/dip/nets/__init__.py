"""Prior networks: untrained ConvNets whose structure is the image prior.

Each network is described by a frozen "spec" (plain data) with `build(in_ch, out_ch)`, `stride`
(what the input size must be a multiple of), `min_size` (smallest input side) and `describe()`.
"""

from .layers import count_parameters
from .resnet import ResNet, ResNetSpec
from .skip import Skip, SkipSpec
from .unet import UNet, UNetSpec

NetSpec = SkipSpec | UNetSpec | ResNetSpec

__all__ = ["NetSpec", "ResNet", "ResNetSpec", "Skip", "SkipSpec", "UNet", "UNetSpec", "count_parameters"]
