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
from ..layers.integer import IntegerConv2d, IntegerLinear, quantize_weight
from ..neuron import IFNeuron
from ..neuron.functional import INT8_MAX_STRENGTH
from .graph import Graph, Node
from .network import NodeReport
from .rules import Role

#: shape-only operations: the value of every element passes unchanged.
_SHAPE_MODULES = (nn.Identity, nn.Flatten, nn.Dropout, nn.Dropout2d)
_SHAPE_FUNCTIONS = {"flatten", "view", "reshape", "contiguous", "clone", "dropout"}


def _shape_only(node: Node, roles: dict) -> bool:
    """Whether ``node`` only reshapes its input (every value passes unchanged)."""
    operation = (isinstance(node.module, _SHAPE_MODULES) if node.kind == "module"
                 else node.kind == "function" and node.target in _SHAPE_FUNCTIONS)
    return operation and roles[node.index] is Role.PASS


def _integer_valued(graph: Graph, roles: dict, node: Node | None, spiking_maxpool: bool) -> bool:
    """Whether ``node``'s output holds only spikes (integers) in every run."""
    while node is not None:
        role = roles[node.index]
        if role is Role.NEURON:
            return True
        if role is Role.CONCAT:
            return bool(node.inputs) and all(
                _integer_valued(graph, roles, graph.producer(node, k), spiking_maxpool) for k in range(len(node.inputs)))
        if not _shape_only(node, roles) and not (role is Role.MAXPOOL and spiking_maxpool):
            return False
        node = graph.producer(node) if node.inputs else None
    return False


def spike_fed(graph: Graph, roles: dict, *, spiking_maxpool: bool = True) -> set[str]:
    """Module paths of the weight layers whose input is integer spikes (module docstring)."""
    fed = set()
    for node in graph.nodes:
        if (node.kind == "module" and roles[node.index] is Role.WEIGHT and node.inputs
                and _integer_valued(graph, roles, graph.producer(node), spiking_maxpool)):
            fed.add(node.target)
    return fed


def quantize_weights_(net: nn.Module, graph: Graph, roles: dict, bits: int, *, signed: bool, max_strength: int,
                      spiking_maxpool: bool, skip_silent: bool, report: list[NodeReport]) -> None:
    """Put every Conv1d/Conv2d/Linear weight of ``net`` on its ``bits``-bit grid, in place; spike-fed Conv2d
    and Linear layers become :class:`~spikeconv.layers.IntegerConv2d` / :class:`~spikeconv.layers.IntegerLinear`
    when their spikes fit the kernel's 8-bit input (``S^max <= 64``)."""
    fed = spike_fed(graph, roles, spiking_maxpool=spiking_maxpool)
    fits = max_strength <= INT8_MAX_STRENGTH
    for node in graph.nodes:
        layer = node.module
        if node.kind != "module" or roles[node.index] is not Role.WEIGHT:
            continue
        if not isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            continue
        kind = {nn.Conv2d: IntegerConv2d, nn.Linear: IntegerLinear}.get(type(layer))
        if fits and node.target in fed and kind is not None and kind.accepts(layer):
            new = kind.from_layer(layer, bits, input_signed=signed, skip_silent=skip_silent, spike_bound=max_strength)
            parent, _, attr = node.target.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, attr, new)
            report.append(NodeReport(node.name, type(layer).__name__, "quantized",
                                     f"{bits}-bit weights, integer arithmetic on spikes"))
        else:
            layer.weight.data = quantize_weight(layer.weight.data, bits)[0]
            report.append(NodeReport(node.name, type(layer).__name__, "quantized",
                                     f"{bits}-bit weights, float arithmetic (input is not spikes)"))


def _takes_int8(net: nn.Module, graph: Graph, roles: dict, node: Node) -> bool:
    """Whether every use of ``node``'s output, through shape-only operations, is an integer layer or a
    weighted add (which promotes int8 to float exactly) and none is an output of the model."""
    if node.index in graph.outputs or not node.users:
        return False
    for user in (graph.nodes[index] for index in node.users):
        reads_int8 = user.kind == "module" and isinstance(net.get_submodule(user.target),
                                                          (IntegerConv2d, IntegerLinear, WAdd))
        if not reads_int8 and not (_shape_only(user, roles) and _takes_int8(net, graph, roles, user)):
            return False
    return True


def int8_spikes_(net: nn.Module, graph: Graph, roles: dict) -> list[str]:
    """Let every IF neuron of ``net`` whose spikes go only to integer layers and weighted adds emit them as
    int8 (``IFNeuron.spike_dtype``): a quarter of the memory traffic, no conversion in the integer layers,
    the same values. Returns the module paths of those neurons."""
    changed = []
    for node in graph.nodes:
        if roles[node.index] is not Role.NEURON or node.kind != "module":
            continue
        neuron = net.get_submodule(node.target)
        if (isinstance(neuron, IFNeuron) and neuron.config.max_strength <= INT8_MAX_STRENGTH
                and _takes_int8(net, graph, roles, node)):
            neuron.spike_dtype = torch.int8
            changed.append(node.target)
    return changed
