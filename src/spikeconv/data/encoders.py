"""Input encoders for :func:`spikeconv.sim.simulate` (``encoder(inputs, start, steps) -> [steps, B, ...]``).

Analog input needs no encoder: ``simulate`` feeds the same current at every step (paper 004, 2.2.4).
"""

from __future__ import annotations

import torch
from torch import Tensor


class PoissonEncoder:
    r"""Rate coding: at every step each input emits a spike ``sign(x)`` with probability ``|x| / scale``.

    The expected spike value is ``x / scale`` per step, so convert with ``ConversionConfig(input_scale=scale)``.
    Step ``t`` draws from a generator seeded with ``(seed, t)``: the spikes do not depend on how the
    engine chunks time, and the same seed reproduces them.

    Example:
        >>> enc = PoissonEncoder(seed=1)
        >>> frames = enc(torch.full((2, 3), 0.5), 0, 1000)
        >>> frames.shape, round(frames.mean().item(), 1)
        (torch.Size([1000, 2, 3]), 0.5)
    """

    def __init__(self, seed: int = 0, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.seed, self.scale = int(seed), float(scale)

    def __call__(self, inputs: Tensor, start: int, steps: int) -> Tensor:
        probability = (inputs.abs() / self.scale).clamp(max=1.0)
        if bool((inputs.abs() > self.scale * (1 + 1e-6)).any()):
            raise ValueError(f"inputs exceed the encoder scale {self.scale}; use PoissonEncoder(scale=inputs.abs().max())")
        frames = torch.empty((steps, *inputs.shape), dtype=inputs.dtype, device=inputs.device)
        sign = torch.sign(inputs)
        for k in range(steps):
            gen = torch.Generator(device=inputs.device).manual_seed(self.seed * 1_000_003 + start + k)
            draw = torch.rand(inputs.shape, generator=gen, device=inputs.device, dtype=inputs.dtype)
            frames[k] = (draw < probability).to(inputs.dtype) * sign
        return frames
