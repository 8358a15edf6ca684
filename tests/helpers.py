"""Small networks shared by the tests, and the grid that makes simulations exact on any machine."""

import itertools
import os

import torch
from torch import nn

from spikeconv.models import build_model
from spikeconv.quant import QReLU, calibrate_bounds_

#: batch size of the exactness tests; CI runs them a second time with another one and another thread count
EXACT_BATCH = int(os.environ.get("SPIKECONV_TEST_BATCH", "4"))


def randomise_batchnorm_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (so folding is really tested)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_((torch.rand(n, generator=gen) - 0.5) * 0.4)
            m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_((torch.rand(n, generator=gen) - 0.5) * 0.2)
    return model


def tiny_resnet(levels: int = 8, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """A calibrated QReLU resnet_tiny in eval mode and an input batch."""
    torch.manual_seed(seed)
    model = build_model("resnet_tiny", activation=lambda: QReLU(levels=levels), width=8)
    randomise_batchnorm_(model, seed)
    x = torch.round(torch.randn(2 * EXACT_BATCH, 3, 16, 16) * 16) / 16  # on a grid: exact with on_grid_ weights
    calibrate_bounds_(model, [x], p=99.0)
    return model.eval(), x


GRID = 2.0 ** -6


def on_grid_(module: nn.Module, step: float = GRID) -> nn.Module:
    """Round every float parameter and buffer of ``module`` to a multiple of ``step``, in place.

    With inputs on a grid too (:func:`dyadic`), every product and sum the simulation forms is a multiple of a
    small power of two far below 2^24 in magnitude, hence exact in float32: results cannot depend on the
    summation order a backend picks for a batch size, a thread count or a CPU. This is what makes the
    exactness tests hold on any machine (float weights are compared up to summation order).
    """
    from spikeconv.layers import IntegerConv2d, IntegerLinear

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (IntegerConv2d, IntegerLinear)):
                continue  # integer layers compute exactly already (and keep their weights on their own grid)
            for tensor in itertools.chain(m.parameters(recurse=False), m.buffers(recurse=False)):
                if tensor.is_floating_point():
                    tensor.copy_(torch.round(tensor / step) * step)
    return module


def dyadic(*shape: int, seed: int = 0, levels: int = 32) -> torch.Tensor:
    """Inputs in [0, 1] on a grid of ``1 / levels`` (exact in float32 products with :func:`on_grid_` weights)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels + 1, shape, generator=gen).float() / levels
