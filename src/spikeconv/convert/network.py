"""The converted network: the user's module tree with neurons in place, plus its output scale."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..neuron import IFNeuron


@dataclass(frozen=True)
class NodeReport:
    """What the converter did with one traced operation."""

    node: str
    operation: str
    status: str  # "converted", "folded", "scaled", "passed"
    detail: str = ""


class SpikingNetwork(nn.Module):
    """A converted SNN: ``body`` (the copied user model, neurons in place) times ``output_scale``.

    The output of ``body`` is in the units of its last layer's input spikes; ``output_scale`` (1 for a
    network ending in a weight layer, the hybrid ANN head of paper 000) maps it back to ANN units.
    Run it with :func:`spikeconv.sim.simulate`.
    """

    def __init__(self, body: nn.Module, output_scale: Tensor, report: list[NodeReport],
                 readout_softmax: int | None = None, input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.body = body
        self.input_shape = input_shape  # per-sample shape of the conversion's example; simulate checks inputs
        self.register_buffer("output_scale", output_scale.detach().clone())
        self.report = report
        self.readout_softmax = readout_softmax

    def readout_transform(self, readout: Tensor) -> Tensor:
        """Applied by ``simulate`` to the readout ``[T, B, ...]``: the ANN-head softmax, if the model had one."""
        if self.readout_softmax is None:
            return readout
        dim = self.readout_softmax if self.readout_softmax < 0 else self.readout_softmax + 1
        return torch.softmax(readout, dim=dim)

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        if self.output_scale.numel() == 1 and float(self.output_scale) == 1.0:
            return out
        return out * self.output_scale

    def neurons(self) -> list[tuple[str, IFNeuron]]:
        """``(path, neuron)`` for every spiking neuron, in order."""
        return [(name, m) for name, m in self.named_modules() if isinstance(m, IFNeuron)]
