"""ImageNet-style data: any ImageFolder tree (``root/<class>/<image>``), streamed from disk.

Nothing is loaded whole into memory: the dataset holds file paths and labels and decodes an image when
it is drawn (``torchvision.io``), then applies the standard ImageNet transforms (random resized 224 crop
and flip for training; resize 256 and centre 224 crop for evaluation).

Two layouts are read:

* an ImageFolder tree, ``<dir>/<wnid or class name>/<file>``, classes numbered in sorted order
  (``torchvision.datasets.ImageFolder``'s convention);
* a flat folder with ``labels.csv`` (``index,wnid,filename``; ``index`` the class number), as in the
  shared ``imagenet-sample`` (one training image of every 20th class: for pipeline checks only).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset as folder_samples
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from ..errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_transform(train: bool, size: int = 224) -> v2.Compose:
    """Standard ImageNet transforms on uint8 ``[3, H, W]`` tensors.

    Example:
        >>> imagenet_transform(False)(torch.zeros(3, 300, 400, dtype=torch.uint8)).shape
        torch.Size([3, 224, 224])
    """
    if train:
        steps: list = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        steps = [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
    return v2.Compose(steps + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def list_images(folder: str | os.PathLike) -> list[tuple[str, int]]:
    """``(path, label)`` for every image of an ImageFolder tree or of a ``labels.csv`` folder.

    Raises :class:`DataError` when the folder is missing or holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist; pass --data-root or set SPIKECONV_DATA")
    table = folder / "labels.csv"
    if table.is_file():
        with table.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or not {"index", "filename"} <= set(rows[0]):
            raise DataError(f"{table} must have the columns index,filename (and optionally wnid)")
        items = [(str(folder / row["filename"]), int(row["index"])) for row in rows]
        missing = [p for p, _ in items if not Path(p).is_file()]
        if missing:
            raise DataError(f"{table} names {len(missing)} missing file(s), e.g. {missing[0]}")
        return items
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        raise DataError(f"{folder} has neither class sub-folders nor a labels.csv; expected <dir>/<class>/<image>")
    items = folder_samples(str(folder), {c: i for i, c in enumerate(classes)}, extensions=IMG_EXTENSIONS)
    if not items:
        raise DataError(f"{folder} has class folders but no images ({', '.join(IMG_EXTENSIONS)})")
    return items


class ImageFileDataset(Dataset):
    """Images decoded from disk when drawn (RGB, uint8), then transformed.

    Example:
        >>> ds = ImageFileDataset([], imagenet_transform(False))
        >>> len(ds)
        0
    """

    def __init__(self, items: list[tuple[str, int]], transform=None) -> None:
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path, label = self.items[index]
        try:
            image = decode_image(read_file(path), mode=ImageReadMode.RGB)
        except RuntimeError as exc:
            raise DataError(f"cannot decode image {path}: {exc}; remove or replace the file") from exc
        if self.transform is not None:
            image = self.transform(image)
        return image, torch.tensor(label)


def imagenet_folder(split: str, root: Path, name: str) -> Path:
    """The folder of ``split`` for data set ``name`` under the data ``root``.

    ``imagenet``: ``root/imagenet/{train,val}`` (``test`` means ``val``), or ``root/{train,val}`` when
    ``root`` is itself the ImageNet folder. ``imagenet-sample``: ``root/imagenet-sample`` for both splits.
    """
    if name == "imagenet-sample":
        return root / "imagenet-sample"
    sub = "val" if split == "test" else split
    for base in (root / "imagenet", root):
        if (base / sub).is_dir():
            return base / sub
    raise DataError(f"no ImageNet {sub} folder under {root} (looked for imagenet/{sub} and {sub}); "
                    "point --data-root at a folder holding train/ and val/ ImageFolder trees")
