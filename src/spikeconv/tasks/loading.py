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
``checkpoint.pt``         a spikeconv checkpoint (see :mod:`spikeconv.tasks.checkpoint`).
========================  ==========================================================================

TorchScript and ``torch.export`` artifacts hold compiled graphs whose modules cannot be replaced; they
are refused with a message pointing to ONNX or the Python class.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..convert import Role
from ..errors import CheckpointError, ConversionError


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
    try:
        import onnx
        from onnx2torch import convert as onnx_to_torch
    except ImportError as exc:
        raise ConversionError("reading ONNX needs the optional packages onnx and onnx2torch: "
                              "pip install 'spikeconv[onnx]'") from exc
    try:
        graph = onnx.load(str(path))
        onnx.checker.check_model(graph)
        return onnx_to_torch(graph).eval()
    except Exception as exc:  # noqa: BLE001 - onnx raises many types for bad files
        raise CheckpointError(f"ONNX file {path} could not be parsed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); re-export it") from exc


def load_user_model(source: str, *, weights: str | os.PathLike | None = None,
                    kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Load a trained model for conversion from ``source`` (see the module docstring); eval mode.

    Example: ``load_user_model("mynet.py:Net", weights="net.pt")`` or ``load_user_model("net.onnx")``.
    """
    if ":" in source and source.rpartition(":")[0].endswith(".py"):
        return _load_python(source, weights, kwargs)
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"model {source} does not exist; give file.py:Class, a .onnx file or a checkpoint")
    if path.suffix == ".onnx":
        return _load_onnx(path)
    if path.suffix in (".pt2",) or (zipfile.is_zipfile(path) and _is_torchscript(path)):
        raise ConversionError(f"{path} is a compiled TorchScript/torch.export artifact whose layers cannot be "
                              "replaced; export the model to ONNX or pass its Python class (file.py:Class)")
    from .checkpoint import load_model

    model, _ = load_model(path)
    return model


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())
