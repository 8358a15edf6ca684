"""Datasets and loaders over the decoded arrays, with torchvision transforms.

Images stay uint8 in memory; each sample is augmented (training only) with ``torchvision.transforms.v2``
and normalised to float when it is drawn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .datasets import load_cifar10, load_mnist
from .imagefolder import IMAGENET_MEAN, IMAGENET_STD, ImageFileDataset, imagenet_folder, imagenet_transform, list_images
from .paths import data_root


@dataclass(frozen=True)
class DatasetInfo:
    """Shape facts and normalisation of a data set."""

    name: str
    channels: int
    size: int
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


DATASETS = {
    "mnist": DatasetInfo("mnist", 1, 28, 10, (0.0,), (1.0,)),
    "cifar10": DatasetInfo("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": DatasetInfo("imagenet", 3, 224, 1000, IMAGENET_MEAN, IMAGENET_STD),
    "imagenet-sample": DatasetInfo("imagenet-sample", 3, 224, 1000, IMAGENET_MEAN, IMAGENET_STD),
}
STREAMED = ("imagenet", "imagenet-sample")  # decoded from files when drawn, never cached whole


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (``"mnist"``, ``"cifar10"``, ``"imagenet"``, ``"imagenet-sample"``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def train_transform(info: DatasetInfo, *, erasing: bool = True) -> v2.Compose:
    """Standard augmentation: random crop (padding 4) and, for natural images, flip and random erasing."""
    steps: list = [v2.RandomCrop(info.size, padding=4 if info.name != "mnist" else 2)]
    if info.name != "mnist":
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(info.mean, info.std)]
    if erasing and info.name != "mnist":
        steps.append(v2.RandomErasing(p=0.25))
    return v2.Compose(steps)


def eval_transform(info: DatasetInfo) -> v2.Compose:
    """Convert to float in [0, 1] and normalise."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(info.mean, info.std)])


class ArrayDataset(Dataset):
    """Samples from uint8 image arrays ``[N, C, H, W]`` and int labels, transformed when drawn."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None) -> None:
        if images.ndim == 3:
            images = images[:, None]
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


def load_split(name: str, split: str, root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decoded arrays of one split of a registered data set."""
    info = dataset_info(name)
    loader = {"mnist": load_mnist, "cifar10": load_cifar10}[info.name]
    return loader(split, root)


def make_dataset(
    name: str, split: str, *, root: str | os.PathLike | None = None, augment: bool = False,
    limit: int | None = None, erasing: bool = True,
) -> Dataset:
    """A dataset of ``split``; ``limit`` keeps an evenly strided subset of that many samples (all classes).

    MNIST and CIFAR-10 come from cached arrays; ImageNet-style sets are streamed from their files
    (see :mod:`spikeconv.data.imagefolder`).

    Example: ``make_dataset("mnist", "test", limit=1000)``.
    """
    info = dataset_info(name)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    if info.name in STREAMED:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        items = list_images(imagenet_folder(split, data_root(root), info.name))
        if limit is not None:
            items = [items[i] for i in _strided(len(items), limit)]
        return ImageFileDataset(items, imagenet_transform(train=augment, size=info.size))
    images, labels = load_split(name, split, root)
    if limit is not None:
        index = _strided(len(labels), limit)
        images, labels = images[index], labels[index]
    transform = train_transform(info, erasing=erasing) if augment else eval_transform(info)
    return ArrayDataset(images, labels, transform)


def _strided(n: int, limit: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, num=min(limit, n)).round().astype(np.int64))


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                workers: int = 0, sampler=None) -> DataLoader:
    """A ``DataLoader`` with a seeded generator (reproducible shuffling)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, generator=generator, drop_last=False,
                      persistent_workers=workers > 0)
