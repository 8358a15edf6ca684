r"""A spike-camera simulator: every pixel is the library's IF neuron (:func:`spikeconv.neuron.if_scan`).

Each step a pixel integrates its light, ``V'(t) = V(t-1) + g I(t) + d + n(t)`` (gain ``g``, dark current
``d``, Gaussian noise ``n`` of standard deviation ``noise``), fires when ``V' >= theta`` and subtracts
``theta`` (reset by subtraction: the camera keeps the excess charge). Pixels start at a random phase
``V(0) ~ U[0, theta)`` (seeded), as a camera does that has been running. Over ``T`` steps a pixel of constant
intensity ``I`` fires ``floor((g I + d) T / theta + V(0)/theta)`` times: the rate is proportional to the light.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DataError
from ..neuron import NeuronConfig, if_init, if_scan


def simulate_camera(intensity: Tensor, steps: int | None = None, *, threshold: float = 4.0, gain: float = 1.0,
                    dark_current: float = 0.0, noise: float = 0.0, seed: int = 0) -> Tensor:
    """Spike frames ``uint8 [T, H, W]`` of a camera looking at ``intensity``.

    ``intensity``: ``[H, W]`` (a still image, seen for ``steps`` steps) or ``[T, H, W]`` (video frames, one per
    step), values in ``[0, 1]``.

    Example:
        >>> frames = simulate_camera(torch.full((2, 2), 0.5), steps=8, threshold=1.0)
        >>> frames.sum(0).tolist()  # 0.5 x 8 steps / threshold 1
        [[4, 4], [4, 4]]
    """
    if not isinstance(intensity, Tensor) or intensity.dim() not in (2, 3):
        raise DataError(f"intensity must be a [H, W] image or [T, H, W] frames, got "
                        f"{tuple(intensity.shape) if isinstance(intensity, Tensor) else type(intensity).__name__}")
    if not bool(torch.isfinite(intensity).all()) or float(intensity.min()) < 0:
        raise DataError("intensity must be finite and non-negative (light in [0, 1])")
    if not threshold > 0 or gain < 0 or dark_current < 0 or noise < 0:
        raise DataError("threshold must be positive; gain, dark_current and noise non-negative")
    if intensity.dim() == 2:
        if steps is None or steps < 1:
            raise DataError("a still image needs steps >= 1 (how long the camera looks at it)")
        current = intensity.float().expand(steps, *intensity.shape)
    else:
        current = intensity.float()
    generator = torch.Generator().manual_seed(seed)
    current = current * gain + dark_current
    if noise:
        current = current + noise * torch.randn(current.shape, generator=generator)
    config = NeuronConfig(threshold=threshold, reset="subtract", signed=False, max_strength=1)
    state = if_init(current[0], config)
    state.v.copy_(torch.rand(current.shape[1:], generator=generator) * threshold)
    spikes, _ = if_scan(current.contiguous(), state, config)
    return spikes.to(torch.uint8)
