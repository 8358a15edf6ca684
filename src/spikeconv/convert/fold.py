r"""BatchNorm folding.

A BatchNorm in eval mode is the per-channel affine map ``y = a * x + c`` with
``a = gamma / sqrt(running_var + eps)`` and ``c = beta - a * running_mean``. Following a conv/linear
``x = W z + b`` it folds into it exactly: ``W' = a W`` (per output channel), ``b' = a (b - mu) + beta``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ChannelAffine


def batchnorm_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval-mode ``(a, c)`` of ``bn``: ``bn(x) = a * x + c`` per channel.

    Example:
        >>> bn = nn.BatchNorm1d(1).eval()
        >>> [t.tolist() for t in batchnorm_affine(bn)]
        [[0.9999949932098389], [0.0]]
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("a BatchNorm without running statistics (track_running_stats=False) cannot be folded")
    a = torch.rsqrt(bn.running_var.detach() + bn.eps)
    if bn.weight is not None:
        a = a * bn.weight.detach()
    c = -a * bn.running_mean.detach()
    if bn.bias is not None:
        c = c + bn.bias.detach()
    return a, c


@torch.no_grad()
def fold_batchnorm_(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn`` into the conv/linear ``layer`` that precedes it, in place (``layer`` then equals both).

    Example:
        >>> conv, bn = nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2).eval()
        >>> x = torch.randn(1, 1, 2, 2); ref = bn(conv(x))
        >>> fold_batchnorm_(conv, bn); torch.allclose(conv(x), ref)
        True
    """
    a, c = batchnorm_affine(bn)
    weight = layer.weight
    weight.mul_(a.view(-1, *([1] * (weight.dim() - 1))).to(weight.dtype))
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device))
    layer.bias.mul_(a.to(weight.dtype)).add_(c.to(weight.dtype))


def batchnorm_as_affine(bn: nn.modules.batchnorm._BatchNorm) -> ChannelAffine:
    """A :class:`ChannelAffine` equal to ``bn`` in eval mode (for a BatchNorm with nothing to fold into)."""
    a, c = batchnorm_affine(bn)
    return ChannelAffine(a, c)
