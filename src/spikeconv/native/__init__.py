r"""spikeconv's CPU kernels in C (``kernels.c``, built on first use: :mod:`spikeconv.native.build`).

- :func:`if_scan_`: every step of one neuron layer's chunk in one call. The eager scan makes four (plain
  IF) to eight (buffered) passes over memory per step, each a PyTorch call; this runs tiles of neurons
  step after step with their membrane and ``-V^b`` in cache, reading each current and writing each spike
  once (equations: :mod:`spikeconv.neuron.fused` and the C file's header). Bit-identical to the eager scan
  (``tests/test_native.py``).
- :func:`frame_span`: the frames of a dense tensor that carry a nonzero value, reading up to the first
  nonzero value from each end (the silent-frame check of :mod:`spikeconv.layers.sparse`), in place of four
  reductions and as many host synchronisations.
- :func:`has_negative`, :func:`offset_bytes` and :func:`rescale_`: the integer layers' check for negative
  spikes (without any, a signed layer runs the unsigned kernel), their input shift (signed int8 spikes to
  the uint8 the int8 kernels read) and the shifted path's epilogue, one pass each instead of PyTorch's one
  to three (:mod:`spikeconv.layers.integer`); bit-identical.
- :func:`event_conv2d`: a convolution (or, as a 1x1 one, a linear layer) computed from the nonzero spikes
  only, gathered per output position with the weight rows in cache: work proportional to the spikes
  (:mod:`spikeconv.sim.events` picks it per call below a density at which it beats the dense layer).

A leaf: imports only :mod:`spikeconv.atomic` and :mod:`spikeconv.cache`. Callers check
``native_build().available`` and keep their PyTorch path for when it is not.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from .build import NativeBuild, compiler, native_build

__all__ = ["NativeBuild", "PROFILER_NAME", "PROFILER_PREFIX", "compiler", "frame_span", "if_scan_", "is_dense",
           "native_build", "event_conv2d", "event_supported", "has_negative", "offset_bytes", "rescale_"]

#: torch.profiler names each C kernel call ``PROFILER_PREFIX + <kernel>`` (:func:`_run`); the scan's name:
PROFILER_PREFIX = "spikeconv::native_"
PROFILER_NAME = PROFILER_PREFIX + "if_scan"
#: dtypes :func:`frame_span` reads, with whether their sign bit is ignored (-0.0 is zero)
_SPAN_DTYPES = {torch.int8: False, torch.uint8: False, torch.int32: False, torch.float32: True,
                torch.float16: True, torch.bfloat16: True}


def _run(kernel: str, *args):
    """Call the C function ``spikeconv_<kernel>`` with ``args``; while torch.profiler records, inside the event
    ``spikeconv::native_<kernel>`` (ctypes calls are no profiler events otherwise; the annotation costs ~6 us a
    call, so only then)."""
    function = getattr(native_build().library, "spikeconv_" + kernel)
    if getattr(torch.autograd.profiler, "_is_profiler_enabled", False):
        with torch.profiler.record_function(PROFILER_PREFIX + kernel):
            return function(*args)
    return function(*args)


def if_scan_(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, *, max_strength: int,
             signed: bool, subtract: bool, constant: bool) -> None:
    """Every step of one chunk in one call, in place: ``spikes[t]`` from ``x[t]`` (``x`` itself every step
    when ``constant``), advancing ``v`` and ``buffer`` (``-V^b``, signed neurons), for threshold-1 neurons:
    ``V' = V + x[t]``, ``S = max(clamp(floor(V'), -S^max or 0, S^max), -V^b)``, ``A`` of Eq. 3 for
    ``S^max > 2``, ``-V^b -= S``, ``V = V' - S`` (``subtract``) or 0 where ``S != 0``.

    The caller has checked the layout (:func:`spikeconv.neuron.fused.fused_supported`: float32 ``x`` and
    ``v``, int8 or float32 spikes and buffer, all dense and laid out alike) and ``native_build().available``.

    Raises:
        ValueError: a tensor is not on the CPU.
    """
    if v.device.type != "cpu":
        raise ValueError(f"the C scan runs CPU tensors, got {v.device}; use the Triton or eager scan")
    steps = spikes.shape[0]
    if steps == 0:
        return
    args = (x.data_ptr(), 0 if constant else x.stride(0), v.data_ptr(),
            buffer.data_ptr() if signed else None, int(signed and buffer.dtype == torch.int8),
            spikes.data_ptr(), int(spikes.dtype == torch.int8), spikes.stride(0), steps, v.numel(),
            max_strength, int(signed), int(subtract), torch.get_num_threads())
    _run("if_scan", *args)


def frame_span(rows: Tensor) -> tuple[int, int] | None:
    """``(first, stop)``: the rows ``rows[first:stop]`` hold every nonzero value of the CPU tensor ``rows``
    (``[frames, n]``, each row contiguous; ``(0, 0)`` if none), or None where the C kernels cannot read it
    (not built, another dtype or device, rows not contiguous): then the caller reduces in PyTorch.

    Example:
        >>> rows = torch.zeros(5, 3); rows[2, 1] = 1.0; rows[3, 0] = -2.0
        >>> frame_span(rows) in [(2, 4), None]  # None only without a C compiler
        True
    """
    kind = _SPAN_DTYPES.get(rows.dtype)
    if (kind is None or rows.device.type != "cpu" or rows.dim() != 2 or rows.stride(1) != 1
            or not native_build().available):
        return None
    first, stop = ctypes.c_int64(), ctypes.c_int64()
    _run("frame_span", rows.data_ptr(), rows.shape[0], rows.stride(0) * rows.element_size(), rows.shape[1],
         rows.element_size(), int(kind), ctypes.byref(first), ctypes.byref(stop))
    return first.value, stop.value


def is_dense(t: Tensor) -> bool:
    """Whether ``t`` is stored densely, contiguous or channels-last: element i of the memory is one element
    of ``t``, as the C kernels read it."""
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


def has_negative(x: Tensor) -> bool:
    """Whether ``x`` holds a value below zero. For dense int8 CPU tensors the C kernel reads up to the first
    4 KiB block with one (a few blocks when negative spikes are common, one pass when there are none);
    otherwise ``bool((x < 0).any())``.

    Example:
        >>> has_negative(torch.tensor([0, 1, -1], dtype=torch.int8)), has_negative(torch.tensor([2], dtype=torch.int8))
        (True, False)
    """
    if x.dtype == torch.int8 and x.device.type == "cpu" and is_dense(x) and native_build().available:
        return bool(_run("any_negative", x.data_ptr(), x.numel(), torch.get_num_threads()))
    return bool((x < 0).any())


def offset_bytes(x: Tensor, add: int) -> Tensor | None:
    """``x + add`` modulo 256 as a new uint8 tensor laid out like ``x`` (int8 or uint8, dense, on the CPU),
    or None where the C kernels cannot take it. ``add = 128`` turns int8 spikes into the uint8 ``S + 128``
    of the int8 kernels (the same bits as ``x ^ 128``).

    Example:
        >>> out = offset_bytes(torch.tensor([-2, 0, 2], dtype=torch.int8), 128)
        >>> out is None or out.tolist() == [126, 128, 130]
        True
    """
    if x.dtype not in (torch.int8, torch.uint8) or x.device.type != "cpu" or not is_dense(x) \
            or not native_build().available:
        return None
    out = torch.empty_like(x, dtype=torch.uint8)
    _run("offset_bytes", x.data_ptr(), out.data_ptr(), x.numel(), int(add) % 256, torch.get_num_threads())
    return out


def rescale_(total: Tensor, offset: Tensor, scale: Tensor, bias: Tensor | None) -> bool:
    """In place, ``total = fl(fl((total - offset) * scale) + bias)`` per channel (the shifted path of
    :class:`spikeconv.layers.IntegerConv2d`), bit-identical to ``total.sub_(offset).mul_(s).add_(b)``; returns
    False (``total`` untouched) unless ``total`` is a channels-last float32 ``[N, C, H, W]`` CPU tensor,
    ``offset`` a channels-last ``[1, C, H, W]`` and ``scale`` / ``bias`` contiguous ``[C]``, all float32, and
    the C kernels are built.
    """
    if total.dim() != 4 or total.dtype != torch.float32 or total.device.type != "cpu" or not native_build().available:
        return False
    count, channels, height, width = total.shape
    layout = torch.channels_last
    if not (total.is_contiguous(memory_format=layout) and offset.shape == (1, channels, height, width)
            and offset.dtype == torch.float32 and offset.is_contiguous(memory_format=layout)
            and scale.shape == (channels,) and scale.dtype == torch.float32 and scale.is_contiguous()
            and (bias is None or (bias.shape == (channels,) and bias.dtype == torch.float32
                                  and bias.is_contiguous()))):
        return False
    _run("rescale", total.data_ptr(), offset.data_ptr(), scale.data_ptr(), None if bias is None else bias.data_ptr(),
         count, height * width, channels, torch.get_num_threads())
    return True


#: the most input channels :func:`event_conv2d` lists (uint16 indices)
EVENT_MAX_CHANNELS = 65535


def _event_output_size(spikes: Tensor, rows: Tensor, stride: tuple[int, int],
                       padding: tuple[int, int]) -> tuple[int, int]:
    return tuple((spikes.shape[2 + a] + 2 * padding[a] - rows.shape[a]) // stride[a] + 1 for a in (0, 1))


def event_supported(spikes: Tensor, rows: Tensor, bias: Tensor | None, stride: tuple[int, int],
                    padding: tuple[int, int]) -> bool:
    """Whether :func:`event_conv2d` takes these arguments (then it returns None only for a denser input than
    its ``max_density``): the C kernels built, ``spikes`` a ``[N, C, H, W]`` int8 or float32 CPU tensor with at
    most :data:`EVENT_MAX_CHANNELS` channels, ``rows`` contiguous float32 ``[kH, kW, C, C_out]``, ``bias``
    None or contiguous float32 ``[C_out]``, a non-empty output."""
    if (spikes.dim() != 4 or spikes.dtype not in (torch.int8, torch.float32) or spikes.device.type != "cpu"
            or rows.dim() != 4 or rows.dtype != torch.float32 or not rows.is_contiguous() or rows.device.type != "cpu"
            or rows.shape[2] != spikes.shape[1] or spikes.shape[1] > EVENT_MAX_CHANNELS
            or (bias is not None and (bias.dtype != torch.float32 or not bias.is_contiguous()
                                      or bias.shape != (rows.shape[3],)))
            or min(stride) < 1 or min(padding) < 0):
        return False
    out_h, out_w = _event_output_size(spikes, rows, stride, padding)
    return out_h >= 1 and out_w >= 1 and native_build().available


def event_conv2d(spikes: Tensor, rows: Tensor, bias: Tensor | None, stride: tuple[int, int],
                 padding: tuple[int, int], max_density: float = 1.0) -> Tensor | None:
    r"""``conv2d(spikes, W, bias, stride, padding)`` from the nonzero spikes only, as a channels-last float32
    tensor; or None where the C kernels cannot take it (not built, wrong dtype/device/layout, more than
    :data:`EVENT_MAX_CHANNELS` channels) or the input is denser than
    ``max_density`` (fraction of nonzero values, counted by the kernel's first pass): then the caller runs
    the dense layer. :func:`event_supported` tells the two apart.

    ``spikes``: ``[N, C, H, W]`` int8 or float32 on the CPU (channels-last memory read as it is, otherwise made
    so); ``rows``: the weight as ``[kH, kW, C, C_out]`` contiguous float32 (``W.permute(2, 3, 1, 0)``), one row
    of ``C_out`` weights per tap and input channel. For each output position ``(n, oy, ox)``:

        y[n, :, oy, ox] = sum over taps (ky, kx) in bounds and nonzero s = S[n, c, oy*sy - py + ky, ox*sx - px + kx]
                          of  s * rows[ky, kx, c, :]   (+ b)

    summed in a fixed order per output position (kernels.c), so any split of the frames gives the same bits;
    the order differs from the dense convolution's: float results equal it up to float rounding (exactly when
    every partial sum is representable, e.g. integer-valued weights).

    Example:
        >>> s = torch.zeros(1, 2, 3, 3); s[0, 1, 1, 1] = 1.0
        >>> w = torch.arange(36.).view(2, 2, 3, 3)
        >>> y = event_conv2d(s, w.permute(2, 3, 1, 0).contiguous(), None, (1, 1), (1, 1))
        >>> y is None or torch.equal(y, torch.nn.functional.conv2d(s, w, padding=1))
        True
    """
    if not event_supported(spikes, rows, bias, stride, padding):
        return None
    frames, channels, height, width = spikes.shape
    kernel_h, kernel_w, _, out_channels = rows.shape
    out_h, out_w = _event_output_size(spikes, rows, stride, padding)
    spikes = spikes.contiguous(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    positions = frames * height * width
    offsets = torch.empty(positions + 1, dtype=torch.int64)
    unit = ctypes.c_int()
    is_int8 = int(spikes.dtype == torch.int8)
    total = _run("event_lists", spikes.data_ptr(), is_int8, positions, channels, offsets.data_ptr(), None, None,
                 ctypes.byref(unit), threads)
    if total > max_density * spikes.numel():
        return None
    index = torch.empty(max(total, 1), dtype=torch.int16)
    values = None if unit.value else torch.empty(max(total, 1), dtype=torch.float32)
    _run("event_lists", spikes.data_ptr(), is_int8, positions, channels, offsets.data_ptr(), index.data_ptr(),
         None if values is None else values.data_ptr(), ctypes.byref(unit), threads)
    out = torch.empty(frames, out_channels, out_h, out_w, memory_format=torch.channels_last)
    _run("event_conv", offsets.data_ptr(), index.data_ptr(), None if values is None else values.data_ptr(), frames,
         height, width, channels, rows.data_ptr(), kernel_h, kernel_w, stride[0], stride[1], padding[0], padding[1],
         None if bias is None else bias.data_ptr(), out.data_ptr(), out_channels, out_h, out_w, threads)
    return out
