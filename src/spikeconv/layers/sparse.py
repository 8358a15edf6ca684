r"""Weight layers that skip silent frames: exact work skipping where whole input frames carry no spike.

The engine folds time into the batch, so a weight layer of a converted network sees ``[steps * B, ...]``:
one *frame* (row of the leading axis) per sample and step. In a converted SNN the deep layers stay silent
for the first steps of a run, until their membranes reach threshold (the propagation latency of rate
coding; docs/simulation.md measures it layer by layer), and a silent frame needs no arithmetic: for a
weight layer ``y = W * S + b`` (convolution with zero padding, or linear),

    S[n] = 0   =>   y[n] = b        (exactly: every product is 0)

:class:`SkipSilentConv2d` and :class:`SkipSilentLinear` are ``nn.Conv2d`` / ``nn.Linear`` (same
parameters, same state dict, ``isinstance`` still holds) whose forward finds the span of frames that
carry a nonzero value, runs the layer on that span only and writes the bias into the frames before and
after it. The frames inside the span run densely, so the result is the dense layer's, bit for bit (each
output frame depends only on its own input frame). The check reduces the first and the last frame (the
common case late in a run: both carry spikes, nothing more to read), otherwise one reduction pass over the
input. On an accelerator the layers run densely (:func:`computed_span`).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .replace import set_submodule


MIN_SKIPPED = 16  # skip only when at least 1/16 of the frames (or one frame of fewer than 16) are silent


def _frames(x: Tensor) -> Tensor | None:
    """``x`` as a ``[N, -1]`` view (one row per frame) without copying, or None if its rows are not dense."""
    if x.dim() < 2:
        return None
    if x.is_contiguous():
        return x.view(x.shape[0], -1)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # NHWC rows are contiguous: a view
    return None


def _carries(row: Tensor) -> bool:
    return bool(row.amax() != 0) or bool(row.amin() != 0)


def active_span(x: Tensor) -> tuple[int, int]:
    """``(first, stop)``: the frames ``x[first:stop]`` hold every nonzero value of ``x`` (``(0, 0)`` if none).

    A frame is one entry of the leading axis. Inputs whose frames are not contiguous rows in memory
    report the full span (no check).

    Example:
        >>> x = torch.zeros(5, 3); x[2, 1] = 1.0; x[3, 0] = -2.0
        >>> active_span(x)
        (2, 4)
        >>> active_span(torch.zeros(4, 2))
        (0, 0)
    """
    count = x.shape[0] if x.dim() else 0
    rows = _frames(x)
    if rows is None or count == 0 or rows.shape[1] == 0:
        return 0, count
    if _carries(rows[0]) and _carries(rows[-1]):
        return 0, count
    alive = (rows.amax(1) != 0) | (rows.amin(1) != 0)
    index = alive.nonzero()
    if index.numel() == 0:
        return 0, 0
    return int(index[0]), int(index[-1]) + 1


def computed_span(x: Tensor) -> tuple[int, int]:
    """``(first, stop)``: the frames a skipping layer computes for input ``x``; ``(0, N)`` means all.

    The active span (:func:`active_span`), unless it would skip fewer than ``N / MIN_SKIPPED`` frames
    (then the copy into the output would cost more than the skipped work saves). Off the CPU every frame is
    computed: finding the span reads values back to the host, a synchronisation that cost more than the
    skipped work saved on an H200 (docs/simulation.md).

    Example:
        >>> x = torch.zeros(64, 4); x[8:] = 1.0
        >>> computed_span(x), computed_span(x[6:])  # 8 of 64 frames silent; 2 of 58 are not worth it
        ((8, 64), (0, 58))
    """
    count = x.shape[0] if x.dim() else 0
    if x.device.type != "cpu":
        return 0, count
    first, stop = active_span(x)
    if stop - first > count - max(1, count // MIN_SKIPPED):
        return 0, count
    return first, stop


def _skip_silent(layer: nn.Module, forward, x: Tensor) -> Tensor:
    count = x.shape[0]
    first, stop = computed_span(x)
    if (first, stop) == (0, count):
        return forward(x)
    if stop == 0:  # nothing fires: the layer's output on one zero frame, repeated
        one = forward(x[:1])
        return one.expand(count, *one.shape[1:]).contiguous(memory_format=_format_of(one))
    part = forward(x[first:stop])
    out = torch.empty((count, *part.shape[1:]), dtype=part.dtype, device=part.device,
                      memory_format=_format_of(part))
    if layer.bias is None:
        silent = torch.zeros((), dtype=part.dtype, device=part.device)
    elif isinstance(layer, nn.Linear):
        silent = layer.bias  # broadcasts along the last (feature) axis
    else:
        silent = layer.bias.view(1, -1, *([1] * (part.dim() - 2)))
    out[:first] = silent
    out[first:stop] = part
    out[stop:] = silent
    return out


def _format_of(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class SkipSilentConv2d(nn.Conv2d):
    """``nn.Conv2d`` that runs only on the span of input frames carrying spikes (module docstring).

    Example:
        >>> conv = SkipSilentConv2d(1, 2, 3, padding=1)
        >>> x = torch.zeros(4, 1, 5, 5); x[1, 0, 2, 2] = 1.0
        >>> torch.equal(conv(x), nn.functional.conv2d(x, conv.weight, conv.bias, padding=1))
        True
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode != "zeros":
            return super().forward(x)
        return _skip_silent(self, super().forward, x)


class SkipSilentLinear(nn.Linear):
    """``nn.Linear`` that runs only on the span of input frames carrying spikes (module docstring).

    Example:
        >>> fc = SkipSilentLinear(3, 2)
        >>> x = torch.tensor([[0., 0., 0.], [0., 1., 0.]])
        >>> torch.equal(fc(x), x @ fc.weight.T + fc.bias)
        True
    """

    def forward(self, x: Tensor) -> Tensor:
        return _skip_silent(self, super().forward, x)


def _skipping_copy(layer: nn.Module) -> nn.Module | None:
    """A SkipSilent layer sharing ``layer``'s parameters, or None for other layers (and subclasses)."""
    if type(layer) is nn.Conv2d and layer.padding_mode == "zeros":
        new = SkipSilentConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                               layer.padding, layer.dilation, layer.groups, layer.bias is not None, device="meta")
    elif type(layer) is nn.Linear:
        new = SkipSilentLinear(layer.in_features, layer.out_features, layer.bias is not None, device="meta")
    else:
        return None
    new.weight = layer.weight
    new.bias = layer.bias
    new.train(layer.training)
    return new


def skip_silent_frames_(model: nn.Module) -> nn.Module:
    """Replace, in place, every plain ``nn.Conv2d`` (zero padding) and ``nn.Linear`` of ``model`` by its
    silent-frame-skipping twin (same parameter tensors), and switch on skipping in the integer layers
    (:mod:`spikeconv.layers.integer`); returns ``model``. See :func:`skip_silent_frames`."""
    for name, module in list(model.named_modules()):
        if getattr(module, "skip_silent", None) is False:  # integer layers (layers/integer.py) skip by a flag
            module.skip_silent = True
            continue
        new = _skipping_copy(module)
        if new is not None and name:
            set_submodule(model, name, new)
    return model


def skip_silent_frames(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose plain ``Conv2d`` (zero padding) and ``Linear`` layers skip silent frames
    (type-keyed replacement; ``model`` is not changed). :func:`spikeconv.convert.convert` does this by
    default (``ConversionConfig(skip_silent=True)``).

    Example:
        >>> net = skip_silent_frames(nn.Sequential(nn.Linear(2, 2)))
        >>> type(net[0]).__name__
        'SkipSilentLinear'
    """
    return skip_silent_frames_(copy.deepcopy(model))


__all__ = ["SkipSilentConv2d", "SkipSilentLinear", "active_span", "computed_span", "skip_silent_frames", "skip_silent_frames_"]
