"""Input images for a checkpoint, whatever its task: an example batch (to trace the graph) and calibration
batches (the bounds of plain ReLU activations), from the splits of the checkpoint's data set."""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor


def _coco128(spec: dict[str, Any], split: str, root, limit: int | None):
    from ..data.detection import coco128

    size = int(spec.get("model_kwargs", {}).get("input_size", 416))
    return coco128({"train": "train2017", "test": "val2017"}[split], image_size=size, root=root, limit=limit)


#: data sets whose samples are ``(image, target dict)`` (detection), by name
DETECTION_SETS = {"coco128": _coco128}


def images(spec: dict[str, Any], split: str, *, limit: int | None, batch_size: int = 250,
           root: str | os.PathLike | None = None) -> list[Tensor]:
    """Batches of ``limit`` images of ``split`` (``"train"`` or ``"test"``) of the checkpoint's data set."""
    from ..data import make_dataset, make_loader

    dataset = spec.get("dataset")
    if dataset in DETECTION_SETS:
        from torch.utils.data import DataLoader

        from ..data.detection import collate

        data = DETECTION_SETS[dataset](spec, split, root, limit)
        return [x for x, _ in DataLoader(data, batch_size=min(batch_size, 32), collate_fn=collate)]
    return [x for x, _ in make_loader(make_dataset(dataset, split, root=root, limit=limit), batch_size)]


def input_shape(spec: dict[str, Any]) -> tuple[int, ...] | None:
    """The per-sample input shape of the checkpoint's data set (``None`` when it is not known)."""
    from ..data import DATASETS

    dataset = spec.get("dataset")
    if dataset in DETECTION_SETS:
        size = int(spec.get("model_kwargs", {}).get("input_size", 416))
        return (3, size, size)
    info = DATASETS.get(dataset)
    return (info.channels, info.size, info.size) if info is not None else None
