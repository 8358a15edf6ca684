r"""The IF scan of one chunk fused into one kernel per neuron layer: the operator ``spikeconv::if_scan_`` (C on
the CPU) and a Triton kernel (CUDA, opt-in).

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
opt-in, ``simulate(fused=True)``: not yet run or timed on a GPU (docs/simulation.md). Anything else
(another threshold, a float16 membrane, unequal memory layouts) is not :func:`fused_supported` and takes
the eager scan.

The operator ``torch.ops.spikeconv.if_scan_`` is defined here, with the eager scan as its PyTorch reference
(every device); loading spikeconv's operator library (:func:`spikeconv.native.native_build`, on first use)
registers the C kernel as its CPU implementation (``native/kernels.c``, ``native/ops.cpp``). It is the CPU
default of ``simulate`` (``kernel="auto"``): it saves 17% end to end on the trained CIFAR-10 VGG with 8-bit
weights and the buffered neuron, 0-6% elsewhere (``benchmarks/native_gain.py``, docs/simulation.md).
"""

from __future__ import annotations

import functools
import importlib.util

import torch
from torch import Tensor

from .config import NeuronConfig, Reset
from .functional import Scratch, _scan_steps_
from .. import native

_LIBRARY = torch.library.Library("spikeconv", "FRAGMENT")  # the operator lives as long as the module
_LIBRARY.define("if_scan_(Tensor x, Tensor(a!) v, Tensor(b!)? buffer, Tensor(c!) spikes, int max_strength, "
                "bool signed, bool subtract, bool constant) -> ()")


def _scan_reference(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, max_strength: int, signed: bool,
                    subtract: bool, constant: bool) -> None:
    """``spikeconv::if_scan_`` in PyTorch: the eager scan of threshold-1 neurons (-V^b kept negated)."""
    config = NeuronConfig(max_strength=max_strength, signed=signed, reset=Reset.SUBTRACT if subtract else Reset.ZERO)
    _scan_steps_(x, v, buffer, spikes, config, None, signed, constant)


_LIBRARY.impl("if_scan_", _scan_reference, "CompositeExplicitAutograd")
torch.library.register_fake("spikeconv::if_scan_", lambda *args: None, lib=_LIBRARY)

BLOCK = 1024  # neurons per program


def triton_available() -> bool:
    """Whether Triton can be imported (it ships with PyTorch's CUDA wheels on Linux)."""
    return importlib.util.find_spec("triton") is not None


def native_available() -> bool:
    """Whether the C kernel of ``spikeconv::if_scan_`` is built and registered here (it builds on first ask)."""
    return native.native_build().available


def _is_dense(t: Tensor) -> bool:
    """Whether ``t`` is stored densely, contiguous or channels-last: element i of the memory is one element."""
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


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
    if config.threshold != 1.0 or v.dtype != torch.float32 or not _is_dense(v) or v.numel() == 0:
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
    """The same scan as :func:`triton_scan_` by the operator ``spikeconv::if_scan_``, whose C kernel runs CPU
    tensors.

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
    """The operator ``spikeconv::if_scan_`` on a scan already found :func:`fused_supported` on the CPU."""
    torch.ops.spikeconv.if_scan_(x, v, buffer if config.signed else None, spikes, config.max_strength, config.signed,
                                 config.reset is Reset.SUBTRACT, constant)


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
    :func:`native_available`): the operator ``spikeconv::if_scan_`` where :func:`fused_supported`, the eager scan
    otherwise; returns ``spikes``. Same spikes either way."""
    return _fused_or_eager(native_launch, x, v, buffer, spikes, config, work, negated, constant)
