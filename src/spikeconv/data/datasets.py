"""Readers for the real data sets in the shared data root: MNIST (IDX, gzip) and CIFAR-10 (JPEG tars).

Both decode once into uint8 arrays cached outside the repository (see :mod:`spikeconv.data.paths`).
"""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image

from ..errors import DataError
from .paths import cached_arrays, data_root

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_SPLITS = ("train", "test")


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: magic ``0 0 dtype ndim``, big-endian dimensions, then the data.

    Example: ``read_idx(Path('t10k-labels-idx1-ubyte.gz')).shape == (10000,)``.
    """
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}; check the file or re-copy the data set") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, found {data.size} bytes")
    return data.reshape(dims)


def load_mnist(split: str = "test", root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST ``(images uint8 [N, 28, 28], labels int64 [N])`` from ``<root>/mnist``.

    Example: ``images, labels = load_mnist("test")`` gives 10,000 test digits.
    """
    _check_split(split)
    folder = data_root(root) / "mnist"
    prefix = "train" if split == "train" else "t10k"
    images_path = folder / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = folder / f"{prefix}-labels-idx1-ubyte.gz"
    for path in (images_path, labels_path):
        if not path.exists():
            raise DataError(f"MNIST file {path} is missing; the data root must hold mnist/*-idx*-ubyte.gz")

    def build() -> dict[str, np.ndarray]:
        images, labels = read_idx(images_path), read_idx(labels_path).astype(np.int64)
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"MNIST {split}: {images.shape[0]} images but {labels.shape[0]} labels")
        return {"images": images, "labels": labels}

    arrays = cached_arrays(f"mnist-{split}", images_path, build)
    return arrays["images"], arrays["labels"]


def load_cifar10(split: str = "test", root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 ``(images uint8 [N, 3, 32, 32], labels int64 [N])`` from ``<root>/cifar10/<split>.tar.gz``.

    Members are ``<split>/<class>/NNNN.jpg``; classes in sorted order give the standard label order.
    The order of samples is sorted by (class, file name).
    """
    _check_split(split)
    path = data_root(root) / "cifar10" / f"{split}.tar.gz"
    if not path.exists():
        raise DataError(f"CIFAR-10 archive {path} is missing; the data root must hold cifar10/{split}.tar.gz")

    def build() -> dict[str, np.ndarray]:
        entries: list[tuple[int, str, bytes]] = []
        try:
            with tarfile.open(path, "r:gz") as archive:
                for member in archive:
                    if not member.isfile() or not member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                        continue
                    parts = Path(member.name).parts
                    if len(parts) < 2 or parts[-2] not in CIFAR10_CLASSES:
                        continue
                    entries.append((CIFAR10_CLASSES.index(parts[-2]), parts[-1], archive.extractfile(member).read()))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"cannot read {path}: {exc}; the archive is corrupt, copy it again") from exc
        if not entries:
            raise DataError(f"{path} holds no <class>/<file>.jpg images")
        entries.sort(key=lambda e: (e[0], e[1]))
        images = np.empty((len(entries), 3, 32, 32), dtype=np.uint8)
        for k, (_, name, blob) in enumerate(entries):
            image = decode_image(torch.frombuffer(bytearray(blob), dtype=torch.uint8), mode=ImageReadMode.RGB)
            if tuple(image.shape) != (3, 32, 32):
                raise DataError(f"{path}:{name} is {tuple(image.shape)}, expected a 32x32 RGB image")
            images[k] = image.numpy()
        labels = np.array([e[0] for e in entries], dtype=np.int64)
        return {"images": images, "labels": labels}

    arrays = cached_arrays(f"cifar10-{split}", path, build)
    return arrays["images"], arrays["labels"]


