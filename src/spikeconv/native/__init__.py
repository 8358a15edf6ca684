r"""spikeconv's PyTorch operator ``spikeconv::event_conv2d``: a convolution from the nonzero spikes only.

The operator is registered with PyTorch's dispatcher (``torch.library``), so the profiler sees it as
``spikeconv::event_conv2d``, ``torch.compile`` traces it through its fake-tensor rule and ``opcheck`` tests it.
Its implementations follow one rule: on the CPU, once the C kernel is built (:func:`native_build`, on first
use), the C kernel (``kernels.c``, registered by ``ops.cpp``); everywhere else the PyTorch reference
:func:`event_conv2d_reference` (the scatter of :mod:`spikeconv.sim.events`' docstring). Both compute

    y[n, :, oy, ox] = sum over taps (ky, kx) in bounds and nonzero s = S[n, c, oy*sy - py + ky, ox*sx - px + kx]
                      of  s * rows[ky, kx, c, :]   (+ b)

each in a fixed order of its own, so the two agree bit for bit where every partial sum is exact (integer
weights) and up to float rounding otherwise.

It is the only C kernel left: on the trained CIFAR-10 nets it halves the time of event-driven simulation
(47-48% saved, ``benchmarks/native_gain.py``); the others (the IF scan, the silent-frame check, the integer
layers' helpers) saved under 10% end to end and were replaced by PyTorch (docs/simulation.md).

A leaf: imports only :mod:`spikeconv.atomic` and :mod:`spikeconv.cache`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .build import NativeBuild, compiler, cxx_compiler, native_build

__all__ = ["EVENT_MAX_CHANNELS", "NativeBuild", "compiler", "cxx_compiler", "event_conv2d", "event_conv2d_reference",
           "event_supported", "native_build", "runs_compiled"]

#: the most input channels :func:`event_conv2d` takes (the C kernel lists channels as uint16)
EVENT_MAX_CHANNELS = 65535

_LIBRARY = torch.library.Library("spikeconv", "DEF")  # the namespace's operators live as long as the module
_LIBRARY.define("event_conv2d(Tensor spikes, Tensor rows, Tensor? bias, int[2] stride, int[2] padding, "
                "float max_density) -> (Tensor, Tensor)")


def _output_size(spikes: Tensor, rows: Tensor, stride, padding) -> tuple[int, int]:
    return tuple((spikes.shape[2 + a] + 2 * padding[a] - rows.shape[a]) // stride[a] + 1 for a in (0, 1))


def event_conv2d_reference(spikes: Tensor, rows: Tensor, bias: Tensor | None, stride, padding) -> Tensor:
    """``conv2d(spikes, W, bias, stride, padding)`` with ``rows = W.permute(2, 3, 1, 0)``, by scattering each
    nonzero spike's weight rows into the outputs it reaches (``index_add_``; any device), channels-last.

    Example:
        >>> s = torch.zeros(1, 1, 3, 3); s[0, 0, 1, 1] = 1.0
        >>> w = torch.arange(9.).view(1, 1, 3, 3)
        >>> y = event_conv2d_reference(s, w.permute(2, 3, 1, 0), None, (1, 1), (1, 1))
        >>> torch.equal(y, torch.nn.functional.conv2d(s, w, padding=1))
        True
    """
    (stride_h, stride_w), (pad_h, pad_w) = stride, padding
    batch = spikes.shape[0]
    kernel_h, kernel_w, _, out_channels = rows.shape
    out_h, out_w = _output_size(spikes, rows, stride, padding)
    out = torch.zeros(batch * out_h * out_w, out_channels, dtype=rows.dtype, device=rows.device)
    n, c, y, x = spikes.nonzero(as_tuple=True)
    values = spikes[n, c, y, x].to(rows.dtype).unsqueeze(1)
    for ky in range(kernel_h):
        top = y + pad_h - ky
        for kx in range(kernel_w):
            left = x + pad_w - kx
            keep = (top % stride_h == 0) & (left % stride_w == 0)
            row, col = top.div(stride_h, rounding_mode="floor"), left.div(stride_w, rounding_mode="floor")
            keep &= (row >= 0) & (row < out_h) & (col >= 0) & (col < out_w)
            index = keep.nonzero(as_tuple=True)[0]
            if index.numel() == 0:
                continue
            target = (n[index] * out_h + row[index]) * out_w + col[index]
            out.index_add_(0, target, rows[ky, kx][c[index]] * values[index])
    if bias is not None:
        out += bias
    return out.view(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2)


def _empty_output(spikes: Tensor, rows: Tensor, stride, padding) -> Tensor:
    out_h, out_w = _output_size(spikes, rows, stride, padding)
    return torch.empty(spikes.shape[0], rows.shape[3], out_h, out_w, dtype=torch.float32, device=spikes.device,
                       memory_format=torch.channels_last)


def _reference(spikes, rows, bias, stride, padding, max_density):
    events = torch.count_nonzero(spikes)
    if events.item() > max_density * spikes.numel():
        return _empty_output(spikes, rows, stride, padding), events
    return _empty_output(spikes, rows, stride, padding).copy_(event_conv2d_reference(spikes, rows, bias, stride,
                                                                                    padding)), events


def _fake(spikes, rows, bias, stride, padding, max_density):
    return _empty_output(spikes, rows, stride, padding), spikes.new_empty((), dtype=torch.int64)


_LIBRARY.impl("event_conv2d", _reference, "CompositeExplicitAutograd")
torch.library.register_fake("spikeconv::event_conv2d", _fake, lib=_LIBRARY)


def event_supported(spikes: Tensor, rows: Tensor, bias: Tensor | None, stride: tuple[int, int],
                    padding: tuple[int, int]) -> bool:
    """Whether these arguments are in :func:`event_conv2d`'s domain: ``spikes`` a ``[N, C, H, W]`` int8 or
    float32 tensor with at most :data:`EVENT_MAX_CHANNELS` channels, ``rows`` contiguous float32
    ``[kH, kW, C, C_out]`` on the same device, ``bias`` None or contiguous float32 ``[C_out]``, a positive
    stride, a non-negative padding and a non-empty output.

    Example:
        >>> event_supported(torch.zeros(1, 2, 3, 3), torch.zeros(3, 3, 2, 4), None, (1, 1), (1, 1))
        True
        >>> event_supported(torch.zeros(1, 2, 3, 3).half(), torch.zeros(3, 3, 2, 4), None, (1, 1), (1, 1))
        False
    """
    if (spikes.dim() != 4 or spikes.dtype not in (torch.int8, torch.float32) or rows.dim() != 4
            or rows.dtype != torch.float32 or not rows.is_contiguous() or rows.device != spikes.device
            or rows.shape[2] != spikes.shape[1] or spikes.shape[1] > EVENT_MAX_CHANNELS
            or (bias is not None and (bias.dtype != torch.float32 or not bias.is_contiguous()
                                      or bias.shape != (rows.shape[3],)))
            or min(stride) < 1 or min(padding) < 0):
        return False
    out_h, out_w = _output_size(spikes, rows, stride, padding)
    return out_h >= 1 and out_w >= 1


def runs_compiled(spikes: Tensor) -> bool:
    """Whether :func:`event_conv2d` on ``spikes`` runs the C kernel (a CPU tensor, the kernel built here; the
    first ask builds it) rather than the PyTorch reference."""
    return spikes.device.type == "cpu" and native_build().available


def event_conv2d(spikes: Tensor, rows: Tensor, bias: Tensor | None, stride: tuple[int, int],
                 padding: tuple[int, int], max_density: float = 1.0) -> tuple[Tensor, int]:
    r"""``(y, events)``: ``events`` the number of nonzero spikes and, when ``events <= max_density *
    spikes.numel()``, ``y = conv2d(spikes, W, bias, stride, padding)`` as a channels-last float32 tensor
    (otherwise ``y`` is not computed: its values are unspecified; the caller runs the dense layer). ``rows`` is
    the weight as ``[kH, kW, C, C_out]`` contiguous float32 (``W.permute(2, 3, 1, 0)``); the arguments must be
    :func:`event_supported`. Runs ``torch.ops.spikeconv.event_conv2d`` (module docstring).

    Example:
        >>> s = torch.zeros(1, 2, 3, 3); s[0, 1, 1, 1] = 1.0
        >>> w = torch.arange(36.).view(2, 2, 3, 3)
        >>> y, events = event_conv2d(s, w.permute(2, 3, 1, 0).contiguous(), None, (1, 1), (1, 1))
        >>> events, torch.equal(y, torch.nn.functional.conv2d(s, w, padding=1))
        (1, True)

    Raises:
        ValueError: the arguments are not :func:`event_supported`.
    """
    if not event_supported(spikes, rows, bias, stride, padding):
        raise ValueError("event_conv2d takes [N, C, H, W] int8 or float32 spikes (at most 65535 channels), "
                         "contiguous float32 rows [kH, kW, C, C_out] and bias [C_out] on the same device, a positive "
                         "stride, a non-negative padding and a non-empty output; run the dense layer otherwise")
    runs_compiled(spikes)  # builds and registers the C kernel on first use
    out, events = torch.ops.spikeconv.event_conv2d(spikes, rows, bias, list(stride), list(padding), float(max_density))
    return out, int(events)
