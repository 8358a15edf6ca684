"""The Python-API half of the bad-input campaign (tests/campaign_cases.py): tensors, configs, models and files
handed to the public functions."""

from __future__ import annotations

import torch
from torch import nn


def _ann(bound: float = 1.0) -> nn.Module:
    from spikeconv import QReLU

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), QReLU(levels=4, bound=bound), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3)).eval()


def _relu_ann() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()


X = lambda *shape: torch.rand(*(shape or (2, 3, 8, 8)))  # noqa: E731


def _snn():
    from spikeconv import convert

    return convert(_ann(), X())


def _convert(model=None, example=None, config=None, **kwargs):
    from spikeconv import convert

    return convert(_ann() if model is None else model, X() if example is None else example, config, **kwargs)


def _simulate(x=None, timesteps=4, **kwargs):
    from spikeconv import simulate

    return simulate(_snn(), X() if x is None else x, timesteps, **kwargs)


def _conversion_config(**kwargs):
    from spikeconv import ConversionConfig

    return ConversionConfig(**kwargs)


def _nan_model() -> nn.Module:
    model = _ann()
    with torch.no_grad():
        model[0].bias[0] = float("nan")
    return model


def _qrelu(**kwargs):
    from spikeconv import QReLU

    return QReLU(**kwargs)


def _simulation_config(**kwargs):
    from spikeconv import SimulationConfig

    return SimulationConfig(**kwargs)


def _build(name, **kwargs):
    from spikeconv.models import build_model

    return build_model(name, **kwargs)


def _load_user_model(source, **kwargs):
    from spikeconv.tasks.loading import load_user_model

    return load_user_model(source, **kwargs)


def _load_checkpoint(path):
    from spikeconv.tasks.checkpoint import load_checkpoint

    return load_checkpoint(path)


def _save_checkpoint(path):
    from spikeconv.tasks.checkpoint import save_checkpoint

    return save_checkpoint(path, _ann(), {"model": "x"})


def _to_nir(model):
    from spikeconv.export.nir import to_nir

    return to_nir(model, X())


def _register(module_type, rule):
    from spikeconv import register_rule

    return register_rule(module_type, rule)


def _make_dataset(name, split="test", **kwargs):
    from spikeconv.data import make_dataset

    return make_dataset(name, split, **kwargs)


class _Unsupported(nn.Module):
    def forward(self, x):
        return torch.sin(x)


API_ROWS = [
    ("convert(a function, ...)", "Module", lambda ws: _convert(model=lambda x: x)),
    ("convert(ann, a list as example)", "Tensor", lambda ws: _convert(example=[[0.0]])),
    ("convert(ann, example with 1 channel for 3)", "channel|shape|input", lambda ws: _convert(example=X(2, 1, 8, 8))),
    ("convert(ann, integer example)", "dtype|float", lambda ws: _convert(example=torch.zeros(2, 3, 8, 8, dtype=torch.long))),
    ("convert(ann, empty example batch)", "empty", lambda ws: _convert(example=X(0, 3, 8, 8))),
    ("convert(ann, example with NaN)", "NaN", lambda ws: _convert(example=X().fill_(float("nan")))),
    ("convert(a model whose output is NaN)", "NaN|non-finite", lambda ws: _convert(model=_nan_model())),
    ("convert(a model with an unsupported function)", "inspect", lambda ws: _convert(
        model=nn.Sequential(nn.Conv2d(3, 4, 3), _Unsupported()).eval())),
    ("convert(a model with an LSTM)", "LSTM", lambda ws: _convert(model=nn.Sequential(nn.Flatten(), nn.LSTM(192, 4)).eval())),
    ("convert(relu model, calibration of zeros)", "zero|calibration", lambda ws: _convert(
        model=_relu_ann(), calibration=[torch.zeros(4, 3, 8, 8)])),
    ("convert(relu model, empty calibration)", "calibration|empty", lambda ws: _convert(model=_relu_ann(), calibration=[])),
    ("convert(relu model, calibration with 1 channel)", "channel|shape|calibration", lambda ws: _convert(
        model=_relu_ann(), calibration=[X(4, 1, 8, 8)])),
    ("convert(config given as a dict)", "ConversionConfig", lambda ws: _convert(config={"signed": True})),
    ("ConversionConfig(percentile=0)", "percentile", lambda ws: _conversion_config(percentile=0)),
    ("ConversionConfig(percentile=101)", "percentile", lambda ws: _conversion_config(percentile=101)),
    ("ConversionConfig(max_strength=3)", "power", lambda ws: _conversion_config(max_strength=3)),
    ("ConversionConfig(max_strength=0)", "max_strength|power", lambda ws: _conversion_config(max_strength=0)),
    ("ConversionConfig(threshold=0)", "threshold", lambda ws: _conversion_config(threshold=0.0)),
    ("ConversionConfig(phi=1.5)", "phi", lambda ws: _conversion_config(phi=1.5)),
    ("ConversionConfig(reset='none')", "reset", lambda ws: _conversion_config(reset="none")),
    ("ConversionConfig(input_scale=0)", "input_scale", lambda ws: _conversion_config(input_scale=0.0)),
    ("QReLU(levels=0)", "levels", lambda ws: _qrelu(levels=0)),
    ("QReLU(levels=2.5)", "levels", lambda ws: _qrelu(levels=2.5)),
    ("QReLU(phi=1.5)", "phi", lambda ws: _qrelu(levels=4, phi=1.5)),
    ("QReLU(bound=-1)", "bound", lambda ws: _qrelu(levels=4, bound=-1.0)),
    ("simulate(an unconverted ANN)", "no spiking neurons", lambda ws: __import__("spikeconv").simulate(_ann(), X(), 4)),
    ("simulate(snn, x, timesteps=0)", "timesteps", lambda ws: _simulate(timesteps=0)),
    ("simulate(snn, x, timesteps=-1)", "timesteps", lambda ws: _simulate(timesteps=-1)),
    ("simulate(snn, x, timesteps=2.5)", "timesteps", lambda ws: _simulate(timesteps=2.5)),
    ("simulate(snn, x with 1 channel for 3)", "channel|shape|input", lambda ws: _simulate(x=X(2, 1, 8, 8))),
    ("simulate(snn, x of another image size)", "shape|input|size", lambda ws: _simulate(x=X(2, 3, 16, 16))),
    ("simulate(snn, integer x)", "dtype|float", lambda ws: _simulate(x=torch.zeros(2, 3, 8, 8, dtype=torch.long))),
    ("simulate(snn, empty batch)", "empty|no samples", lambda ws: _simulate(x=X(0, 3, 8, 8))),
    ("simulate(snn, x with NaN)", "NaN", lambda ws: _simulate(x=X().fill_(float("nan")))),
    ("simulate(snn, a list as x)", "Tensor", lambda ws: _simulate(x=[[0.0]])),
    ("SimulationConfig(chunk=0)", "chunk", lambda ws: _simulation_config(chunk=0)),
    ("SimulationConfig(kernel='gpu')", "kernel", lambda ws: _simulation_config(kernel="gpu")),
    ("SimulationConfig(memory_budget=-1)", "memory_budget", lambda ws: _simulation_config(memory_budget=-1)),
    ("build_model('no_such_net')", "no_such_net", lambda ws: _build("no_such_net")),
    ("build_model('lenet_mnist', widht=4)", "widht", lambda ws: _build("lenet_mnist", widht=4)),
    ("load_user_model(a missing .onnx)", "does not exist", lambda ws: _load_user_model(str(ws.root / "m.onnx"))),
    ("load_user_model(a random-bytes .onnx)", "onnx|read|corrupt", lambda ws: _load_user_model(
        str(ws.file("junk.onnx", bytes(range(200)))))),
    ("load_user_model(a random-bytes .keras)", "keras|zip|read", lambda ws: _load_user_model(
        str(ws.file("junk.keras", bytes(range(200)))))),
    ("load_checkpoint(a directory)", "directory", lambda ws: _load_checkpoint(ws.bad["directory"])),
    ("load_checkpoint(a pickle that runs code)", "weights-only", lambda ws: _load_checkpoint(ws.bad["pickle that runs code"])),
    ("save_checkpoint(onto a directory)", "directory", lambda ws: _save_checkpoint(ws.bad["directory"])),
    ("to_nir(an unconverted ANN)", "convert", lambda ws: _to_nir(_ann())),
    ("register_rule(not a type, ...)", "type", lambda ws: _register("Conv2d", None)),
    ("register_rule(nn.Identity, not a rule)", "rule|Role", lambda ws: _register(nn.Identity, 42)),
    ("make_dataset('no_such_data')", "no_such_data", lambda ws: _make_dataset("no_such_data")),
    ("make_dataset('mnist', split='validation')", "split|validation", lambda ws: _make_dataset("mnist", "validation")),
    ("make_dataset('mnist', limit=0)", "limit", lambda ws: _make_dataset("mnist", limit=0)),
]
