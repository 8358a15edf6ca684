"""Checkpoints: a small, versioned dict of plain types and tensors, written atomically and read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_write
from ..errors import CheckpointError
from ..models import build_model
from ..quant import QReLU

FORMAT = "spikeconv-checkpoint"
VERSION = 1


def activation_factory(spec: dict[str, Any]):
    """The activation factory described by ``spec`` (``{"kind": "relu"}`` or ``{"kind": "qrelu", "levels": P}``)."""
    kind = spec.get("kind", "relu")
    if kind == "relu":
        return nn.ReLU
    if kind == "qrelu":
        levels, phi = int(spec.get("levels", 8)), float(spec.get("phi", 0.0))
        return lambda: QReLU(levels=levels, phi=phi)
    raise CheckpointError(f"unknown activation kind {kind!r}; use 'relu' or 'qrelu'")


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Build the model a checkpoint (or config) describes: ``{"model", "model_kwargs", "activation"}``."""
    try:
        return build_model(spec["model"], activation=activation_factory(spec.get("activation", {})),
                           **spec.get("model_kwargs", {}))
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot build the model described by the checkpoint: {exc}") from exc


def save_checkpoint(path: str | os.PathLike, model: nn.Module, spec: dict[str, Any], **extra: Any) -> Path:
    """Write ``{format, version, spec..., state_dict, extra...}`` to ``path`` atomically (temp file + rename)."""
    payload = {"format": FORMAT, "version": VERSION, **spec, "state_dict": model.state_dict(), **extra}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def find_checkpoint(source: str | os.PathLike) -> Path:
    """The checkpoint file ``source`` names: a path, or the name of a shipped checkpoint
    (``"mnist_lenet_qrelu"``, found inside the installed package). Raises :class:`CheckpointError` naming
    the remedy when neither exists."""
    from ..models.shipped import shipped_checkpoint, shipped_names

    path = Path(source)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file (.pt)")
    if path.is_file():
        return path
    shipped = shipped_checkpoint(str(source)) or shipped_checkpoint(path.name)
    if shipped is not None and Path(str(source)).name == str(source):
        return shipped
    hint = (f"spikeconv ships one called {shipped.stem!r}: give that name" if shipped is not None else
            f"give a path, or a shipped checkpoint's name ({', '.join(shipped_names('checkpoints'))}), or train "
            "one with 'spikeconv run'")
    raise CheckpointError(f"checkpoint {path} does not exist; {hint}")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (a path or a shipped checkpoint's name) with ``weights_only=True``; raise
    :class:`CheckpointError` naming the problem."""
    path = Path(path)
    kind = user_model_kind(path)
    if kind is not None:
        raise CheckpointError(f"{path} is {kind}, not a spikeconv checkpoint: 'spikeconv inspect {path}' reports what "
                              "converts; evaluate it through the Python API (convert(load_user_model(...)), docs/conversion.md)")
    path = find_checkpoint(path)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damaged or foreign
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file (not a torch.save archive: "
                              "empty, truncated or another format); re-create it with 'spikeconv run'")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path} was refused: it is not a weights-only file (it holds Python objects that "
                              "loading would run); spikeconv reads only checkpoints of tensors and plain types") from exc
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file ({type(exc).__name__}); "
                              "re-create it with 'spikeconv run'") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a spikeconv checkpoint (no '{FORMAT}' marker)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer spikeconv (version {payload['version']}); upgrade")
    return payload


def user_model_kind(path: Path) -> str | None:
    """What a user model file is (``None`` for anything else, e.g. a spikeconv checkpoint): ONNX, torch.export,
    Keras, Python source, TorchScript."""
    from .keras import KERAS_SUFFIXES

    if ":" in path.name and path.name.rpartition(":")[0].endswith(".py"):
        return "a model class in a Python file"
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "a Keras model" if suffix == ".keras" else "a Keras model (HDF5)"
    kinds = {".onnx": "an ONNX model", ".pt2": "a torch.export archive", ".py": "a Python file"}
    if suffix in kinds:
        return kinds[suffix]
    return "a TorchScript archive" if is_torchscript(path) else None


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding compiled code or constants)."""
    if not (path.is_file() and zipfile.is_zipfile(path)):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Build the model of a checkpoint and load its weights; returns ``(model in eval mode, payload)``."""
    payload = load_checkpoint(path, map_location)
    model = build_from_spec(payload)
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state_dict; re-create it with 'spikeconv run'")
    misfit = _misfit(model.state_dict(), state)
    if misfit:
        raise CheckpointError(f"the weights in {path} do not fit model {payload.get('model')!r} "
                              f"{payload.get('model_kwargs', {})}: {misfit}; the checkpoint's spec and weights disagree")
    model.load_state_dict(state)
    bad = [name for name, t in payload["state_dict"].items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(f"{path} holds NaN or infinite values in {', '.join(bad[:4])}"
                              f"{f' and {len(bad) - 4} more' if len(bad) > 4 else ''}; the training diverged or the file is damaged")
    return model.eval(), payload


def _misfit(expected: dict[str, torch.Tensor], given: dict[str, Any]) -> str:
    """What keeps ``given`` from loading into a model with ``expected`` tensors ("" when it loads)."""
    shapes = [k for k in expected if k in given and tuple(getattr(given[k], "shape", ())) != tuple(expected[k].shape)]
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} tensor(s) of another shape (e.g. {k!r}: {tuple(given[k].shape)} in the file, "
                     f"{tuple(expected[k].shape)} in the model)")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[0]!r})")
    return ", ".join(parts)
