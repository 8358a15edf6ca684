"""Configs and checkpoints by name, and the paths a config names, wherever the command runs."""

from pathlib import Path

import pytest

from spikeconv.cli.config import load_run_config
from spikeconv.errors import CheckpointError, ConfigError
from spikeconv.models.shipped import CHECKPOINTS, CONFIGS, shipped_names
from spikeconv.tasks.checkpoint import find_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_the_checkout_links_to_the_package_data():
    assert (ROOT / "configs").resolve() == CONFIGS and (ROOT / "checkpoints").resolve() == CHECKPOINTS
    assert "mnist" in shipped_names("configs") and "mnist_lenet_qrelu" in shipped_names("checkpoints")


def test_every_packaged_config_loads_and_points_at_its_checkpoint_in_the_package():
    for name in shipped_names("configs"):
        config = load_run_config(name)
        assert config.packaged and config.output.parent == CHECKPOINTS, name
    shipped = {load_run_config(n).output.stem for n in shipped_names("configs")} & set(shipped_names("checkpoints"))
    assert shipped == set(shipped_names("checkpoints"))  # every shipped checkpoint has its config


def test_a_packaged_config_trains_into_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    training = load_run_config("mnist").for_training()
    assert training.output == tmp_path / "checkpoints" / "mnist_lenet_qrelu.pt"
    assert training.state == tmp_path / "runs" / "mnist_lenet_qrelu" / "state.pt" and not training.packaged
    assert load_run_config(CONFIGS / "mnist.toml").for_training().output == CHECKPOINTS / "mnist_lenet_qrelu.pt"


def test_paths_in_a_config_are_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "c.toml").write_text('[data]\ndataset = "mnist"\nroot = "data"\n[model]\nname = "lenet_mnist"\n'
                                   '[train]\noutput = "models/m.pt"\nstate = "../scratch/s.pt"\n')
    monkeypatch.chdir(tmp_path)
    config = load_run_config("project/c.toml")
    assert config.output == folder / "models" / "m.pt" and config.state == tmp_path / "scratch" / "s.pt"
    assert config.data_root == str(folder / "data") and not config.packaged
    (folder / "d.toml").write_text('[data]\ndataset = "mnist"\n[model]\nname = "lenet_mnist"\n')
    assert load_run_config(folder / "d.toml").state == Path("runs") / "lenet_mnist" / "state.pt"


def test_names_and_their_refusals():
    assert find_checkpoint("mnist_lenet_qrelu") == CHECKPOINTS / "mnist_lenet_qrelu.pt"
    assert find_checkpoint("mnist_lenet_qrelu.pt") == CHECKPOINTS / "mnist_lenet_qrelu.pt"
    with pytest.raises(CheckpointError, match="ships one called 'mnist_lenet_qrelu': give that name"):
        find_checkpoint("elsewhere/mnist_lenet_qrelu.pt")
    with pytest.raises(CheckpointError, match="shipped checkpoint's name"):
        find_checkpoint("mnist_lenet")
    with pytest.raises(ConfigError, match="packaged config name: cifar10, "):
        load_run_config("mnits")
