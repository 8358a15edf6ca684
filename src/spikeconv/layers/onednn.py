"""What oneDNN's int8 kernels compute exactly on this processor, and the memo of their packed weights.

The integer layers (:mod:`spikeconv.layers.integer`) feed oneDNN ``uint8`` spikes ``a`` and ``int8`` weight
codes ``q``. With the VNNI instructions (AVX-512 VNNI, AVX-VNNI) or AMX-INT8 every product is added into an
int32 sum, which is exact. Without them (plain AVX2, AVX-512 before VNNI) the kernels multiply with
``vpmaddubsw``, which adds neighbouring products into a *saturating* int16 first: a sum is exact only when

    2 * max(a) * max|q| <= 32767.

Unsigned spikes (``a <= 127``, ``|q| <= 127``: at most 32258) always satisfy it; signed spikes shifted by 128
(``a`` up to 255) do not: on a 2-core AVX2 EPYC, 32 inputs of spike value 2 and codes 127 summed to 3952
instead of 7747. :func:`saturating_pairs` says which case this processor is in, and the layers then keep
every call inside the bound (docs/simulation.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

#: the largest value of a saturating int16 pair sum
INT16_MAX = 32767


def integer_kernels_available() -> bool:
    """True when this PyTorch build has oneDNN's int8 convolution and linear kernels (x86 CPUs).

    Example:
        >>> isinstance(integer_kernels_available(), bool)
        True
    """
    ops = getattr(torch.ops, "onednn", None)
    return (torch.backends.mkldnn.is_available() and ops is not None
            and all(hasattr(ops, name) for name in ("qconv_prepack", "qconv2d_pointwise", "qlinear_prepack",
                                                    "qlinear_pointwise")))


@functools.cache
def saturating_pairs() -> bool:
    """Whether this CPU's int8 kernels add product pairs in saturating int16 (no VNNI, no AMX-INT8).

    Example:
        >>> isinstance(saturating_pairs(), bool)
        True
    """
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return not any(capabilities.get(name) for name in ("avx512_vnni", "avx_vnni", "amx_int8"))


def pairs_exact(max_input: int, max_code: int) -> bool:
    """Whether uint8 inputs up to ``max_input`` times codes up to ``max_code`` in magnitude sum exactly here.

    Example:
        >>> pairs_exact(127, 127)  # unsigned spikes: exact on every CPU
        True
    """
    return not saturating_pairs() or 2 * max_input * max_code <= INT16_MAX


def split_sum(spikes: Tensor, unsigned_sum: Callable[[Tensor], Tensor]) -> Tensor:
    """``Q * S`` of int8 ``spikes`` from two unsigned calls: ``Q * S+ - Q * S-`` with ``S+ = max(S, 0)`` and
    ``S- = max(-S, 0)``, both in ``[0, 128]``, so their pair sums are exact on every CPU.
    ``unsigned_sum(uint8 spikes)`` returns the float32 sum, exact while below 2^24, and so is the difference.

    Example:
        >>> spikes = torch.tensor([[2, -1, 0]], dtype=torch.int8)
        >>> split_sum(spikes, lambda u: u.float() @ torch.tensor([[1.], [3.], [5.]])).item()  # 2 - 3
        -1.0
    """
    positive = spikes.clamp(min=0).view(torch.uint8)
    negative = spikes.clamp(max=0).to(torch.int16).neg_().to(torch.uint8)
    return unsigned_sum(positive).sub_(unsigned_sum(negative))


class _PackedWeight:
    """Memo of one layer's derived tensors (oneDNN-packed int8 weights, correction maps), each keyed by the
    tensors it was derived from. Packed tensors are opaque (no storage), so a copy of the layer starts with
    an empty memo."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[tuple, Tensor]] = {}

    def get(self, name: str, key: tuple, make) -> Tensor:
        """The tensor stored under ``name`` if it was made for ``key``, else ``make()`` (then stored)."""
        entry = self.entries.get(name)
        if entry is None or entry[0] != key:
            entry = self.entries[name] = (key, make())
        return entry[1]

    def __deepcopy__(self, memo: dict) -> _PackedWeight:
        return _PackedWeight()

    def __reduce__(self):
        return _PackedWeight, ()


def _version_key(*tensors: Tensor) -> tuple:
    """Identity and in-place version of each tensor. Tensors made under ``torch.inference_mode`` keep no
    version counter: for them only the identity counts (change such weights by assigning new tensors)."""
    return tuple((t.data_ptr(), None if t.is_inference() else t._version, t.device) for t in tensors)
