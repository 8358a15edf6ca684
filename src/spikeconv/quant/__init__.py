"""QReLU (paper 000, Eq. 1), bound calibration from data, and optimizer parameter groups."""

from .calibrate import calibrate_bounds_, param_groups, percentile
from .qrelu import QReLU, ste_floor

__all__ = ["QReLU", "calibrate_bounds_", "param_groups", "percentile", "ste_floor"]
