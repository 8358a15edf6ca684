"""What every training loop shares: resuming from and writing the whole training state atomically, the
epoch's shuffled batches, and wrapping the model for DistributedDataParallel under ``torchrun``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..atomic import atomic_write
from ..errors import is_count
from .distributed import is_main, rank_and_size


def free_option(default: Any) -> Any:
    """A training option that a run may change and still resume its saved state (the loader's workers, the
    device, a step after the last epoch): ``workers: int = free_option(0)``. The state fingerprint of
    :func:`spikeconv.cli.reuse.prepare_state` leaves such options out."""
    return field(default=default, metadata={"free": True})


def free_options(config_type: type) -> set[str]:
    """The names of ``config_type``'s :func:`free_option` fields."""
    return {f.name for f in fields(config_type) if f.metadata.get("free")}


def check_device(config: Any) -> None:
    """Raise ``ValueError`` unless ``config.device`` is ``"auto"``, ``"cpu"`` or ``"cuda"``."""
    if config.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"train.device must be 'auto', 'cpu' or 'cuda', got {config.device!r}")


def check_positive_ints(config: Any, names: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``train.<name>`` unless each of ``names`` is a positive integer (not a bool)."""
    for name in names:
        value = getattr(config, name)
        if not is_count(value):
            raise ValueError(f"train.{name} must be a positive integer, got {value!r}")


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


def epoch_loader(train_set: Dataset, config: Any, local_batch: int, epoch: int,
                 collate_fn: Callable | None = None) -> DataLoader:
    """Epoch ``epoch``'s shuffled batches (seed ``config.seed + epoch``, ``config.workers`` loader processes);
    under torchrun this process's share (``DistributedSampler``), so every epoch is the same on a resume."""
    rank, world = rank_and_size()
    if world > 1:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                     seed=config.seed, drop_last=True)
        sampler.set_epoch(epoch)
        return DataLoader(train_set, batch_size=local_batch, sampler=sampler, num_workers=config.workers,
                          collate_fn=collate_fn, drop_last=True)
    gen = torch.Generator().manual_seed(config.seed + epoch)
    return DataLoader(train_set, batch_size=local_batch, shuffle=True, generator=gen,
                      num_workers=config.workers, collate_fn=collate_fn, drop_last=True)


def distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when more than one process runs, else ``model``."""
    if rank_and_size()[1] <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
