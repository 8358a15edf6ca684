r"""Pure step and scan functions of the integrate-and-fire neurons used by spikeconv.

Every function here is pure: the state goes in and comes out explicitly, as an :class:`IFState`.
All tensors of one call share a shape; time is the leading axis of the ``*_scan`` inputs.

Semantics (the same everywhere in spikeconv)
--------------------------------------------
Integrate (paper 000, Eq. 4 and Algorithm 2 line 1)::

    V'(t) = V(t-1) + x(t)

where ``x(t)`` is the input current (in the converted network: ``V_th * sum_i w^s_ij S_i(t)`` plus bias,
all scales folded into the weights).

Fire, single-bit (``max_strength = 1``, paper 000 Eq. 5)::

    S(t) = 1  if V'(t) >= V_th   else 0

Paper 000 Eq. 13 writes the positive condition of the buffered neuron with a strict ``>``; spikeconv uses
``>=`` for every neuron so that, with constant input, the spike count is exactly
``floor(max(V_a / V_th, 0))`` (Eq. 11), which is what the QReLU of Eq. 1 computes with ``floor``.

Fire, multi-bit (``max_strength = S^max`` a power of two, paper 000 Eq. 2-3)::

    S(t) =  A(floor(V'(t) / V_th))                         if V'(t) >= V_th
    A(x) = 2 ** floor(log2(min(x, S^max)))                 (x >= 1; A = 0 below 1)

Buffered (signed) neuron (paper 000 Algorithm 2, Eq. 12-13), negative spikes::

    S(t) = -A(min(ceil(-V'(t) / V_th), floor(V^b(t-1) / V_th)))   if V'(t) < 0 and V^b(t-1) >= V_th
    V^b(t) = V^b(t-1) + V_th * S(t)                                      (Eq. 12)

Eq. 2 prints ``floor(V'/-V_th)`` for the negative strength; taken literally it never fires for
``-V_th < V' < 0`` and so does not reduce to Eq. 13 at ``S^max = 1``. spikeconv uses ``ceil``, the
smallest strength that brings the membrane back to ``>= 0``, which equals Eq. 13 at ``S^max = 1``
(a test pins this) and keeps the final count at ``floor(V_a / V_th)`` (Eq. 14-20).

Reset::

    by subtraction (default):  V(t) = V'(t) - V_th * S(t)          (paper 004 Eq. 4b, S10-S11)
    to zero:                   V(t) = 0 if S(t) != 0 else V'(t)    (paper 004 Eq. 4a, S1-S9)

Initial membrane ``V(0) = phi * V_th`` (``phi = 0`` as in paper 000; ``phi = 0.5`` is the QCFS shift).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from .config import IFState, NeuronConfig, Reset, if_init  # noqa: F401  (if_init: the examples below use it)


def true_divide(x: Tensor, divisor: float | Tensor, out: Tensor | None = None) -> Tensor:
    r"""``x / divisor`` rounded once (IEEE division) on every device: the same bits on CPU and CUDA.

    CUDA divides a tensor by a Python number as ``x * (1 / divisor)``, two roundings, which can put
    ``floor(V' / V_th)`` one below an exact multiple of ``V_th`` (and the readout's ``sum / t`` one ulp off
    the CPU's). A 0-dim tensor divisor on the tensor's device takes the true division there, and on the CPU
    the same kernel as a number. ``divisor`` may be such a tensor already (e.g. one element of a vector of
    divisors made once per run: no tensor made per call, on a GPU no fill launch).

    Example:
        >>> true_divide(torch.tensor([0.75, 1.5, 3.0]), 0.75)
        tensor([1., 2., 4.])
    """
    if not isinstance(divisor, Tensor):
        divisor = x.new_full((), divisor)
    return torch.div(x, divisor, out=out)


def adjust_strength(x: Tensor, max_strength: int) -> Tensor:
    r"""The adjust function of paper 000, Eq. 3: ``A(x) = 2^floor(log2(min(x, S^max)))`` for ``x >= 1``.

    ``x`` holds non-negative integers (as floats); values below 1 give 0.

    Example:
        >>> adjust_strength(torch.tensor([0., 1., 2., 3., 5., 9.]), 4)
        tensor([0., 1., 2., 2., 4., 4.])
    """
    clipped = x.clamp(0, max_strength)
    if max_strength <= 2:
        return torch.floor(clipped)  # 0, 1, 2 are already powers of two (or zero)
    _, exponent = torch.frexp(clipped)
    return torch.where(clipped >= 1, torch.ldexp(torch.full_like(clipped, 0.5), exponent), torch.zeros_like(clipped))


Scratch = dict  # {(index, shape, stride, dtype, device): tensor}: scratch tensors kept between steps and neurons


def _scratch(work: Scratch | None, index: int, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """The ``index``-th scratch tensor shaped and laid out like ``like`` (typed ``dtype``, default ``like``'s),
    from the pool ``work`` (allocated on first use, then reused; ``None``: a fresh one). Scratch contents
    never outlive one step, so every neuron of a run may share one pool: it then holds one set per distinct
    shape, not per neuron."""
    dtype = dtype or like.dtype
    if work is None:
        return torch.empty_like(like, dtype=dtype)
    key = (index, like.shape, like.stride(), dtype, like.device)
    tensor = work.get(key)
    if tensor is None:
        tensor = work[key] = torch.empty_like(like, dtype=dtype)
    return tensor


def _fire_unit_(v: Tensor, buffer: Tensor | None, out: Tensor, config: NeuronConfig,
                work: Scratch | None, negated: bool) -> None:
    """Spikes for ``V_th = 1`` (what the converter emits), in few passes over memory.

    With ``V_th = 1``, ``V^b`` counts whole spikes and every case of the module docstring collapses to
    ``S = clamp(floor(V'), -min(V^b, S^max), S^max)`` (the lower bound 0 for unsigned neurons), then
    ``A`` applied to ``|S|``: for ``V' >= 1`` it is ``min(floor(V'), S^max)``; for ``0 <= V' < 1`` zero;
    for ``V' < 0``, ``floor(V') = -ceil(-V')`` so it is ``-min(ceil(-V'), V^b, S^max)``.
    ``negated``: ``buffer`` holds ``-V^b`` (saves negating it at every step).
    """
    smax = config.max_strength
    torch.floor(v, out=out)
    out.clamp_(-smax if config.signed else 0, smax)
    if config.signed:
        torch.maximum(out, buffer if negated else torch.neg(buffer, out=_scratch(work, 0, v)), out=out)


def _fire_compact_(v: Tensor, negated_buffer: Tensor, spikes: Tensor, counts: Tensor, max_strength: int) -> None:
    """:func:`_fire_unit_` for an int8 ``-V^b``: ``S = max(clamp(floor(V'), -S^max, S^max), -V^b)`` with the
    bound taken in int8 (``counts``, a quarter of the bytes), then ``spikes`` (float) set from ``counts``."""
    torch.floor(v, out=spikes).clamp_(-max_strength, max_strength)
    counts.copy_(spikes)
    torch.maximum(counts, negated_buffer, out=counts)
    spikes.copy_(counts)


def _fire_general_(v: Tensor, buffer: Tensor | None, out: Tensor, config: NeuronConfig,
                   work: Scratch | None) -> None:
    """Spikes for any threshold, the module docstring's cases one by one."""
    threshold, smax = config.threshold, config.max_strength
    if smax == 1:
        torch.ge(v, threshold, out=out)  # S = 1 if V' >= V_th
    else:
        true_divide(v, threshold, out=out).floor_().clamp_(0, smax)  # floor(V'/V_th), capped at S^max
    if config.signed:
        available = true_divide(buffer, threshold, out=_scratch(work, 0, v)).floor_()
        available.mul_(torch.ge(buffer, threshold, out=_scratch(work, 1, v)))  # 0 unless V^b >= V_th
        negative = true_divide(v, -threshold, out=_scratch(work, 1, v)).ceil_()  # >= 1 where V' < 0, else <= 0
        torch.minimum(negative, available, out=negative).clamp_(0, smax)
        out.sub_(negative)


def _if_step_(x: Tensor, v: Tensor, buffer: Tensor | None, out: Tensor, config: NeuronConfig,
              work: Scratch | None = None, negated: bool = False) -> None:
    """One step, in place: updates ``v`` (and ``buffer``) and writes the spikes into ``out``.

    This is the single implementation behind :func:`if_step`, :func:`if_scan`, :func:`if_scan_constant`
    and the engine. It uses only arithmetic (boolean masks, ``where`` and ``masked_fill`` are several times
    slower on CPU) and at most three scratch tensors of the membrane's dtype plus, with an int8 buffer and
    float spikes, one int8 scratch, which the caller may keep in ``work`` to reuse from step to step.

    ``out`` may be an ``int8`` tensor (:data:`SPIKE_DTYPES`; spikes are integers with ``|S| <= S^max <= 64``):
    the step then fires into a scratch tensor of the membrane's dtype and layout (reused from step to step)
    and copies it into ``out`` at the end. Exact either way. (Comparing straight into an int8 ``out`` was
    measured 3x slower on CPU: PyTorch computes a temporary of its own layout and copies it across.)

    ``buffer`` may be int8 (``-V^b``, ``negated`` only; :func:`if_init`): the buffer bound and update then
    run on int8 tensors (:func:`_fire_compact_`), the membrane's reset on the float spikes.
    """
    threshold, smax = config.threshold, config.max_strength
    if config.signed and buffer is None:
        raise ValueError("a signed (buffered) neuron needs a state with a buffer; create it with if_init")
    if negated and threshold != 1.0:
        raise ValueError("a negated buffer (-V^b) is only used with threshold 1")
    compact = config.signed and buffer.dtype == torch.int8
    if compact and not negated:
        raise ValueError("an int8 buffer holds -V^b: step it with negated=True (negated_buffer in if_scan_)")
    v.add_(x)
    spikes = out if out.dtype == v.dtype else _scratch(work, 2, v)
    counts = None  # compact: the spikes in int8 (out itself when out is int8)
    if compact:
        counts = out if out.dtype == torch.int8 else _scratch(work, 3, v, torch.int8)
        _fire_compact_(v, buffer, spikes, counts, smax)
    elif threshold == 1.0 and (config.signed or smax > 1):
        _fire_unit_(v, buffer, spikes, config, work, negated)
    else:
        _fire_general_(v, buffer, spikes, config, work)
    if smax > 2:  # A(|S|) with the sign kept
        spikes.copy_(adjust_strength(spikes.abs(), smax).copysign_(spikes))
        if compact:
            counts.copy_(spikes)
    if compact:
        buffer.sub_(counts)  # -V^b -= S (Eq. 12, threshold 1)
    elif config.signed:
        buffer.add_(spikes, alpha=-threshold if negated else threshold)  # Eq. 12
    if config.reset is Reset.SUBTRACT:
        v.add_(spikes, alpha=-threshold)
    else:
        fired = spikes if (smax == 1 and not config.signed) else torch.ne(spikes, 0, out=_scratch(work, 0, v))
        v.addcmul_(v, fired, value=-1.0)  # V - V * [S != 0]: exactly 0 where a spike was sent
    if spikes is not out and counts is not out:
        out.copy_(spikes)


def _fresh(state: IFState) -> IFState:
    return IFState(state.v.clone(), None if state.buffer is None else state.buffer.clone())


def _stacked_like(x: Tensor, steps: int, dtype: torch.dtype | None = None) -> Tensor:
    """An empty ``[steps, *x.shape]`` tensor (of ``dtype``, default ``x``'s) whose slices keep ``x``'s memory
    format (e.g. channels-last)."""
    dtype = dtype or x.dtype
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        flat = torch.empty((steps * x.shape[0], *x.shape[1:]), dtype=dtype, device=x.device,
                           memory_format=torch.channels_last)
        return flat.view(steps, *x.shape)
    return x.new_empty((steps, *x.shape), dtype=dtype)


ScanKernel = Callable[[Tensor, Tensor, "Tensor | None", Tensor, NeuronConfig, "Scratch | None", bool, bool], Tensor]


def _scan_steps_(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                 work: Scratch | None, negated: bool, constant: bool) -> Tensor:
    """Every step of one chunk, in place: ``spikes[t]`` from ``x[t]`` (``x`` itself at every step when
    ``constant``), advancing ``v`` and ``buffer``; returns ``spikes``. The eager scan (a :data:`ScanKernel`:
    kernels return the spike tensor, ``spikes`` or one of their own)."""
    for t in range(spikes.shape[0]):
        _if_step_(x if constant else x[t], v, buffer, spikes[t], config, work, negated)
    return spikes


def _scan_stacked(x: Tensor, v: Tensor, buffer: Tensor | None, config: NeuronConfig, negated: bool,
                  constant: bool, steps: int, dtype: torch.dtype) -> Tensor:
    """The eager scan's steps into fresh per-step tensors, stacked at the end: what
    :func:`compiled_scan_kernel` compiles (writing into slices of the caller's spike tensor instead makes the
    compiler copy the whole tensor per step; stacked, it fuses into one loop with a channels-last result)."""
    frames = []
    for t in range(steps):
        frame = torch.empty_like(v, dtype=dtype)
        _if_step_(x if constant else x[t], v, buffer, frame, config, None, negated)
        frames.append(frame)
    return torch.stack(frames)


#: compiled variants of the scan allowed per process (one per neuron configuration x spike dtype x input kind
#: x chunk length); PyTorch's default of 8 falls back to eager silently once a process has run a few networks
COMPILED_VARIANTS = 64


@functools.cache
def compiled_scan_kernel() -> ScanKernel:
    """The in-place scan of one chunk (all its steps) passed through ``torch.compile``: one compiled call per
    neuron layer and chunk instead of one eager call per operation and step (dynamic shapes, so every layer
    of a configuration reuses it; one compilation per chunk length). Within 5% of the eager scan end to end on
    the 2-core CPU (docs/simulation.md); the fused Triton scan (:mod:`spikeconv.neuron.fused`) is
    the hand-written alternative on CUDA.

    Compiled once per process and neuron configuration on first use (seconds; cached on disk by PyTorch
    afterwards), under a recompile limit of ``COMPILED_VARIANTS`` set only around its own calls.
    Bit-identical to the eager scan (tests/test_sim.py, tests/test_cuda.py).
    """
    compiled = torch.compile(_scan_stacked, dynamic=True)

    def scan(x, v, buffer, spikes, config, work, negated, constant) -> Tensor:
        # returns a spike tensor of its own, shaped and typed like ``spikes``; scratch is fused away, no pool
        with torch._dynamo.config.patch(recompile_limit=COMPILED_VARIANTS):
            return compiled(x, v, buffer, config, negated, constant, spikes.shape[0], spikes.dtype)

    return scan


def if_scan_(x: Tensor, state: IFState, config: NeuronConfig, *, steps: int | None = None,
             work: Scratch | None = None, kernel: ScanKernel | None = None,
             negated_buffer: bool = False, out: Tensor | None = None,
             spike_dtype: torch.dtype | None = None) -> Tensor:
    r"""In-place scan for engines: advances ``state`` (mutated) and returns the spikes ``[T, ...]``.

    ``x`` is ``[T, ...]`` (``x[t]`` is the current at step t) or, with ``steps`` given, one current
    applied at each of ``steps`` steps (analog input). ``work`` is a dict the caller keeps to reuse scratch
    tensors across calls, and may share between neurons; ``kernel`` replaces the eager scan (e.g.
    :func:`compiled_scan_kernel`, or :func:`spikeconv.neuron.fused.fused_scan_kernel` on CUDA).
    ``negated_buffer``: ``state.buffer`` holds ``-V^b`` (engines keep it so for threshold-1 buffered
    neurons: one pass less per step; a zero buffer is the same either way). ``out``: write the spikes
    into this tensor (shaped like the result) instead of a new one; engines pass the previous chunk's.
    ``spike_dtype``: the dtype of a new spike tensor (None: the current's; or int8, :func:`check_spike_dtype`).
    :func:`if_scan` is the pure version.

    Example:
        >>> cfg = NeuronConfig()
        >>> state = if_init(torch.zeros(1), cfg)
        >>> if_scan_(torch.tensor([0.75]), state, cfg, steps=2).squeeze(1).tolist(), state.v.item()
        ([0.0, 1.0], 0.5)
    """
    constant = steps is not None
    if out is not None:
        spikes = out
    else:
        spikes = _stacked_like(x if constant else x[0], steps if constant else x.shape[0], spike_dtype)
    return (kernel or _scan_steps_)(x, state.v, state.buffer, spikes, config, work, negated_buffer, constant)


def if_step(x: Tensor, state: IFState, config: NeuronConfig) -> tuple[Tensor, IFState]:
    r"""One timestep of the IF neuron (plain, buffered and/or multi-bit; see the module docstring).

    Pure: returns ``(S(t), new_state)`` and leaves ``state`` untouched. ``S(t)`` holds integers
    (0/1, signed, or powers of two).

    Example:
        >>> cfg = NeuronConfig()
        >>> s, st = if_step(torch.tensor([0.6]), if_init(torch.zeros(1), cfg), cfg)
        >>> s, st.v
        (tensor([0.]), tensor([0.6000]))
        >>> s, st = if_step(torch.tensor([0.6]), st, cfg)
        >>> s, st.v
        (tensor([1.]), tensor([0.2000]))
    """
    state = _fresh(state)
    out = torch.empty_like(state.v)
    _if_step_(x, state.v, state.buffer, out, config)
    return out, state


def if_scan(x: Tensor, state: IFState, config: NeuronConfig) -> tuple[Tensor, IFState]:
    r"""Run :func:`if_step` over the leading (time) axis of ``x``: ``x[t]`` is the current at step t.

    Returns ``(spikes [T, ...], final_state)``; ``state`` itself is not modified.

    Example:
        >>> cfg = NeuronConfig()
        >>> s, st = if_scan(torch.full((4, 1), 0.75), if_init(torch.zeros(1), cfg), cfg)
        >>> s.sum().item()  # floor(4 * 0.75) = 3 (Eq. 11)
        3.0
    """
    state = _fresh(state)
    return if_scan_(x, state, config), state


def if_scan_constant(x: Tensor, steps: int, state: IFState, config: NeuronConfig) -> tuple[Tensor, IFState]:
    r"""Run :func:`if_step` for ``steps`` timesteps with the same current ``x`` at every step (analog input).

    Returns ``(spikes [steps, ...], final_state)``; ``state`` itself is not modified.

    Example:
        >>> cfg = NeuronConfig()
        >>> s, _ = if_scan_constant(torch.tensor([0.75]), 4, if_init(torch.zeros(1), cfg), cfg)
        >>> s.squeeze(1).tolist()
        [0.0, 1.0, 1.0, 1.0]
    """
    state = _fresh(state)
    return if_scan_(x, state, config, steps=steps), state
