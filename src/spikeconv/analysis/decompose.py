r"""Per-layer decomposition of the gap between ANN activation and SNN rate, from one run.

For every neuron of layer ``j`` (all in rate units, i.e. divided by ``lambda_j``):

* ``z``: the ANN pre-activation (analog twin, ANN inputs), ``x_hat``: the SNN's input current averaged
  over T, divided by ``V_th`` (SNN inputs), ``N``: the SNN's signed spike count over T, ``S = S^max``;
* ideal count ``N* = clamp(floor(T x_hat + phi), 0, T S)`` (what an evenly fed neuron emits).

.. math::

    \underbrace{\max(z,0) - N/T}_{total} =
    \underbrace{\max(z,0) - \mathrm{clip}(z)}_{clipping}
    + \underbrace{\mathrm{clip}(z) - \mathrm{clip}(\hat x)}_{input\ (earlier\ layers)}
    + \underbrace{\mathrm{clip}(\hat x) - N^*/T}_{quantization}
    + \underbrace{\min(N^* - N, 0)/T}_{over\text{-}fire}
    + \underbrace{\max(N^* - N, 0)/T}_{residual\ charge}

with ``clip(v) = clamp(v, 0, S)``. The parts add up to the total exactly (a test checks it).
``over-fire`` and ``residual charge`` are the unevenness of spike arrival: spikes sent too early, and
charge still in the membrane at T. ``negative_spikes`` (not a part) is how much the buffered neuron's
negative spikes took back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..neuron import IFNeuron, ideal_count
from .recording import Recording

PARTS = ("clipping", "input", "quantization", "overfire", "residual")


@dataclass
class LayerErrors:
    """Per-element parts (rate units) of one layer; ``summary()`` gives their means."""

    name: str
    total: Tensor
    parts: dict[str, Tensor]
    negative_spikes: Tensor

    def summary(self) -> dict[str, float]:
        """Mean of the total, of every part (signed; they add up) and of the absolute total."""
        out = {"total": self.total.mean().item(), "abs_total": self.total.abs().mean().item()}
        out.update({k: v.mean().item() for k, v in self.parts.items()})
        out["negative_spikes"] = self.negative_spikes.mean().item()
        return out


def decompose_layer(name: str, neuron: IFNeuron, z: Tensor, mean_current: Tensor, spikes: Tensor) -> LayerErrors:
    """The decomposition above for one layer: ``z`` and ``mean_current`` are currents (not divided by V_th),
    ``spikes`` is ``[T, B, ...]``."""
    cfg = neuron.config
    steps = spikes.shape[0]
    smax = float(cfg.max_strength)
    z = z / cfg.threshold
    x_hat = mean_current / cfg.threshold
    count = spikes.sum(0)
    ideal = ideal_count(mean_current, cfg.threshold, cfg.phi, steps, smax)
    relu_z, clip_z, clip_x = z.clamp(min=0), z.clamp(0, smax), x_hat.clamp(0, smax)
    parts = {
        "clipping": relu_z - clip_z,
        "input": clip_z - clip_x,
        "quantization": clip_x - ideal / steps,
        "overfire": (ideal - count).clamp(max=0) / steps,
        "residual": (ideal - count).clamp(min=0) / steps,
    }
    negative = (-spikes).clamp(min=0).sum(0) / steps
    return LayerErrors(name, relu_z - count / steps, parts, negative)


def decompose(recording: Recording, currents: dict[str, Tensor]) -> list[LayerErrors]:
    """Decompose every IF-neuron layer of a recorded run (``currents`` from :func:`twin_currents` for the
    same inputs, keyed like the recording)."""
    result = []
    for name, rec in recording.items():
        if isinstance(rec.module, IFNeuron) and name in currents:
            result.append(decompose_layer(name, rec.module, currents[name], rec.mean_current, rec.spikes))
    return result


def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson r of two tensors' entries (flattened, in float64); ``nan`` when either is constant.

    Example:
        >>> round(pearson(torch.tensor([1., 2., 3.]), torch.tensor([2., 4., 7.])), 4)
        0.9934
    """
    a, b = a.flatten().double(), b.flatten().double()
    if not (a.std() > 0 and b.std() > 0):
        return float("nan")
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def rate_correlation(recording: Recording, currents: dict[str, Tensor], *, skip: dict[str, int] | None = None,
                     steps: int | None = None) -> dict[str, list[float]]:
    """Pearson r between the clipped ANN activation (rate units) and the SNN rate after every t, per layer.

    ``skip[name]`` steps at the start of a layer's spike train are left out (its voltage clamp), and at most
    ``steps`` steps are used after them.
    """
    curves = {}
    for name, rec in recording.items():
        if not (isinstance(rec.module, IFNeuron) and name in currents):
            continue
        cfg = rec.module.config
        target = (currents[name] / cfg.threshold).clamp(0, cfg.max_strength).flatten()
        start = (skip or {}).get(name, 0)
        spikes = rec.spikes[start:start + steps if steps is not None else None].flatten(1)
        rates = spikes.cumsum(0) / torch.arange(1, spikes.shape[0] + 1, dtype=spikes.dtype).unsqueeze(1)
        curve = []
        for row in rates:
            r = pearson(row, target)
            curve.append(0.0 if r != r else r)  # a silent layer correlates 0
        curves[name] = curve
    return curves
