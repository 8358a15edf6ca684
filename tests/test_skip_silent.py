"""Silent-frame skipping: exact (bit for bit) and the work really skipped."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from helpers import on_grid_, tiny_resnet
from spikeconv import ConversionConfig, convert, simulate
from spikeconv.layers import SkipSilentConv2d, SkipSilentLinear, active_span, skip_silent_frames


def _frames(count, shape, active, seed, signed=True):
    """``count`` frames of signed multi-bit spikes; frames not in ``active`` are all zero."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand((count, *shape), generator=gen) < 0.3).float()
    if signed:
        x = x * torch.randint(-2, 3, (count, *shape), generator=gen).float()
    keep = torch.zeros(count)
    keep[list(active)] = 1.0
    return x * keep.view(-1, *([1] * len(shape)))


def test_active_span_exact():
    x = torch.zeros(6, 2, 3, 3)
    assert active_span(x) == (0, 0)
    x[2, 1, 0, 0] = -1.0
    assert active_span(x) == (2, 3)
    x[4, 0, 2, 2] = 2.0
    assert active_span(x) == (2, 5)
    assert active_span(x.contiguous(memory_format=torch.channels_last)) == (2, 5)
    x[0, 0, 0, 0] = 1.0
    x[5, 1, 1, 1] = 1.0
    assert active_span(x) == (0, 6)
    assert active_span(x.transpose(2, 3)) == (0, 6)  # rows not dense in memory: no check, full span


def _integer_weights_(layer):
    """Integer-valued weights (as quantized for hardware): every partial sum is exact, so any backend's
    result is independent of how many frames it is given and the comparison can be bit for bit."""
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randint(-20, 21, p.shape).float())
    return layer


def test_float_weights_on_a_realistic_channels_last_conv_are_bit_identical():
    """oneDNN computes each frame of a 64-channel channels-last convolution the same way whatever the
    batch size (on small layers PyTorch's fallback may differ in the last bit: docs/simulation.md)."""
    torch.manual_seed(0)
    dense = nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    skipping = skip_silent_frames(nn.Sequential(dense))[0]
    x = _frames(24, (64, 16, 16), range(8, 24), seed=3).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(skipping(x), dense(x))


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 40), first=st.integers(0, 40), length=st.integers(0, 40), seed=st.integers(0, 999),
       stride=st.sampled_from([1, 2]), padding=st.sampled_from([0, 1]), groups=st.sampled_from([1, 2]),
       bias=st.booleans(), channels_last=st.booleans())
def test_skip_silent_conv_equals_dense_conv(count, first, length, seed, stride, padding, groups, bias,
                                             channels_last):
    torch.manual_seed(seed)
    dense = _integer_weights_(nn.Conv2d(4, 6, 3, stride=stride, padding=padding, groups=groups, bias=bias))
    skipping = skip_silent_frames(nn.Sequential(dense))[0]
    assert isinstance(skipping, SkipSilentConv2d) and skipping.weight is not dense.weight  # a copy
    x = _frames(count, (4, 7, 6), range(min(first, count), min(first + length, count)), seed)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        dense, skipping = dense.to(memory_format=torch.channels_last), skipping.to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(skipping(x), dense(x))


@settings(max_examples=30, deadline=None)
@given(count=st.integers(1, 40), first=st.integers(0, 40), length=st.integers(0, 40), seed=st.integers(0, 999),
       bias=st.booleans())
def test_skip_silent_linear_equals_dense_linear(count, first, length, seed, bias):
    torch.manual_seed(seed)
    dense = _integer_weights_(nn.Linear(12, 5, bias=bias))
    skipping = skip_silent_frames(nn.Sequential(dense))[0]
    assert isinstance(skipping, SkipSilentLinear)
    x = _frames(count, (12,), range(min(first, count), min(first + length, count)), seed)
    with torch.no_grad():
        assert torch.equal(skipping(x), dense(x))


def _frames_computed(monkeypatch) -> list[int]:
    seen = []
    original = nn.Conv2d._conv_forward

    def spy(self, x, weight, bias):
        seen.append(x.shape[0])
        return original(self, x, weight, bias)
    monkeypatch.setattr(nn.Conv2d, "_conv_forward", spy)
    return seen


def test_only_the_active_span_is_computed(monkeypatch):
    seen = _frames_computed(monkeypatch)
    conv = SkipSilentConv2d(2, 3, 3, padding=1)
    x = _frames(32, (2, 5, 5), range(10, 20), seed=1)
    with torch.no_grad():
        conv(x)
        conv(torch.zeros(32, 2, 5, 5))
        conv(_frames(32, (2, 5, 5), range(1, 32), seed=2))  # one silent frame of 32: not worth a copy
    assert seen == [10, 1, 32]


@pytest.mark.exactness
def test_converted_network_skips_clamped_steps_and_gives_identical_readout(monkeypatch):
    """Paper 004's voltage clamp silences deep layers for their first steps: those frames are skipped."""
    model, x = tiny_resnet()
    config = ConversionConfig(voltage_clamp=2, max_strength=2)
    skipping = on_grid_(convert(model, x, config))
    dense = on_grid_(convert(model, x, ConversionConfig(voltage_clamp=2, max_strength=2, skip_silent=False)))
    assert any(isinstance(m, SkipSilentConv2d) for m in skipping.body.modules())
    assert not any(isinstance(m, (SkipSilentConv2d, SkipSilentLinear)) for m in dense.body.modules())
    assert skipping.body.state_dict().keys() == dense.body.state_dict().keys()
    timesteps = 12
    seen = _frames_computed(monkeypatch)
    reference = simulate(dense.body, x, timesteps, order="layer")
    dense_frames, seen[:] = sum(seen), []
    assert torch.equal(simulate(skipping.body, x, timesteps, order="layer"), reference)
    skipped_frames = sum(seen)
    assert skipped_frames <= 0.75 * dense_frames  # measured 360 of 488
    for order in ("step", "auto"):
        assert torch.equal(simulate(skipping.body, x, timesteps, order=order), reference)


def test_convert_leaves_its_input_plain():
    model, x = tiny_resnet()
    before = [type(m) for m in model.modules()]
    convert(model, x, ConversionConfig())
    assert [type(m) for m in model.modules()] == before
    assert not any(isinstance(m, (SkipSilentConv2d, SkipSilentLinear)) for m in model.modules())
