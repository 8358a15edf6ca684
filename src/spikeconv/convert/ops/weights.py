r"""Weight layers: Conv1d, Conv2d, Linear and the per-channel affine map (a BatchNorm that could not be folded).

A weight layer absorbs the scale of its input per input channel, ``W[:, c] <- W[:, c] * sigma_c``, so its
output is in ANN units (``sigma = 1``; the bias is a constant current), and it carries any gain a neuron
asks of it in its output rows, ``W[o] <- g_o W[o]``, ``b[o] <- g_o b[o]``. Together this is Algorithm 1's
``W^s = (lambda_i / lambda_j) W^a``.

Operation counts: an ANN layer costs ``out_elements * C_in/groups * prod(kernel)`` MACs; an SNN input event
costs its exact fan-out (padding, stride and groups included), computed as ``conv(|s|, ones)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...layers import ChannelAffine
from ...layers.grid import quantize_weight
from ...layers.integer import IntegerConv2d, IntegerLinear
from ..registry import REGISTRY, Role, Rule


def _per_out(scale: Tensor, count: int) -> Tensor:
    scale = scale.detach().reshape(-1)
    return scale.expand(count) if scale.numel() == 1 else scale


def channel_vector(sigma: Tensor, channels: int, shape: tuple[int, ...]) -> Tensor:
    """A scale as a vector over the ``channels`` of a ``[C, ...]`` feature map; raises if it varies in space."""
    if sigma.numel() == 1:
        return sigma.reshape(1).expand(channels).clone()
    full = sigma.expand(shape).reshape(channels, -1)
    if not bool((full == full[:, :1]).all()):
        raise ValueError("a scale that varies across positions of a feature map cannot enter a convolution")
    return full[:, 0].clone()


class WeightRule(Rule):
    """Base of the weight layers: absorb the input scale, carry output gains, count operations."""

    role = Role.WEIGHT
    status = "converted"

    def absorb_(self, module: nn.Module, sigma: Tensor, input_shape: tuple[int, ...]) -> None:
        """``W[:, c] *= sigma_c`` in place."""
        raise NotImplementedError

    def scale_output_(self, module: nn.Module, gain: Tensor) -> None:
        """``W[o] *= g_o`` and ``b[o] *= g_o`` in place."""
        count = module.weight.shape[0]
        g = _per_out(gain, count)
        module.weight.data.mul_(g.view(count, *([1] * (module.weight.dim() - 1))))
        if module.bias is not None:
            module.bias.data.mul_(g)

    def propagate(self, scaler, node, ins):
        self.absorb_(node.module, ins[0], scaler.input_shape(node))
        scaler.note(node, "scaled")
        return torch.ones(())

    def push_gain(self, scaler, node, gain, consumer):
        self.scale_output_(node.module, gain)

    def hardware_(self, layer: nn.Module, bits: int, *, spike_fed: bool, signed: bool, max_strength: int,
                  skip_silent: bool) -> tuple[nn.Module | None, str]:
        """Put ``layer``'s weight on a ``bits``-bit grid; returns ``(replacement or None, report detail)``.
        The default leaves the layer alone (a per-channel affine map stays float)."""
        return None, ""


class _DenseRule(WeightRule):
    """Conv and Linear: integer arithmetic on spikes with hardware weights; counted synapses."""

    synapses = True
    #: ``{exact layer type: integer layer type}`` for spike-fed layers with hardware weights
    integer_for: dict[type, type] = {}

    def hardware_(self, layer, bits, *, spike_fed, signed, max_strength, skip_silent):
        kind = self.integer_for.get(type(layer))
        if spike_fed and kind is not None and kind.accepts(layer):
            new = kind.from_layer(layer, bits, input_signed=signed, skip_silent=skip_silent, spike_bound=max_strength)
            return new, f"{bits}-bit weights, integer arithmetic on spikes"
        layer.weight.data = quantize_weight(layer.weight.data, bits)[0]
        return None, f"{bits}-bit weights, float arithmetic (input is not spikes)"

    def analog(self, module, steps):
        return module.float_layer()  # integer layers: the same weights in float arithmetic


class LinearRule(_DenseRule):
    """``nn.Linear``."""

    integer_for = {nn.Linear: IntegerLinear}
    spiking_types = (IntegerLinear,)

    def absorb_(self, module, sigma, input_shape):
        full = sigma.expand(input_shape).reshape(-1) if sigma.numel() > 1 else sigma.reshape(())
        module.weight.data.mul_(full)

    def fanout(self, module, x):
        return x.flatten(1).sum(1) * module.out_features

    def macs(self, module, input_shape, output_shape):
        return module.in_features * module.out_features


class ConvRule(_DenseRule):
    """``nn.Conv1d`` and ``nn.Conv2d`` (any stride, padding, dilation and groups; zero padding for counts)."""

    integer_for = {nn.Conv2d: IntegerConv2d}
    spiking_types = (IntegerConv2d,)

    def absorb_(self, module, sigma, input_shape):
        channels, groups = module.in_channels, module.groups
        per_channel = channel_vector(sigma, channels, input_shape)
        per_out = per_channel.view(groups, channels // groups).repeat_interleave(module.out_channels // groups, 0)
        module.weight.data.mul_(per_out.view(*per_out.shape, *([1] * (module.weight.dim() - 2))))

    def fanout(self, module, x):
        if module.padding_mode != "zeros":
            raise ValueError("operation counts support zero padding only")
        groups = module.groups
        ones = torch.ones(groups, module.in_channels // groups, *module.kernel_size, dtype=x.dtype, device=x.device)
        padding = module.padding if isinstance(module.padding, (tuple, int)) else 0
        conv = F.conv2d if x.dim() == 4 else F.conv1d
        per_group = conv(x, ones, None, module.stride, padding, module.dilation, groups)
        return per_group.flatten(1).sum(1) * (module.out_channels // groups)

    def macs(self, module, input_shape, output_shape):
        per_output = module.in_channels // module.groups
        for k in module.kernel_size:
            per_output *= k
        return int(torch.Size(output_shape).numel()) * per_output


class ChannelAffineRule(WeightRule):
    """:class:`~spikeconv.layers.ChannelAffine` (``y = scale * x + bias`` per channel)."""

    def absorb_(self, module, sigma, input_shape):
        module.scale.mul_(channel_vector(sigma, module.scale.numel(), input_shape))

    def scale_output_(self, module, gain):
        g = _per_out(gain, module.scale.numel())
        module.scale.mul_(g)
        module.bias.mul_(g)


LINEAR, CONV, AFFINE = LinearRule(), ConvRule(), ChannelAffineRule()
REGISTRY.add(nn.Linear, LINEAR)
REGISTRY.add(nn.Conv1d, CONV)
REGISTRY.add(nn.Conv2d, CONV)
REGISTRY.add(ChannelAffine, AFFINE)
