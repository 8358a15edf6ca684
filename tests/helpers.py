"""Small networks shared by the tests."""

import torch
from torch import nn

from spikeconv.models import build_model
from spikeconv.quant import QReLU, calibrate_bounds_


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
    x = torch.randn(8, 3, 16, 16)
    calibrate_bounds_(model, [x], p=99.0)
    return model.eval(), x
