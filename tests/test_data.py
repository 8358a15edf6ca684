"""Readers of the real shared data, and their errors."""

import gzip

import numpy as np
import pytest

from spikeconv.data import data_root, load_cifar10, load_mnist, make_dataset, read_idx
from spikeconv.errors import DataError


def test_mnist_test_split(data_available):
    images, labels = load_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test labels
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]


def test_cifar10_test_split(data_available):
    images, labels = load_cifar10("test")
    assert images.shape == (10000, 3, 32, 32)
    assert np.bincount(labels).tolist() == [1000] * 10
    assert 100 < images.mean() < 140


def test_limited_dataset_is_strided_and_normalised(data_available):
    ds = make_dataset("cifar10", "test", limit=100)
    assert len(ds) == 100 and len(set(ds.labels.tolist())) == 10
    x, _ = ds[0]
    assert x.shape == (3, 32, 32) and abs(float(x.mean())) < 2


def test_missing_root_and_env(monkeypatch, tmp_path):
    with pytest.raises(DataError, match="--data-root"):
        data_root(tmp_path / "nope")
    monkeypatch.setenv("SPIKECONV_DATA", str(tmp_path))
    assert data_root() == tmp_path
    with pytest.raises(DataError, match="missing"):
        load_mnist("test")


def test_corrupt_idx_is_reported(tmp_path):
    bad = tmp_path / "bad-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02"))
    with pytest.raises(DataError, match="truncated"):
        read_idx(bad)
    bad.write_bytes(b"not gzip")
    with pytest.raises(DataError):
        read_idx(bad)


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_mnist("valid")
