"""The same engine on CUDA (issue 5): run only where a CUDA device exists, compared with the CPU run.

Weights and inputs are multiples of 1/8 with small numerators, so every product and partial sum is exact
in float32 (and in TF32) and any convolution algorithm on either device gives the same currents: the
spikes must then be identical, not merely close.
"""

import pytest
import torch
from helpers import tiny_resnet
from torch import nn

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.sim.engine import choose_order

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _on_eighths_(snn):
    """Round every weight and bias of ``snn`` to a multiple of 1/8 within [-4, 4] (in place)."""
    with torch.no_grad():
        for module in snn.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.copy_((module.weight * 8).round().clamp(-32, 32) / 8)
                if module.bias is not None:
                    module.bias.copy_((module.bias * 8).round().clamp(-32, 32) / 8)
    return snn


def _exact_network(**config):
    model, x = tiny_resnet()
    return _on_eighths_(convert(model, x, ConversionConfig(**config))), (x * 8).round().clamp(-16, 16) / 8


@cuda
@pytest.mark.parametrize("config", [dict(), dict(max_strength=2), dict(signed=False, reset="zero")])
def test_cuda_run_equals_cpu_run(config):
    snn, x = _exact_network(**config)
    reference = simulate(snn, x, 6, order="step")
    gpu = simulate(snn.to("cuda"), x.cuda(), 6)  # auto order: all of T folded on the device
    assert torch.equal(gpu.cpu(), reference)


def test_auto_order_folds_all_steps_on_cuda():  # order logic only: runs without a device too
    order, chunk = choose_order(torch.device("cuda"), "auto", batch=32)
    assert (order.value, chunk) == ("layer", None)


@cuda
def test_compiled_neuron_step_on_cuda_equals_eager():
    snn, x = _exact_network(max_strength=2)
    snn, x = snn.to("cuda"), x.cuda()
    assert torch.equal(simulate(snn, x, 5, compile=True), simulate(snn, x, 5))


@cuda
def test_silent_frame_skipping_on_cuda_equals_dense():
    model, x = tiny_resnet()
    skipping = _on_eighths_(convert(model, x, ConversionConfig(voltage_clamp=2))).to("cuda")
    dense = _on_eighths_(convert(model, x, ConversionConfig(voltage_clamp=2, skip_silent=False))).to("cuda")
    x = ((x * 8).round() / 8).cuda()
    assert torch.equal(simulate(skipping, x, 8), simulate(dense, x, 8))
