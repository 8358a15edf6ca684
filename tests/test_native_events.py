"""The event operator's C kernel (spikeconv.native.event_conv2d) and EventDriven on it: exact against the dense
convolution wherever the sums are exact (integer weights, every block width, stride, padding, kernel size,
int8 and float32 spikes, 0/1 and multi-valued signed spikes), close on float weights, the same bits for any
split of the frames, the density limit honoured, and the dense layer or the scatter reference where the
kernel does not apply."""

import pytest
import torch
from helpers import on_grid_
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from spikeconv import native
from spikeconv.layers import IntegerConv2d
from spikeconv.sim import EventDriven, default_max_density, event_driven, watch_paths

needs_native = pytest.mark.skipif(native.compiler() is None or native.cxx_compiler() is None,
                                  reason="no C and C++ compiler on this machine")


def _rows(weight: torch.Tensor) -> torch.Tensor:
    return weight.permute(2, 3, 1, 0).contiguous()


def _spikes(shape, rate, seed, values=(1,), dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    fire = torch.rand(shape, generator=gen) < rate
    pick = torch.tensor(values, dtype=torch.float32)[torch.randint(len(values), shape, generator=gen)]
    return (fire * pick).to(dtype)


@needs_native
@settings(max_examples=60, deadline=None)
@given(frames=st.integers(1, 3), channels=st.integers(1, 70), size=st.integers(1, 9),
       out_channels=st.sampled_from([1, 5, 16, 17, 32, 48, 63, 64, 65, 112, 130]), kernel=st.sampled_from([1, 2, 3, 5]),
       stride=st.integers(1, 2), padding=st.integers(0, 2), rate=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       signed=st.booleans(), int8=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_events_equal_the_dense_convolution_bit_for_bit_on_integer_weights(
        frames, channels, size, out_channels, kernel, stride, padding, rate, signed, int8, bias, seed):
    if size + 2 * padding < kernel:
        return
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randint(-8, 9, (out_channels, channels, kernel, kernel), generator=gen).float()
    b = torch.randint(-50, 51, (out_channels,), generator=gen).float() if bias else None
    x = _spikes((frames, channels, size, size), rate, seed, (-2, -1, 1, 2) if signed else (1,),
                torch.int8 if int8 else torch.float32)
    out, _ = native.event_conv2d(x, _rows(weight), b, (stride, stride), (padding, padding))
    expected = F.conv2d(x.float(), weight, b, stride, padding)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, expected)


@needs_native
@pytest.mark.parametrize("width, stride", [(70, 1), (33, 1), (75, 2)])
def test_events_exact_on_lines_of_several_tiles(width, stride):
    """Output lines longer than one tile of 32 positions (full, partial and one-position last tiles)."""
    gen = torch.Generator().manual_seed(width)
    weight = torch.randint(-8, 9, (80, 5, 3, 3), generator=gen).float()  # 64 + 16 output channels
    bias = torch.randint(-9, 10, (80,), generator=gen).float()
    x = _spikes((2, 5, 3, width), 0.4, width, (-1, 1, 2), torch.int8)
    out, _ = native.event_conv2d(x, _rows(weight), bias, (1, stride), (1, 1))
    assert torch.equal(out, F.conv2d(x.float(), weight, bias, (1, stride), 1))


@needs_native
def test_events_on_float_weights_match_the_dense_layer_and_any_split_of_the_frames():
    torch.manual_seed(0)
    conv = nn.Conv2d(96, 80, 3, stride=1, padding=1)
    x = _spikes((12, 96, 8, 8), 0.3, 1).contiguous(memory_format=torch.channels_last)
    rows, bias = _rows(conv.weight.detach()), conv.bias.detach()
    whole, _ = native.event_conv2d(x, rows, bias, (1, 1), (1, 1))
    reference = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), 1, 1)
    torch.testing.assert_close(whole.double(), reference, rtol=0, atol=2e-5)
    parts = torch.cat([native.event_conv2d(x[a:b], rows, bias, (1, 1), (1, 1))[0] for a, b in ((0, 5), (5, 6), (6, 12))])
    assert torch.equal(parts, whole)  # each output position sums in its own fixed order
    contiguous, _ = native.event_conv2d(x.contiguous(), rows, bias, (1, 1), (1, 1))  # NCHW input: made channels-last
    assert torch.equal(contiguous, whole)


@needs_native
def test_the_density_limit_and_what_the_kernel_declines():
    x = _spikes((2, 8, 6, 6), 0.25, 3)
    density = int(torch.count_nonzero(x)) / x.numel()
    weight = torch.randn(16, 8, 3, 3)
    rows = _rows(weight)
    events = int(torch.count_nonzero(x))
    assert native.event_conv2d(x, rows, None, (1, 1), (1, 1), max_density=density - 1e-3)[1] == events
    out, counted = native.event_conv2d(x, rows, None, (1, 1), (1, 1), max_density=density)
    assert counted == events
    torch.testing.assert_close(out, F.conv2d(x, weight, None, 1, 1), rtol=0, atol=1e-5)
    assert native.event_supported(x, rows, None, (1, 1), (1, 1))
    assert not native.event_supported(x.half(), rows, None, (1, 1), (1, 1))  # dtype
    assert not native.event_supported(x, rows[:, :, :4].contiguous(), None, (1, 1), (1, 1))  # channels differ
    assert not native.event_supported(x, rows.transpose(0, 1), None, (1, 1), (1, 1))  # not contiguous
    assert not native.event_supported(x, rows, None, (0, 1), (1, 1))  # stride 0
    assert not native.event_supported(x, rows, None, (1, 1), (-1, 1))  # negative padding
    big = torch.randint(-3, 4, (16, 8, 9, 9)).float()  # 81 taps: no limit on the kernel size
    torch.testing.assert_close(native.event_conv2d(x, _rows(big), None, (1, 1), (4, 4))[0],
                               F.conv2d(x, big, None, 1, 4), rtol=0, atol=0)
    assert not native.event_supported(x, rows, torch.zeros(15), (1, 1), (1, 1))  # bias size
    assert not native.event_supported(x, _rows(torch.randn(16, 8, 9, 1)), None, (1, 1), (0, 0))  # empty output


def test_default_densities_follow_the_measured_crossovers():
    assert default_max_density(nn.Conv2d(64, 64, 3, padding=1)) == 0.4       # w = 576, 64 inputs
    assert default_max_density(nn.Conv2d(32, 64, 3, 2, 1)) == 0.3            # w = 144, strided
    assert default_max_density(nn.Conv2d(256, 256, 3, 1, 1)) == 0.35
    assert default_max_density(nn.Conv2d(512, 512, 3, 1, 1)) == 0.3
    assert default_max_density(nn.Conv2d(64, 128, 1, 2)) == 0.0              # w = 32: never events
    assert default_max_density(nn.Linear(4096, 512)) == 0.3
    assert default_max_density(nn.Linear(2048, 10)) == 0.0


@needs_native
def test_event_driven_layers_take_the_c_kernel_the_dense_layer_or_the_scatter(monkeypatch):
    torch.manual_seed(0)
    conv, fc = nn.Conv2d(16, 64, 3, padding=1), nn.Linear(256, 600)
    wrapped_conv, wrapped_fc = EventDriven(conv), EventDriven(fc)
    sparse_map, sparse_vec = _spikes((4, 16, 8, 8), 0.2, 0), _spikes((5, 256), 0.2, 1)
    with torch.no_grad(), watch_paths(wrapped_conv) as conv_paths, watch_paths(wrapped_fc) as fc_paths:
        torch.testing.assert_close(wrapped_conv(sparse_map), conv(sparse_map), rtol=0, atol=1e-5)
        torch.testing.assert_close(wrapped_fc(sparse_vec), fc(sparse_vec), rtol=0, atol=1e-5)
        wrapped_conv(torch.ones(4, 16, 8, 8))  # dense input: the dense layer
    assert conv_paths[""] == {"events": 1, "dense": 1} and fc_paths[""] == {"events": 1, "dense": 0}
    # the weight changes: the rows are made again
    with torch.no_grad():
        conv.weight.mul_(2.0)
        torch.testing.assert_close(wrapped_conv(sparse_map), conv(sparse_map), rtol=0, atol=2e-5)
    # autograd recording: the operator has no derivative, so the dense layer
    grads = EventDriven(conv)
    with watch_paths(grads) as paths:
        y = grads(sparse_map.requires_grad_())
    assert y.requires_grad and paths[""] == {"events": 0, "dense": 1}
    # without the C kernel: the operator's scatter reference, below its own much lower default density
    monkeypatch.setattr(native, "runs_compiled", lambda x: False)
    monkeypatch.setattr(native, "event_conv2d", _scatter_only)
    fallback = EventDriven(conv)
    with torch.no_grad(), watch_paths(fallback) as paths:
        fallback(sparse_map.detach())
        very_sparse = torch.zeros(4, 16, 8, 8)
        very_sparse[0, 0, 0, 0] = 1.0
        torch.testing.assert_close(fallback(very_sparse), conv(very_sparse), rtol=0, atol=1e-6)
    assert paths[""] == {"events": 1, "dense": 1}


def _scatter_only(spikes, rows, bias, stride, padding, max_density=1.0):
    """``native.event_conv2d`` as the operator's scatter reference computes it (a machine without the kernel)."""
    events = int(torch.count_nonzero(spikes))
    if events > max_density * spikes.numel():
        return None, events
    return native.event_conv2d_reference(spikes, rows, bias, stride, padding), events


def test_weights_stored_as_rows_give_the_same_layers():
    torch.manual_seed(1)
    for layer, x in ((nn.Conv2d(8, 64, 3, padding=1), _spikes((3, 8, 6, 6), 0.3, 4)),
                     (nn.Linear(40, 200), _spikes((5, 40), 0.3, 5))):
        wrapped = EventDriven(layer, mode="events")
        with torch.no_grad():
            before, dense_before = wrapped(x), layer(x)
            wrapped.store_as_rows()
            assert torch.equal(wrapped(x), before)
            torch.testing.assert_close(layer(x), dense_before, rtol=0, atol=1e-6)  # strided weights: other order
        assert wrapped._rows().data_ptr() == layer.weight.data_ptr() and wrapped._rows_cache is None


def test_event_driven_leaves_integer_layers_alone():
    net = nn.Sequential(IntegerConv2d.from_layer(nn.Conv2d(4, 64, 3, padding=1), 8), nn.Conv2d(64, 64, 3, padding=1))
    wrapped = event_driven(net)
    assert isinstance(wrapped[0], IntegerConv2d) and isinstance(wrapped[1], EventDriven)


@needs_native
def test_the_measuring_run_holds_one_row_copy_at_a_time(monkeypatch):
    """event_driven(..., inputs=x) checks once per wrapper and kind of input that the C kernel takes it (the
    check makes the weight's row copy); the copy is dropped right away, so at most one layer's exists."""
    from spikeconv import ConversionConfig, convert

    ann = nn.Sequential(nn.Conv2d(2, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(64 * 36, 10)).eval()
    x = torch.rand(4, 2, 6, 6)
    net = convert(ann, x, ConversionConfig(), calibration=[x]).body
    held, checks, rows = [], [], EventDriven._rows

    def watched(self):  # row copies come only from _rows: count the wrappers holding one after each
        out = rows(self)
        checks.append(self)
        held.append(sum(w._rows_cache is not None for w in set(checks)))
        return out

    monkeypatch.setattr(EventDriven, "_rows", watched)
    event_driven(net, inputs=x, timesteps=6)
    assert len(checks) == 3  # one check per wrapper (the same kind of input every step), not one per call
    assert max(held) == 1


@pytest.mark.exactness
def test_fixed_paths_from_a_measured_run_give_every_order_the_same_bits(data_available):
    """On the shipped MNIST LeNet and 32 real test images: event_driven(..., inputs=x) measures each layer's
    input density over a run, fixes events below the layer's limit and dense above; the fixed network reads
    out the same bits in layer order, step order and chunks, and the dense network's classes."""
    from conftest import CHECKPOINTS
    from spikeconv import ConversionConfig, convert, simulate
    from spikeconv.data import make_dataset, make_loader
    from spikeconv.tasks.checkpoint import load_model

    model, _ = load_model(CHECKPOINTS / "mnist_lenet_qrelu.pt")
    x, _ = next(iter(make_loader(make_dataset("mnist", "test", limit=32), 32)))
    x = torch.round(x * 256) / 256  # with grid weights every sum is exact: the same bits on any machine
    snn = on_grid_(convert(model, x, ConversionConfig()))
    fixed = event_driven(snn, max_density=0.35, inputs=x, timesteps=8)
    wrappers = [m for m in fixed.modules() if isinstance(m, EventDriven)]
    assert [w.mode for w in wrappers] == ["events" if w.density <= 0.35 else "dense" for w in wrappers]
    assert {"events", "dense"} <= {w.mode for w in wrappers}  # the image (density ~0.19 > 0) and the spikes
    assert all(w._observer is None for w in wrappers)  # nothing records outside watch_paths
    for w in wrappers:  # each weight held once: the events layers' rows are their weight, stored in row order
        assert w._rows_cache is None
        if w.mode == "events":
            assert w._rows().data_ptr() == w.layer.weight.data_ptr()
    with torch.no_grad():
        layer = simulate(fixed, x, 8, order="layer")
        assert torch.equal(layer, simulate(fixed, x, 8, order="step"))
        assert torch.equal(layer, simulate(fixed, x, 8, order="layer", chunk=3))
        dense = simulate(snn, x, 8, order="layer")
    assert torch.equal(layer, dense)  # exact sums: events and dense agree bit for bit
    with pytest.raises(ValueError, match="timesteps"):
        event_driven(snn, inputs=x, timesteps=0)
    with pytest.raises(ValueError, match="mode"):
        EventDriven(nn.Linear(2, 2), mode="sparse")
