"""A converted detector run over spike-camera and event streams (paper 000 section B): the stream is cut into
clips of ``T`` SNN steps, every step takes one window of camera frames (or one time bin of events), and the
readout after the clip's last step is decoded into boxes.

* spike camera (``.dat``, ``.npz``): a step's input is the window's binary frame ({0, 1}: did the pixel fire,
  as in the paper) or its mean count, times an exposure ``gain`` (default: the gain that maps the stream's
  mean firing rate to mean intensity 0.45, about that of the training images);
* event camera: a step's input is the bin's event count per pixel (both polarities) times ``gain`` (default:
  the gain that maps the mean count to 0.45); a detector trained on intensity images sees edges here, not
  intensity, so expect little;
* images: each image seen by a simulated spike camera (:func:`spikeconv.data.camera.simulate_camera`).

Grey input is repeated over the detector's three channels; frames are letterboxed with nearest-neighbour
resizing (binary frames stay binary) and zero padding (no spikes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..sim import SimulationConfig, simulate
from .yolo import layout, postprocess

TARGET_MEAN = 0.45  # the mean intensity the exposure gain aims at


@dataclass
class Clip:
    """One clip: ``steps [T, 1, H, W]`` SNN input per step (camera units, before the gain) and ``start`` (the
    index of its first camera frame or bin)."""

    steps: Tensor
    start: int


def clip_starts(total: int, length: int, clips: int | None = None) -> list[int]:
    """First frames of consecutive clips of ``length`` frames in a stream of ``total`` (at most ``clips``,
    spread evenly over the stream).

    Example:
        >>> clip_starts(100, 10, clips=3)
        [0, 40, 90]
    """
    if total < length:
        raise ValueError(f"the stream has {total} frames; a clip needs {length}")
    starts = list(range(0, total - length + 1, length))
    if clips is not None and clips < len(starts):
        starts = [starts[round(k * (len(starts) - 1) / max(clips - 1, 1))] for k in range(clips)]
    return starts


def camera_clip(frames: Tensor, timesteps: int, window: int = 1, mode: str = "binary", start: int = 0) -> Clip:
    """A clip of ``timesteps`` steps from ``timesteps * window`` spike-camera frames ``[N, H, W]``: per step the
    window's binary frame (``mode="binary"``) or mean count (``"count"``)."""
    if mode not in ("binary", "count"):
        raise ValueError(f"mode must be 'binary' or 'count', got {mode!r}")
    block = frames[:timesteps * window].float().view(timesteps, window, *frames.shape[1:])
    step = block.amax(1) if mode == "binary" else block.mean(1)
    return Clip(step.unsqueeze(1), start)


def fit_to(steps: Tensor, size: int) -> tuple[Tensor, float, tuple[int, int]]:
    """Letterbox ``[T, C, H, W]`` to ``size x size`` (nearest, zero padding); returns the frames, the scale and the
    ``(left, top)`` padding (to map boxes back: ``(box - pad) / scale``)."""
    height, width = steps.shape[-2:]
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = F.interpolate(steps, size=(new_h, new_w), mode="nearest")
    left, top = (size - new_w) // 2, (size - new_h) // 2
    return F.pad(resized, (left, size - new_w - left, top, size - new_h - top)), scale, (left, top)


def exposure_gain(frames: Tensor) -> float:
    """The gain that maps the mean value of ``frames`` to :data:`TARGET_MEAN`."""
    mean = float(frames.float().mean())
    if mean <= 0:
        raise ValueError("the stream holds no spikes or events; there is nothing to detect")
    return TARGET_MEAN / mean


@torch.no_grad()
def detect_clips(snn: nn.Module, model: nn.Module, clips: list[Clip], gain: float, *, min_score: float = 0.25
                 ) -> list[dict[str, Tensor]]:
    """Boxes (in the stream's pixels, score >= ``min_score``) of the SNN's readout after every clip's last step."""
    size = int(model.input_size)
    lay = layout(model, size, size)
    found = []
    for clip in clips:
        steps, scale, (left, top) = fit_to(clip.steps * gain, size)
        inputs = steps.expand(-1, 3, -1, -1).unsqueeze(1)  # [T, 1, 3, S, S]: a sequence of one sample
        readout = simulate(snn, inputs, steps.shape[0], SimulationConfig(sequence=True))
        boxes = postprocess(readout[-1], lay, model.num_anchors, conf=min_score, size=(size, size))[0]
        boxes["boxes"] = (boxes["boxes"] - torch.tensor([left, top, left, top])) / scale
        found.append(boxes)
    return found
