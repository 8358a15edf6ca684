"""Thin ``nn.Module`` wrappers around the pure neuron functions.

A neuron module holds its :class:`~spikeconv.neuron.functional.NeuronConfig` and nothing else between
runs. During a run the simulation engine attaches a :class:`NeuronRun` (timesteps of the current chunk,
batch size and the carried state) and removes it when the run ends, also after an exception; calling a
neuron outside a run raises.

Inside a run the input is time folded into the batch, ``[steps * batch, ...]`` (step-major), or
``[batch, ...]`` for a current that is the same at every step (the first layer of an analog input); the
output is always ``[steps * batch, ...]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .functional import IFState, NeuronConfig, if_init, if_scan, if_scan_constant


@dataclass
class NeuronRun:
    """Per-run bookkeeping the engine attaches to a neuron: chunk length, batch size, carried state."""

    steps: int
    batch: int
    state: IFState | None = None


class IFNeuron(nn.Module):
    """Integrate-and-fire neuron population (plain, buffered and/or multi-bit); see ``neuron.functional``.

    Example:
        >>> import torch
        >>> from spikeconv.sim import simulate
        >>> net = torch.nn.Sequential(IFNeuron(NeuronConfig(threshold=1.0)))
        >>> simulate(net, torch.tensor([[0.5]]), timesteps=4).squeeze().tolist()  # running rates
        [0.0, 0.5, 0.3333333432674408, 0.5]
    """

    def __init__(self, config: NeuronConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else NeuronConfig()
        self._run: NeuronRun | None = None

    def forward(self, x: Tensor) -> Tensor:
        run = self._run
        if run is None:
            raise RuntimeError(
                "IFNeuron carries state over time and runs only inside spikeconv.simulate(...); "
                "call simulate(model, inputs, timesteps=T) instead of model(inputs)"
            )
        steps, batch = run.steps, run.batch
        if x.shape[0] == batch and steps > 1:
            current = x
            state = run.state if run.state is not None else if_init(current, self.config)
            spikes, state = if_scan_constant(current, steps, state, self.config)
        elif x.shape[0] == steps * batch:
            current = x.view(steps, batch, *x.shape[1:])
            state = run.state if run.state is not None else if_init(current[0], self.config)
            spikes, state = if_scan(current, state, self.config)
        else:
            raise ValueError(
                f"IFNeuron got a leading dimension of {x.shape[0]}, expected steps*batch = {steps * batch} "
                f"or batch = {batch}; do not reshape the batch dimension inside a converted model"
            )
        run.state = state
        return spikes.flatten(0, 1)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"threshold={c.threshold}, reset={c.reset.value}, max_strength={c.max_strength}, "
            f"signed={c.signed}, phi={c.phi}"
        )
