"""Training recipes by name: what a run config's ``[train] recipe = "..."`` selects.

* ``standard``: :func:`~spikeconv.tasks.classification.train_classifier` (SGD, cosine, per-sample
  augmentation in the loader, stages, DDP-aware) with :class:`~spikeconv.tasks.classification.TrainConfig`;
* ``fast``: :func:`~spikeconv.tasks.fast.train_fast_dataset` (uint8 tensors in memory, batch augmentation,
  bfloat16 on the CPU) with :class:`~spikeconv.tasks.fast.FastTrainConfig`;
* ``detection``: :func:`~spikeconv.tasks.detection.train_detector` (GIoU loss, multi-step schedule, DDP-aware)
  with :class:`~spikeconv.tasks.detection.DetectionTrainConfig`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .classification import TrainConfig, train_classifier
from .detection import DetectionTrainConfig, train_detector
from .fast import FastTrainConfig, train_fast_dataset


@dataclass(frozen=True)
class Recipe:
    """A training recipe: its options type, its training function
    ``train(model, train_set, config, *, state_path, progress, on_epoch) -> history``, and whether its data
    set is augmented per sample by the loader (``False``: the recipe augments whole batches itself), and the
    task its models solve (``"classification"`` or ``"detection"``)."""

    name: str
    config_type: type
    train: Callable[..., list[dict[str, float]]]
    loader_augments: bool
    task: str = "classification"


RECIPES = {
    "standard": Recipe("standard", TrainConfig, train_classifier, loader_augments=True),
    "fast": Recipe("fast", FastTrainConfig, train_fast_dataset, loader_augments=False),
    "detection": Recipe("detection", DetectionTrainConfig, train_detector, loader_augments=True, task="detection"),
}


def recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Example:
        >>> recipe("fast").config_type.__name__
        'FastTrainConfig'
    """
    if name not in RECIPES:
        raise ValueError(f"unknown training recipe {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[name]
