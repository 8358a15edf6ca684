r"""Images from spike-camera streams: texture from playback (TFP) and texture from interval (TFI).

Both estimate each pixel's firing rate ``r = g I / theta`` around a time ``t`` (light ``I``, gain ``g``,
threshold ``theta``, :mod:`spikeconv.data.camera`); ``intensity = scale * r`` with ``scale = theta / g``:

* TFP: the mean of the spike frames in a window of ``window`` steps centred on ``t``;
* TFI: ``1 / ISI``, with ``ISI = t_+ - t_-`` the interval between the last spike at or before ``t`` and the
  first spike after it (a pixel with no spike on one side gets rate 0).

:func:`quality` scores an image against a reference with torchmetrics' PSNR and SSIM (data range 1);
it needs the ``streams`` extra.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError


def _frames(spikes) -> Tensor:
    frames = torch.as_tensor(np.asarray(spikes) if not isinstance(spikes, Tensor) else spikes)
    if frames.dim() != 3:
        raise DataError(f"spike frames must be [T, H, W], got shape {tuple(frames.shape)}")
    return frames


def tfp(spikes, center: int, window: int = 41) -> Tensor:
    """Rate ``[H, W]``: the mean of the ``window`` frames centred on ``center`` (TFP).

    Example:
        >>> round(tfp(torch.tensor([[[1]], [[0]], [[1]], [[1]]]), center=1, window=3).item(), 4)
        0.6667
    """
    frames = _frames(spikes)
    half = window // 2
    if window < 1 or center - half < 0 or center + half >= frames.shape[0]:
        raise DataError(f"a TFP window of {window} frames around frame {center} does not fit {frames.shape[0]} frames")
    return frames[center - half:center + half + 1].float().mean(0)


def tfi(spikes, center: int) -> Tensor:
    """Rate ``[H, W]``: ``1 / (t_+ - t_-)`` around ``center`` (TFI; 0 where a side has no spike).

    Example:
        >>> round(tfi(torch.tensor([[[1]], [[0]], [[0]], [[1]], [[0]]]), center=1).item(), 4)  # spikes at 0, 3
        0.3333
    """
    frames = _frames(spikes)
    steps = frames.shape[0]
    if not 0 <= center < steps - 1:
        raise DataError(f"frame {center} is not inside a stream of {steps} frames with one after it")
    fired = frames != 0
    times = torch.arange(steps).view(-1, 1, 1).expand_as(fired)
    before = torch.where(fired[:center + 1], times[:center + 1], torch.full_like(times[:center + 1], -1)).amax(0)
    after = torch.where(fired[center + 1:], times[center + 1:], torch.full_like(times[center + 1:], steps)).amin(0)
    valid = (before >= 0) & (after < steps)
    isi = (after - before).clamp(min=1).float()
    return torch.where(valid, 1.0 / isi, torch.zeros_like(isi))


def quality(image: Tensor, reference: Tensor) -> dict[str, float]:
    """``{"psnr": dB, "ssim": ...}`` of ``image`` against ``reference`` (both ``[H, W]`` in ``[0, 1]``)."""
    try:
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataError("PSNR and SSIM need torchmetrics: pip install 'spikeconv[streams]'") from exc
    a, b = image.float().clamp(0, 1)[None, None], reference.float()[None, None]
    return {"psnr": float(peak_signal_noise_ratio(a, b, data_range=1.0)),
            "ssim": float(structural_similarity_index_measure(a, b, data_range=1.0))}
