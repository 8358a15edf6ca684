r"""Offset (bias) calibration: make each layer's mean spike rate at a target T match the quantized ANN.

At small T a converted network loses accuracy because spikes reach deep layers late: charge that the
ANN would have turned into output is still in the membranes at step T, and the error grows layer by
layer (``spikeconv analyze`` shows it). Following the bias calibration of Li et al. 2021 ("A free lunch
from ANN: towards efficient, accurate spiking neural networks calibration", ICML), each neuron layer ``l``
gets a constant current per channel ``c``, chosen on calibration data, layer after layer (so that each
layer is corrected for the already-corrected layers before it)::

    e_l,c   = E[ a_l,c / lambda_l ]  -  E[ N_l,c(T) / T ]         (target rate minus SNN rate, mean over
                                                                   samples and positions of channel c)
    b_l,c  <- b_l,c + V_th * e_l,c                                (the neuron's ``current_offset``)

where ``a_l / lambda_l`` is the quantized ANN's activation in rate units (the analog twin run with
``steps = T``, i.e. ``floor(T x / V_th + phi) / T`` clipped: exactly the QReLU with ``P = T * S^max``) and
``N_l(T)`` the net spike count after ``T`` steps. A constant extra current ``V_th * e`` per step adds about
``e * T`` spikes over ``T`` steps, which moves the mean rate by ``e``. Spikes stay integers and every
threshold stays ``V_th``; only a constant current (a bias) is added, as hardware biases allow.

The correction is made for one T: it raises the accuracy there and usually near it (measured in
README.md); the readout at much larger T may lose a little.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from ..errors import is_count
from ..neuron import IFNeuron
from ..sim import simulate
from .twin import AnalogNeuron, analog_twin


def _offset_shape(per_sample: torch.Size) -> tuple[int, ...]:
    return (per_sample[0], *([1] * (len(per_sample) - 1)))


@torch.no_grad()
def _channel_means(modules: dict[str, nn.Module], run: Callable[[], None]) -> dict[str, tuple[Tensor, torch.Size]]:
    """``{name: (mean output per channel, per-sample output shape)}`` of ``modules`` over the forward
    passes made by ``run()``; for a spiking layer the mean over steps is the rate ``N(T) / T``."""
    sums: dict[str, list] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            entry = sums.setdefault(name, [0.0, 0, output.shape[1:]])
            entry[0] = entry[0] + output.sum([0, *range(2, output.dim())])
            entry[1] += output.numel() // output.shape[1]
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in modules.items()]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return {name: (total / count, shape) for name, (total, count, shape) in sums.items()}


def _target_rates(snn: nn.Module, batches: list[Tensor], timesteps: int) -> dict[str, Tensor]:
    twin = analog_twin(snn, steps=timesteps)
    neurons = {name: m for name, m in twin.named_modules() if isinstance(m, AnalogNeuron)}
    means = _channel_means(neurons, lambda: [twin(x) for x in batches])
    return {name: mean for name, (mean, _) in means.items()}


def _snn_rates(snn: nn.Module, neurons: dict[str, nn.Module], batches: list[Tensor], timesteps: int,
               **simulate_kwargs) -> dict[str, tuple[Tensor, torch.Size]]:
    return _channel_means(neurons, lambda: [simulate(snn, x, timesteps, **simulate_kwargs) for x in batches])


def _spiking_neurons(snn: nn.Module) -> dict[str, IFNeuron]:
    return {name: m for name, m in snn.named_modules() if isinstance(m, IFNeuron)}


@torch.no_grad()
def layer_rate_errors(snn: nn.Module, batches: Iterable[Tensor], timesteps: int,
                      **simulate_kwargs) -> dict[str, Tensor]:
    """``{neuron path: e_l}``, the per-channel mean rate error ``E[a_l / lambda_l] - E[N_l(T) / T]`` of
    every neuron layer (module docstring), measured with all layers as they are.

    Example: ``{k: v.abs().mean().item() for k, v in layer_rate_errors(snn, batches, 8).items()}``.
    """
    batches = [x for x in batches]
    targets = _target_rates(snn, batches, timesteps)
    rates = _snn_rates(snn, _spiking_neurons(snn), batches, timesteps, **simulate_kwargs)
    return {name: targets[name] - rate for name, (rate, _) in rates.items()}


def calibrate_offsets(snn: nn.Module, batches: Iterable[Tensor], timesteps: int, *, iterations: int = 1,
                      **simulate_kwargs) -> nn.Module:
    r"""A copy of ``snn`` with per-channel offset currents calibrated for ``timesteps`` (module docstring).

    Args:
        snn: a converted network (:func:`spikeconv.convert.convert`); not changed.
        batches: calibration inputs (training images, not the test set), e.g. 2000 samples.
        timesteps: the T the network will be read out at.
        iterations: passes over the layers (each pass simulates the calibration data once per layer).
        simulate_kwargs: passed to :func:`spikeconv.sim.simulate` (e.g. ``order``).

    Example::

        snn = convert(qann, example)
        snn_t8 = calibrate_offsets(snn, [x for x, _ in calibration_loader], timesteps=8)
    """
    if not is_count(timesteps):
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    batches = [x for x in batches]
    if not batches:
        raise ValueError("the calibration batches are empty; pass a few batches of training inputs")
    calibrated = copy.deepcopy(snn)
    targets = _target_rates(calibrated, batches, timesteps)
    for _ in range(iterations):
        for name, neuron in _spiking_neurons(calibrated).items():
            # layer by layer: each layer sees the corrections of the layers before it
            rate, shape = _snn_rates(calibrated, {name: neuron}, batches, timesteps, **simulate_kwargs)[name]
            correction = (targets[name] - rate) * neuron.config.threshold
            previous = neuron.current_offset
            offset = correction.view(_offset_shape(shape))
            neuron.current_offset = offset if previous is None else previous + offset
    return calibrated
