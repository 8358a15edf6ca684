"""What every training loop shares: resuming from and writing the whole training state atomically, and
wrapping the model for DistributedDataParallel under ``torchrun``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_write
from .distributed import is_main, rank_and_size


def resume_(state_path: str | os.PathLike | None, model: nn.Module, optimizer, scheduler) -> tuple[int, list] | None:
    """Load the state written by :func:`save_state` into ``model``, ``optimizer`` and ``scheduler``; returns
    ``(epochs done, history)``, or ``None`` when there is no state file (a fresh run)."""
    if state_path is None or not Path(state_path).exists():
        return None
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"]), list(state["history"])


def save_state(state_path: str | os.PathLike | None, model: nn.Module, optimizer, scheduler, epoch: int,
               history: list[dict[str, Any]]) -> None:
    """Write the whole training state after ``epoch`` atomically (main process only; nothing without a path)."""
    if state_path is None or not is_main():
        return
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "epoch": epoch, "history": history}
    atomic_write(Path(state_path), lambda tmp: torch.save(state, tmp))


def distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when more than one process runs, else ``model``."""
    if rank_and_size()[1] <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
