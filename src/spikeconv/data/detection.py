"""Detection data: annotated images letterboxed to a square input, boxes as ``tv_tensors.BoundingBoxes``
through ``torchvision.transforms.v2`` (flip, colour jitter, random affine for training).

A sample is ``(image uint8 [3, S, S], {"boxes": BoundingBoxes XYXY in pixels of S, "labels": int64 [N]})``;
:func:`collate` stacks images as float in [0, 1] and keeps the targets as a list.

Example (COCO128 from the shared data)::

    train = coco128("train2017", image_size=320, augment=True)
    loader = DataLoader(train, batch_size=16, shuffle=True, collate_fn=collate)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ..errors import DataError
from .annotations import Annotated, ReadReport, read_class_names, read_yolo
from .paths import data_root

PAD_VALUE = 114  # the grey YOLO pads with


def letterbox(image: Tensor, boxes: Tensor, size: int) -> tuple[Tensor, tv_tensors.BoundingBoxes]:
    """Resize ``image [3, H, W]`` so its longer side is ``size``, pad to ``size x size`` (grey, centred).

    ``boxes`` are normalised XYXY; the result's boxes are XYXY pixels of the padded image.

    Example:
        >>> img, b = letterbox(torch.zeros(3, 50, 100, dtype=torch.uint8), torch.tensor([[0., 0., 1., 1.]]), 64)
        >>> tuple(img.shape), b.tolist()
        ((3, 64, 64), [[0.0, 16.0, 64.0, 48.0]])
    """
    height, width = image.shape[-2:]
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    pixels = boxes * torch.tensor([width, height, width, height], dtype=torch.float32)
    box = tv_tensors.BoundingBoxes(pixels, format="XYXY", canvas_size=(height, width))
    image = TF.resize(image, [new_h, new_w], antialias=True)
    box = TF.resize(box, [new_h, new_w])
    left, top = (size - new_w) // 2, (size - new_h) // 2
    padding = [left, top, size - new_w - left, size - new_h - top]
    return TF.pad(image, padding, fill=PAD_VALUE), TF.pad(box, padding)


def read_image(path: Path) -> Tensor:
    """Decode an image file as RGB uint8 ``[3, H, W]`` (greyscale and RGBA converted)."""
    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as exc:
        raise DataError(f"image {path} does not decode ({exc}); remove it or replace the file") from None


def train_transforms() -> v2.Compose:
    """YOLO-style training augmentation on letterboxed samples: flip, colour jitter, one image in four made
    grey (so that the detector also works on grey spike-camera streams), random affine; boxes that fall
    (almost) outside are dropped by ``SanitizeBoundingBoxes``."""
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.5, hue=0.015),
        v2.RandomGrayscale(p=0.25),
        v2.RandomAffine(degrees=0.0, translate=(0.1, 0.1), scale=(0.7, 1.3), fill=PAD_VALUE),
        v2.SanitizeBoundingBoxes(min_size=2.0),
    ])


class DetectionDataset(Dataset):
    """Letterboxed annotated images (decoded once, kept in memory), optionally augmented.

    Args:
        records: from :mod:`spikeconv.data.annotations` readers.
        image_size: S, the square input size (a multiple of 32 for the YOLO models).
        transforms: applied to ``(image, target)`` after letterboxing (``None``: none).
        report: the reader's :class:`ReadReport` (kept for the caller to show once).
    """

    def __init__(self, records: list[Annotated], image_size: int, transforms: v2.Transform | None = None,
                 report: ReadReport | None = None, class_names: list[str] | None = None) -> None:
        if not records:
            raise DataError("the detection data set holds no images; check the image folder")
        self.records, self.image_size, self.transforms = records, image_size, transforms
        self.report, self.class_names = report or ReadReport(images=len(records)), class_names
        self._cache: dict[int, tuple[Tensor, tv_tensors.BoundingBoxes]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def letterboxed(self, index: int) -> tuple[Tensor, tv_tensors.BoundingBoxes]:
        """The decoded, letterboxed image and its boxes (no augmentation), cached."""
        if index not in self._cache:
            record = self.records[index]
            self._cache[index] = letterbox(read_image(record.image), record.boxes, self.image_size)
        return self._cache[index]

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        image, boxes = self.letterboxed(index)
        target = {"boxes": boxes, "labels": self.records[index].labels}
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def collate(batch: list[tuple[Tensor, dict[str, Tensor]]]) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Stack images as float32 in [0, 1]; keep the per-image targets (boxes as plain tensors) in a list."""
    images = torch.stack([image for image, _ in batch]).float().div_(255.0)
    targets = [{"boxes": t["boxes"].as_subclass(Tensor).float(), "labels": t["labels"]} for _, t in batch]
    return images, targets


def coco128(split: str = "train2017", *, image_size: int = 320, augment: bool = False,
            root: str | os.PathLike | None = None, limit: int | None = None) -> DetectionDataset:
    """COCO128 (``coco128/images/<split>``, YOLO labels, 80 classes) as a :class:`DetectionDataset`."""
    if split not in ("train2017", "val2017"):
        raise DataError(f"COCO128 has splits 'train2017' and 'val2017', not {split!r}")
    base = data_root(root) / "coco128"
    names = read_class_names(base / "classes.yaml")
    records, report = read_yolo(base / "images" / split, base / "labels" / split, num_classes=len(names))
    if limit is not None:
        records = records[:limit]
    return DetectionDataset(records, image_size, train_transforms() if augment else None, report, names)


def box_sizes(dataset: DetectionDataset) -> Tensor:
    """``[N, 2]`` widths and heights (pixels of the letterboxed input) of every box, for anchor k-means."""
    sizes = [boxes[:, 2:] - boxes[:, :2] for boxes in (dataset.letterboxed(k)[1].as_subclass(Tensor)
                                                      for k in range(len(dataset)))]
    return torch.cat(sizes) if sizes else torch.zeros(0, 2)
