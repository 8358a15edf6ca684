r"""Weight quantization for hardware (``ConversionConfig(weight_bits=b)``): every Conv/Linear weight goes on
a ``b``-bit per-output-channel grid, and the layers whose input is spikes compute in integers.

A weight layer is *spike-fed* when its input comes from an IF neuron through operations that keep
integer values: shape-only operations (identity, flatten, view, reshape, dropout in eval), spiking
max-pooling (its output is a count difference of integer counts) and concatenation of spike-fed
tensors. Average pooling and weight layers produce non-integers, so a layer behind them (and the first
layer, fed by the analog input) keeps float arithmetic on its quantized weight.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import WAdd
from ..layers.integer import IntegerConv2d, IntegerLinear
from ..neuron import IFNeuron
from ..neuron.config import INT8_MAX_STRENGTH
from .graph import Graph, Node
from .network import NodeReport
from .ops import WeightRule
from .registry import Role, Rule
from ..layers.replace import set_submodule
from .scaling import Scaler

def quantize_weights_(net: nn.Module, graph: Graph, scaler: Scaler, bits: int, *, report: list[NodeReport]) -> None:
    """Put every weight layer's weight on its ``bits``-bit grid, in place; spike-fed Conv2d and Linear layers
    become :class:`~spikeconv.layers.IntegerConv2d` / :class:`~spikeconv.layers.IntegerLinear` when their
    spikes fit the kernel's 8-bit input (``S^max <= 64``)."""
    config = scaler.config
    fits = config.max_strength <= INT8_MAX_STRENGTH
    for node in graph.nodes:
        rule = scaler.rules[node.index]
        if node.kind != "module" or not isinstance(rule, WeightRule):
            continue
        layer = net.get_submodule(node.target)
        spike_fed = bool(node.inputs) and scaler.spiking.get(node.inputs[0], False)  # set by the scaler's walk
        new, detail = rule.hardware_(layer, bits, spike_fed=fits and spike_fed, signed=config.signed,
                                     max_strength=config.max_strength, skip_silent=config.skip_silent)
        if new is not None:
            set_submodule(net, node.target, new)
        if detail:
            report.append(NodeReport(node.name, type(layer).__name__, "quantized", detail))


def _takes_int8(net: nn.Module, graph: Graph, rules: dict[int, Rule], node: Node) -> bool:
    """Whether every use of ``node``'s output, through shape-only operations, is an integer layer or a
    weighted add (which promotes int8 to float exactly) and none is an output of the model."""
    if node.index in graph.outputs or not node.users:
        return False
    for user in (graph.nodes[index] for index in node.users):
        reads_int8 = user.kind == "module" and isinstance(net.get_submodule(user.target),
                                                          (IntegerConv2d, IntegerLinear, WAdd))
        if not reads_int8 and not (rules[user.index].shape_only(user) and _takes_int8(net, graph, rules, user)):
            return False
    return True


def int8_spikes_(net: nn.Module, graph: Graph, rules: dict[int, Rule]) -> list[str]:
    """Let every IF neuron of ``net`` whose spikes go only to integer layers and weighted adds emit them as
    int8 (``IFNeuron.spike_dtype``): a quarter of the memory traffic, no conversion in the integer layers,
    the same values. Returns the module paths of those neurons."""
    changed = []
    for node in graph.nodes:
        if rules[node.index].role is not Role.NEURON or node.kind != "module":
            continue
        neuron = net.get_submodule(node.target)
        if (isinstance(neuron, IFNeuron) and neuron.config.max_strength <= INT8_MAX_STRENGTH
                and _takes_int8(net, graph, rules, node)):
            neuron.spike_dtype = torch.int8
            changed.append(node.target)
    return changed
