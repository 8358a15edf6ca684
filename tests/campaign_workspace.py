"""The files of the bad-input campaign (tests/campaign_cases.py): a good checkpoint and config, and every kind
of bad file a user hands the command line by mistake. Built once per test session in a temporary folder."""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"


class RunsCode:
    """A pickled object whose loading would run a shell command (weights-only loading must refuse it)."""

    def __reduce__(self):
        return (os.system, ("touch CODE_RAN",))


def config_text(output: str | None = None, **tables: dict) -> str:
    """A small MNIST run config (LeNet width 4, 256 training images, one epoch), with ``tables`` merged in;
    without ``output`` the checkpoint gets a name of its own (so no two configs share files)."""
    import hashlib

    output = output or f"out_{hashlib.sha1(repr(sorted(tables.items())).encode()).hexdigest()[:10]}.pt"
    base = {
        "data": {"dataset": "mnist", "train_limit": 256},
        "model": {"name": "lenet_mnist", "activation": "qrelu", "levels": 4, "phi": 0.5, "kwargs": {"width": 4}},
        "train": {"epochs": 1, "batch_size": 64, "lr": 0.05, "seed": 0, "output": output},
        "evaluate": {"timesteps": [2], "neurons": ["buffered"], "max_strengths": [1], "batch_size": 100,
                     "test_limit": 100},
    }
    for table, values in tables.items():
        base.setdefault(table, {}).update(values)
    lines = []
    for table, values in base.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items() if value is not None]
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@dataclass
class Workspace:
    """Paths of the campaign's files (``bad`` maps a short name to a bad checkpoint file)."""

    root: Path
    ckpt: Path
    relu_ckpt: Path
    detector: Path
    config: Path
    bad: dict[str, Path]

    def file(self, name: str, text: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path


def build_workspace(root: Path) -> Workspace:
    """Copy the shipped MNIST checkpoints and write one file of each bad kind under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    ckpt = Path(shutil.copy(SHIPPED / "mnist_lenet_qrelu.pt", root / "lenet.pt"))
    relu = Path(shutil.copy(SHIPPED / "mnist_cnn_relu.pt", root / "relu.pt"))
    detector = Path(shutil.copy(SHIPPED / "coco128_yolov3_tiny_qrelu.pt", root / "detector.pt"))
    payload = torch.load(ckpt, weights_only=True)
    bad = {"missing": root / "missing.pt", "directory": root / "folder.pt"}
    bad["directory"].mkdir()
    bad["empty"] = root / "empty.pt"
    bad["empty"].write_bytes(b"")
    bad["random bytes"] = root / "random.pt"
    bad["random bytes"].write_bytes(bytes(range(256)) * 40)
    bad["truncated"] = root / "truncated.pt"
    bad["truncated"].write_bytes(ckpt.read_bytes()[:4000])
    bad["JSON text"] = root / "results.pt"
    bad["JSON text"].write_text(json.dumps({"accuracy": 99.0}))
    bad["plain state dict"] = root / "state_dict.pt"
    torch.save(payload["state_dict"], bad["plain state dict"])
    bad["pickle that runs code"] = root / "code.pt"
    torch.save({"format": "spikeconv-checkpoint", "x": RunsCode()}, bad["pickle that runs code"])

    def variant(name: str, filename: str, change) -> None:
        other = copy.deepcopy(payload)
        change(other)
        bad[name] = root / filename
        torch.save(other, bad[name])

    variant("newer version", "newer.pt", lambda p: p.update(version=99))
    variant("NaN weight", "nan.pt", lambda p: p["state_dict"][next(iter(p["state_dict"]))].view(-1).__setitem__(0, float("nan")))
    variant("weights of another width", "misfit.pt", lambda p: p["model_kwargs"].update(width=8))
    variant("unknown model", "unknown_model.pt", lambda p: p.update(model="no_such_net"))
    variant("unknown activation", "tanh.pt", lambda p: p.update(activation={"kind": "tanh"}))
    variant("unknown data set", "unknown_data.pt", lambda p: p.update(dataset="no_such_data"))
    frames = root / "frames"  # a valid stream input: an image folder
    frames.mkdir()
    from torchvision.io import write_png

    for i in range(2):
        write_png(torch.full((3, 64, 96), 60 * i, dtype=torch.uint8), str(frames / f"{i:03d}.png"))
    config = root / "run.toml"
    config.write_text(config_text(output=str(root / "trained.pt")))
    return Workspace(root, ckpt, relu, detector, config, bad)
