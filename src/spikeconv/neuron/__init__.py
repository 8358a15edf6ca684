"""Integrate-and-fire neurons: pure step/scan functions over typed state, and thin modules."""

from .analog import AnalogNeuron, ideal_count
from .config import IFState, NeuronConfig, Reset, check_max_strength, compact_buffer_fits, if_init
from .functional import (
    adjust_strength,
    compiled_scan_kernel,
    if_scan_,
    if_scan,
    if_scan_constant,
    if_step,
    true_divide,
)
from .modules import IFNeuron, NeuronRun, is_constant, SpikingMaxPool2d, SpikingModule, SpikingSoftmax
from .warmup import warmed_up_membrane

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
    "ideal_count",
    "if_init",
    "if_scan_",
    "if_scan",
    "if_scan_constant",
    "if_step",
    "is_constant",
    "true_divide",
    "warmed_up_membrane",
]
