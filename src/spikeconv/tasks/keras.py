r"""Keras models (``.keras`` and legacy ``.h5`` files) as PyTorch modules, without TensorFlow or Keras.

The path SNN Toolbox users know: a Sequential or Functional Keras model built from standard layers is read
with ``zipfile`` / ``h5py`` (the architecture from its JSON config, the weights from the HDF5 groups) and
rebuilt as a ``torch.fx.GraphModule`` of ordinary PyTorch layers, which :func:`spikeconv.convert.convert`
takes like any model. Layers: InputLayer, Conv2D, DepthwiseConv2D, Dense, BatchNormalization, Activation
(relu, relu6, linear, softmax), ReLU (with ``max_value``), MaxPooling2D, AveragePooling2D,
GlobalAveragePooling2D, Flatten, Dropout, Add, Concatenate, ZeroPadding2D; a layer's own ``activation``
becomes a layer after it.

Channel order: Keras computes channels-last (NHWC), the module channels-first (NCHW) on inputs
``[N, C, H, W]`` (what spikeconv's data loaders give). Kernels are transposed (Conv2D ``HWIO -> OIHW``,
Dense ``[in, out] -> [out, in]``); a Dense layer fed by a Flatten of a feature map gets its input columns
permuted from Keras' ``(h, w, c)`` order to PyTorch's ``(c, h, w)``; ``"same"`` padding is TensorFlow's
(the extra row or column at the bottom / right, as an explicit ``ZeroPad2d`` when it is asymmetric).
A model trained on raw pixels (0..255) converts with ``ConversionConfig(input_scale=...)`` as any other.

Example: ``model = load_keras("net.keras")`` then ``snn = convert(model, x)``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import fx

from ..errors import CheckpointError, ConversionError
from .keras_layers import SUPPORTED_LAYERS, _activation, _Builder, _single

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConversionError("reading Keras files needs h5py: pip install 'spikeconv[keras]'") from exc
    return h5py


def _read_keras_zip(path: Path) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """Config and weights of a Keras 3 ``.keras`` archive (``config.json`` + ``model.weights.h5``). The weight
    file names each layer's group after its class, counted in the model's layer order (``layers/conv2d``,
    ``layers/conv2d_1``, ...; not the layer's own name), and ``vars/<i>`` holds its variables in order."""
    h5py = _h5py()
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        data = archive.read("model.weights.h5")
    groups: dict[str, list[np.ndarray]] = {}
    with h5py.File(io.BytesIO(data), "r") as handle:
        def visit(name: str, item) -> None:
            if isinstance(item, h5py.Group) and name.endswith("/vars"):
                groups[name.split("/")[-2]] = [np.asarray(item[key]) for key in sorted(item.keys(), key=int)]
        handle.visititems(visit)
    weights, counts = {}, {}
    for layer in config.get("config", {}).get("layers", []):
        base = _snake_case(layer["class_name"])
        index = counts[base] = counts.get(base, -1) + 1
        key = base if index == 0 else f"{base}_{index}"
        if key in groups:
            weights[layer.get("name") or layer["config"]["name"]] = groups[key]
    return config, weights


def _snake_case(name: str) -> str:
    """Keras' object name of a class: ``Conv2D -> conv2d``, ``BatchNormalization -> batch_normalization``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _read_legacy_h5(path: Path) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """Config and weights of a legacy Keras HDF5 file (attribute ``model_config``; group ``model_weights``
    with one group per layer whose attribute ``weight_names`` lists its variables in order)."""
    h5py = _h5py()
    with h5py.File(path, "r") as handle:
        if "model_config" not in handle.attrs:
            raise CheckpointError(f"{path} holds no Keras model_config: save the whole model (model.save), "
                                  "not only its weights")
        raw = handle.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        root = handle["model_weights"] if "model_weights" in handle else handle
        weights = {}
        for layer in root.attrs.get("layer_names", []):
            layer = layer.decode() if isinstance(layer, bytes) else layer
            group = root[layer]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])]
            weights[layer] = [np.asarray(group[name]) for name in names]
    return config, weights


def _inbound(layer: dict) -> list[str]:
    """The names of the layers feeding ``layer`` (Keras 3 ``keras_history`` or Keras 2 node lists)."""
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise ConversionError(f"Keras layer '{layer.get('name')}' is called {len(nodes)} times (a shared layer); "
                              "spikeconv reads models whose layers are each called once")
    names: list[str] = []

    def walk(item) -> None:
        if isinstance(item, dict):
            history = item.get("config", {}).get("keras_history") if isinstance(item.get("config"), dict) else None
            if history:
                names.append(history[0])
                return
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
                names.append(item[0])
                return
            for value in item:
                walk(value)
    walk(nodes)
    return names


def _input_shape(cfg: dict) -> tuple[int, ...] | None:
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if shape is None:
        return None
    dims = tuple(int(d) for d in shape[1:])
    return (dims[-1], *dims[:-1]) if len(dims) == 3 else dims  # (H, W, C) -> (C, H, W)


def _layers(config: dict) -> tuple[list[dict], list[str]]:
    """``(layers with their inputs, output names)`` of a Sequential or Functional config; an input layer
    is made where a Sequential model has none."""
    kind, body = config.get("class_name"), config.get("config", {})
    layers = [dict(layer, name=layer.get("name") or layer["config"]["name"]) for layer in body.get("layers", [])]
    if kind == "Sequential":
        if layers and layers[0]["class_name"] != "InputLayer":
            shape = layers[0]["config"].get("batch_input_shape") or body.get("build_input_shape")
            layers.insert(0, {"class_name": "InputLayer", "name": "input", "config": {"batch_input_shape": shape}})
        for before, layer in zip(layers, layers[1:]):
            layer["inputs"] = [before["name"]]
        return layers, [layers[-1]["name"]]
    if kind in ("Functional", "Model"):
        for layer in layers:
            layer["inputs"] = _inbound(layer)
        outputs = body.get("output_layers", [])
        outputs = [outputs] if outputs and isinstance(outputs[0], str) else outputs
        return layers, [out[0] for out in outputs]
    raise ConversionError(f"a Keras {kind} model; spikeconv reads Sequential and Functional models")


def build_keras_model(config: dict, weights: dict[str, list[np.ndarray]]) -> fx.GraphModule:
    """The PyTorch module of a Keras model config (``model.get_config()`` wrapped as ``{"class_name",
    "config"}``) and its weights per layer name (module docstring)."""
    b = _Builder(weights)
    layers, outputs = _layers(config)
    for layer in layers:
        kind, name, cfg = layer["class_name"], layer["name"], layer.get("config", {})
        if kind == "InputLayer":
            if b.values:
                raise ConversionError("the Keras model has several inputs; spikeconv converts one-input models")
            shape = _input_shape(cfg)
            if shape is None:
                raise ConversionError("the Keras model does not state its input shape; build it with an Input layer")
            b.values[name], b.shapes[name], b.flat_from[name] = b.graph.placeholder("x"), shape, None
            continue
        sources = layer["inputs"]
        missing = [s for s in sources if s not in b.values]
        if missing or not sources:
            raise ConversionError(f"Keras layer '{name}' reads {missing or 'nothing'}, which is not built before it")
        shapes, flats = [b.shapes[s] for s in sources], [b.flat_from[s] for s in sources]
        if kind in ("Add", "Concatenate"):
            node, shape, flat = _merge(b, name, kind, cfg, sources, shapes, flats)
        else:
            modules, shape, activation, flat = _single(b, name, kind, cfg, shapes[0], flats[0])
            node = b.values[sources[0]]
            for k, module in enumerate(modules):
                node = b.add_module(name if k == len(modules) - 1 else f"{name}_pad", module, node)
            extra = _activation(activation, name)
            if extra is not None:
                node = b.add_module(f"{name}_activation", extra, node)
        b.values[name], b.shapes[name], b.flat_from[name] = node, tuple(shape), flat
    result = [b.values[name] for name in outputs]
    b.graph.output(result[0] if len(result) == 1 else tuple(result))
    module = fx.GraphModule(b.root, b.graph)
    module.input_shape = next(b.shapes[layer["name"]] for layer in layers if layer["class_name"] == "InputLayer")
    return module.eval()


def _merge(b: _Builder, name: str, kind: str, cfg: dict, sources, shapes, flats):
    nodes = [b.values[s] for s in sources]
    if kind == "Add":
        if len(set(shapes)) != 1 or len(set(flats)) != 1:
            raise ConversionError(f"Keras layer '{name}' adds tensors of shapes {shapes}")
        node = nodes[0]
        for other in nodes[1:]:
            node = b.graph.call_function(torch.add, (node, other))
        return node, shapes[0], flats[0]
    axis = cfg.get("axis", -1)
    rank = len(shapes[0]) + 1
    if axis not in (-1, rank - 1) or any(f is not None for f in flats):
        raise ConversionError(f"Keras layer '{name}' concatenates along axis {axis}; spikeconv reads "
                              "concatenation of channels (axis -1)")
    if any(s[1:] != shapes[0][1:] for s in shapes):
        raise ConversionError(f"Keras layer '{name}' concatenates tensors of shapes {shapes}")
    node = b.graph.call_function(torch.cat, (nodes,), {"dim": 1})
    return node, (sum(s[0] for s in shapes), *shapes[0][1:]), None


def load_keras(path: str | Path) -> fx.GraphModule:
    """A Keras ``.keras`` or legacy ``.h5`` model file as a PyTorch module on NCHW inputs (module docstring);
    ``module.input_shape`` is its input's ``(C, H, W)``.

    Raises:
        CheckpointError: the file is not a readable Keras model.
        ConversionError: a layer or layout spikeconv does not read (named), or h5py is missing.
    """
    path = Path(path)
    try:
        config, weights = (_read_keras_zip(path) if zipfile.is_zipfile(path) else _read_legacy_h5(path))
    except (OSError, KeyError, json.JSONDecodeError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable Keras model file ({type(exc).__name__}: {exc})") from exc
    return build_keras_model(config, weights)


__all__ = ["KERAS_SUFFIXES", "SUPPORTED_LAYERS", "build_keras_model", "load_keras"]
