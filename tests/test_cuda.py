"""The same engine on CUDA: run only where a CUDA device exists, compared with the CPU run.

Weights and inputs are multiples of 1/8 with small numerators, so every product and partial sum is exact
in float32 (and in TF32) and any convolution algorithm on either device gives the same currents: the
spikes must then be identical, not merely close. So must the readout (``sum / t``) and a neuron whose
threshold's reciprocal is inexact: PyTorch's CUDA kernels divide by a Python number through its reciprocal,
so every division in the simulation path goes through ``true_divide`` (the tests marked ``devices`` run on
the CPU too, where they pin the same exact values).
"""

import pytest
import torch
from helpers import tiny_resnet
from torch import nn

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.neuron import IFNeuron, NeuronConfig, if_init, if_scan, true_divide
from spikeconv.layers.sparse import computed_span
from spikeconv.sim import SimulationConfig
from spikeconv.sim.config import ALL_STEPS
from spikeconv.sim.engine import choose_chunk

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
devices = pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])


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


def test_auto_chunk_folds_all_steps_on_cuda():  # chunking logic only: runs without a device too
    assert choose_chunk(torch.device("cuda"), 32, SimulationConfig()) == (ALL_STEPS, None)


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


@devices
@pytest.mark.parametrize("threshold", [0.3, 0.37, 0.45])
def test_true_divide_is_the_correctly_rounded_quotient(device, threshold):
    # reference: the float64 quotient rounded to float32 (division's double rounding is exact); CUDA's
    # division by a Python number, x * (1 / V_th), misses it for some of these multiples of V_th
    divisor = torch.tensor(threshold, dtype=torch.float32)
    x = torch.arange(-64, 65, dtype=torch.float32) * divisor
    expected = (x.double() / divisor.double()).float()
    assert torch.equal(true_divide(x.to(device), threshold).cpu(), expected)


@cuda
@pytest.mark.parametrize("signed", [False, True])
def test_general_threshold_neuron_on_cuda_equals_cpu(signed):
    # threshold 0.37 takes the general path (floor(V'/V_th) by division); currents on multiples of V_th / 4
    config = NeuronConfig(threshold=0.37, max_strength=4, signed=signed)
    torch.manual_seed(0)
    x = torch.randint(-6, 14, (12, 4096)).float() * torch.tensor(0.37 / 4)
    reference, _ = if_scan(x, if_init(x[0], config), config)
    gpu, _ = if_scan(x.cuda(), if_init(x[0].cuda(), config), config)
    assert torch.equal(gpu.cpu(), reference)


@cuda
@pytest.mark.parametrize("config", [dict(), dict(max_strength=2)])
def test_cuda_spikes_equal_cpu_spikes_layer_by_layer(config):
    snn, x = _exact_network(**config)
    neurons = [m for m in snn.modules() if isinstance(m, IFNeuron)]

    def record():
        seen = {i: [] for i in range(len(neurons))}
        hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: seen[i].append(out.detach().cpu()))
                 for i, m in enumerate(neurons)]
        return seen, hooks
    seen_cpu, hooks = record()
    simulate(snn, x, 6, order="step")
    for hook in hooks:
        hook.remove()
    seen_gpu, hooks = record()
    simulate(snn.to("cuda"), x.cuda(), 6, order="step")
    for hook in hooks:
        hook.remove()
    differing = [i for i in seen_cpu if not all(torch.equal(a, b) for a, b in zip(seen_cpu[i], seen_gpu[i]))]
    assert differing == [], f"neurons {differing} of {len(neurons)} spike differently on CUDA"


@cuda
def test_skipping_layers_compute_every_frame_on_cuda():
    # finding the silent span would synchronise with the host: on an accelerator the layers run densely
    x = torch.zeros(64, 4)
    x[8:] = 1.0
    assert computed_span(x) == (8, 64)
    assert computed_span(x.cuda()) == (0, 64)


@cuda
def test_fused_triton_scan_on_cuda_equals_eager_scan():
    import fused_cases  # tests/: the interpreted test's cases, here compiled for the GPU
    assert fused_cases.main("cuda") == 0


@cuda
@pytest.mark.parametrize("config", [dict(), dict(max_strength=4), dict(signed=False, reset="zero"),
                                    dict(signed=False, max_strength=2)])
def test_simulate_fused_on_cuda_equals_eager(config):
    snn, x = _exact_network(**config)
    snn, x = snn.to("cuda"), x.cuda()
    assert torch.equal(simulate(snn, x, 7, fused=True), simulate(snn, x, 7))
