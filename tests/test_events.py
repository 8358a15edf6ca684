"""Event-driven accumulation: the same sums as the dense layers, bit for bit on integer weights."""

import pytest
import torch
import torch.nn.functional as F
from conftest import CHECKPOINTS
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.sim import EventDriven, event_conv2d, event_driven, event_linear, watch_paths


def _spikes(shape, rate, seed, signed=True):
    gen = torch.Generator().manual_seed(seed)
    s = (torch.rand(shape, generator=gen) < rate).float()
    if signed:
        s = s * torch.randint(-2, 3, shape, generator=gen).float()  # multi-bit, signed
    return s


@settings(max_examples=30, deadline=None)
@given(stride=st.sampled_from([1, 2]), padding=st.sampled_from([0, 1, 2]), kernel=st.sampled_from([1, 3, 5]),
       rate=st.sampled_from([0.0, 0.01, 0.2, 1.0]), seed=st.integers(0, 1000), channels_last=st.booleans())
def test_event_conv_equals_dense_conv_bit_for_bit_on_integer_weights(stride, padding, kernel, rate, seed,
                                                                     channels_last):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randint(-127, 128, (5, 3, kernel, kernel), generator=gen).float()
    bias = torch.randint(-50, 50, (5,), generator=gen).float()
    s = _spikes((2, 3, 9, 8), rate, seed)
    if channels_last:
        s = s.contiguous(memory_format=torch.channels_last)
    dense = F.conv2d(s, weight, bias, stride, padding)
    assert torch.equal(event_conv2d(s, weight, bias, stride, padding), dense)


def test_event_layers_match_dense_float_layers():
    torch.manual_seed(0)
    conv, linear = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.Linear(64, 10)
    s = _spikes((4, 8, 16, 16), 0.05, 1)
    torch.testing.assert_close(event_conv2d(s, conv.weight, conv.bias, 2, 1), conv(s), rtol=1e-5, atol=1e-5)
    v = _spikes((6, 64), 0.1, 2)
    torch.testing.assert_close(event_linear(v, linear.weight, linear.bias), linear(v), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="input channels"):
        event_conv2d(s, conv.weight[:, :4])
    with pytest.raises(ValueError, match="groups"):
        EventDriven(nn.Conv2d(4, 4, 3, groups=2))


def test_event_driven_network_gives_the_dense_accuracy_and_uses_both_paths(data_available):
    """On the shipped MNIST LeNet: the event-driven copy reads out what the dense SNN reads out; each layer
    takes the path its input density calls for (measured on this slice: image 0.19, spikes into the
    hidden layers 0.31, 0.41, 0.40, into the last one 0.23)."""
    from spikeconv.data import make_dataset, make_loader
    from spikeconv.tasks.checkpoint import load_model

    model, _ = load_model(CHECKPOINTS / "mnist_lenet_qrelu.pt")
    x, y = next(iter(make_loader(make_dataset("mnist", "test", limit=64), 64)))
    snn = convert(model, x, ConversionConfig())
    sparse = event_driven(snn, max_density=0.3)
    dense_out = simulate(snn, x, 8, order="layer")
    with watch_paths(sparse) as paths:
        event_out = simulate(sparse, x, 8, order="layer")
    torch.testing.assert_close(event_out, dense_out, rtol=1e-4, atol=1e-4)
    assert torch.equal(event_out[-1].argmax(1), dense_out[-1].argmax(1))
    assert list(paths.values()) == [{"events": 1, "dense": 0}, {"events": 0, "dense": 1}, {"events": 0, "dense": 1},
                     {"events": 0, "dense": 1}, {"events": 1, "dense": 0}]
    assert not any(isinstance(m, EventDriven) for m in snn.modules())  # the original is untouched
