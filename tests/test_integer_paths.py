"""How the integer layers run signed spikes (zero point, self-padding, shifted, split) and strided 1x1
convolutions: each path chosen where it should be and bit for bit the exact integer sum on every CPU."""

import pytest
import torch
from torch import nn

from integer_helpers import BOUNDED_LARGE, SELF_PADDED, ZERO_POINT, _codes, _exact_conv, _spikes, kernels
from spikeconv.layers import IntegerConv2d, IntegerLinear


@kernels
@pytest.mark.parametrize("side", [4, 17])  # the shifted path's map size and the zero-point kernel's
def test_signed_layers_without_negative_spikes_run_the_unsigned_kernel(side):
    """Spikes of a signed layer with no negative value (a buffered neuron's first step; the first spiking layer
    of a constant input) take the unsigned kernel, zero point 0: the same exact sums as every other path."""
    torch.manual_seed(side)
    conv = IntegerConv2d.from_layer(nn.Conv2d(8, 16, 3, padding=1), 8, input_signed=True, spike_bound=2)
    linear = IntegerLinear.from_layer(nn.Linear(8 * side * side, 5), 8, input_signed=True)
    positive = _spikes((4, 8, side, side), False, 2, side).to(torch.int8).contiguous(memory_format=torch.channels_last)
    mixed = _spikes((4, 8, side, side), True, 2, side + 1).to(torch.int8).contiguous(memory_format=torch.channels_last)
    assert bool((mixed < 0).any()) and not bool((positive < 0).any())
    assert conv._path(positive) == "kernel" and conv._path(mixed) == ("shifted" if side == 4 else BOUNDED_LARGE)
    with torch.no_grad():
        for x in (positive, mixed, positive):  # each call picks its own path; the memo keeps both packings
            assert torch.equal(conv(x), _exact_conv(conv, x.float()))
            flat = x.flatten(1)
            exact = (flat.double() @ _codes(linear).double().t()).float() * linear.weight_scale + linear.bias.detach()
            assert torch.equal(linear(flat), exact)
    # one packed weight per zero point; the shifted path shares the unsigned kernel's (zero point 0)
    expected = ({"packed, zero point 0", "packed, zero point 128"} if side == 17 and BOUNDED_LARGE == "kernel" else
                {"packed, zero point 0", "offset"})
    assert {key for key in conv._memo.entries if key != "weight zero points" and key != "unit"} == expected


@kernels
def test_shifted_path_is_chosen_by_map_size_and_exactness_bound():
    """The shifted path (unsigned kernel on S + c, window sums subtracted) only where it was measured faster
    (small maps) and where every sum stays below 2^24; elsewhere the zero-point path, with the same bits."""
    torch.manual_seed(2)
    small = IntegerConv2d.from_layer(nn.Conv2d(8, 8, 3, padding=1), 8, input_signed=True, spike_bound=2)
    x_small, x_large = _spikes((3, 8, 16, 16), True, 2, 0), _spikes((3, 8, 17, 17), True, 2, 1)
    assert small._path(x_small) == "shifted" and small._path(x_large) == BOUNDED_LARGE  # 256 vs 289 positions
    strided = IntegerConv2d.from_layer(nn.Conv2d(8, 8, 3, 2, padding=1), 8, input_signed=True, spike_bound=2)
    assert strided._path(x_large) == "shifted"  # 9x9 outputs
    unpadded = IntegerConv2d.from_layer(nn.Conv2d(8, 8, 1), 8, input_signed=True, spike_bound=2)
    assert unpadded._path(x_small[..., :8, :8]) == "shifted" and unpadded._path(x_large[..., :9, :9]) == BOUNDED_LARGE
    x_tiny = x_small[..., :8, :8]
    unknown = IntegerConv2d.from_layer(nn.Conv2d(8, 8, 3, padding=1), 8, input_signed=True)
    unsigned = IntegerConv2d.from_layer(nn.Conv2d(8, 8, 3, padding=1), 8)
    assert unknown._path(x_tiny) == SELF_PADDED and unknown._path(x_large[..., :9, :9]) == ZERO_POINT
    assert unsigned._path(x_small) == "kernel"
    wide = IntegerConv2d.from_layer(nn.Conv2d(4096, 2, 3, padding=1), 8, input_signed=True, spike_bound=8)
    negative = torch.zeros(1, 4096, 4, 4)
    negative[0, 7, 2, 1] = -1
    assert wide._path(negative) != "shifted"  # 36864 x 127 x 16 > 2^24: not exact in float32
    assert IntegerConv2d.from_layer(nn.Conv2d(4096, 2, 3, padding=1), 8, input_signed=True,
                                    spike_bound=1)._path(negative) == "shifted"
    with torch.no_grad():
        for layer, x in ((small, x_small), (small, x_large), (strided, x_large), (unpadded, x_tiny),
                         (unknown, x_tiny)):
            assert torch.equal(layer(x), _exact_conv(layer, x))
            assert torch.equal(layer(x.to(torch.int8)), _exact_conv(layer, x))
    zero_points = {"packed, zero point 0"} | ({"packed, zero point 128"} if BOUNDED_LARGE == "kernel" else set())
    assert {"offset", *zero_points} <= set(small._memo.entries)
    with pytest.raises(ValueError, match="spike_bound"):
        IntegerConv2d.from_layer(nn.Conv2d(2, 2, 3), 8, spike_bound=200)


@kernels
@pytest.mark.parametrize("strength", [1, 2, 8, 127])
def test_split_and_float64_paths_are_exact_where_pair_sums_saturate(strength, monkeypatch):
    """On a CPU without VNNI (forced here, so every CPU runs it) signed spikes go through two unsigned calls
    (``split``) or, where a partial sum could pass 2^24, exact float64 sums: bit for bit the exact result."""
    from spikeconv.layers import onednn

    monkeypatch.setattr(onednn, "saturating_pairs", lambda: True)
    torch.manual_seed(strength)
    conv = IntegerConv2d.from_layer(nn.Conv2d(24, 16, 3, padding=1), 8, input_signed=True)
    wide = IntegerLinear.from_layer(nn.Linear(1100, 7), 8, input_signed=True)  # 1100 x 127 x 128 > 2^24
    narrow = IntegerLinear.from_layer(nn.Linear(33, 7), 8, input_signed=True)
    x = _spikes((6, 24, 9, 9), True, strength, strength)
    x[0, 0, 0, 0] = -strength  # a negative spike: the signed paths
    assert conv._path(x) == "split"
    with torch.no_grad():
        assert torch.equal(conv(x), _exact_conv(conv, x)) and torch.equal(conv(x.to(torch.int8)), _exact_conv(conv, x))
        for layer in (narrow, wide):
            flat = _spikes((5, layer.in_features), True, strength, strength + 1)
            flat[0, 0] = -strength
            exact = (flat.double() @ _codes(layer).double().t()).float() * layer.weight_scale + layer.bias.detach()
            assert torch.equal(layer(flat), exact)


@kernels
@pytest.mark.exactness
@pytest.mark.parametrize("channels", [8, 24, 64])
def test_strided_1x1_convolution_is_exact(channels):
    """A strided 1x1 convolution (a ResNet shortcut) runs on the subsampled input at stride 1; oneDNN's own
    strided 1x1 kernel returned wrong sums on an AVX2 CPU for 8 and 24 input channels at batch 56."""
    torch.manual_seed(channels)
    layer = IntegerConv2d.from_layer(nn.Conv2d(channels, 16, 1, 2), 8)
    x = _spikes((56, channels, 15, 15), False, 2, channels)
    with torch.no_grad():
        out = layer(x)
    assert out.shape == (56, 16, 8, 8) and torch.equal(out, _exact_conv(layer, x))
