"""Layers that let the converter rescale every path of a network.

``WAdd`` is the weighted add of paper 000, section C: ``WAdd(x, y) = w_x * x + w_y * y`` with all
weights 1 in the ANN (identical to ``x + y``). During conversion each input's weight absorbs the scale
of the spike train it receives, so residual blocks whose two paths carry different scales stay exact.
Paper 000 writes one common weight ``W * (x + y)``; one weight per input is the general form (with
equal scales it reduces to it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class WAdd(nn.Module):
    """Weighted add ``sum_k w_k * x_k`` of ``inputs`` tensors; ``w_k`` are buffers (1 by default).

    Weights are scalars or broadcast per channel (shape ``[C, 1, 1]`` for feature maps).

    Example:
        >>> WAdd()(torch.ones(1, 2), torch.ones(1, 2)).tolist()
        [[2.0, 2.0]]
    """

    def __init__(self, inputs: int = 2) -> None:
        super().__init__()
        if inputs < 2:
            raise ValueError(f"WAdd needs at least 2 inputs, got {inputs}")
        self.inputs = inputs
        for k in range(inputs):
            self.register_buffer(f"weight{k}", torch.ones(()))

    def weights(self) -> list[Tensor]:
        """The per-input weights, in input order."""
        return [getattr(self, f"weight{k}") for k in range(self.inputs)]

    def set_weight(self, k: int, value: Tensor) -> None:
        """Replace input ``k``'s weight (a scalar or per-channel tensor)."""
        setattr(self, f"weight{k}", value.detach().clone())

    def forward(self, *xs: Tensor) -> Tensor:
        if len(xs) != self.inputs:
            raise ValueError(f"WAdd was built for {self.inputs} inputs, got {len(xs)}")
        weights = self.weights()
        if weights[0].numel() == 1 and float(weights[0]) == 1.0:
            out = torch.addcmul(xs[0], xs[1], weights[1])  # one pass, one new tensor
        else:
            out = torch.mul(xs[0], weights[0]).addcmul_(xs[1], weights[1])
        for x, w in zip(xs[2:], weights[2:]):
            out.addcmul_(x, w)  # in place on the tensor made above
        return out


class Concat(nn.Module):
    """Concatenate inputs along ``dim`` (channels by default), as in Inception blocks.

    Example:
        >>> Concat()(torch.ones(1, 1, 2, 2), torch.zeros(1, 2, 2, 2)).shape
        torch.Size([1, 3, 2, 2])
    """

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, dim=self.dim)


class ChannelAffine(nn.Module):
    """Per-channel affine map ``y = scale[c] * x + bias[c]`` on dimension 1 (a BatchNorm in eval mode).

    The converter turns every BatchNorm that cannot be folded into a preceding conv/linear into this.

    Example:
        >>> ChannelAffine(torch.tensor([2.0]), torch.tensor([1.0]))(torch.ones(1, 1, 1, 1)).flatten().tolist()
        [3.0]
    """

    def __init__(self, scale: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().reshape(-1))
        self.register_buffer("bias", bias.detach().clone().reshape(-1))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(shape) + self.bias.view(shape)
