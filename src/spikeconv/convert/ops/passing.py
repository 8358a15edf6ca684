"""Operations that commute with a positive per-channel scale: shape-only operations (identity, flatten,
view, dropout in eval), average pooling, and max-pooling (spiking in the SNN).

Their output carries their input's scale (reshaped if the shape changes), and a gain asked of their output
passes through them to the layer before. Shape-only operations and the spiking max-pool keep integer
spikes integer; average pooling does not.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import ConversionError
from ...neuron import SpikingMaxPool2d
from ..registry import REGISTRY, Role, Rule


def reshape_scale(sigma: Tensor, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Tensor:
    """The scale after an operation that commutes with it (pooling, flatten, dropout...)."""
    if sigma.numel() == 1 or in_shape == out_shape:
        return sigma
    per_channel = sigma.numel() == in_shape[0] and sigma.shape[0] == in_shape[0]
    if per_channel and len(in_shape) == len(out_shape) and in_shape[0] == out_shape[0]:
        return sigma  # a per-channel scale through pooling
    full = sigma.expand(in_shape)
    if full.numel() != torch.Size(out_shape).numel():
        raise ConversionError(f"cannot carry a per-channel scale from shape {in_shape} to {out_shape}")
    return full.reshape(out_shape)


class PassRule(Rule):
    """An operation that commutes with positive scales and changes at most the shape (``shape_only``)."""

    role = Role.PASS
    status = "passed"

    def __init__(self, shape_only: bool = True) -> None:
        super().__init__()
        self._shape_only = shape_only

    def propagate(self, scaler, node, ins):
        scaler.note(node, self.status)
        return reshape_scale(ins[0], scaler.input_shape(node), node.shape)

    def push_gain(self, scaler, node, gain, consumer):
        if node.kind == "input":
            super().push_gain(scaler, node, gain, consumer)
        gain_in = reshape_scale(gain, node.shape, scaler.input_shape(node)) if gain.numel() > 1 else gain
        scaler.push_gain(scaler.graph.nodes[node.inputs[0]], gain_in, consumer)

    def keeps_spikes(self, node, spiking_inputs, config):
        return self._shape_only and bool(spiking_inputs) and spiking_inputs[0]

    def shape_only(self, node):
        return self._shape_only


def _on_network_input(scaler, node) -> bool:
    """Whether ``node`` reads the network input, directly or through shape-only operations."""
    source = scaler.graph.nodes[node.inputs[0]] if node.inputs and node.inputs[0] >= 0 else None
    while source is not None and source.kind != "input":
        if not (len(source.inputs) == 1 and scaler.rules[source.index].shape_only(source)):
            return False
        source = scaler.graph.nodes[source.inputs[0]]
    return source is not None


class MaxPoolRule(PassRule):
    """``nn.MaxPool2d`` on spikes -> :class:`~spikeconv.neuron.SpikingMaxPool2d` (``maxpool="count"``: the
    output count is the largest input count at every step; ``"spiking"``: paper 004's gate), or an average
    pool (``maxpool="average"``, an approximation). A max-pool on the network input itself stays an ANN
    max-pool: it pools the input at every step (exact for analog input, the same image every step; per frame
    for encoded input) and passes the input's positive scale."""

    role = Role.MAXPOOL
    status = "converted"
    spiking_types = (SpikingMaxPool2d,)

    def __init__(self) -> None:
        super().__init__(shape_only=False)

    def propagate(self, scaler, node, ins):
        if _on_network_input(scaler, node):
            scaler.note(node, "passed", "on the network input: an ANN max-pool at every step")
            return reshape_scale(ins[0], scaler.input_shape(node), node.shape)
        if scaler.spiking_maxpool and not scaler.spiking[node.inputs[0]]:
            raise ConversionError(
                f"max-pooling '{node.name}' receives analog currents, not spikes; put the max-pool after "
                "the activation (ReLU and max-pooling commute) or choose ConversionConfig(maxpool='average')")
        return super().propagate(scaler, node, ins)

    def keeps_spikes(self, node, spiking_inputs, config):
        return config.maxpool.value != "average" and bool(spiking_inputs) and spiking_inputs[0]

    def spiking(self, node, config, scaler):
        if _on_network_input(scaler, node):
            return None  # the ANN max-pool on the input (see propagate)
        if node.kind != "module":
            raise ConversionError(f"functional '{node.name}' must be a module to be converted; use nn.MaxPool2d "
                                  "(the torch.fx rewrite does this when the model is traceable)")
        pool = node.module
        if config.maxpool.value == "average":
            scaler.note(node, "replaced", "by average pooling (maxpool='average')")
            return nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
        return SpikingMaxPool2d(pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode,
                                mode="count" if config.maxpool.value == "count" else "gate")

    def analog(self, module, steps):
        return nn.MaxPool2d(module.kernel_size, module.stride, module.padding, module.dilation,
                            ceil_mode=module.ceil_mode)


PASS, AVERAGE_POOL, MAXPOOL = PassRule(), PassRule(shape_only=False), MaxPoolRule()
for _kind in (nn.Flatten, nn.Dropout, nn.Dropout2d, nn.Identity):
    REGISTRY.add(_kind, PASS)
for _kind in (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d):
    REGISTRY.add(_kind, AVERAGE_POOL)
REGISTRY.add(nn.MaxPool2d, MAXPOOL)
for _name in ("flatten", "view", "reshape", "contiguous", "clone", "dropout"):
    REGISTRY.add(_name, PASS)
for _name in ("avg_pool2d", "adaptive_avg_pool2d"):
    REGISTRY.add(_name, AVERAGE_POOL)
REGISTRY.add("max_pool2d", MAXPOOL)
