"""Operations with several inputs: the weighted add (paper 000's WAdd), concatenation, and a plain add.

* :class:`~spikeconv.layers.WAdd` keeps one weight per input; each absorbs its input's scale, so residual
  paths of different scales add exactly, and a neuron's gain goes into all of them.
* Concatenation concatenates the scales (per channel where they differ) and splits a gain among its inputs;
  it keeps spikes when all its inputs are spikes.
* A plain ``x + y`` needs both inputs at one scale already (else: use WAdd, which the fx rewrite inserts).
"""

from __future__ import annotations

import torch

from ...errors import ConversionError
from ...layers import Concat, WAdd
from ..registry import REGISTRY, Role, Rule


class WAddRule(Rule):
    """:class:`~spikeconv.layers.WAdd`: ``y = sum_k w_k x_k``."""

    role = Role.WADD
    status = "converted"

    def propagate(self, scaler, node, ins):
        for k, (w, sigma) in enumerate(zip(node.module.weights(), ins)):
            node.module.set_weight(k, w * sigma)
        scaler.note(node, "scaled", operation="WAdd")
        return torch.ones(())

    def push_gain(self, scaler, node, gain, consumer):
        for k, w in enumerate(node.module.weights()):
            node.module.set_weight(k, w * gain)


class AddRule(Rule):
    """``x + y`` of two tensors at one scale."""

    role = Role.ADD
    status = "passed"

    def propagate(self, scaler, node, ins):
        a, b = (s.expand(node.shape) for s in ins if s is not None)
        if not torch.equal(a, b):
            raise ConversionError(
                f"'{node.name}' adds two spike trains with different scales; use spikeconv.layers.WAdd "
                "(or let the fx rewrite do it) so that each input gets its own weight")
        scaler.note(node, "passed", operation="add")
        return ins[0]

    def push_gain(self, scaler, node, gain, consumer):
        for index in node.inputs:
            if index >= 0:
                scaler.push_gain(scaler.graph.nodes[index], gain, consumer)


class ConcatRule(Rule):
    """:class:`~spikeconv.layers.Concat` and ``torch.cat`` along a feature dimension."""

    role = Role.CONCAT
    status = "passed"

    def propagate(self, scaler, node, ins):
        scaler.note(node, "passed")
        if all(s is not None and s.numel() == 1 for s in ins) and all(torch.equal(ins[0], s) for s in ins):
            return ins[0]
        dim = self._dim(node)
        parts = [s.expand(scaler.graph.nodes[i].shape) for s, i in zip(ins, node.inputs)]
        full = torch.cat(parts, dim=dim)
        channel = full.reshape(full.shape[0], -1)
        if bool((channel == channel[:, :1]).all()):
            return channel[:, :1].reshape(full.shape[0], *([1] * (full.dim() - 1)))
        return full

    @staticmethod
    def _dim(node) -> int:
        dim = node.module.dim if node.module is not None else node.kwargs.get(
            "dim", node.args[1] if len(node.args) > 1 else 0)
        if dim == 0 or dim == -len(node.shape) - 1:
            raise ConversionError(f"'{node.name}' concatenates along the batch dimension, which is not supported")
        return dim - 1 if dim > 0 else dim

    def push_gain(self, scaler, node, gain, consumer):
        full = gain.expand(node.shape) if gain.numel() > 1 else None
        offset = 0
        for index in node.inputs:
            part_node = scaler.graph.nodes[index]
            size = part_node.shape[0]
            part = gain if full is None else full[offset:offset + size]
            scaler.push_gain(part_node, part, consumer)
            offset += size

    def keeps_spikes(self, node, spiking_inputs, config):
        return bool(spiking_inputs) and all(spiking_inputs)


WADD, ADD, CONCAT = WAddRule(), AddRule(), ConcatRule()
REGISTRY.add(WAdd, WADD)
REGISTRY.add(Concat, CONCAT)
REGISTRY.add("cat", CONCAT)
for _name in ("add", "__add__", "__iadd__", "__radd__"):
    REGISTRY.add(_name, ADD)
