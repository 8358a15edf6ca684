"""Anytime readout: accuracy after every t from one run, and a confidence-based early exit."""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy_per_step(readout: Tensor, labels: Tensor) -> Tensor:
    """Top-1 accuracy (percent) of the readout ``[T, B, K]`` after every t: a tensor ``[T]``."""
    return (readout.argmax(-1) == labels.unsqueeze(0)).float().mean(1) * 100.0


def early_exit(readout: Tensor, labels: Tensor, margin: float) -> dict[str, float]:
    """Stop each sample at the first t where the softmax readout's top-1 minus top-2 probability is
    ``>= margin`` (or at T); the readout up to t does not depend on later steps, so this is what a
    streaming run that stops there would output.

    Returns accuracy (percent), mean and max timesteps used.

    Example:
        >>> r = torch.tensor([[[0.0, 0.0]], [[5.0, 0.0]], [[5.0, 0.0]]])  # T=3, B=1
        >>> early_exit(r, torch.tensor([0]), margin=0.9)["mean_timesteps"]
        2.0
    """
    if not 0 <= margin <= 1:
        raise ValueError(f"margin is a probability difference in [0, 1], got {margin}")
    probs = torch.softmax(readout, -1)
    top = probs.topk(2, dim=-1).values
    confident = (top[..., 0] - top[..., 1]) >= margin  # [T, B]
    steps = readout.shape[0]
    confident[-1] = True
    exit_step = confident.float().argmax(0)  # first True
    prediction = readout.argmax(-1).gather(0, exit_step.unsqueeze(0)).squeeze(0)
    return {
        "margin": margin,
        "accuracy": (prediction == labels).float().mean().item() * 100.0,
        "mean_timesteps": (exit_step.float() + 1).mean().item(),
        "max_timesteps": float(steps),
    }
