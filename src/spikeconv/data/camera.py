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


class CameraEncoder:
    r"""Spike-camera input for :func:`spikeconv.sim.simulate` (``SimulationConfig(encoder=CameraEncoder(...))``):
    the images ``[B, C, H, W]`` (values in ``[0, 1]``) are seen by a spike camera (:func:`simulate_camera`,
    every channel a pixel) and the network gets, at step ``t``, ``normalize(theta * S(t))``: the camera's spikes
    in intensity units, so that their mean over ``T`` steps approaches the image the network was trained on.

    ``window > 1`` groups ``window`` camera frames into one SNN step, either as a binary frame (``mode="binary"``:
    did the pixel fire in the window, a {0, 1} image as in paper 000 section B) or as a count (``mode="count"``:
    the step carries the count times ``theta / window``, the mean charge per frame). A camera pixel sends at most one spike a frame: light above ``theta`` per
    frame saturates it (rate 1), so ``theta >= 1`` keeps images in ``[0, 1]`` linear. The camera's random phase is seeded per image batch, and step ``t``'s
    frame does not depend on how the engine chunks time (the camera is re-run from its start).
    """

    MODES = ("binary", "count")

    def __init__(self, threshold: float = 1.0, *, window: int = 1, mode: str = "binary", normalize=None,
                 seed: int = 0) -> None:
        if mode not in self.MODES:
            raise DataError(f"mode must be one of {self.MODES}, got {mode!r}")
        if window < 1 or not threshold > 0:
            raise DataError("window must be >= 1 and threshold > 0")
        self.threshold, self.window, self.mode, self.normalize, self.seed = threshold, window, mode, normalize, seed

    def __call__(self, inputs: Tensor, start: int, steps: int) -> Tensor:
        if inputs.dim() != 4 or float(inputs.min()) < 0 or float(inputs.max()) > 1:
            raise DataError("CameraEncoder sees images [B, C, H, W] with values in [0, 1] (un-normalised)")
        b, c, h, w = inputs.shape
        frames = (start + steps) * self.window
        # pixels are independent: the batch as one [B*C*H, W] image
        spikes = simulate_camera(inputs.reshape(b * c * h, w).cpu(), frames, threshold=self.threshold, seed=self.seed)
        spikes = spikes.to(inputs.device, inputs.dtype).view(start + steps, self.window, b, c, h, w)[start:]
        if self.mode == "binary" and self.window > 1:  # did the pixel fire in the window: a {0, 1} image
            current = spikes.amax(1)
        else:  # the charge the spikes carry, per camera frame
            current = spikes.sum(1) * (self.threshold / self.window)  # [steps, B, C, H, W]
        return self.normalize(current) if self.normalize is not None else current
