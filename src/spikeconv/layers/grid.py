"""Hardware weights: each output channel's weight on a ``b``-bit integer grid, ``W'_o = s_o Q_o``."""

from __future__ import annotations

import torch
from torch import Tensor

MAX_BITS = 8
def check_weight_bits(bits: int) -> int:
    """Return ``bits`` if it is an integer from 2 to 8 (weight bits the int8 kernels hold), else raise ValueError.

    Example:
        >>> check_weight_bits(8)
        8
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= MAX_BITS:
        raise ValueError(f"weight bits must be an integer from 2 to {MAX_BITS}, got {bits!r}")
    return bits


def max_code(bits: int) -> int:
    """The largest code magnitude of the symmetric ``bits``-bit grid, ``2^(bits-1) - 1``.

    Example:
        >>> max_code(8)
        127
    """
    return 2 ** (bits - 1) - 1


def _per_channel(scale: Tensor, like: Tensor) -> Tensor:
    return scale.view(-1, *([1] * (like.dim() - 1)))


def weight_grid(weight: Tensor, bits: int = 8) -> tuple[Tensor, Tensor]:
    """``(Q, s)``: integer codes (float tensor, same shape) and per-output-channel scales of ``weight``.

    ``s_o = max|W_o| / (2^(bits-1) - 1)`` and ``Q_o = round(W_o / s_o)``; an all-zero channel gets
    ``s_o = 1`` and ``Q_o = 0``.

    Example:
        >>> codes, scale = weight_grid(torch.tensor([[0.5, -1.0, 0.26], [0.0, 0.0, 0.0]]), bits=3)
        >>> codes.tolist(), scale.tolist()
        ([[2.0, -3.0, 1.0], [0.0, 0.0, 0.0]], [0.3333333432674408, 1.0])
    """
    check_weight_bits(bits)
    if not weight.is_floating_point() or weight.dim() < 2:
        raise ValueError(f"weight_grid needs a floating weight of at least 2 dimensions, got {tuple(weight.shape)} "
                         f"{weight.dtype}")
    if not bool(torch.isfinite(weight).all()):
        raise ValueError("the weight contains NaN or infinite values; it cannot be put on an integer grid")
    levels = max_code(bits)
    peak = weight.detach().flatten(1).abs().amax(1).float()
    scale = torch.where(peak > 0, peak / levels, torch.ones_like(peak))
    codes = torch.round(weight.detach().float() / _per_channel(scale, weight)).clamp_(-levels, levels)
    return codes, scale


def quantize_weight(weight: Tensor, bits: int = 8) -> tuple[Tensor, Tensor]:
    """``(W', s)``: the weight on its ``bits``-bit per-channel grid, ``W'_o = s_o Q_o`` (:func:`weight_grid`),
    in ``weight``'s dtype and memory format, and the scales ``s``.

    Example:
        >>> quantize_weight(torch.tensor([[0.5, -1.0, 0.26]]), bits=3)[0]
        tensor([[ 0.6667, -1.0000,  0.3333]])
    """
    codes, scale = weight_grid(weight, bits)
    grid = (codes * _per_channel(scale, codes)).to(weight.dtype)
    if weight.dim() == 4 and not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last):
        grid = grid.contiguous(memory_format=torch.channels_last)
    return grid, scale
