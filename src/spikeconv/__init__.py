"""spikeconv: convert trained ANNs into low-latency, hardware-faithful spiking networks.

Example:
    >>> import torch
    >>> from spikeconv import QReLU, convert, simulate
    >>> ann = torch.nn.Sequential(torch.nn.Linear(4, 8), QReLU(levels=4), torch.nn.Linear(8, 2)).eval()
    >>> snn = convert(ann, torch.zeros(1, 4))
    >>> simulate(snn, torch.rand(3, 4), timesteps=4).shape  # readout after every t
    torch.Size([4, 3, 2])
"""

from .convert import ConversionConfig, Role, Rule, SpikingNetwork, convert, register_rule
from .layers import Concat, WAdd
from .neuron import IFNeuron, NeuronConfig, Reset
from .quant import QReLU, calibrate_bounds_, param_groups
from .sim import Kernel, SimulationConfig, simulate

__version__ = "0.1.0"

__all__ = [
    "Concat",
    "ConversionConfig",
    "IFNeuron",
    "Kernel",
    "NeuronConfig",
    "QReLU",
    "Reset",
    "Role",
    "Rule",
    "SimulationConfig",
    "SpikingNetwork",
    "WAdd",
    "calibrate_bounds_",
    "convert",
    "param_groups",
    "register_rule",
    "simulate",
]
