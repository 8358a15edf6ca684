"""The rate limit of the IF neuron: the analog (ANN) counterpart the converter and the analysis compare with."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .functional import true_divide


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
