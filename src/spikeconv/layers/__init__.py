"""Small layers shared by the model builders and the converter (torch only)."""

from .basic import ChannelAffine, Concat, WAdd
from .sparse import SkipSilentConv2d, SkipSilentLinear, active_span, computed_span, skip_silent_frames

__all__ = ["ChannelAffine", "Concat", "SkipSilentConv2d", "SkipSilentLinear", "WAdd", "active_span", "computed_span",
           "skip_silent_frames"]
