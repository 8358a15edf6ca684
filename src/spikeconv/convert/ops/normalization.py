"""BatchNorm (folded before the scales are set) and the softmax of the ANN head.

BatchNorm ``y = a x + c`` per channel is folded into the Conv/Linear before it when that layer feeds only
it (``W <- a W``, ``b <- a b + c``); a BatchNorm between an activation and a max-pool (the Keras order
``Conv -> ReLU -> BN -> MaxPool``) moves behind the pool, exactly, since ``max_i(a x_i + c) = a max_i(x_i) + c``
for ``a >= 0`` (a negative ``a`` would turn the max into a min, which spikes cannot compute: refused); else
it folds forward into the Linear or padding-free Conv after it (``b <- b + W c``, ``W[:, i] <- a_i W[:, i]``),
else it becomes a per-channel affine weight layer.

A final softmax is applied to the readout (``softmax="head"``, the hybrid ANN head) or becomes paper 004's
spiking softmax (``softmax="spiking"``).
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ConversionError
from ...neuron import SpikingSoftmax
from ..fold import batchnorm_affine, batchnorm_as_affine, fold_batchnorm_
from ..registry import REGISTRY, Role, Rule
from ...layers import ChannelAffine
from .passing import MAXPOOL, PASS
from .weights import AFFINE, WeightRule


def _fold_forward_(bn: nn.Module, layer: nn.Module) -> bool:
    """Fold ``bn`` into the Linear or padding-free Conv ``layer`` that follows it; False if impossible."""
    if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or any(p != 0 for p in layer.padding)
                                         or layer.padding_mode != "zeros"):
        return False
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        return False
    a, c = batchnorm_affine(bn)
    weight = layer.weight.data
    shift = (weight * c.view(1, -1, *([1] * (weight.dim() - 2)))).flatten(1).sum(1)
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device))
    layer.bias.data.add_(shift)
    weight.mul_(a.view(1, -1, *([1] * (weight.dim() - 2))))
    return True


class BatchNormRule(Rule):
    """``nn.BatchNorm1d`` / ``nn.BatchNorm2d``: folded away (see the module docstring)."""

    role = Role.BATCHNORM
    status = "folded"

    def fold_(self, scaler, node) -> Rule:
        """Fold ``node``'s BatchNorm; returns the rule the node has afterwards."""
        graph = scaler.graph
        producer = graph.producer(node) if node.inputs else None
        users = sorted(set(node.users))
        consumer = graph.nodes[users[0]] if len(users) == 1 else None
        if (producer is not None and producer.kind == "module" and producer.users == [node.index]
                and isinstance(producer.module, (nn.Conv1d, nn.Conv2d, nn.Linear))):
            fold_batchnorm_(producer.module, node.module)
            detail = f"into {producer.name}"
        elif (consumer is not None and consumer.kind == "module" and consumer.inputs == [node.index]
              and scaler.rules[consumer.index].role is Role.MAXPOOL):
            return self._behind_pool_(scaler, node, consumer)
        elif (consumer is not None and consumer.kind == "module" and isinstance(scaler.rules[consumer.index], WeightRule)
              and _fold_forward_(node.module, consumer.module)):
            detail = f"forward into {consumer.name}"
        else:
            scaler.set_module(node, batchnorm_as_affine(node.module))
            scaler.note(node, "converted", "to a per-channel affine layer", operation="BatchNorm")
            return AFFINE
        scaler.set_module(node, nn.Identity())
        scaler.note(node, "folded", detail, operation="BatchNorm")
        return PASS

    @staticmethod
    def _behind_pool_(scaler, node, pool) -> Rule:
        """Swap ``node`` (a BatchNorm) and the max-pool ``pool`` it feeds: the pool takes the BatchNorm's place
        (on the activation's spikes) and a per-channel affine map takes the pool's. Returns the node's rule."""
        a, c = batchnorm_affine(node.module)
        negative = torch.nonzero(a < 0).flatten().tolist()
        if negative:
            raise ConversionError(
                f"BatchNorm '{node.name}' sits between an activation and max-pool '{pool.name}' with a negative "
                f"scale in channel(s) {negative[:8]}: the max of a*x + c with a < 0 is a*min(x) + c, a min-pool "
                "that spikes cannot compute; move the BatchNorm before the activation or after the pool")
        pool_module = pool.module
        scaler.set_module(pool, ChannelAffine(a, c))
        scaler.set_module(node, pool_module)
        node.shape = pool.shape
        scaler.rules[pool.index] = AFFINE
        scaler.note(node, "moved", f"behind max-pool '{pool.name}' (a*x + c with a >= 0 commutes with the max)",
                    operation="BatchNorm")
        return MAXPOOL


class SoftmaxRule(Rule):
    """A softmax as the last operation of the model, after a weight layer."""

    role = Role.SOFTMAX
    status = "converted"
    spiking_types = (SpikingSoftmax,)

    def propagate(self, scaler, node, ins):
        if ins[0] is None or ins[0].numel() != 1 or float(ins[0]) != 1.0:
            raise ConversionError(f"softmax '{node.name}' must follow a weight layer (the ANN head)")
        scaler.note(node, "converted")
        return torch.ones(())

    def spiking(self, node, config, scaler):
        if node.kind != "module":
            raise ConversionError(f"functional '{node.name}' must be a module to be converted; use nn.Softmax "
                                  "(the torch.fx rewrite does this when the model is traceable)")
        if scaler.graph.outputs != [node.index]:
            raise ConversionError(f"softmax '{node.name}' is only supported as the last operation of the model")
        if config.softmax.value == "spiking":
            return SpikingSoftmax(dim=node.module.dim)
        scaler.readout_softmax = node.module.dim if node.module.dim is not None else -1
        return nn.Identity()

    def analog(self, module, steps):
        return nn.Softmax(dim=module.dim)


BATCHNORM, SOFTMAX = BatchNormRule(), SoftmaxRule()
for _kind in (nn.BatchNorm1d, nn.BatchNorm2d):
    REGISTRY.add(_kind, BATCHNORM)
REGISTRY.add(nn.Softmax, SOFTMAX)
REGISTRY.add("softmax", SOFTMAX)
