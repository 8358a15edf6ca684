"""Issue 6: ImageNet-style streamed data, full-scale model builders through the converter, recipe configs,
the stability study and the Table 1 trade-off command."""

import json
import math

import pytest
import torch

from conftest import CHECKPOINTS, ROOT
from spikeconv import ConversionConfig, QReLU, convert, simulate
from spikeconv.cli.config import load_run_config
from spikeconv.cli.main import main
from spikeconv.data import make_dataset, make_loader
from spikeconv.data.imagefolder import ImageFileDataset, list_images
from spikeconv.errors import ConfigError, DataError
from spikeconv.models import build_model
from spikeconv.tasks.stability import summarize


def test_imagenet_sample_is_streamed_with_its_csv_labels(data_available):
    data = make_dataset("imagenet-sample", "test")
    assert isinstance(data, ImageFileDataset) and len(data) == 50
    assert all(isinstance(p, str) for p, _ in data.items)  # paths, decoded only when drawn
    labels = sorted(label for _, label in data.items)
    assert labels == list(range(0, 1000, 20))  # one image of every 20th class, torchvision numbering
    x, y = next(iter(make_loader(data, 4)))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32 and y.tolist() == [0, 20, 40, 60]
    train = make_dataset("imagenet-sample", "train", augment=True, limit=5)
    assert train[0][0].shape == (3, 224, 224) and len(train) == 5


def test_imagefolder_tree_numbers_classes_in_sorted_order(tmp_path, data_available):
    sample = sorted(p for p, _ in list_images(ROOT / ".." / "shared" / "data" / "imagenet-sample"))[:3]
    for i, (cls, src) in enumerate([("b_second", sample[0]), ("a_first", sample[1]), ("a_first", sample[2])]):
        (tmp_path / "train" / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / cls / f"{i}.JPEG").symlink_to(src)
    items = list_images(tmp_path / "train")
    assert sorted(label for _, label in items) == [0, 0, 1]
    data = make_dataset("imagenet", "train", root=tmp_path)
    assert len(data) == 3 and data[0][0].shape == (3, 224, 224)
    with pytest.raises(DataError, match="val"):
        make_dataset("imagenet", "test", root=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="class sub-folders"):
        list_images(tmp_path / "empty")


@pytest.mark.parametrize("name", ["resnet18_imagenet", "vgg16_imagenet"])
def test_imagenet_models_convert_without_special_cases(name, data_available):
    """Strided convs, BN, WAdd residuals, QReLU: converted and simulated on two real 224 crops."""
    torch.manual_seed(0)
    model = build_model(name, activation=lambda: QReLU(levels=8, phi=0.5)).eval()
    x, _ = next(iter(make_loader(make_dataset("imagenet-sample", "test", limit=2), 2)))
    assert not any(isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)) for m in model.modules())
    snn = convert(model, x, ConversionConfig(max_strength=2))
    out = simulate(snn, x, 2)
    assert out.shape == (2, 2, 1000) and torch.isfinite(out).all()


def test_paper_recipe_configs_parse():
    resnet = load_run_config(ROOT / "configs" / "cifar10_resnet18.toml")
    assert (resnet.train.epochs, resnet.train.stages, resnet.train.batch_size) == (120, 2, 256)
    assert (resnet.train.lr, resnet.train.bound_lr, resnet.train.label_smoothing) == (0.2, 0.02, 0.1)
    assert resnet.erasing and resnet.model == "resnet18_cifar"
    vgg = load_run_config(ROOT / "configs" / "imagenet_vgg16.toml")
    assert (vgg.dataset, vgg.model, vgg.train.bound_lr, vgg.erasing) == ("imagenet", "vgg16_imagenet", 0.002, False)


def test_calibrate_for_in_a_config(tmp_path):
    text = (ROOT / "configs" / "mnist.toml").read_text()
    assert load_run_config(ROOT / "configs" / "mnist.toml").calibrate_for is None
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(text.replace("[evaluate]", "[evaluate]\ncalibrate_for = 4"))
    bad.write_text(text.replace("[evaluate]", "[evaluate]\ncalibrate_for = 0"))
    assert load_run_config(good).calibrate_for == 4
    with pytest.raises(ConfigError, match="calibrate_for"):
        load_run_config(bad)


def test_weight_bits_in_a_config(tmp_path):
    text = (ROOT / "configs" / "mnist.toml").read_text()
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(text.replace("[evaluate]", "[evaluate]\nweight_bits = [8]"))
    bad.write_text(text.replace("[evaluate]", "[evaluate]\nweight_bits = [9]"))
    plain = load_run_config(ROOT / "configs" / "mnist.toml").variants
    variants = load_run_config(good).variants
    assert variants[:len(plain)] == plain and len(variants) == 2 * len(plain)
    assert {v.weight_bits for v in variants[len(plain):]} == {8} and variants[-1].key.endswith("/w8")
    with pytest.raises(ConfigError, match="weight_bits"):
        load_run_config(bad)


def test_summary_uses_the_sample_standard_deviation():
    assert summarize([90.0, 92.0]) == {"mean": 91.0, "std": math.sqrt(2.0)}
    assert summarize([5.0]) == {"mean": 5.0, "std": 0.0}


TINY_STABILITY = """
[data]
dataset = "mnist"
train_limit = 512
[model]
name = "lenet_mnist"
levels = 4
phi = 0.5
kwargs = { width = 4 }
[train]
epochs = 2
batch_size = 64
lr = 0.1
seed = 3
output = "tiny.pt"
[evaluate]
batch_size = 100
"""
STABILITY_OPTIONS = ["--timesteps", "4", "--limit", "200", "--data-root",
                     str((ROOT / ".." / "shared" / "data").resolve())]


def test_stability_command_trains_independent_seeds(tmp_path, data_available, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_STABILITY)
    assert main(["stability", str(config), "--runs", "2", *STABILITY_OPTIONS, "--json", "st.json"]) == 0
    result = json.loads((tmp_path / "st.json").read_text())
    runs = result["runs"]
    assert [r["seed"] for r in runs] == [3, 4] and runs[0]["ann_accuracy"] != runs[1]["ann_accuracy"]
    for r in runs:
        assert r["difference"] == pytest.approx(r["snn_accuracy"] - r["ann_accuracy"])
    assert result["snn_accuracy"] == pytest.approx(summarize([r["snn_accuracy"] for r in runs]))
    assert not result["reused_first"]


def test_stability_reuses_the_configs_checkpoint_as_its_own_seed(tmp_path, data_available, monkeypatch, capsys):
    """``--reuse-checkpoint``: the trained checkpoint is the run of train.seed; only the later seeds train."""
    from spikeconv.tasks.checkpoint import build_from_spec, save_checkpoint

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_STABILITY)
    reuse = ["stability", str(config), "--runs", "2", "--reuse-checkpoint", *STABILITY_OPTIONS]
    assert main(reuse) == 2  # no tiny.pt yet
    torch.manual_seed(0)
    spec = load_run_config(config).spec
    save_checkpoint(tmp_path / "tiny.pt", build_from_spec(spec), spec)  # untrained: near chance
    assert main(["evaluate", "tiny.pt", *STABILITY_OPTIONS, "--json", "ev.json"]) == 0
    assert main([*reuse, "--epochs", "2"]) == 2  # the checkpoint was trained for the config's epochs
    assert main([*reuse, "--json", "st.json"]) == 0
    result = json.loads((tmp_path / "st.json").read_text())
    runs = result["runs"]
    assert [r["seed"] for r in runs] == [3, 4] and result["reused_first"]
    assert runs[0]["ann_accuracy"] == json.loads((tmp_path / "ev.json").read_text())["qann_accuracy"]
    assert runs[1]["ann_accuracy"] != runs[0]["ann_accuracy"]
    assert sorted(p.name for p in tmp_path.rglob("seed*.pt")) == ["seed4.pt"]  # seed 3 was not trained

    # a study split over sessions: new seeds pooled with the earlier JSON; seeds, T and test set must fit
    pool = ["stability", str(config), "--runs", "1", "--include", "st.json", *STABILITY_OPTIONS]
    refusals = {"seed 4 would be run twice": [*pool, "--seed", "4"],
                "its timesteps is 4, this study's is 8": [*pool[:-6], "--timesteps", "8", *pool[-4:], "--seed", "5"],
                "--reuse-checkpoint with --seed": [*pool, "--seed", "5", "--reuse-checkpoint"]}
    for cause, argv in refusals.items():
        capsys.readouterr()
        assert main(argv) == 2 and cause in capsys.readouterr().err
    assert main([*pool, "--seed", "5", "--json", "pooled.json"]) == 0
    pooled = json.loads((tmp_path / "pooled.json").read_text())
    assert [r["seed"] for r in pooled["runs"]] == [3, 4, 5] and pooled["runs"][:2] == runs
    for key in ("ann_accuracy", "snn_accuracy", "difference"):
        assert pooled[key] == pytest.approx(summarize([r[key] for r in pooled["runs"]]))


def test_tradeoff_command_gives_table1_for_a_checkpoint(tmp_path, data_available, capsys):
    out = tmp_path / "t1.json"
    assert main(["tradeoff", str(CHECKPOINTS / "mnist_lenet_qrelu.pt"), "--timesteps", "1", "2", "4",
                 "--max-strengths", "1", "2", "4", "--limit", "300", "--json", str(out)]) == 0
    accs = json.loads(out.read_text())["snn_accuracy"]
    assert sorted(accs) == ["buffered/smax1", "buffered/smax2", "buffered/smax4"]
    # equal representation power (T x S^max = 4): S^max=2 at T=2 and S^max=4 at T=1 stay close to S^max=1 at T=4
    assert abs(accs["buffered/smax2"]["2"] - accs["buffered/smax1"]["4"]) < 2.0
    assert "S^max" in capsys.readouterr().out
    assert main(["tradeoff", str(CHECKPOINTS / "mnist_lenet_qrelu.pt"), "--max-strengths", "3"]) == 2


@pytest.mark.parametrize("recipe_text", ["", 'recipe = "fast"\n'])
def test_a_boolean_epoch_count_is_refused_in_every_recipe(recipe_text, tmp_path):
    text = (ROOT / "configs" / "mnist.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("[train]", f"[train]\n{recipe_text}").replace("epochs = ", "epochs = true #"))
    with pytest.raises(ConfigError, match="train.epochs must be a positive integer, got True"):
        load_run_config(bad)
