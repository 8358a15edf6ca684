"""Integer weight layers: exact int32 sums on spikes, conversion with
hardware weights, accuracy on real data."""

import copy

import pytest
import torch
from conftest import CHECKPOINTS
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from helpers import tiny_resnet
from integer_helpers import _codes, _exact_conv, _spikes, kernels
from spikeconv import ConversionConfig, convert, simulate
from spikeconv.analysis import count_operations, layer_rate_errors, record
from spikeconv.layers import IntegerConv2d, IntegerLinear, quantize_weight, weight_grid
from spikeconv.neuron import IFNeuron, NeuronConfig, if_init
from spikeconv.neuron.functional import if_scan_


def test_weight_grid_values_and_bounds():
    torch.manual_seed(0)
    weight = torch.randn(6, 5, 3, 3)
    weight[2] = 0.0
    for bits in (2, 4, 8):
        levels = 2 ** (bits - 1) - 1
        codes, scale = weight_grid(weight, bits)
        assert codes.abs().max() == levels and torch.equal(codes, codes.round())
        assert torch.equal(codes.flatten(1).abs().amax(1), torch.tensor([levels] * 2 + [0] + [levels] * 3).float())
        assert scale[2] == 1.0 and torch.equal(codes[2], torch.zeros(5, 3, 3))
        grid, _ = quantize_weight(weight, bits)
        error = (grid - weight).abs().flatten(1).amax(1)
        assert bool((error <= scale / 2 * (1 + 1e-6)).all())  # round to nearest: at most half a step
    assert torch.equal(weight_grid(torch.tensor([[0.5, -1.0, 0.26]]), 3)[0], torch.tensor([[2.0, -3.0, 1.0]]))


@pytest.mark.parametrize("bad", [1, 9, 2.5, True])
def test_weight_bits_are_checked(bad):
    with pytest.raises(ValueError, match="weight bits"):
        weight_grid(torch.ones(2, 2), bad)
    with pytest.raises(ValueError, match="weight bits"):
        ConversionConfig(weight_bits=bad)


def test_weight_grid_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        weight_grid(torch.tensor([[1.0, float("nan")]]))


@kernels
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 999), stride=st.sampled_from([1, 2]), padding=st.sampled_from([0, 1, 2]),
       dilation=st.sampled_from([1, 2]), groups=st.sampled_from([1, 2]), bias=st.booleans(), signed=st.booleans(),
       strength=st.sampled_from([1, 2, 4]), bits=st.sampled_from([2, 5, 8]), channels_last=st.booleans(),
       bound=st.booleans())
def test_integer_conv_is_the_exact_integer_sum(seed, stride, padding, dilation, groups, bias, signed, strength, bits,
                                               channels_last, bound):
    """``y = fl(fl(Q * S) * s) + b``: the int32 sum exact (computed here in float64), rounded once, scaled.
    With a known spike bound, signed padded layers on these small maps take the shifted path."""
    torch.manual_seed(seed)
    layer = IntegerConv2d.from_layer(nn.Conv2d(4, 6, 3, stride, padding, dilation, groups, bias), bits,
                                     input_signed=signed, spike_bound=strength if bound else None)
    x = _spikes((5, 4, 6, 6), signed, strength, seed)
    # every output map here is 8x8 or smaller; without a negative spike the unsigned kernel runs
    assert (layer._path(x) == "shifted") == (signed and bound and bool((x < 0).any()))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    spikes = x.to(torch.int8)  # what a neuron with spike_dtype=int8 emits: read as it is, never written
    with torch.no_grad():
        assert torch.equal(layer(x), _exact_conv(layer, x))
        assert torch.equal(layer(spikes), _exact_conv(layer, x))
    assert torch.equal(spikes, x.to(torch.int8))


@kernels
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 999), bias=st.booleans(), signed=st.booleans(), strength=st.sampled_from([1, 2, 8]),
       lead=st.sampled_from([(7,), (3, 5)]))
def test_integer_linear_is_the_exact_integer_sum(seed, bias, signed, strength, lead):
    torch.manual_seed(seed)
    layer = IntegerLinear.from_layer(nn.Linear(33, 12, bias=bias), 8, input_signed=signed)
    x = _spikes((*lead, 33), signed, strength, seed)
    expected = (x.double() @ _codes(layer).double().T).float() * layer.weight_scale
    if bias:
        expected = expected + layer.bias.detach()
    spikes = x.to(torch.int8)
    with torch.no_grad():
        out = layer(x)
        assert torch.equal(layer(spikes), expected) and torch.equal(spikes, x.to(torch.int8))
    assert out.shape == (*lead, 12) and torch.equal(out, expected)
    assert torch.equal(layer(spikes).detach(), layer.float_layer()(x).detach())  # autograd: the float layer


@kernels
def test_kernel_equals_float_layer_bit_for_bit_where_float_sums_are_exact():
    """Power-of-two scales: every float partial sum is exact, so the float layer (used on CUDA and under
    autograd) gives the same bits as the int8 kernel."""
    torch.manual_seed(1)
    layer = IntegerConv2d.from_layer(nn.Conv2d(16, 8, 3, padding=1), 8, input_signed=True)
    with torch.no_grad():
        layer.weight.copy_(_codes(layer) / 64)
        layer.weight_scale.fill_(1 / 64)
        layer.bias.copy_(torch.randint(-8, 9, (8,)).float() / 8)
    x = _spikes((6, 16, 10, 10), True, 2, 4)
    calls = []
    original = layer._integer_forward
    layer._integer_forward = lambda t: calls.append(t.shape[0]) or original(t)
    with torch.no_grad():
        integer = layer(x)
    floating = layer(x)  # autograd records: the float layer
    assert calls == [6] and floating.requires_grad
    assert torch.equal(integer, floating.detach())
    assert torch.equal(integer, F.conv2d(x, layer.weight.detach(), layer.bias.detach(), padding=1))


@kernels
def test_integer_conv_skips_silent_frames():
    torch.manual_seed(2)
    dense = IntegerConv2d.from_layer(nn.Conv2d(8, 8, 3, padding=1), 8)
    skipping = IntegerConv2d.from_layer(dense, 8, skip_silent=True)
    assert torch.equal(skipping.weight, dense.weight)  # already on the grid: quantizing again changes nothing
    x = _spikes((32, 8, 6, 6), False, 1, 5)
    x[:10] = 0.0
    computed = []
    original = skipping._integer_forward
    skipping._integer_forward = lambda t: computed.append(t.shape[0]) or original(t)
    with torch.no_grad():
        assert torch.equal(skipping(x), dense(x))
    assert computed == [22]


@kernels
def test_grid_is_checked_and_packing_follows_the_weights():
    torch.manual_seed(3)
    layer = IntegerConv2d.from_layer(nn.Conv2d(4, 4, 3), 8)
    x = _spikes((2, 4, 5, 5), False, 1, 6)
    with torch.no_grad():
        assert torch.equal(layer(x), _exact_conv(layer, x))
        layer.weight.mul_(2.0)
        layer.weight_scale.mul_(2.0)  # the same codes on a twice as coarse grid: repacked
        assert torch.equal(layer(x), _exact_conv(layer, x))
        layer.weight.add_(1e-3)
        with pytest.raises(ValueError, match="no longer on its 8-bit grid"):
            layer(x)


@kernels
def test_copies_and_state_dicts_round_trip():
    torch.manual_seed(4)
    layer = IntegerConv2d.from_layer(nn.Conv2d(4, 4, 3), 6, input_signed=True)
    x = _spikes((3, 4, 5, 5), True, 1, 7)
    with torch.no_grad():
        out = layer(x)  # packs: the packed tensor is opaque and must not break copying
        twin = copy.deepcopy(layer)
        fresh = IntegerConv2d.from_layer(nn.Conv2d(4, 4, 3), 6, input_signed=True)
        fresh.load_state_dict(layer.state_dict())
        assert torch.equal(twin(x), out) and torch.equal(fresh(x), out)
    assert set(layer.state_dict()) == {"weight", "bias", "weight_scale"}


def test_bad_layers_are_refused():
    with pytest.raises(ValueError, match="zero padding"):
        IntegerConv2d.from_layer(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(ValueError, match="nn.Linear"):
        IntegerLinear.from_layer(nn.Conv2d(2, 2, 3))


def test_convert_with_weight_bits_installs_integer_layers_where_spikes_flow():
    model, x = tiny_resnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    snn = convert(model, x, ConversionConfig(weight_bits=8))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # input unchanged
    layers = [(name, type(m).__name__) for name, m in snn.body.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers[0][1] == "SkipSilentConv2d"  # the stem sees the analog image: float arithmetic
    assert all(kind in ("IntegerConv2d", "IntegerLinear") for _, kind in layers[1:-1])
    # the head follows average pooling (non-integer input): float arithmetic on its quantized weight
    assert layers[-1][1] == "SkipSilentLinear"
    for _, module in snn.body.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            codes, _ = weight_grid(module.weight, 8)
            assert torch.equal(quantize_weight(module.weight, 8)[0], module.weight.detach())  # on the grid
            assert codes.abs().max() == 127
        if isinstance(module, (IntegerConv2d, IntegerLinear)):
            assert module.input_signed and module.skip_silent and module.spike_bound == 1
    quantized = [r for r in snn.report if r.status == "quantized"]
    assert len(quantized) == len(layers) and sum("integer arithmetic" in r.detail for r in quantized) == len(layers) - 2
    unsigned = convert(model, x, ConversionConfig(weight_bits=8, signed=False))
    assert not any(m.input_signed for m in unsigned.modules() if isinstance(m, (IntegerConv2d, IntegerLinear)))


@kernels
@pytest.mark.exactness
@pytest.mark.parametrize("signed", [False, True])
def test_integer_network_equals_its_twin_with_float64_sums(signed, monkeypatch):
    """The same converted network with its integer layers run by the int8 kernels and by exact float64
    sums (``_exact_float64``; every other layer the same float32 code): bit for bit, on every CPU. Signed
    spikes on a CPU without VNNI take the split path (layers/onednn.py); a CPU with VNNI takes the zero point,
    so both are checked here wherever this runs."""
    model, x = tiny_resnet(seed=3)
    snn = convert(model, x, ConversionConfig(weight_bits=8, signed=signed, max_strength=2))
    twin = copy.deepcopy(snn)
    layers = [m for m in twin.modules() if isinstance(m, (IntegerConv2d, IntegerLinear))]
    assert len(layers) == 5
    for layer in layers:
        monkeypatch.setattr(layer, "_integer_forward", layer._exact_float64)
    with torch.no_grad():
        readout = simulate(snn, x, 8)
        assert torch.equal(readout, simulate(twin, x, 8)) and readout.abs().sum() > 0


@kernels
def test_hardware_weights_keep_accuracy_on_mnist(data_available):
    """8-bit weights with integer arithmetic against float weights, on 500 real MNIST test digits
    (measured here at T=4: 99.6% float, 99.8% 8-bit; the predictions differ on 1 digit)."""
    from spikeconv.data import make_dataset, make_loader
    from spikeconv.tasks.checkpoint import load_model

    path = CHECKPOINTS / "mnist_lenet_qrelu.pt"
    if not path.exists():
        pytest.skip("shipped MNIST checkpoint missing")
    model, _ = load_model(path)
    images, labels = next(iter(make_loader(make_dataset("mnist", "test", limit=500), 500)))
    predictions = {}
    for bits in (None, 8):
        snn = convert(model, images[:2], ConversionConfig(weight_bits=bits))
        with torch.no_grad():
            predictions[bits] = simulate(snn, images, 4)[-1].argmax(-1)
    accuracy = {bits: (p == labels).float().mean().item() * 100 for bits, p in predictions.items()}
    assert accuracy[8] >= accuracy[None] - 0.5 and accuracy[8] >= 97.5, accuracy
    assert (predictions[8] != predictions[None]).sum() <= 3


@kernels
@pytest.mark.parametrize("signed,low,high", [(False, 0, 127), (True, -128, 127)])
def test_extreme_spike_values_are_exact(signed, low, high):
    torch.manual_seed(5)
    layer = IntegerConv2d.from_layer(nn.Conv2d(8, 4, 3, padding=1), 8, input_signed=signed)
    x = torch.randint(low, high + 1, (3, 8, 5, 5)).float()
    x[0, 0, 0, 0], x[1, 1, 1, 1] = low, high
    with torch.no_grad():
        assert torch.equal(layer(x), _exact_conv(layer, x))


def test_spikes_beyond_eight_bits_keep_float_arithmetic():
    model, x = tiny_resnet()
    snn = convert(model, x, ConversionConfig(weight_bits=8, max_strength=128, signed=False))
    assert not any(isinstance(m, (IntegerConv2d, IntegerLinear)) for m in snn.modules())
    assert all("float arithmetic" in r.detail for r in snn.report if r.status == "quantized")


def test_float_layer_shares_the_weights_and_takes_analog_input():
    layer = IntegerConv2d.from_layer(nn.Conv2d(3, 4, 3, padding=1), 8)
    plain = layer.float_layer()
    assert type(plain) is nn.Conv2d and plain.weight is layer.weight and plain.bias is layer.bias
    x = torch.rand(2, 3, 5, 5)  # fractions: an integer kernel would truncate them
    with torch.no_grad():
        assert torch.equal(plain(x), F.conv2d(x, layer.weight, layer.bias, padding=1))
    assert type(IntegerLinear.from_layer(nn.Linear(3, 2)).float_layer()) is nn.Linear


def test_analog_twin_of_an_integer_network_computes_rates_in_float():
    """The analysis tools feed rates (fractions) through the layers: the twin must not use integer kernels."""
    from spikeconv.analysis import analog_twin

    model, x = tiny_resnet(seed=2)
    integer = convert(model, x, ConversionConfig(weight_bits=8))
    floating = convert(model, x, ConversionConfig())
    twin = analog_twin(integer)
    assert not any(isinstance(m, (IntegerConv2d, IntegerLinear)) for m in twin.modules())
    assert any(isinstance(m, (IntegerConv2d, IntegerLinear)) for m in integer.modules())  # unchanged
    with torch.no_grad():
        ours, reference = twin(x), analog_twin(floating)(x)
    # the same network up to 8-bit weight rounding (a truncating kernel would be off by whole units)
    assert (ours - reference).abs().max() < 0.05 * reference.abs().max()


@kernels
def test_a_network_converted_under_inference_mode_runs():
    model, x = tiny_resnet()
    with torch.inference_mode():
        snn = convert(model, x, ConversionConfig(weight_bits=8))
        inside = simulate(snn, x, 4)
    reference = convert(model, x, ConversionConfig(weight_bits=8))
    with torch.no_grad():
        assert torch.equal(inside, simulate(reference, x, 4))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 999), signed=st.booleans(), strength=st.sampled_from([1, 2, 4, 64]),
       reset=st.sampled_from(["subtract", "zero"]), threshold=st.sampled_from([1.0, 0.75]),
       constant=st.booleans())
def test_int8_spikes_equal_float_spikes(seed, signed, strength, reset, threshold, constant):
    """A neuron emitting int8 spikes (spike_dtype) sends the same values and ends in the same state."""
    gen = torch.Generator().manual_seed(seed)
    config = NeuronConfig(threshold=threshold, reset=reset, max_strength=strength, signed=signed)
    x = torch.randn(7, 3, 5, generator=gen) * strength * threshold
    negated = signed and threshold == 1.0
    runs = []
    for dtype in (None, torch.int8):
        state, work = if_init(x[0], config), {}
        if constant:
            spikes = if_scan_(x[0], state, config, steps=7, work=work, negated_buffer=negated, spike_dtype=dtype)
        else:
            spikes = if_scan_(x, state, config, work=work, negated_buffer=negated, spike_dtype=dtype)
        runs.append((spikes, state))
    (floats, state_f), (ints, state_i) = runs
    assert ints.dtype == torch.int8 and floats.dtype == torch.float32
    assert torch.equal(floats, ints.float()) and floats.abs().max() <= strength
    assert torch.equal(state_f.v, state_i.v)
    assert (state_f.buffer is None) == (not signed) and (not signed or torch.equal(state_f.buffer, state_i.buffer))


def test_spike_dtype_is_checked():
    with pytest.raises(ValueError, match="spike_dtype"):
        IFNeuron(spike_dtype=torch.float16)
    with pytest.raises(ValueError, match="S\\^max <= 64"):
        IFNeuron(NeuronConfig(max_strength=128), spike_dtype=torch.int8)
    assert "spike_dtype=torch.int8" in repr(IFNeuron(spike_dtype=torch.int8))


@kernels
@pytest.mark.parametrize("signed", [False, True])
def test_converted_network_sends_int8_spikes_where_only_integer_layers_read_them(signed):
    """With weight_bits, neurons whose spikes reach only integer layers and weighted adds emit int8; the last
    one feeds average pooling (float) and keeps float32. Same readout, recordings and counts as float spikes."""
    model, x = tiny_resnet(seed=5)
    snn = convert(model, x, ConversionConfig(weight_bits=8, signed=signed, max_strength=2 if signed else 1))
    neurons = [(name, m) for name, m in snn.body.named_modules() if isinstance(m, IFNeuron)]
    assert [m.spike_dtype for _, m in neurons] == [torch.int8] * (len(neurons) - 1) + [None]
    floats = copy.deepcopy(snn)
    for module in floats.modules():
        if isinstance(module, IFNeuron):
            module.spike_dtype = None
    with record(snn) as rec, count_operations(snn) as ops:
        readout = simulate(snn, x, 6)
    with record(floats) as rec_f, count_operations(floats) as ops_f:
        reference = simulate(floats, x, 6)
    assert torch.equal(readout, reference)
    assert rec.keys() == rec_f.keys() and all(torch.equal(rec[k].spikes, rec_f[k].spikes) for k in rec)
    assert all(rec[k].spikes.dtype == torch.float32 for k in rec)
    assert all(ops[k].sop_adds == ops_f[k].sop_adds and ops[k].sop_events == ops_f[k].sop_events for k in ops)
    assert sum(sum(ops[k].sop_adds) for k in ops) > 0
    errors, errors_f = layer_rate_errors(snn, [x], 6), layer_rate_errors(floats, [x], 6)  # hooks summing int8
    assert errors.keys() == errors_f.keys() and all(torch.equal(errors[k], errors_f[k]) for k in errors)
    float_net = convert(model, x, ConversionConfig(signed=signed, max_strength=2 if signed else 1))
    assert all(m.spike_dtype is None for m in float_net.modules() if isinstance(m, IFNeuron))
