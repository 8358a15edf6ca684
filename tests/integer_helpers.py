"""Shared by the integer-layer tests: random integer spikes, the exact reference sums, the kernel marks."""

import pytest
import torch
from torch.nn import functional as F

from spikeconv.layers import integer_kernels_available
from spikeconv.layers.onednn import saturating_pairs

kernels = pytest.mark.skipif(not integer_kernels_available(), reason="no oneDNN int8 kernels in this build")
#: the path of signed spikes through oneDNN's zero point (or self-padding) on this CPU: split into two unsigned
#: calls where the kernels add pairs in saturating int16 (no VNNI; spikeconv/layers/onednn.py)
ZERO_POINT, SELF_PADDED = ("split", "split") if saturating_pairs() else ("kernel", "self-padded")
#: signed spikes of known bound on a large map: the zero point, or without VNNI the shifted path on every map
BOUNDED_LARGE = "shifted" if saturating_pairs() else "kernel"


def _spikes(shape, signed, strength, seed):
    gen = torch.Generator().manual_seed(seed)
    low = -strength if signed else 0
    fire = torch.rand(shape, generator=gen) < 0.3
    return torch.randint(low, strength + 1, shape, generator=gen).float() * fire


def _codes(layer):
    return torch.round(layer.weight.detach() / layer.weight_scale.view(-1, *([1] * (layer.weight.dim() - 1))))


def _exact_conv(layer, x):
    """``fl(fl(Q * S) * s) + b`` with the integer sum computed exactly (float64)."""
    exact = F.conv2d(x.double(), _codes(layer).double(), None, layer.stride, layer.padding, layer.dilation,
                     layer.groups).float()
    out = exact * layer.weight_scale.view(1, -1, 1, 1)
    return out if layer.bias is None else out + layer.bias.detach().view(1, -1, 1, 1)
