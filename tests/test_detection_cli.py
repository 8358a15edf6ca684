"""The detection commands on a tiny detector checkpoint and a few COCO128 images: evaluate (mAP at every T,
JSON), analyze (report with mAP per t and per-layer diagnostics), and one-line errors for bad data."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from spikeconv.data.paths import data_root
from spikeconv.models import build_model
from spikeconv.quant import QReLU, calibrate_bounds_
from spikeconv.tasks.checkpoint import save_checkpoint

COCO = data_root() / "coco128"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spikeconv", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    torch.manual_seed(0)
    kwargs = {"input_size": 64, "width": 0.25}
    model = build_model("yolov3_tiny", activation=lambda: QReLU(levels=4, phi=0.5), **kwargs)
    calibrate_bounds_(model, [torch.rand(4, 3, 64, 64)], p=99.0)
    spec = {"model": "yolov3_tiny", "model_kwargs": kwargs, "activation": {"kind": "qrelu", "levels": 4, "phi": 0.5},
            "dataset": "coco128"}
    return save_checkpoint(tmp_path_factory.mktemp("det") / "det.pt", model.eval(), spec)


@pytest.mark.slow
def test_evaluate_prints_map_tables_for_every_variant_and_t_and_writes_json(detector, tmp_path):
    out = tmp_path / "r.json"
    figure = tmp_path / "boxes.png"
    result = run_cli("evaluate", str(detector), "--limit", "4", "--timesteps", "1", "4", "--neurons", "buffered",
                     "--max-strengths", "1", "--json", str(out), "--figure", str(figure))
    assert result.returncode == 0, result.stderr
    assert figure.stat().st_size > 10_000  # 4 images x 3 columns (quantized ANN, SNN at T=1 and T=4)
    assert "coco128/val2017: 4 images" in result.stdout and "SNN agreement mAP50" in result.stdout
    payload = json.loads(out.read_text())
    rows = payload["splits"]["val2017"]["snn"]["buffered/smax1"]
    assert set(rows) == {"1", "4"} and set(rows["4"]) == {"map50", "map", "agreement50"}
    refused = run_cli("evaluate", str(detector), "--limit", "4", "--event-driven")
    assert refused.returncode == 2 and "not available for detectors" in refused.stderr


@pytest.mark.slow
def test_analyze_writes_a_map_report_for_a_detector(detector, tmp_path):
    result = run_cli("analyze", str(detector), "--out", str(tmp_path / "a"), "--limit", "4", "--timesteps", "2",
                     "--detail-samples", "2", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    assert "SNN mAP50 at T=2" in result.stdout
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert set(report["snn_map50_per_t"]) == {"1", "2"} and report["quality"] == "map"
    assert report["operations"]["per_sample"]["ann_macs"] > 0
    assert "mAP50 after every t" in (tmp_path / "a" / "report.md").read_text()
    assert (tmp_path / "a" / "map50_vs_operations.png").stat().st_size > 1000


@pytest.mark.parametrize("line, message", [("3 0.5 0.5 0.2", "000000000139.txt:2: a YOLO label line has 5 fields"),
                                           ("95 0.5 0.5 0.2 0.2", "class index 95 is outside 0..79")])
def test_a_bad_label_in_the_data_stops_the_command_with_one_line(detector, tmp_path, line, message):
    root = tmp_path / "data" / "coco128"
    for sub in ("images/val2017", "labels/val2017"):
        (root / sub).mkdir(parents=True)
    shutil.copy(COCO / "classes.yaml", root / "classes.yaml")
    shutil.copy(COCO / "images/val2017/000000000139.jpg", root / "images/val2017")
    (root / "labels/val2017/000000000139.txt").write_text(f"1 0.5 0.5 0.1 0.1\n{line}\n")
    result = run_cli("evaluate", str(detector), "--timesteps", "1", "--neurons", "buffered", "--max-strengths", "1",
                     "--data-root", str(tmp_path / "data"))
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
