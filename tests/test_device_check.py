"""scripts/device_check.sh --smoke: the GPU script's every step runs end to end on the CPU on tiny slices,
and what it writes is consistent (the saved checkpoint reproduces the accuracy the run reported)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT


@pytest.mark.usefixtures("data_available")
def test_device_check_smoke_runs_every_step_and_writes_one_json(tmp_path):
    # the run's threads are this process's, so that its sums and the re-evaluation below split the same way
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), "--smoke"], env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "device_check.json").read_text())
    steps = result["gpu_suite"]["steps"]
    assert list(steps) == ["fast", "p4", "relu", "ablations", "wide", "stability", "resnet18"]
    assert not [k for k, v in steps.items() if "error" in v or "skipped" in v], steps

    fast = steps["fast"]
    assert set(fast["snn_accuracy"]) == {"buffered/smax1", "buffered/smax2", "if/smax1"}
    assert all(list(row) == ["1", "2", "4"] for row in fast["snn_accuracy"].values())
    assert all(0 <= a <= 100 for row in fast["snn_accuracy"].values() for a in row.values())
    assert list(fast["offset_calibrated"]) == ["buffered/smax1+cal2"]
    assert list(fast["warmup"]) == ["buffered/smax1+warm2"] and 0 <= fast["warmup"]["buffered/smax1+warm2"] <= 100
    assert set(steps["p4"]["snn_accuracy"]) == set(fast["snn_accuracy"])
    assert list(steps["relu"]["paper_004_normalization"]["if/smax1"]) == ["16", "32"]
    runs = steps["stability"]["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    assert all(r["difference"] == pytest.approx(r["snn_accuracy"] - r["ann_accuracy"]) for r in runs)
    assert steps["stability"]["ann_accuracy"]["mean"] == pytest.approx(sum(r["ann_accuracy"] for r in runs) / 2)
    assert runs[0]["ann_accuracy"] == fast["qann_accuracy"]  # seed 0 is the model of the first step
    assert runs[0]["stem_bias_mean"] == fast["stem_bias_mean"]

    peers = result["peers_cpu_b2"]["vgg_cifar_small"]["variants"]
    assert peers["spikeconv IF (auto order)"]["max_abs_diff"] == 0.0
    profile = peers["spikeconv IF (auto order)"]["profile"]
    assert profile["aten_ops"] > 0 and profile["host_syncs"] >= 1 and len(profile["top"]) > 0

    # the checkpoint the run kept reproduces its reported accuracy on the same 200 test images
    from spikeconv.data import make_dataset, make_loader
    from spikeconv.tasks.checkpoint import load_model
    from spikeconv.tasks.classification import evaluate_ann

    model, payload = load_model(tmp_path / "cifar10_fastnet_qrelu_gpu.pt")
    assert payload["model_kwargs"] == {"widths": [8, 16, 16]}
    assert load_model(tmp_path / "cifar10_fastnet_qrelu_p4_gpu.pt")[1]["activation"]["levels"] == 4
    assert load_model(tmp_path / "cifar10_fastnet_relu_gpu.pt")[1]["activation"]["kind"] == "relu"
    test = make_dataset("cifar10", "test", limit=200)
    assert evaluate_ann(model, make_loader(test, 500)) == fast["qann_accuracy"]  # the run's batch: same sums
