import os
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


