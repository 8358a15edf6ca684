r"""Activations that become IF neurons: QReLU (learned bound), ReLU and clipped ReLUs (``Hardtanh(0, m)``,
ReLU6; bound from data, capped at ``m``).

A neuron with bound ``lambda`` (``lambda^b / S^max``) needs its current in units of ``lambda / V_th``: the
gain ``g = sigma_in * V_th / lambda`` is pushed back into the layer producing its current, and its spikes
carry the scale ``lambda``. In the SNN it is an :class:`~spikeconv.neuron.IFNeuron` (buffered with negative
spikes when ``signed``, multi-bit up to ``S^max``); a neuron ``d`` layers deep holds its membrane for
``(d - 1) * voltage_clamp`` steps (paper 004's voltage clamp). Its analog twin is
:class:`~spikeconv.neuron.AnalogNeuron`, ``clamp(x / V_th, 0, S^max)``.
"""

from __future__ import annotations

from torch import nn

from ...neuron import AnalogNeuron, IFNeuron, NeuronConfig
from ...quant import QReLU
from ..registry import REGISTRY, Role, Rule


#: the initial membrane of a plain (Q-less) ReLU's neuron, as a fraction of V_th, unless ConversionConfig.phi
#: says otherwise. Half the threshold centres the SNN's rounding of each rate (floor -> round): measured on two
#: plain-ReLU CIFAR-10 CNNs against phi = 0 at T = 8 (benchmarks/relu_latency.py, docs/results.md).
RELU_PHI = 0.5


class NeuronRule(Rule):
    """QReLU / ReLU / clipped ReLU -> :class:`~spikeconv.neuron.IFNeuron`."""

    role = Role.NEURON
    status = "converted"
    spiking_types = (IFNeuron,)

    def supports(self, module):
        if isinstance(module, nn.Hardtanh):  # only clipped ReLUs are activations an IF neuron represents
            return module.min_val == 0 and module.max_val > 0
        return True

    def propagate(self, scaler, node, ins):
        lam = scaler.bounds[node.index]
        producer = scaler.graph.nodes[node.inputs[0]]
        scaler.push_gain(producer, ins[0] * scaler.config.threshold / lam, node)
        scaler.depth[node.index] += 1
        detail = f"lambda={lam.item():.4g}" if lam.numel() == 1 else f"lambda per channel ({lam.numel()})"
        scaler.note(node, "converted", detail)
        return lam

    def keeps_spikes(self, node, spiking_inputs, config):
        return True

    def spiking(self, node, config, scaler):
        phi = config.phi if config.phi is not None else getattr(node.module, "phi", RELU_PHI)
        neuron = NeuronConfig(threshold=config.threshold, reset=config.reset, max_strength=config.max_strength,
                              signed=config.signed, phi=phi)
        return IFNeuron(neuron, clamp_steps=(scaler.depth[node.index] - 1) * config.voltage_clamp)

    def analog(self, module, steps):
        c = module.config
        return AnalogNeuron(c.threshold, c.max_strength, steps, c.phi)

    @staticmethod
    def learned_bound(module: nn.Module):
        """The bound learned in training (QReLU), or ``None`` when it must come from data."""
        if isinstance(module, QReLU):
            return module.bound.detach().clamp(min=QReLU.min_bound).float().cpu()
        return None

    @staticmethod
    def cap(module: nn.Module) -> float:
        """The largest bound the data may set (the clip value of a clipped ReLU)."""
        return float(module.max_val) if isinstance(module, nn.Hardtanh) else float("inf")


NEURON = NeuronRule()
for _kind in (QReLU, nn.ReLU, nn.Hardtanh):
    REGISTRY.add(_kind, NEURON)
