"""Input images for a checkpoint, whatever its task: an example batch (to trace the graph) and calibration
batches (the bounds of plain ReLU activations), from the splits of the checkpoint's data set; and the
detection data sets by name (one place for their splits and input size)."""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor

from ..errors import DataError

#: detection data sets by name: their splits, the training split first
DETECTION_SPLITS = {"coco128": ("train2017", "val2017")}


def is_detection(spec: dict[str, Any]) -> bool:
    """Whether a checkpoint or config describes a detector (by its data set)."""
    return spec.get("dataset") in DETECTION_SPLITS


def image_size(spec: dict[str, Any]) -> int:
    """The square input size of a detector spec (``model_kwargs["input_size"]``, 416 by default)."""
    return int(spec.get("model_kwargs", {}).get("input_size", 416))


def detection_data(spec: dict[str, Any], split: str, root: str | os.PathLike | None = None, *,
                   augment: bool = False, limit: int | None = None):
    """The detection data set of ``spec`` letterboxed to its input size; ``split`` names a split of it, or
    ``"train"`` / ``"test"`` for its training / first evaluation split."""
    from ..data.detection import coco128

    name = spec.get("dataset")
    if name not in DETECTION_SPLITS:
        raise DataError(f"unknown detection data set {name!r}; known: {sorted(DETECTION_SPLITS)}")
    splits = DETECTION_SPLITS[name]
    split = {"train": splits[0], "test": splits[1]}.get(split, split)
    if split not in splits:
        raise DataError(f"{name} has splits {list(splits)}, not {split!r}")
    return coco128(split, image_size=image_size(spec), augment=augment, root=root, limit=limit)


def images(spec: dict[str, Any], split: str, *, limit: int | None, batch_size: int = 250,
           root: str | os.PathLike | None = None) -> list[Tensor]:
    """Batches of ``limit`` images of ``split`` (``"train"`` or ``"test"``) of the checkpoint's data set."""
    from ..data import make_dataset, make_loader

    if is_detection(spec):
        from torch.utils.data import DataLoader

        from ..data.detection import collate

        data = detection_data(spec, split, root, limit=limit)
        return [x for x, _ in DataLoader(data, batch_size=min(batch_size, 32), collate_fn=collate)]
    return [x for x, _ in make_loader(make_dataset(spec.get("dataset"), split, root=root, limit=limit), batch_size)]


class OnDemand:
    """Batches that ``load()`` makes on the first iteration, then kept: calibration images a QReLU model
    never reads are never decoded (nor cached on disk).

    Example:
        >>> batches = OnDemand(lambda: ["batch 1", "batch 2"])
        >>> batches.loaded, list(batches), batches.loaded
        (False, ['batch 1', 'batch 2'], True)
    """

    def __init__(self, load) -> None:
        self._load, self._batches = load, None

    @property
    def loaded(self) -> bool:
        return self._batches is not None

    def __iter__(self):
        if self._batches is None:
            self._batches = list(self._load())
        return iter(self._batches)


def input_shape(spec: dict[str, Any]) -> tuple[int, ...] | None:
    """The per-sample input shape of the checkpoint's data set (``None`` when it is not known)."""
    from ..data import DATASETS

    if is_detection(spec):
        return (3, image_size(spec), image_size(spec))
    info = DATASETS.get(spec.get("dataset"))
    return (info.channels, info.size, info.size) if info is not None else None
