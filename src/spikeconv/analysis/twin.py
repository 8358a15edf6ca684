"""The analog twin of a converted network: the same weights, every spiking layer replaced by its rate
(ANN) counterpart, so that layer ``j`` of the twin computes the ANN activation in *rate units*
``a_j / lambda_j`` (clipped ReLU ``clamp(x / V_th, 0, S^max)``). It needs no mapping back to the user's
ANN and is exact by construction (a test compares it with the unquantized ANN)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..layers.integer import IntegerConv2d, IntegerLinear
from ..neuron import IFNeuron, SpikingMaxPool2d, SpikingSoftmax, true_divide


class AnalogNeuron(nn.Module):
    """``clamp(x / V_th, 0, S^max)``: the rate an IF neuron approaches for a constant current ``x``.

    With ``steps = T``, the rate an ideal IF neuron reaches in ``T`` steps from ``V(0) = phi * V_th``
    for that constant current, ``clamp(floor(T * x / V_th + phi), 0, S^max * T) / T`` (Eq. 11; the
    quantized ANN's QReLU with ``P = T * S^max`` levels).
    """

    def __init__(self, threshold: float, max_strength: int, steps: int | None = None, phi: float = 0.0) -> None:
        super().__init__()
        self.threshold, self.max_strength, self.steps, self.phi = threshold, max_strength, steps, phi

    def forward(self, x: Tensor) -> Tensor:
        if self.steps is None:
            return true_divide(x, self.threshold).clamp(0, self.max_strength)
        counts = torch.floor(true_divide(x, self.threshold) * self.steps + self.phi)
        return true_divide(counts.clamp(0, self.max_strength * self.steps), self.steps)


def analog_twin(snn: nn.Module, steps: int | None = None) -> nn.Module:
    """A copy of ``snn`` whose spiking layers are analog (see the module docstring); ``snn`` is unchanged.
    Integer layers (``weight_bits``) become float layers with the same weights: the twin's activations are
    rates, not integer spikes.

    ``steps``: the neurons compute the quantized rate of an ideal ``steps``-step run (see
    :class:`AnalogNeuron`): for a QReLU network with ``P = steps * S^max`` this is the quantized ANN.
    """
    twin = copy.deepcopy(snn)
    for name, module in list(twin.named_modules()):
        if isinstance(module, IFNeuron):
            new: nn.Module = AnalogNeuron(module.config.threshold, module.config.max_strength, steps,
                                          module.config.phi)
        elif isinstance(module, SpikingMaxPool2d):
            new = nn.MaxPool2d(module.kernel_size, module.stride, module.padding, module.dilation,
                               ceil_mode=module.ceil_mode)
        elif isinstance(module, SpikingSoftmax):
            new = nn.Softmax(dim=module.dim)
        elif isinstance(module, (IntegerConv2d, IntegerLinear)):  # analog inputs are not integer spikes
            new = module.float_layer()
        else:
            continue
        parent_name, _, attr = name.rpartition(".")
        setattr(twin.get_submodule(parent_name) if parent_name else twin, attr, new)
    return twin


@torch.no_grad()
def twin_currents(twin: nn.Module, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """Run the twin once; return ``({neuron path: input current per step}, output)``."""
    currents: dict[str, Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=name: currents.__setitem__(n, i[0].detach().clone()))
               for name, m in twin.named_modules() if isinstance(m, AnalogNeuron)]
    try:
        out = twin(x)
    finally:
        for handle in handles:
            handle.remove()
    return currents, out
