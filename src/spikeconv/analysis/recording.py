"""Recording what happens inside a simulation, per layer, with hooks that never outlive the context.

Example::

    with record(snn) as rec:
        simulate(snn, x, timesteps=8)
    rec["body.3"].spikes   # [T, B, ...] spike train of that neuron layer
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..neuron import IFNeuron, SpikingModule, is_constant


@dataclass
class LayerRecord:
    """What one spiking layer did in a run: spikes ``[T, B, ...]``, its summed input current ``[B, ...]``
    and, for IF neurons, the membrane at the end of every chunk (``membranes``: one entry per step when
    simulated with ``order="step"``) and the final membrane ``V(T)`` (the residual charge)."""

    name: str
    module: nn.Module
    spike_chunks: list[Tensor] = field(default_factory=list)
    current_sum: Tensor | None = None
    final_membrane: Tensor | None = None
    membrane_chunks: list[Tensor] = field(default_factory=list)
    steps: int = 0

    @property
    def membranes(self) -> Tensor:
        """``[chunks, B, ...]``: the membrane after every chunk (after every step in step order)."""
        return torch.stack(self.membrane_chunks)

    @property
    def spikes(self) -> Tensor:
        return torch.cat(self.spike_chunks)

    @property
    def mean_current(self) -> Tensor:
        """Input current averaged over the recorded steps (``x_hat``)."""
        return self.current_sum / max(self.steps, 1)


class Recording(dict):
    """``{layer path: LayerRecord}`` in execution order."""


@contextmanager
def record(model: nn.Module, *, spikes: bool = True) -> Iterator[Recording]:
    """Record every spiking layer of ``model`` during the simulations run inside the context.

    All hooks are removed on exit, also after an exception; nothing is left on the modules.
    """
    recording = Recording()
    handles = []

    def hook_for(name: str, module: nn.Module):
        def hook(mod: nn.Module, inputs: tuple, output: Tensor) -> None:
            run = mod._run
            rec = recording.setdefault(name, LayerRecord(name, mod))
            steps, batch = run.steps, run.batch
            x = inputs[0].detach()
            current = x * steps if is_constant(x, steps, batch) else x.view(steps, batch, *x.shape[1:]).sum(0)
            rec.current_sum = current if rec.current_sum is None else rec.current_sum + current
            rec.steps += steps
            if spikes:  # as floats also when the neuron emits int8 spikes (spike_dtype): rates are fractions
                chunk = output.detach().view(steps, batch, *output.shape[1:])
                rec.spike_chunks.append(chunk.clone() if chunk.is_floating_point() else chunk.float())
            if isinstance(mod, IFNeuron) and run.state is not None:
                rec.final_membrane = run.state.v.detach().clone()
                rec.membrane_chunks.append(rec.final_membrane)

        return hook

    try:
        for name, module in model.named_modules():
            if isinstance(module, SpikingModule):
                handles.append(module.register_forward_hook(hook_for(name, module)))
        yield recording
    finally:
        for handle in handles:
            handle.remove()
