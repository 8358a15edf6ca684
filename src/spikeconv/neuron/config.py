"""The neuron's options and state: :class:`NeuronConfig` (threshold, reset, S^max, buffered, phi), the
state :class:`IFState` of a layer and the spike dtypes a neuron may emit. The equations are in
:mod:`spikeconv.neuron.functional`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import is_count


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
    if not is_count(max_strength) or max_strength & (max_strength - 1):
        raise ValueError(
            f"max_strength (S^max) must be a power of two >= 1 (1, 2, 4, 8, ...), got {max_strength!r}"
        )
    return max_strength


class IFState(NamedTuple):
    """State of a population of IF neurons: membrane ``v`` and, for the buffered neuron, ``buffer`` (V^b).

    Engines may keep ``-V^b`` instead (``negated_buffer``), and, with threshold 1, as an ``int8`` tensor while
    it fits (:func:`if_init`'s ``buffer_dtype``; exact while ``V^b <= 127``, :func:`compact_buffer_fits`).
    """

    v: Tensor
    buffer: Tensor | None = None


#: the largest ``V^b`` an int8 buffer holds; ``V^b`` grows by at most ``S^max`` a step and never falls below 0,
#: so an int8 buffer is exact for runs of at most ``INT8_BUFFER_LIMIT // S^max`` steps
INT8_BUFFER_LIMIT = 127


def negated_buffer(config: NeuronConfig) -> bool:
    """True if engines keep ``-V^b`` in the state's buffer for this neuron: buffered (signed) with threshold 1,
    where the negated buffer saves one pass a step (a fresh buffer is 0 either way).

    Example:
        >>> negated_buffer(NeuronConfig(signed=True)), negated_buffer(NeuronConfig(signed=True, threshold=2.0))
        (True, False)
    """
    return config.signed and config.threshold == 1.0


def compact_buffer_fits(config: NeuronConfig, steps: int) -> bool:
    """True if a buffered neuron may keep ``-V^b`` in int8 for a run of ``steps`` steps: threshold 1 (so
    ``V^b`` counts whole spikes) and ``0 <= V^b <= steps * S^max <= INT8_BUFFER_LIMIT`` at every step.

    Example:
        >>> compact_buffer_fits(NeuronConfig(max_strength=2, signed=True), steps=8)
        True
        >>> compact_buffer_fits(NeuronConfig(max_strength=2, signed=True), steps=64)  # V^b could reach 128
        False
    """
    return negated_buffer(config) and steps * config.max_strength <= INT8_BUFFER_LIMIT


def if_init(like: Tensor, config: NeuronConfig, buffer_dtype: torch.dtype | None = None) -> IFState:
    """Initial state shaped like ``like``: ``V(0) = phi * V_th`` and ``V^b(0) = 0``.

    ``buffer_dtype`` (buffered neurons; None: the membrane's dtype) may be ``torch.int8``: the buffer then
    holds ``-V^b`` as an integer, which the step reads with ``negated_buffer=True`` only. It is exact while
    ``V^b <= INT8_BUFFER_LIMIT`` (:func:`compact_buffer_fits` says for how many steps); engines choose it.

    Example:
        >>> if_init(torch.zeros(2), NeuronConfig(phi=0.5)).v
        tensor([0.5000, 0.5000])
        >>> if_init(torch.zeros(2), NeuronConfig(signed=True), buffer_dtype=torch.int8).buffer
        tensor([0, 0], dtype=torch.int8)
    """
    v = torch.full_like(like, config.phi * config.threshold)
    if buffer_dtype not in (None, torch.int8):
        raise ValueError(f"buffer_dtype must be None (the membrane's dtype) or torch.int8, got {buffer_dtype}")
    if buffer_dtype is not None and not negated_buffer(config):
        raise ValueError("an int8 buffer holds -V^b of a buffered (signed) neuron with threshold 1; "
                         "use buffer_dtype=None for other neurons")
    buffer = torch.zeros_like(like, dtype=buffer_dtype) if config.signed else None
    return IFState(v, buffer)


#: dtypes a neuron may emit its spikes in besides the membrane's: int8 holds every spike of ``S^max <= 64``
#: exactly, in a quarter of the memory; integer layers (:mod:`spikeconv.layers.integer`) read it directly.
SPIKE_DTYPES = (torch.int8,)
#: the largest S^max whose spikes fit int8 (the largest power of two <= 127)
INT8_MAX_STRENGTH = 64


def check_spike_dtype(dtype: torch.dtype | None, max_strength: int) -> torch.dtype | None:
    """Return ``dtype`` if a neuron with this ``S^max`` may emit spikes in it (None: the membrane's dtype).

    Example:
        >>> check_spike_dtype(torch.int8, max_strength=2)
        torch.int8
    """
    if dtype is None:
        return None
    if dtype not in SPIKE_DTYPES:
        raise ValueError(f"spike_dtype must be None (the membrane's dtype) or one of {SPIKE_DTYPES}, got {dtype}")
    if max_strength > INT8_MAX_STRENGTH:
        raise ValueError(f"int8 spikes need S^max <= {INT8_MAX_STRENGTH} (spikes up to {max_strength} would not fit); "
                         "use spike_dtype=None")
    return dtype
