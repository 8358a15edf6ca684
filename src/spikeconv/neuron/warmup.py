r"""Warm-up: a neuron layer's initial membrane set from a pre-run over its own input.

Hao et al. (ICLR 2023, "Bridging the gap between ANNs and SNNs by calibrating offset spikes") find that a
converted neuron's spike count after T steps is most often one spike away from its ANN activation, that the
membrane left at the end of a run says which way, and that shifting the initial membrane by a threshold
moves the count by one spike. They run each layer for ``rho`` steps first, shift ``V(0)`` and run again.

spikeconv's rule, per neuron, after a pre-run of ``rho`` steps on the first ``rho`` input currents of the
run (the same neuron, from the usual ``V(0) = phi * V_th`` and ``V^b(0) = 0``), with ``N(rho)`` the net spike
count and ``V(rho)`` the membrane left::

    up   = floor(V(rho) / V_th)                 if V(rho) >= V_th, else 0   (charge that never left as spikes)
    down = min(ceil(-V(rho) / V_th), N(rho))     if V(rho) < 0,     else 0   (spikes that later input undid)
    V(0) <- phi * V_th + V_th * (up - down)

then the run proper starts from that ``V(0)``. With ``rounds = k > 1`` the pre-run is repeated from the
shifted start, each round measuring the membrane left *less the shift already applied*,
``V(rho) - (V(0) - phi * V_th)`` (what a run from the usual start would have left, given the counts the
shifted start produced), and adding its ``up - down`` to the shift. A neuron already at its ideal count then
measures ``0 <= V < V_th`` and keeps its start; one that still ends with charge or with spikes to take back
moves one more time. With ``rho = T`` the shift is the whole offset the pre-run
measured (Hao et al. shift by one spike and iterate); a neuron whose charge arrives late then sends its
spikes early enough to end at the ANN's count. A neuron whose input exceeds what ``T`` steps can send (the
ANN's clipping) keeps ``V(rho) >= V_th`` but already fires at its maximum, so its count does not change
(each further round raises its start again, with the same spikes).

Cost: ``rounds * rho`` more neuron steps per layer (the convolutions run once: the pre-runs read the currents
of the run itself). On hardware that streams layer by layer, each layer starts ``rounds * rho`` steps later;
report results with warm-up apart from plain ones (``simulate(..., warmup=rho, warmup_rounds=k)``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import is_count
from .config import NeuronConfig, if_init, negated_buffer
from .functional import ScanKernel, if_scan_


def warmed_up_membrane(current: Tensor, config: NeuronConfig, steps: int, constant: bool = False,
                       kernel: ScanKernel | None = None, rounds: int = 1) -> Tensor:
    r"""The initial membrane ``V(0)`` after a pre-run of ``steps`` steps on ``current`` (module docstring).

    ``current`` is ``[T, ...]`` with ``T >= steps`` (its first ``steps`` entries are used), or, with
    ``constant=True``, one current ``[...]`` for every step. ``kernel``: the neuron scan of the pre-run
    (:func:`spikeconv.neuron.if_scan_`; None: eager); every kernel gives the same spikes. ``rounds``: pre-runs
    (module docstring).

    Example (a charge that arrives at the last of 4 steps: 1 spike without warm-up, 3 with it)::

        >>> from spikeconv.neuron import NeuronConfig, if_init, if_scan
        >>> cfg = NeuronConfig(phi=0.5)
        >>> x = torch.tensor([[0.0], [0.0], [0.0], [3.0]])
        >>> if_scan(x, if_init(x[0], cfg), cfg)[0].sum().item()
        1.0
        >>> v0 = warmed_up_membrane(x, cfg, steps=4)
        >>> v0.item(), if_scan(x, if_init(x[0], cfg)._replace(v=v0), cfg)[0].sum().item()
        (2.5, 3.0)
    """
    for name, value in (("warm-up steps", steps), ("warm-up rounds", rounds)):
        if not is_count(value):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    like = current if constant else current[0]
    if not constant and current.shape[0] < steps:
        raise ValueError(f"a warm-up of {steps} steps needs that many input steps, got {current.shape[0]}")
    threshold = config.threshold
    start = if_init(like, config).v
    shift = torch.zeros_like(start)  # V(0) - phi * V_th, in volts
    for _ in range(rounds):
        final = if_init(like, config)._replace(v=start + shift)  # advanced in place by the pre-run
        spikes = if_scan_(current if constant else current[:steps], final, config,
                          steps=steps if constant else None, kernel=kernel, negated_buffer=negated_buffer(config))
        v, count = final.v - shift, spikes.sum(0).to(final.v.dtype)
        zero = torch.zeros_like(v)
        up = torch.where(v >= threshold, torch.floor(v / threshold), zero)
        down = torch.where((v < 0) & (count > 0), torch.minimum(torch.ceil(-v / threshold), count), zero)
        shift = shift + threshold * (up - down)
    return start + shift


__all__ = ["warmed_up_membrane"]
