r"""The IF scan of one chunk fused into one kernel per neuron layer: Triton on CUDA, C on the CPU.

The eager scan (:func:`spikeconv.neuron.functional._scan_steps_`) runs three to eight elementwise
operations per step, each a pass over memory (and, on a GPU, a kernel launch). The fused scans keep the
membrane ``V`` (and ``-V^b``) in registers or L1 across the chunk's steps, read the current ``x[t]`` and
write the spikes ``S[t]`` once each, for the neurons the converter emits (``V_th = 1``):

    V' = V + x[t];   S = clamp(floor(V'), -S^max [signed] or 0, S^max);   S = max(S, -V^b) [signed]
    S = sign(S) * A(|S|)   (Eq. 3, A(a) = the largest power of two <= a; only for S^max > 2)
    -V^b -= S [signed];    V = V' - S (reset by subtraction) or V = 0 where S != 0 (reset to zero)

Every operation but ``V + x[t]`` acts on small integers (exact in any dtype), and that addition is one IEEE
rounding here as in the eager step, so both kernels are bit-identical to the eager scan. The Triton kernel
(this module; tests/test_fused.py runs it through Triton's interpreter on the CPU and compiles it for sm_90
to check that its PTX keeps denormals and fuses no multiply-add; tests/test_cuda.py runs it on a GPU) is
opt-in, ``simulate(fused=True)``: not yet run or timed on a GPU (docs/simulation.md). The C kernel
(:func:`spikeconv.native.if_scan_`, tests/test_native.py) is the CPU default. Anything else (another threshold,
a float16 membrane, unequal memory layouts) is not :func:`fused_supported` and takes the eager scan.
"""

from __future__ import annotations

import functools
import importlib.util

import torch
from torch import Tensor

from .config import NeuronConfig, Reset
from .functional import Scratch, _scan_steps_
from .. import native

BLOCK = 1024  # neurons per program


def triton_available() -> bool:
    """Whether Triton can be imported (it ships with PyTorch's CUDA wheels on Linux)."""
    return importlib.util.find_spec("triton") is not None


def native_available() -> bool:
    """Whether the C scan (:func:`spikeconv.native.if_scan_`) is built and loaded here (it builds on first ask)."""
    return native.native_build().available


def _laid_out_like(t: Tensor, v: Tensor) -> bool:
    """Same shape and the same strides along every axis longer than 1 (an axis of length 1 never moves)."""
    return t.shape == v.shape and all(a == b for a, b, n in zip(t.stride(), v.stride(), v.shape) if n > 1)


def fused_supported(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                    negated: bool, constant: bool) -> bool:
    """Whether :func:`triton_scan_` runs this scan: threshold 1, a float32 membrane stored densely (contiguous
    or channels-last), the current, every spike frame and the buffer (``-V^b``, int8 or float32) laid out
    like it, int8 or float32 spikes.

    Example:
        >>> v = torch.zeros(2, 3)
        >>> fused_supported(torch.ones(4, 2, 3), v, None, torch.empty(4, 2, 3), NeuronConfig(), False, False)
        True
        >>> fused_supported(torch.ones(4, 2, 3), v, None, torch.empty(4, 2, 3), NeuronConfig(threshold=0.5),
        ...                 False, False)
        False
    """
    if config.threshold != 1.0 or v.dtype != torch.float32 or not native.is_dense(v) or v.numel() == 0:
        return False
    if spikes.dtype not in (torch.int8, torch.float32) or spikes.shape[1:] != v.shape:
        return False
    current = x if constant else (x[0] if x.dim() == v.dim() + 1 and x.shape[0] >= max(spikes.shape[0], 1) else None)
    if current is None or current.dtype != torch.float32:
        return False
    if not all(_laid_out_like(f, v) for f in (current, spikes[0] if spikes.shape[0] else v)):
        return False
    if config.signed:
        if buffer is None or not negated or buffer.dtype not in (torch.int8, torch.float32):
            return False
        if not _laid_out_like(buffer, v):
            return False
    devices = {x.device, v.device, spikes.device} | ({buffer.device} if buffer is not None else set())
    return len(devices) == 1


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def if_scan_kernel(x_ptr, v_ptr, nb_ptr, out_ptr, n, steps, x_step, out_step,
                       LOWER: tl.constexpr, SMAX: tl.constexpr, SIGNED: tl.constexpr, SUBTRACT: tl.constexpr,
                       BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        v = tl.load(v_ptr + offs, mask=mask, other=0.0)
        if SIGNED:
            nb = tl.load(nb_ptr + offs, mask=mask, other=0).to(tl.float32)  # -V^b
        x_at = x_ptr + offs  # pointers advance by a step's stride (64-bit pointer arithmetic, no overflow)
        out_at = out_ptr + offs
        for _ in range(steps):
            v = v + tl.load(x_at, mask=mask, other=0.0)
            # clamp(floor(V'), lo, S^max) = floor(clamp(V', lo, S^max)) for integer bounds; the floor by
            # truncation and a compare, not libdevice's floorf, which Triton links flushing denormals to zero
            c = tl.minimum(tl.maximum(v, LOWER), SMAX)
            whole = c.to(tl.int32)  # toward zero
            s = (whole - (c < whole.to(tl.float32)).to(tl.int32)).to(tl.float32)
            if SIGNED:
                s = tl.maximum(s, nb)
            if SMAX > 2:  # A(|S|): keep the highest set bit of the integer |S| (<= 64)
                a = tl.abs(s).to(tl.int32)
                a = a | (a >> 1)
                a = a | (a >> 2)
                a = a | (a >> 4)
                p = (a - (a >> 1)).to(tl.float32)
                s = tl.where(s < 0, -p, p)
            if SIGNED:
                nb = nb - s
            if SUBTRACT:
                v = v - s
            else:
                v = tl.where(s != 0, 0.0, v)
            tl.store(out_at, s.to(out_ptr.dtype.element_ty), mask=mask)
            x_at += x_step
            out_at += out_step
        tl.store(v_ptr + offs, v, mask=mask)
        if SIGNED:
            tl.store(nb_ptr + offs, nb.to(nb_ptr.dtype.element_ty), mask=mask)

    return triton, if_scan_kernel


def _check_fused(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                 negated: bool, constant: bool) -> None:
    if not fused_supported(x, v, buffer, spikes, config, negated, constant):
        raise ValueError("the fused scans run threshold-1 neurons with a dense float32 membrane and equally laid "
                         "out current, spikes and buffer; use the eager scan (if_scan_) for this one")


def triton_scan_(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                 negated: bool, constant: bool) -> None:
    """Every step of one neuron layer's chunk in one Triton kernel (module docstring), in place: ``spikes[t]``
    from ``x[t]`` (``x`` at every step when ``constant``), advancing ``v`` and ``buffer`` (``-V^b``). CUDA
    tensors, or CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``).

    Raises:
        ValueError: the scan is not :func:`fused_supported` (use the eager scan).
    """
    _check_fused(x, v, buffer, spikes, config, negated, constant)
    _launch(x, v, buffer, spikes, config, constant)


def native_scan_(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                 negated: bool, constant: bool) -> None:
    """The same scan as :func:`triton_scan_` in C, on CPU tensors (:mod:`spikeconv.native`).

    Raises:
        ValueError: the scan is not :func:`fused_supported` (use the eager scan).
        RuntimeError: the C scan cannot be built here (:func:`spikeconv.native.native_build` says why).
    """
    _check_fused(x, v, buffer, spikes, config, negated, constant)
    build = native.native_build()
    if v.device.type != "cpu" or not build.available:
        raise RuntimeError(f"the C scan runs CPU tensors only, when built: {build.reason or v.device}")
    native_launch(x, v, buffer, spikes, config, constant)


def native_launch(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                  constant: bool) -> None:
    """The C scan of :func:`triton_scan_`, for a scan already found :func:`fused_supported` on the CPU."""
    native.if_scan_(x, v, buffer, spikes, max_strength=config.max_strength, signed=config.signed,
                    subtract=config.reset is Reset.SUBTRACT, constant=constant)


def _launch(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
            constant: bool) -> None:
    """The kernel launch of :func:`triton_scan_`, for a scan already found :func:`fused_supported`."""
    steps, n = spikes.shape[0], v.numel()
    if steps == 0:
        return
    triton, kernel = _kernel()
    kernel[(triton.cdiv(n, BLOCK),)](
        x, v, buffer if config.signed else v, spikes, n, steps, 0 if constant else x.stride(0), spikes.stride(0),
        LOWER=-config.max_strength if config.signed else 0, SMAX=config.max_strength, SIGNED=config.signed,
        SUBTRACT=config.reset is Reset.SUBTRACT, BLOCK=BLOCK)


def _fused_or_eager(launch, x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                    work: Scratch | None, negated: bool, constant: bool) -> Tensor:
    if not fused_supported(x, v, buffer, spikes, config, negated, constant):
        return _scan_steps_(x, v, buffer, spikes, config, work, negated, constant)
    launch(x, v, buffer, spikes, config, constant)  # checked once: the check costs host time per layer
    return spikes


def fused_scan_kernel(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                      work: Scratch | None, negated: bool, constant: bool) -> Tensor:
    """A scan kernel for :func:`spikeconv.neuron.if_scan_` (``simulate(fused=True)`` on CUDA): the Triton
    scan where :func:`fused_supported`, the eager scan otherwise; returns ``spikes``. Same spikes either way."""
    return _fused_or_eager(_launch, x, v, buffer, spikes, config, work, negated, constant)


def native_scan_kernel(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                       work: Scratch | None, negated: bool, constant: bool) -> Tensor:
    """A scan kernel for :func:`spikeconv.neuron.if_scan_` (the CPU default of ``simulate`` when
    ``spikeconv.native.native_build().available``): the C scan where :func:`fused_supported`, the eager scan otherwise;
    returns ``spikes``. Same spikes either way."""
    return _fused_or_eager(native_launch, x, v, buffer, spikes, config, work, negated, constant)
