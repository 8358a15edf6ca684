r"""Operation counts and energy: the ANN's MACs and the SNN's synaptic operations, per layer.

* ANN MACs of a conv: ``out_elements * C_in/groups * k_h * k_w``; of a linear: ``in * out``.
* SNN synaptic operations (SOPs) of a layer at one step: every input event times its exact fan-out
  (padding, stride and groups included), computed as ``conv(|s|, ones)`` summed: each (input event,
  output neuron) pair is one accumulate. Multi-bit spikes are counted two ways: ``adds`` = strength
  times fan-out (a spike of strength 4 as four adds) and ``events`` = one shift-and-add per fan-out.
  Inputs that are not integer spikes (an analog first layer, a weighted sum of spikes) cost one MAC per
  non-zero input per fan-out.
* Energy: SOPs * ``ac_pj`` + MACs * ``mac_pj`` (defaults 45 nm, Horowitz 2014: 4.6 pJ per 32-bit float
  MAC, 0.9 pJ per float add); replace the :class:`EnergyTable` for other hardware.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import Tensor, nn

from ..convert import REGISTRY
from ..neuron import is_constant


@dataclass(frozen=True)
class EnergyTable:
    """Picojoules per operation. Default: 45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014)."""

    mac_pj: float = 4.6
    ac_pj: float = 0.9
    source: str = "Horowitz 2014, 45 nm, 32-bit float"


def fanout_events(layer: nn.Module, x: Tensor) -> Tensor:
    """Per sample (dim 0 of ``x``): sum over input elements of ``x`` times their fan-out in ``layer``
    (from the layer's conversion rule, :meth:`spikeconv.convert.Rule.fanout`)."""
    counts = REGISTRY.lookup(layer).fanout(layer, x)
    if counts is None:
        raise TypeError(f"no operation count for {type(layer).__name__}")
    return counts


def ann_macs(layer: nn.Module, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
    """Dense multiply-accumulates of one sample through ``layer`` (shapes without the batch dimension)."""
    macs = REGISTRY.lookup(layer).macs(layer, input_shape, output_shape)
    if macs is None:
        raise TypeError(f"no MAC count for {type(layer).__name__}")
    return macs


def _counted(module: nn.Module) -> bool:
    """Whether ``module`` is a synapse layer whose operations are counted."""
    return REGISTRY.lookup(module).synapses


@dataclass
class LayerOps:
    """Counts of one weight layer, summed over the batch (divide by ``samples`` for per-sample values)."""

    name: str
    macs_per_sample: int = 0
    sop_adds: list[float] = field(default_factory=list)  # per step
    sop_events: list[float] = field(default_factory=list)  # per step
    analog_macs: list[float] = field(default_factory=list)  # per step
    samples: int = 0


class OperationCounter(dict):
    """``{layer path: LayerOps}`` plus neuron updates; filled by :func:`count_operations`."""

    neuron_updates: int = 0


@contextmanager
def count_operations(model: nn.Module) -> Iterator[OperationCounter]:
    """Count ANN MACs and SNN synaptic operations of every conv/linear during the simulations run inside.

    Example::

        with count_operations(snn) as ops:
            simulate(snn, x, timesteps=8)
        ops["body.0"].sop_adds  # accumulates per step, summed over the batch
    """
    from ..neuron import SpikingModule  # noqa: F811

    counter = OperationCounter()
    handles = []

    def weight_hook(name: str):
        def hook(layer: nn.Module, inputs: tuple, output: Tensor) -> None:
            run = _run_of(model)
            steps, batch = (run.steps, run.batch) if run is not None else (1, inputs[0].shape[0])
            x = inputs[0].detach()
            if not x.is_floating_point():  # int8 spikes (IFNeuron.spike_dtype): count them as floats
                x = x.to(output.dtype)
            ops = counter.setdefault(name, LayerOps(name))
            constant = is_constant(x, steps, batch)
            if not ops.macs_per_sample:
                ops.macs_per_sample = ann_macs(layer, tuple(x.shape[1:]), tuple(output.shape[1:]))
                ops.samples = batch
            frames = x.unsqueeze(0) if constant else x.view(steps, batch, *x.shape[1:])
            for frame in frames:
                if bool((frame == frame.round()).all()):
                    ops.sop_adds.append(fanout_events(layer, frame.abs()).sum().item())
                    ops.sop_events.append(fanout_events(layer, (frame != 0).to(frame.dtype)).sum().item())
                    ops.analog_macs.append(0.0)
                else:
                    ops.sop_adds.append(0.0)
                    ops.sop_events.append(0.0)
                    ops.analog_macs.append(fanout_events(layer, (frame != 0).to(frame.dtype)).sum().item())
            if constant:  # computed once, reused by every step
                ops.sop_adds.extend([0.0] * (steps - 1))
                ops.sop_events.extend([0.0] * (steps - 1))
                ops.analog_macs.extend([0.0] * (steps - 1))

        return hook

    def neuron_hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        counter.neuron_updates += output.numel()

    try:
        for name, module in model.named_modules():
            if _counted(module):
                handles.append(module.register_forward_hook(weight_hook(name)))
            elif isinstance(module, SpikingModule):
                handles.append(module.register_forward_hook(neuron_hook))
        yield counter
    finally:
        for handle in handles:
            handle.remove()


def _run_of(model: nn.Module):
    from ..neuron import SpikingModule  # noqa: F811

    for module in model.modules():
        if isinstance(module, SpikingModule) and module._run is not None:
            return module._run
    return None


def energy_summary(counter: OperationCounter, table: EnergyTable = EnergyTable()) -> dict[str, float]:
    """Per-sample totals: ANN MACs and energy; SNN adds, events, analog MACs and energy (pJ)."""
    samples = max((ops.samples for ops in counter.values()), default=1) or 1
    ann = sum(ops.macs_per_sample for ops in counter.values())
    adds = sum(sum(ops.sop_adds) for ops in counter.values()) / samples
    events = sum(sum(ops.sop_events) for ops in counter.values()) / samples
    analog = sum(sum(ops.analog_macs) for ops in counter.values()) / samples
    return {
        "ann_macs": float(ann), "ann_energy_pj": ann * table.mac_pj,
        "snn_sop_adds": adds, "snn_sop_events": events, "snn_analog_macs": analog,
        "snn_energy_pj": adds * table.ac_pj + analog * table.mac_pj,
        "neuron_updates": counter.neuron_updates / samples,
    }
