"""Loading a user's trained model from the forms people actually have.

========================  ==========================================================================
source                    what is accepted
========================  ==========================================================================
``file.py:Class``         a Python file defining an ``nn.Module`` subclass, built with ``Class()`` (or
                          ``kwargs``), plus an optional state dict file (``torch.save(model.state_dict())``,
                          read with ``weights_only=True``). Any layer with a conversion rule works.
``model.onnx``            an ONNX graph, turned into PyTorch modules by the maintained ``onnx2torch``
                          package (optional dependency): Conv, Gemm/MatMul, BatchNormalization, Relu,
                          Clip(0, m), MaxPool, AveragePool, GlobalAveragePool, Flatten, Add, Concat,
                          Softmax. ONNX's Add/Flatten/Concat/Softmax become ``onnx2torch`` modules that
                          spikeconv registers rules for.
``model.pt2``             a ``torch.export`` program (``torch.export.save``): its ATen graph is lifted back
                          into modules by :func:`spikeconv.convert.exported.lift_exported` (conv, linear,
                          batch norm, ReLU/ReLU6/clamp, pooling, mean, dropout, softmax, add, cat, flatten,
                          view/reshape); other operators are reported as unsupported by the converter.
``model.keras`` / ``.h5``  a Keras model (Sequential or Functional, standard layers), read with h5py and zipfile
                          without TensorFlow or Keras (:mod:`spikeconv.tasks.keras`); takes NCHW inputs.
``scripted.pt``           a TorchScript archive (``torch.jit.save``; deprecated by PyTorch): exported to
                          ONNX with PyTorch's TorchScript exporter on an ``example`` input of the right shape,
                          then read as an ONNX file (same layers). Needs ``example``.
``checkpoint.pt``         a spikeconv checkpoint (see :mod:`spikeconv.tasks.checkpoint`).
========================  ==========================================================================
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..convert import Role
from ..data.annotations import IMAGE_SUFFIXES
from ..errors import CheckpointError, ConversionError
from .checkpoint import is_torchscript
from .keras import KERAS_SUFFIXES, load_keras


def _load_python(spec: str, weights: str | os.PathLike | None, kwargs: dict[str, Any] | None) -> nn.Module:
    path_text, _, class_name = spec.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist; give 'path/to/file.py:ClassName'")
    module_spec = importlib.util.spec_from_file_location(f"spikeconv_user_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - user code can fail in any way
        raise CheckpointError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    klass = getattr(module, class_name, None)
    if not (isinstance(klass, type) and issubclass(klass, nn.Module)):
        raise CheckpointError(f"{path} has no nn.Module subclass named {class_name!r}")
    model = klass(**(kwargs or {}))
    if weights is not None:
        if not Path(weights).is_file():
            raise CheckpointError(f"state dict {weights} does not exist (--weights names a file saved with "
                                  "torch.save(model.state_dict(), path))")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError) as exc:
            raise CheckpointError(f"state dict {weights} is missing or corrupt ({type(exc).__name__})") from exc
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            raise CheckpointError(f"the state dict {weights} does not fit {class_name}: {str(exc).splitlines()[0]}") from exc
    return model.eval()


def onnx_rules() -> dict[type, Any]:
    """Conversion rules for the modules ``onnx2torch`` creates (empty if it is not installed)."""
    try:
        from onnx2torch.node_converters.binary_math_operations import OnnxBinaryMathOperation
        from onnx2torch.node_converters.concat import OnnxConcat
        from onnx2torch.node_converters.flatten import OnnxFlatten
        from onnx2torch.node_converters.reshape import OnnxReshape
    except ImportError:
        return {}
    def binary(module: nn.Module) -> Role:
        return Role.ADD if module.math_op_function is torch.add else Role.UNSUPPORTED

    return {OnnxBinaryMathOperation: binary, OnnxConcat: Role.CONCAT, OnnxFlatten: Role.PASS, OnnxReshape: Role.PASS}


def _load_onnx(path: Path) -> nn.Module:
    return _onnx_from_bytes(path.read_bytes(), str(path))


def _onnx_from_bytes(data: bytes, origin: str) -> nn.Module:
    try:
        import onnx
        from onnx2torch import convert as onnx_to_torch
    except ImportError as exc:
        raise ConversionError("reading ONNX (and TorchScript, which goes through ONNX) needs the optional "
                              "packages onnx and onnx2torch: pip install 'spikeconv[onnx]'") from exc
    try:
        graph = onnx.load_from_string(data)
        onnx.checker.check_model(graph)
        return onnx_to_torch(graph).eval()
    except Exception as exc:  # noqa: BLE001 - onnx raises many types for bad files
        raise CheckpointError(f"ONNX file {origin} could not be parsed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); re-export it") from exc


def _load_exported(path: Path) -> nn.Module:
    from ..convert.exported import lift_exported

    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.CRITICAL)  # torch logs the whole traceback of a bad archive before raising
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types for bad archives
        raise CheckpointError(f"torch.export archive {path} could not be read ({type(exc).__name__}); "
                              "save it again with torch.export.save") from exc
    finally:
        export_log.setLevel(level)
    return lift_exported(program)


def _load_torchscript(path: Path, example: torch.Tensor | None) -> nn.Module:
    if example is None:
        raise ConversionError(f"{path} is a TorchScript archive; reading it needs an example input of the right "
                              "shape (CLI: --input-shape) to export it to ONNX first")
    import io
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript and its ONNX exporter are deprecated by PyTorch
            scripted = torch.jit.load(str(path), map_location="cpu").eval()
            buffer = io.BytesIO()
            torch.onnx.export(scripted, (example,), buffer, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - TorchScript and its exporter raise many types
        raise CheckpointError(f"TorchScript archive {path} could not be exported to ONNX ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); check that the example "
                              f"input has the model's shape (given: {tuple(example.shape[1:])} per sample; CLI: "
                              "--input-shape), or save the model with torch.export.save") from exc
    return _onnx_from_bytes(buffer.getvalue(), str(path))


def load_user_model(source: str, *, weights: str | os.PathLike | None = None,
                    kwargs: dict[str, Any] | None = None, example: torch.Tensor | None = None) -> nn.Module:
    """Load a trained model for conversion from ``source`` (see the module docstring); eval mode.

    ``example`` (a batch of inputs) is needed only for TorchScript archives.

    Example: ``load_user_model("mynet.py:Net", weights="net.pt")``, ``load_user_model("net.onnx")`` or
    ``load_user_model("net.keras")``.
    """
    if ":" in source and source.rpartition(":")[0].endswith(".py"):
        return _load_python(source, weights, kwargs)
    path = Path(source)
    _refuse_other_forms(path, source)
    from ..models.shipped import shipped_checkpoint

    if not path.exists() and shipped_checkpoint(source) is not None:  # a shipped checkpoint by name
        path = shipped_checkpoint(source)
    if not path.is_file():
        raise CheckpointError(f"model {source} does not exist; give file.py:Class, a .onnx, .pt2 (torch.export), "
                              "Keras (.keras, .h5) or TorchScript file, or a spikeconv checkpoint")
    if path.suffix.lower() in KERAS_SUFFIXES:
        return load_keras(path)
    if path.suffix == ".onnx":
        return _load_onnx(path)
    if path.suffix == ".pt2":
        return _load_exported(path)
    if is_torchscript(path):
        return _load_torchscript(path, example)
    from .checkpoint import load_model

    model, _ = load_model(path)
    return model


_STREAM_SUFFIXES = (".dat", ".npz", ".aedat4")


def _refuse_other_forms(path: Path, source: str) -> None:
    """A clear message for inputs that are not models: a ``.py`` file without ``:ClassName``, a directory (an
    image folder or not), an image, a spike or event stream."""
    if path.suffix == ".py":
        raise CheckpointError(f"{source} is a Python file: name the model class in it, e.g. {source}:Net "
                              "(and its weights with --weights)")
    if path.is_dir():
        images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file())
        what = "an image folder" if images else "a directory"
        raise CheckpointError(f"{source} is {what}, not a model; give a checkpoint, .onnx, .pt2, TorchScript file "
                              "or file.py:Class (image folders are data: --data-root)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise CheckpointError(f"{source} is an image, not a model")
    if path.suffix.lower() in _STREAM_SUFFIXES:
        raise CheckpointError(f"{source} looks like a spike or event stream, not a model (docs/streams.md reads streams)")
