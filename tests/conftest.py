import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "checkpoints"

# SPIKECONV_TEST_THREADS: CI runs the exactness tests a second time with another thread count
torch.set_num_threads(int(os.environ.get("SPIKECONV_TEST_THREADS", max(1, min(2, os.cpu_count() or 1)))))


@pytest.fixture(scope="session")
def data_available() -> bool:
    from spikeconv.data import data_root

    try:
        data_root()
    except FileNotFoundError:
        pytest.skip("shared data root not found")
    return True


@contextmanager
def mutated_kernels(tmp_path: Path, monkeypatch, old: str, new: str):
    """Within: spikeconv's C kernels built from ``kernels.c`` with ``old`` (which must occur) replaced by ``new``,
    cached under ``tmp_path``; afterwards the shipped source and cache again (``monkeypatch`` undone), for the
    rest of the test and every later one. For checks that must fail on a broken kernel."""
    from spikeconv import native
    from spikeconv.native import build

    source = build.SOURCE.read_text()
    assert old in source
    (tmp_path / "kernels.c").write_text(source.replace(old, new))
    monkeypatch.setattr(build, "SOURCE", tmp_path / "kernels.c")
    monkeypatch.setenv("SPIKECONV_CACHE", str(tmp_path / "cache"))
    native.native_build.cache_clear()
    try:
        assert native.native_build().available
        yield
    finally:
        monkeypatch.undo()
        native.native_build.cache_clear()
