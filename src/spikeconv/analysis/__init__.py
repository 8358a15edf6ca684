"""Diagnostics: per-layer recording, analog twin, error decomposition, agreement with the quantized ANN,
operation counts, anytime readout, and the offset calibration built on them.
(Figures live in :mod:`spikeconv.analysis.figures`, the only module that imports matplotlib.)"""

from .agreement import layer_agreement, prediction_agreement
from .anytime import accuracy_per_step, early_exit
from .calibrate import calibrate_offsets, layer_rate_errors
from .decompose import PARTS, LayerErrors, decompose, decompose_layer, pearson, rate_correlation
from .operations import EnergyTable, OperationCounter, ann_macs, count_operations, energy_summary, fanout_events
from .recording import LayerRecord, Recording, record
from .twin import AnalogNeuron, analog_twin, twin_currents

__all__ = [
    "PARTS",
    "AnalogNeuron",
    "EnergyTable",
    "LayerErrors",
    "LayerRecord",
    "OperationCounter",
    "Recording",
    "accuracy_per_step",
    "analog_twin",
    "calibrate_offsets",
    "ann_macs",
    "count_operations",
    "decompose",
    "decompose_layer",
    "early_exit",
    "energy_summary",
    "fanout_events",
    "layer_agreement",
    "layer_rate_errors",
    "pearson",
    "prediction_agreement",
    "rate_correlation",
    "record",
    "twin_currents",
]
