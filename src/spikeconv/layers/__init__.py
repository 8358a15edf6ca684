"""Small layers shared by the model builders and the converter (torch only)."""

from .basic import ChannelAffine, Concat, WAdd

__all__ = ["ChannelAffine", "Concat", "WAdd"]
