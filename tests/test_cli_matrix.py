"""Every command on every kind of shipped model: it works, or refuses in one line naming what fits.

Each cell runs the real command in-process on a few real test samples (``--limit``, T = 2). A new command or
a new shipped checkpoint lands in the matrix by adding it to COMMANDS or to the checkpoints folder.
"""

import json

import pytest
from conftest import CHECKPOINTS

from spikeconv.cli.main import main
from spikeconv.data.paths import data_root

CHECKPOINT_FILES = sorted(p.name for p in CHECKPOINTS.glob("*.pt"))
DETECTORS = {name for name in CHECKPOINT_FILES if name.startswith("coco128")}

#: command -> arguments after the checkpoint (``{out}``: a fresh path in the test's directory)
COMMANDS = {
    "evaluate": ["--limit", "8", "--timesteps", "2", "--neurons", "buffered", "--max-strengths", "1",
                 "--calibration-samples", "64", "--batch-size", "8"],
    "tradeoff": ["--limit", "8", "--timesteps", "2", "--max-strengths", "1", "--batch-size", "8",
                 "--calibration-samples", "64"],
    "analyze": ["--out", "{out}", "--limit", "8", "--timesteps", "2", "--detail-samples", "2", "--batch-size", "8",
                "--calibration-samples", "64"],
    "inspect": [],
    "export": ["--out", "{out}.nir", "--calibration-samples", "64"],
    "doctor": [],
    "stability": ["--runs", "2"],
    "run": [],  # run reads a config: given a model file it says so (the configs of the shipped models: below)
}
#: commands whose input is not the checkpoint: their arguments before and after ``--checkpoint CHECKPOINT``
STREAM = str(data_root() / "spikecam" / "real" / "uhsr_helicopter_200x250x250.npz")
WITH_INPUT = {"stream": ([STREAM], ["--out", "{out}", "--timesteps", "2", "--window", "2", "--clips", "2"])}
#: cells that refuse by design, with the words of their one-line message
REFUSED = {**{("export", name): "'upsample' (Upsample) has no NIR mapping" for name in DETECTORS},
           **{(command, name): "is a model file, not a run config"
              for command in ("stability", "run") for name in CHECKPOINT_FILES},
           **{("stream", name): "classifier; 'spikeconv stream' runs a detector"
              for name in CHECKPOINT_FILES if name not in DETECTORS}}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted([*COMMANDS, *WITH_INPUT]))
@pytest.mark.parametrize("checkpoint", CHECKPOINT_FILES)
def test_every_command_on_every_shipped_checkpoint(command, checkpoint, tmp_path, capsys):
    if command in WITH_INPUT:
        before, after = WITH_INPUT[command]
        argv = [command, *before, "--checkpoint", str(CHECKPOINTS / checkpoint), *after]
    else:
        argv = [command, str(CHECKPOINTS / checkpoint), *COMMANDS[command]]
    status = main([a.format(out=tmp_path / "out") for a in argv])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("spikeconv: error:")]
    if (command, checkpoint) in REFUSED:
        assert status == 2 and len(errors) == 1 and REFUSED[command, checkpoint] in errors[0], captured.err
    else:
        assert status == 0, captured.err[-2000:]
        assert not errors and captured.out.strip()


@pytest.fixture(scope="module")
def user_models(tmp_path_factory):
    """One user model of each format the package loads: file.py:Class (+ weights), ONNX, torch.export, TorchScript,
    Keras (a legacy HDF5 file written with h5py: the same conv, ReLU, flatten, dense)."""
    import torch

    folder = tmp_path_factory.mktemp("user")
    source = folder / "usernet.py"
    source.write_text("import torch\nfrom torch import nn\n"
                      "class Net(nn.Module):\n"
                      "    def __init__(self):\n"
                      "        super().__init__(); self.c = nn.Conv2d(1, 4, 3); self.fc = nn.Linear(4 * 26 * 26, 10)\n"
                      "    def forward(self, x):\n"
                      "        return self.fc(torch.relu(self.c(x)).flatten(1))\n")
    namespace: dict = {}
    exec(source.read_text(), namespace)
    net = namespace["Net"]().eval()
    torch.save(net.state_dict(), folder / "w.pt")
    x = torch.rand(2, 1, 28, 28)
    torch.onnx.export(net, (x,), str(folder / "net.onnx"), dynamo=False)
    torch.export.save(torch.export.export(net, (x,)), str(folder / "net.pt2"))
    torch.jit.save(torch.jit.trace(net, x), str(folder / "scripted.pt"))
    _keras_file(folder / "net.h5", net)
    return {"python": [f"{source}:Net", "--weights", str(folder / "w.pt")], "onnx": [str(folder / "net.onnx")],
            "export": [str(folder / "net.pt2")], "torchscript": [str(folder / "scripted.pt")],
            "keras": [str(folder / "net.h5")]}


def _keras_file(path, net):
    """``net`` (conv 1->4 3x3, ReLU, flatten, linear) as a legacy Keras HDF5 file: channels-last kernels, the
    dense rows in Keras' (h, w, c) flatten order."""
    import h5py

    kernel = net.c.weight.detach().permute(2, 3, 1, 0).numpy()
    dense = net.fc.weight.detach().reshape(10, 4, 26, 26).permute(2, 3, 1, 0).reshape(-1, 10).numpy()
    layers = [{"class_name": "Conv2D", "config": {"name": "c", "filters": 4, "kernel_size": [3, 3],
                                                  "activation": "relu", "batch_input_shape": [None, 28, 28, 1]}},
              {"class_name": "Flatten", "config": {"name": "flat"}},
              {"class_name": "Dense", "config": {"name": "fc", "units": 10}}]
    weights = {"c": [kernel, net.c.bias.detach().numpy()], "flat": [], "fc": [dense, net.fc.bias.detach().numpy()]}
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": layers}})
        group = handle.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode() for name in weights]
        for name, arrays in weights.items():
            sub = group.create_group(name)
            sub.attrs["weight_names"] = [f"{name}/{k}".encode() for k in range(len(arrays))]
            for k, array in enumerate(arrays):
                sub.create_dataset(f"{name}/{k}", data=array)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["python", "onnx", "export", "torchscript", "keras"])
@pytest.mark.parametrize("command", sorted([*COMMANDS, *WITH_INPUT]))
def test_every_command_on_a_user_model_of_each_format(command, form, user_models, tmp_path, capsys):
    """inspect reports coverage and doctor what the file is; run and stability name the config they need;
    the commands that need a spikeconv checkpoint (its data set and labels) say so in one line and point to
    inspect and the Python API."""
    model = user_models[form]
    if command == "inspect":
        args = [*model, "--input-shape", "1", "28", "28"]
    elif command == "doctor":
        args = model[:1]
    elif command in WITH_INPUT:
        before, after = WITH_INPUT[command]
        args = [*before, "--checkpoint", model[0], *[a.format(out=tmp_path / "out") for a in after]]
    else:
        if form == "python":
            model = model[:1]
        args = [*model, *[a.format(out=tmp_path / "out") for a in COMMANDS[command]]]
    status = main([command, *args])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("spikeconv: error:")]
    if command == "inspect":
        assert status == 0 and "summary:" in captured.out and "0 unsupported" in captured.out, captured.err
    elif command == "doctor":
        assert status == 0 and ("loads" in captured.out or "--input-shape" in captured.out), captured.out + captured.err
    elif command in ("stability", "run"):
        assert status == 2 and len(errors) == 1 and "is a model file, not a run config" in errors[0], captured.err
    else:
        assert status == 2 and len(errors) == 1 and "not a spikeconv checkpoint: 'spikeconv inspect" in errors[0], \
            captured.err


@pytest.mark.slow
def test_percentile_reaches_the_conversion_and_is_checked(tmp_path, capsys):
    common = ["evaluate", str(CHECKPOINTS / "mnist_cnn_relu.pt"), "--limit", "50", "--timesteps", "4",
              "--neurons", "if", "--max-strengths", "1", "--calibration-samples", "200"]
    accuracies = []
    for p in ("50", "100"):
        assert main([*common, "--percentile", p, "--json", str(tmp_path / f"{p}.json")]) == 0
        result = json.loads((tmp_path / f"{p}.json").read_text())
        accuracies.append(result["snn_accuracy"]["if/smax1"]["4"])
        # a plain ReLU model has one ANN accuracy: the table names it so, with no quantized twin
        assert result["quantized"] is False and result["ann_accuracy"] == result["qann_accuracy"]
        out = capsys.readouterr().out
        assert "ANN (plain ReLU, no quantizer)" in out and "quantized ANN" not in out
    assert accuracies[0] != accuracies[1]  # bounds at the median clip hard; at the max they do not
    capsys.readouterr()
    assert main([*common, "--percentile", "101"]) == 2
    assert "--percentile: percentile must lie in (0, 100]" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", CHECKPOINT_FILES)
def test_run_on_a_config_whose_output_is_a_shipped_checkpoint_loads_and_scores_it(checkpoint, tmp_path, capsys):
    from spikeconv.tasks.checkpoint import load_checkpoint

    payload = load_checkpoint(CHECKPOINTS / checkpoint)
    detector = checkpoint in DETECTORS
    config = tmp_path / "c.toml"
    act = payload["activation"]
    kwargs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in payload["model_kwargs"].items())
    config.write_text(f"""
[data]
dataset = "{payload['dataset']}"
[model]
name = "{payload['model']}"
activation = "{act['kind']}"
levels = {act.get('levels', 8)}
phi = {act.get('phi', 0.0)}
kwargs = {{ {kwargs} }}
[train]
recipe = "{'detection' if detector else 'standard'}"
output = "{CHECKPOINTS / checkpoint}"
[evaluate]
timesteps = [2]
neurons = ["buffered"]
max_strengths = [1]
batch_size = 8
test_limit = 8
{'splits = ["val2017"]' if detector else ''}
""")
    status = main(["run", str(config), "--json", str(tmp_path / "r.json")])
    captured = capsys.readouterr()
    assert status == 0, captured.err[-2000:]
    assert "loaded trained" in captured.err
    result = json.loads((tmp_path / "r.json").read_text())
    assert (result["splits"]["val2017"]["images"] if detector else result["test_samples"]) == 8
