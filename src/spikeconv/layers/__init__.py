"""Small layers shared by the model builders and the converter (torch only)."""

from .basic import ChannelAffine, Concat, WAdd
from .grid import quantize_weight, weight_grid
from .integer import IntegerConv2d, IntegerLinear
from .onednn import integer_kernels_available
from .sparse import SkipSilentConv2d, SkipSilentLinear, active_span, computed_span, skip_silent_frames

__all__ = ["ChannelAffine", "Concat", "IntegerConv2d", "IntegerLinear", "SkipSilentConv2d", "SkipSilentLinear", "WAdd",
           "active_span", "computed_span", "integer_kernels_available", "quantize_weight", "skip_silent_frames",
           "weight_grid"]
