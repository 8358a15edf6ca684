"""torchrun with gloo: sharded evaluation equals one process exactly; DDP training runs; sharding is exact."""

import json
import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from conftest import CHECKPOINTS, ROOT
from spikeconv.tasks.distributed import batch_shard_indices


@given(n=st.integers(0, 300), batch=st.integers(1, 40), size=st.integers(1, 5))
def test_batch_shards_cover_every_sample_once_in_single_process_batches(n, batch, size):
    shards = [batch_shard_indices(n, batch, rank, size) for rank in range(size)]
    assert sorted(i for shard in shards for i in shard) == list(range(n))
    for shard in shards:  # every shard is a run of whole single-process batches (the last may be short)
        chunks = [shard[k:k + batch] for k in range(0, len(shard), batch)]
        assert all(c[0] % batch == 0 and c == list(range(c[0], c[0] + len(c))) for c in chunks)


def _spikeconv(args, tmp_path, processes=1):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                 "-m", "spikeconv"] if processes > 1 else [sys.executable, "-m", "spikeconv"])
    done = subprocess.run(launcher + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    return done


def test_two_gloo_processes_evaluate_exactly_like_one(tmp_path, data_available):
    """203 samples in batches of 20: 11 batches, the last one short, split 6 / 5 over two processes."""
    args = ["evaluate", str(CHECKPOINTS / "mnist_lenet_qrelu.pt"), "--timesteps", "1", "2", "4", "--limit", "203",
            "--batch-size", "20", "--neurons", "if", "buffered", "--max-strengths", "1", "--json"]
    _spikeconv(args + ["one.json"], tmp_path)
    _spikeconv(args + ["two.json"], tmp_path, processes=2)
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert one == two and one["test_samples"] == 203
    assert one["snn_accuracy"]["buffered/smax1"]["4"] > 95.0


def test_torchrun_trains_with_ddp_and_writes_one_checkpoint(tmp_path, data_available):
    config = tmp_path / "tiny.toml"
    config.write_text(f"""
[data]
dataset = "mnist"
train_limit = 1024
root = "{(ROOT / '..' / 'shared' / 'data').resolve()}"
[model]
name = "lenet_mnist"
levels = 4
phi = 0.5
kwargs = {{ width = 4 }}
[train]
epochs = 3
batch_size = 64
lr = 0.1
output = "tiny.pt"
[evaluate]
timesteps = [2, 4]
neurons = ["buffered"]
max_strengths = [1]
test_limit = 100
""")
    done = _spikeconv(["run", str(config), "--json", "out.json"], tmp_path, processes=2)
    result = json.loads((tmp_path / "out.json").read_text())
    assert (tmp_path / "tiny.pt").is_file() and result["test_samples"] == 100
    assert done.stdout.count("quantized ANN") == 1  # only rank 0 prints
    assert result["qann_accuracy"] > 30.0  # 1024 samples, three epochs: far above chance (10%)


def test_torchrun_trains_a_detector_with_ddp_and_scores_it(tmp_path, data_available):
    config = tmp_path / "det.toml"
    config.write_text(f"""
[data]
dataset = "coco128"
train_limit = 16
root = "{(ROOT / '..' / 'shared' / 'data').resolve()}"
[model]
name = "yolov3_tiny"
levels = 4
kwargs = {{ input_size = 64, width = 0.25 }}
[train]
recipe = "detection"
epochs = 2
batch_size = 8
warmup_epochs = 1
output = "det.pt"
[evaluate]
timesteps = [2]
neurons = ["buffered"]
max_strengths = [1]
batch_size = 8
test_limit = 8
splits = ["val2017"]
""")
    done = _spikeconv(["run", str(config), "--json", "out.json"], tmp_path, processes=2)
    result = json.loads((tmp_path / "out.json").read_text())
    assert (tmp_path / "det.pt").is_file() and result["splits"]["val2017"]["images"] == 8
    assert done.stdout.count("quantized ANN (QReLU)") == 1  # only rank 0 prints
    assert done.stderr.count("epoch 2: loss") == 1  # 2 epochs, reported once
