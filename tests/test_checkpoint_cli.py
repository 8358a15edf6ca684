"""Checkpoints (atomic, weights_only) and the command line's one-line errors."""

import json
import re
import subprocess
import sys

import pytest
import torch
from conftest import CHECKPOINTS

from spikeconv.cli.main import main
from spikeconv.errors import CheckpointError
from spikeconv.tasks.checkpoint import load_checkpoint, load_model, save_checkpoint
from spikeconv.models import build_model

MNIST_CKPT = CHECKPOINTS / "mnist_lenet_qrelu.pt"


def test_round_trip_and_corruption(tmp_path):
    model = build_model("resnet_tiny", width=4)
    spec = {"model": "resnet_tiny", "model_kwargs": {"width": 4}, "activation": {"kind": "relu"}, "dataset": "cifar10"}
    path = save_checkpoint(tmp_path / "m.pt", model, spec)
    loaded, payload = load_model(path)
    assert payload["model"] == "resnet_tiny"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert not list(tmp_path.glob("*.tmp"))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a spikeconv checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spikeconv", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args,message",
    [
        (["evaluate", "nonexistent.pt"], "does not exist"),
        (["evaluate", str(MNIST_CKPT), "--timesteps", "0"], "positive"),
        (["evaluate", str(MNIST_CKPT), "--max-strengths", "3"], "power"),
        (["evaluate", str(MNIST_CKPT), "--data-root", "/nonexistent"], "data root"),
        (["evaluate", str(MNIST_CKPT), "--calibrate-for", "0"], "positive"),
        (["evaluate", str(MNIST_CKPT), "--weight-bits", "9"], "between 2 and 8"),
        (["run", "missing.toml"], "does not exist"),
    ],
)
def test_cli_errors_are_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and re.match(r"spikeconv( \w+)?: error:", lines[0])


def test_cli_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    result = run_cli("evaluate", str(bad))
    assert result.returncode == 2 and "corrupt" in result.stderr


@pytest.mark.skipif(not MNIST_CKPT.exists(), reason="shipped MNIST checkpoint missing")
def test_cli_evaluate_writes_json(tmp_path, data_available):
    out = tmp_path / "r.json"
    code = main(["evaluate", str(MNIST_CKPT), "--timesteps", "1", "4", "--neurons", "buffered",
                 "--max-strengths", "1", "--limit", "200", "--json", str(out), "--calibrate-for", "4",
                 "--calibration-samples", "300"])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "mnist" and result["test_samples"] == 200
    assert set(result) >= {"dataset", "test_samples", "ann_accuracy", "snn_accuracy"}
    assert set(result["snn_accuracy"]) == {"buffered/smax1", "buffered/smax1+cal4"}
    assert set(result["snn_accuracy"]["buffered/smax1"]) == {"1", "4"}
    assert result["snn_accuracy"]["buffered/smax1"]["4"] >= 97.0
    assert result["snn_accuracy"]["buffered/smax1+cal4"]["4"] >= 97.0


@pytest.mark.skipif(not MNIST_CKPT.exists(), reason="shipped MNIST checkpoint missing")
def test_cli_evaluate_with_hardware_weights(tmp_path, data_available):
    out = tmp_path / "w8.json"
    code = main(["evaluate", str(MNIST_CKPT), "--timesteps", "4", "--neurons", "buffered", "--max-strengths", "1",
                 "--limit", "200", "--weight-bits", "8", "--json", str(out)])
    assert code == 0
    accuracy = json.loads(out.read_text())["snn_accuracy"]
    assert set(accuracy) == {"buffered/smax1", "buffered/smax1/w8"}
    assert accuracy["buffered/smax1/w8"]["4"] >= 97.0
    assert abs(accuracy["buffered/smax1/w8"]["4"] - accuracy["buffered/smax1"]["4"]) <= 1.0


def test_cli_evaluate_event_driven(tmp_path, data_available):
    """--event-driven adds the event-driven copy of each float variant: the same accuracy up to the few
    spikes its summation order flips (200 real MNIST test images)."""
    out = tmp_path / "events.json"
    code = main(["evaluate", str(MNIST_CKPT), "--timesteps", "4", "8", "--neurons", "if", "--max-strengths", "1",
                 "--limit", "200", "--event-driven", "--json", str(out)])
    assert code == 0
    accuracy = json.loads(out.read_text())["snn_accuracy"]
    assert set(accuracy) == {"if/smax1", "if/smax1/events"}
    for steps in ("4", "8"):
        assert accuracy["if/smax1/events"][steps] >= 97.0
        assert abs(accuracy["if/smax1/events"][steps] - accuracy["if/smax1"][steps]) <= 1.0


def test_cli_doctor_reports_the_fast_paths(capsys, tmp_path):
    from spikeconv.native import compiler

    assert main(["doctor", "--data-root", str(tmp_path / "missing")]) == 0
    out = capsys.readouterr().out
    assert "C kernel" in out and "int8 kernels" in out and "Triton" in out
    assert "not found" in out and "missing" in out  # the data root given does not exist: said so, no crash
    if compiler() is not None:
        assert "built: " in out and ".so" in out


def test_outputs_never_overwrite_inputs_and_are_checked_before_any_work(tmp_path, capsys):
    import shutil
    from pathlib import Path

    checkpoint = tmp_path / "ck.pt"
    shutil.copy(CHECKPOINTS / "mnist_lenet_qrelu.pt", checkpoint)
    config = tmp_path / "run.toml"
    config.write_text((Path(__file__).resolve().parents[1] / "configs" / "mnist.toml").read_text())
    before = checkpoint.read_bytes(), config.read_text()
    cases = [(["evaluate", str(checkpoint), "--json", str(checkpoint)], "is the checkpoint this command reads"),
             (["run", str(config), "--json", str(config)], "is the config this command reads"),
             (["evaluate", str(checkpoint), "--json", str(tmp_path)], "is a directory; name a file")]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert (checkpoint.read_bytes(), config.read_text()) == before


def test_version():
    from spikeconv import __version__

    result = subprocess.run([sys.executable, "-m", "spikeconv", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"spikeconv {__version__}"


def test_non_finite_weights_are_refused_when_loaded_and_when_converted(tmp_path):
    from spikeconv import convert
    from spikeconv.errors import ConversionError

    model, payload = load_model(CHECKPOINTS / "mnist_lenet_qrelu.pt")
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = float("nan")
    spec = {k: payload[k] for k in ("model", "model_kwargs", "activation", "dataset")}
    save_checkpoint(tmp_path / "nan.pt", model, spec)
    with pytest.raises(CheckpointError, match=r"nan.pt holds NaN or infinite values in 0.weight"):
        load_model(tmp_path / "nan.pt")
    with pytest.raises(ConversionError, match="NaN or infinite values in 0.weight"):
        convert(model, torch.zeros(1, 1, 28, 28))


def test_inputs_that_are_not_models_are_named_for_what_they_are(tmp_path):
    from spikeconv.data.paths import data_root

    root = data_root()
    (tmp_path / "model.py").write_text("import torch\n")
    cases = [(str(tmp_path / "model.py"), "is a Python file: name the model class in it, e.g."),
             (str(root / "coco128" / "images"), "is an image folder, not a model"),
             (str(root / "coco128" / "images" / "val2017" / "000000000139.jpg"), "is an image, not a model"),
             (str(root / "spikecam" / "real" / "spikingsim_real_400x250.dat"), "spike or event stream")]
    for source, message in cases:
        with pytest.raises(CheckpointError, match=message):
            from spikeconv.tasks.loading import load_user_model

            load_user_model(source)


def test_every_option_of_every_command_has_help_and_shows_its_default(capsys):
    from spikeconv.cli.main import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    undocumented = [(name, a.dest) for name, sub in commands.items() for a in sub._actions
                    if a.dest != "help" and not a.help]
    assert not undocumented
    with pytest.raises(SystemExit):
        parser.parse_args(["tradeoff", "--help"])
    shown = capsys.readouterr().out
    assert "S^max values" in shown and "(default: [1, 2, 4])" in shown


def test_evaluating_a_qrelu_checkpoint_decodes_only_the_test_split(tmp_path, monkeypatch, capsys, data_available):
    # QReLU bounds are learned: no calibration images are read, so the training split is never decoded
    monkeypatch.setenv("SPIKECONV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SPIKECONV_NATIVE", "0")
    assert main(["evaluate", str(CHECKPOINTS / "mnist_lenet_qrelu.pt"), "--limit", "20", "--timesteps", "2",
                 "--neurons", "buffered", "--max-strengths", "1"]) == 0
    cached = sorted(p.name.split("-")[1] for p in (tmp_path / "cache").glob("mnist-*.npz"))
    assert cached == ["test"]
