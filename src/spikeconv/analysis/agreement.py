r"""Where a converted network departs from its quantized ANN: per layer (neurons) and per image.

The goal of a QReLU conversion is to compute the quantized ANN exactly. For a network with
``P = T * S^max`` levels the quantized ANN *is* an ideal ``T``-step run: layer ``j`` emits the level

.. math::

    L_j = \mathrm{clamp}(\lfloor T z_j / V_{th} + \varphi \rfloor, 0, T S^{max})

of its pre-activation ``z_j`` computed from the levels of the layers before it (the analog twin with
``steps = T``, :func:`spikeconv.analysis.analog_twin`). The SNN sends ``N_j`` spikes (signed, in threshold
units) from its own mean input current ``x_hat_j``, whose evenly fed count would be
``N*_j = clamp(floor(T x_hat_j / V_th + phi), 0, T S^max)``. Per layer, as shares of its neurons:

* ``differs``: ``N_j != L_j``, the SNN has left the quantized ANN at that neuron;
* ``own``: ``N_j != N*_j``, the layer's own spike timing (residual charge or over-fire) changed the count;
* ``inherited``: ``N*_j != L_j``, its input already differed enough to change the level;
* ``level_error``: the mean of ``|N_j - L_j|`` in levels.

The first layer with ``differs > 0`` is where the departure starts; a layer with ``own = 0`` only passes
on what it received. For other networks (plain ReLU, ``P != T S^max``) ``L_j`` is the best any ``T``-step
run can do from the ANN's currents, and the same table says where the SNN falls short of it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..neuron import IFNeuron, ideal_count
from .recording import Recording


def layer_agreement(recording: Recording, levels_currents: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """The per-layer shares of the module docstring for every recorded IF-neuron layer.

    ``levels_currents``: the input current of every neuron layer of the analog twin built with ``steps =
    T`` (:func:`spikeconv.analysis.twin_currents`) on the inputs of the recorded run of ``T`` steps.
    """
    result = {}
    for name, rec in recording.items():
        if not (isinstance(rec.module, IFNeuron) and name in levels_currents):
            continue
        cfg = rec.module.config
        spikes = rec.spikes  # concatenated from the run's chunks on every read
        steps, count = spikes.shape[0], spikes.sum(0)
        level = ideal_count(levels_currents[name], cfg.threshold, cfg.phi, steps, cfg.max_strength)
        own = ideal_count(rec.mean_current, cfg.threshold, cfg.phi, steps, cfg.max_strength)
        result[name] = {
            "differs": (count != level).float().mean().item(),
            "own": (count != own).float().mean().item(),
            "inherited": (own != level).float().mean().item(),
            "level_error": (count - level).abs().mean().item(),
        }
    return result


def prediction_agreement(snn_predictions: Tensor, ann_predictions: Tensor, labels: Tensor) -> dict[str, int]:
    """How many images the SNN and the ANN classify differently, and which of the two was right there.

    The SNN's accuracy minus the ANN's is ``(snn_right_ann_wrong - ann_right_snn_wrong) / images``.

    Example:
        >>> prediction_agreement(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 1]), torch.tensor([0, 2, 2]))
        {'images': 3, 'differ': 2, 'ann_right_snn_wrong': 1, 'snn_right_ann_wrong': 1}
    """
    if not snn_predictions.shape == ann_predictions.shape == labels.shape:
        raise ValueError(f"predictions and labels must have one entry per image, got shapes "
                         f"{tuple(snn_predictions.shape)}, {tuple(ann_predictions.shape)}, {tuple(labels.shape)}")
    snn_right, ann_right = snn_predictions == labels, ann_predictions == labels
    return {"images": int(labels.numel()), "differ": int(torch.count_nonzero(snn_predictions != ann_predictions)),
            "ann_right_snn_wrong": int(torch.count_nonzero(ann_right & ~snn_right)),
            "snn_right_ann_wrong": int(torch.count_nonzero(snn_right & ~ann_right))}


__all__ = ["layer_agreement", "prediction_agreement"]
