"""The rate limit of the IF neuron: the analog (ANN) counterpart the converter and the analysis compare with."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .functional import true_divide


def ideal_count(current: Tensor, threshold: float, phi: float, steps: int, max_strength: float) -> Tensor:
    """``clamp(floor(steps * current / threshold + phi), 0, steps * max_strength)`` (Eq. 11): the net spike
    count of an IF neuron fed ``current`` evenly for ``steps`` steps from ``V(0) = phi * threshold``; with
    ``steps * max_strength = P`` it is the QReLU level of ``current``.

    Example:
        >>> ideal_count(torch.tensor([0.3, 1.0, 5.0]), threshold=1.0, phi=0.5, steps=4, max_strength=1)
        tensor([1., 4., 4.])
    """
    return torch.floor(true_divide(current, threshold) * steps + phi).clamp(0, steps * max_strength)


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
        counts = ideal_count(x, self.threshold, self.phi, self.steps, self.max_strength)
        return true_divide(counts, self.steps)
