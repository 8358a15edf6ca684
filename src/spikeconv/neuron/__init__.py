"""Integrate-and-fire neurons: pure step/scan functions over typed state, and thin modules."""

from .functional import (
    IFState,
    NeuronConfig,
    Reset,
    adjust_strength,
    check_max_strength,
    compact_buffer_fits,
    compiled_scan_kernel,
    if_init,
    if_scan_,
    if_scan,
    if_scan_constant,
    if_step,
    true_divide,
)
from .analog import AnalogNeuron
from .modules import IFNeuron, is_constant, NeuronRun, SpikingMaxPool2d, SpikingModule, SpikingSoftmax

__all__ = [
    "AnalogNeuron",
    "IFNeuron",
    "IFState",
    "NeuronConfig",
    "NeuronRun",
    "SpikingMaxPool2d",
    "SpikingModule",
    "SpikingSoftmax",
    "Reset",
    "adjust_strength",
    "check_max_strength",
    "compact_buffer_fits",
    "compiled_scan_kernel",
    "if_init",
    "if_scan_",
    "if_scan",
    "if_scan_constant",
    "if_step",
    "is_constant",
    "true_divide",
]
