"""Data: readers for the shared real data sets, cached decoding, transforms and loaders."""

from .encoders import PoissonEncoder
from .camera import simulate_camera
from .datasets import CIFAR10_CLASSES, load_cifar10, load_mnist, read_idx
from .loaders import DATASETS, ArrayDataset, DatasetInfo, dataset_info, make_dataset, make_loader
from .paths import cache_dir, data_root
from .spikecam import SpikeStream, load_spike_npz, read_dat, write_dat

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "ArrayDataset",
    "DatasetInfo",
    "PoissonEncoder",
    "SpikeStream",
    "cache_dir",
    "data_root",
    "dataset_info",
    "load_cifar10",
    "load_mnist",
    "load_spike_npz",
    "make_dataset",
    "make_loader",
    "read_dat",
    "read_idx",
    "simulate_camera",
    "write_dat",
]
