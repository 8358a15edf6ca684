"""The analog twin of a converted network: the same weights, every spiking layer replaced by its rate
(ANN) counterpart, so that layer ``j`` of the twin computes the ANN activation in *rate units*
``a_j / lambda_j`` (clipped ReLU ``clamp(x / V_th, 0, S^max)``). It needs no mapping back to the user's
ANN and is exact by construction (a test compares it with the unquantized ANN). Each spiking module's twin
comes from the conversion rule that made it (:meth:`spikeconv.convert.Rule.analog`)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..convert import REGISTRY
from ..layers.replace import set_submodule
from ..neuron import AnalogNeuron


def analog_twin(snn: nn.Module, steps: int | None = None) -> nn.Module:
    """A copy of ``snn`` whose spiking layers are analog (see the module docstring); ``snn`` is unchanged.
    Integer layers (``weight_bits``) become float layers with the same weights: the twin's activations are
    rates, not integer spikes.

    ``steps``: the neurons compute the quantized rate of an ideal ``steps``-step run (see
    :class:`AnalogNeuron`): for a QReLU network with ``P = steps * S^max`` this is the quantized ANN.
    """
    twin = copy.deepcopy(snn)
    for name, module in list(twin.named_modules()):
        rule = REGISTRY.for_spiking(module)
        new = rule.analog(module, steps) if rule is not None else None
        if new is not None:
            set_submodule(twin, name, new)
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
