r"""QReLU: the quantized, clipped ReLU with a learnable upper bound (paper 000, Eq. 1).

.. math::

    QReLU(x, \lambda^b) = \frac{\lambda^b}{P}\,\mathrm{clamp}\Big(\big\lfloor \tfrac{P}{\lambda^b} x + \varphi \big\rfloor, 0, P\Big)

which is 0 for ``x <= 0``, ``lambda^b`` for ``x >= lambda^b`` and ``floor(P x / lambda^b) lambda^b / P``
in between (``phi = 0``, as printed in Eq. 1; ``phi = 0.5`` rounds instead, the QCFS shift).

The floor passes gradients straight through (straight-through estimator), so ``x`` gets gradient 1
inside ``(0, lambda^b)`` and ``lambda^b`` gets ``(floor(u) - u + phi) / P`` there and 1 above it: the
learned step size of LSQ/PACT. The spiking counterpart with ``T * S^max = P`` timesteps reproduces this
function exactly for constant input (a test pins it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import is_count


def ste_floor(x: Tensor) -> Tensor:
    """``floor(x)`` in the forward pass, identity in the backward pass (straight-through estimator).

    Example:
        >>> ste_floor(torch.tensor([1.7, -0.2]))
        tensor([ 1., -1.])
    """
    return x + (torch.floor(x) - x).detach()


class QReLU(nn.Module):
    r"""Quantized clipped ReLU with a learnable bound ``lambda^b`` (``self.bound``) and ``levels`` = P steps.

    Args:
        levels: number of quantization levels P above zero (train with ``P = T * S^max``).
        bound: initial ``lambda^b``; use :func:`spikeconv.quant.calibrate_bounds_` to set it from data.
        phi: rounding shift (0: floor as in Eq. 1; 0.5: round).

    Example:
        >>> q = QReLU(levels=4, bound=1.0)
        >>> q(torch.tensor([-1.0, 0.3, 0.5, 0.99, 2.0])).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """

    min_bound = 1e-3

    def __init__(self, levels: int = 8, bound: float = 1.0, phi: float = 0.0) -> None:
        super().__init__()
        if not is_count(levels):
            raise ValueError(f"levels (P) must be a positive integer, got {levels!r}")
        if not bound > 0:
            raise ValueError(f"bound (lambda^b) must be positive, got {bound!r}")
        if not 0.0 <= phi < 1.0:
            raise ValueError(f"phi must lie in [0, 1), got {phi!r}")
        self.levels = levels
        self.phi = float(phi)
        self.bound = nn.Parameter(torch.tensor(float(bound)))

    def forward(self, x: Tensor) -> Tensor:
        lam = self.bound.clamp(min=self.min_bound)
        steps = ste_floor(x * (self.levels / lam) + self.phi).clamp(0, self.levels)
        return steps * (lam / self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, bound={self.bound.item():.4g}, phi={self.phi}"
