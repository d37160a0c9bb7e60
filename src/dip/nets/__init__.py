"""Prior networks: untrained ConvNets whose structure is the image prior."""
from .layers import count_parameters
from .skip import Skip, SkipSpec

__all__ = ["Skip", "SkipSpec", "count_parameters"]
