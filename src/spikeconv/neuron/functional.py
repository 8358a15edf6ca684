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

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import torch
from torch import Tensor


class Reset(str, Enum):
    """How the membrane is reset after a spike."""

    SUBTRACT = "subtract"
    ZERO = "zero"


@dataclass(frozen=True)
class NeuronConfig:
    """Parameters of an integrate-and-fire neuron.

    Args:
        threshold: firing threshold ``V_th`` (> 0).
        reset: :class:`Reset` mode.
        max_strength: ``S^max``, the largest spike strength, a power of two; 1 means ordinary spikes.
        signed: the buffered neuron of paper 000 (negative spikes that undo over-fire).
        phi: initial membrane as a fraction of the threshold, ``V(0) = phi * V_th``.

    Example:
        >>> NeuronConfig(threshold=1.0, max_strength=2, signed=True).max_strength
        2
    """

    threshold: float = 1.0
    reset: Reset = Reset.SUBTRACT
    max_strength: int = 1
    signed: bool = False
    phi: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, (int, float)) and self.threshold > 0 and self.threshold < float("inf")):
            raise ValueError(f"threshold must be a positive finite number, got {self.threshold!r}")
        object.__setattr__(self, "reset", Reset(self.reset))
        check_max_strength(self.max_strength)
        if not 0.0 <= float(self.phi) < 1.0:
            raise ValueError(f"phi must lie in [0, 1), got {self.phi!r}; use 0 (paper 000) or 0.5 (QCFS)")


def check_max_strength(max_strength: int) -> int:
    """Return ``max_strength`` if it is a positive power of two, else raise ``ValueError``.

    Example:
        >>> check_max_strength(4)
        4
    """
    if isinstance(max_strength, bool) or not isinstance(max_strength, int) or max_strength < 1 or (
        max_strength & (max_strength - 1)
    ):
        raise ValueError(
            f"max_strength (S^max) must be a power of two >= 1 (1, 2, 4, 8, ...), got {max_strength!r}"
        )
    return max_strength


class IFState(NamedTuple):
    """State of a population of IF neurons: membrane ``v`` and, for the buffered neuron, ``buffer`` (V^b)."""

    v: Tensor
    buffer: Tensor | None = None


def if_init(like: Tensor, config: NeuronConfig) -> IFState:
    """Initial state shaped like ``like``: ``V(0) = phi * V_th`` and ``V^b(0) = 0``.

    Example:
        >>> if_init(torch.zeros(2), NeuronConfig(phi=0.5)).v
        tensor([0.5000, 0.5000])
    """
    v = torch.full_like(like, config.phi * config.threshold)
    buffer = torch.zeros_like(like) if config.signed else None
    return IFState(v, buffer)


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


def _if_step_(x: Tensor, v: Tensor, buffer: Tensor | None, out: Tensor, config: NeuronConfig) -> None:
    """One step, in place: updates ``v`` (and ``buffer``) and writes the spikes into ``out``.

    This is the single implementation behind :func:`if_step`, :func:`if_scan` and :func:`if_scan_constant`;
    it allocates only small temporaries for the multi-bit strengths.
    """
    threshold = config.threshold
    v.add_(x)
    if config.max_strength == 1:
        torch.ge(v, threshold, out=out)
    else:
        torch.div(v, threshold, out=out)
        out.floor_().clamp_(0, config.max_strength)
        if config.max_strength > 2:
            out.copy_(adjust_strength(out, config.max_strength))
    if config.signed:
        if buffer is None:
            raise ValueError("a signed (buffered) neuron needs a state with a buffer; create it with if_init")
        negative = (v < 0).logical_and_(buffer >= threshold)
        if config.max_strength == 1:
            out.masked_fill_(negative, -1.0)
        else:
            wanted = torch.minimum(torch.ceil(v / -threshold), torch.floor(buffer / threshold))
            out.copy_(torch.where(negative, -adjust_strength(wanted, config.max_strength), out))
        buffer.add_(out, alpha=threshold)
    if config.reset is Reset.SUBTRACT:
        v.add_(out, alpha=-threshold)
    else:
        v.masked_fill_(out != 0, 0.0)


def _fresh(state: IFState) -> IFState:
    return IFState(state.v.clone(), None if state.buffer is None else state.buffer.clone())


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
    spikes = torch.empty_like(x)
    for t in range(x.shape[0]):
        _if_step_(x[t], state.v, state.buffer, spikes[t], config)
    return spikes, state


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
    spikes = x.new_empty((steps, *x.shape))
    for t in range(steps):
        _if_step_(x, state.v, state.buffer, spikes[t], config)
    return spikes, state
