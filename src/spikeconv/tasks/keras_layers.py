"""The Keras layers :mod:`spikeconv.tasks.keras` reads, each as PyTorch modules on channels-first tensors:
one builder per layer kind, with TensorFlow's ``"same"`` padding and the kernel transpositions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import fx, nn

from ..errors import CheckpointError, ConversionError


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``"same"`` padding of one axis: ``(before, after)``, the extra one after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Builder:
    """Walks the Keras layers in order, adding modules and fx nodes; tracks each tensor's shape (channels
    first, no batch) and whether it is a flattened NHWC map (``flat_from``)."""

    def __init__(self, weights: dict[str, list[np.ndarray]]) -> None:
        self.weights = weights
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.values: dict[str, fx.Node] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.flat_from: dict[str, tuple[int, int, int] | None] = {}

    def add_module(self, name: str, module: nn.Module, source: fx.Node) -> fx.Node:
        key = base = name.replace(".", "_").replace("/", "_")
        count = 0
        while hasattr(self.root, key):  # a Keras name may equal a made one ("conv2d" + "_1")
            count += 1
            key = f"{base}_{count}"
        self.root.add_module(key, module)
        return self.graph.call_module(key, (source,))

    def params(self, name: str, count: int) -> list[torch.Tensor]:
        arrays = self.weights.get(name, [])
        if len(arrays) < count:
            raise CheckpointError(f"Keras layer '{name}' has {len(arrays)} weight arrays, expected {count}")
        return [torch.from_numpy(np.array(a, dtype=np.float32)) for a in arrays[:count]]


def _activation(kind: str | None, layer: str) -> nn.Module | None:
    table: dict[str, Callable[[], nn.Module] | None] = {
        "relu": nn.ReLU, "relu6": nn.ReLU6, "linear": None, None: None, "softmax": lambda: nn.Softmax(dim=1)}
    if kind not in table:
        raise ConversionError(f"Keras layer '{layer}' uses activation {kind!r}; spikeconv converts relu, relu6, "
                              "linear and softmax (an output softmax)")
    make = table[kind]
    return None if make is None else make()


def _conv(b: _Builder, name: str, cfg: dict, shape, depthwise: bool):
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"Keras layer '{name}': only channels_last models are read")
    if _pair(cfg.get("dilation_rate", 1)) != (1, 1):
        raise ConversionError(f"Keras layer '{name}': dilated convolutions are not supported")
    channels, height, width = shape
    kernel, stride = _pair(cfg["kernel_size"]), _pair(cfg.get("strides", 1))
    use_bias = cfg.get("use_bias", True)
    tensors = b.params(name, 2 if use_bias else 1)
    if depthwise:
        multiplier = int(cfg.get("depth_multiplier", 1))
        out_channels, groups = channels * multiplier, channels
        weight = tensors[0].permute(2, 3, 0, 1).reshape(out_channels, 1, *kernel)  # (kh, kw, C, m) -> (C*m, 1, kh, kw)
    else:
        out_channels, groups = int(cfg["filters"]), int(cfg.get("groups", 1))
        weight = tensors[0].permute(3, 2, 0, 1)  # HWIO -> OIHW
    pads = [(0, 0), (0, 0)]
    if cfg.get("padding", "valid") == "same":
        pads = [_same_padding(size, k, s) for size, k, s in zip((height, width), kernel, stride)]
    symmetric = all(before == after for before, after in pads)
    conv = nn.Conv2d(channels, out_channels, kernel, stride, tuple(p[0] for p in pads) if symmetric else 0,
                     groups=groups, bias=use_bias)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if use_bias:
            conv.bias.copy_(tensors[1])
    padded = (height + sum(pads[0]), width + sum(pads[1]))
    out = (out_channels, (padded[0] - kernel[0]) // stride[0] + 1, (padded[1] - kernel[1]) // stride[1] + 1)
    pad = None if symmetric else nn.ZeroPad2d((pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    return ([pad] if pad is not None else []) + [conv], out, cfg.get("activation")


def _dense(b: _Builder, name: str, cfg: dict, shape, flat_from):
    use_bias = cfg.get("use_bias", True)
    tensors = b.params(name, 2 if use_bias else 1)
    weight = tensors[0].t()  # [in, out] -> [out, in]
    if flat_from is not None:  # columns in Keras' (h, w, c) order -> PyTorch's (c, h, w)
        channels, height, width = flat_from
        weight = weight.reshape(-1, height, width, channels).permute(0, 3, 1, 2).reshape(weight.shape[0], -1)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=use_bias)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if use_bias:
            layer.bias.copy_(tensors[1])
    return [layer], (weight.shape[0],), cfg.get("activation")


def _batchnorm(b: _Builder, name: str, cfg: dict, shape):
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) else axis
    if axis not in (-1, len(shape)):
        raise ConversionError(f"Keras layer '{name}': BatchNormalization over axis {axis}; spikeconv reads the "
                              "channel axis (-1)")
    scale, center = cfg.get("scale", True), cfg.get("center", True)
    tensors = b.params(name, 2 + scale + center)
    channels = shape[0]
    gamma = tensors.pop(0) if scale else torch.ones(channels)
    beta = tensors.pop(0) if center else torch.zeros(channels)
    norm = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(channels, eps=float(cfg.get("epsilon", 1e-3)))
    with torch.no_grad():
        norm.weight.copy_(gamma)
        norm.bias.copy_(beta)
        norm.running_mean.copy_(tensors[0])
        norm.running_var.copy_(tensors[1])
    return [norm.eval()], shape, None


def _pool(name: str, cfg: dict, shape, average: bool):
    kernel = _pair(cfg.get("pool_size", 2))
    stride = _pair(cfg.get("strides") or kernel)
    channels, height, width = shape
    pads = [(0, 0), (0, 0)]
    if cfg.get("padding", "valid") == "same":
        pads = [_same_padding(size, k, s) for size, k, s in zip((height, width), kernel, stride)]
    if any(p != (0, 0) for p in pads) and (not average or any(a != c for a, c in pads)):
        raise ConversionError(f"Keras layer '{name}': 'same' pooling that pads ({pads}) is not supported; use "
                              "'valid' pooling or sizes the stride divides")
    padding = tuple(p[0] for p in pads)
    pool = (nn.AvgPool2d(kernel, stride, padding, count_include_pad=False) if average
            else nn.MaxPool2d(kernel, stride))
    out = (channels, (height + 2 * padding[0] - kernel[0]) // stride[0] + 1,
           (width + 2 * padding[1] - kernel[1]) // stride[1] + 1)
    return [pool], out, None


def _relu(name: str, cfg: dict, shape):
    if float(cfg.get("negative_slope", 0.0) or 0.0) != 0.0 or float(cfg.get("threshold", 0.0) or 0.0) != 0.0:
        raise ConversionError(f"Keras layer '{name}': ReLU with a negative slope or a threshold has no IF neuron")
    top = cfg.get("max_value")
    return [nn.ReLU() if top is None else nn.Hardtanh(0.0, float(top))], shape, None


def _zero_padding(cfg: dict, shape):
    pad = cfg.get("padding", 1)
    (top, bottom), (left, right) = ((pad, pad), (pad, pad)) if isinstance(pad, int) else \
        [(p, p) if isinstance(p, int) else tuple(p) for p in pad]
    channels, height, width = shape
    return [nn.ZeroPad2d((left, right, top, bottom))], (channels, height + top + bottom, width + left + right), None


#: layers that act elementwise or not at all: a flattened NHWC map stays one through them
_ELEMENTWISE = {"Dropout", "Activation", "ReLU", "SpatialDropout2D", "GaussianNoise", "GaussianDropout"}


def _single(b: _Builder, name: str, kind: str, cfg: dict, shape, flat_from):
    """``(modules, output shape, activation, output's flat_from)`` of a one-input layer."""
    if flat_from is not None and kind not in _ELEMENTWISE | {"Dense"}:
        raise ConversionError(f"Keras layer '{name}' ({kind}) reads a flattened channels-last map; spikeconv "
                              "reads Flatten followed by Dense (with dropout or activations between)")
    if kind in ("Conv2D", "DepthwiseConv2D"):
        return (*_conv(b, name, cfg, shape, kind == "DepthwiseConv2D"), None)
    if kind == "Dense":
        if len(shape) != 1:
            raise ConversionError(f"Keras layer '{name}': Dense on a {len(shape) + 1}-D tensor; put a Flatten or "
                                  "GlobalAveragePooling2D before it")
        return (*_dense(b, name, cfg, shape, flat_from), None)
    if kind == "BatchNormalization":
        return (*_batchnorm(b, name, cfg, shape), None)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        return (*_pool(name, cfg, shape, kind == "AveragePooling2D"), None)
    if kind == "GlobalAveragePooling2D":
        keep = cfg.get("keepdims", False)
        modules = [nn.AdaptiveAvgPool2d(1)] + ([] if keep else [nn.Flatten()])
        return modules, (shape[0], 1, 1) if keep else (shape[0],), None, None
    if kind == "Flatten":
        flat = (int(np.prod(shape)),)
        return [nn.Flatten()], flat, None, (tuple(shape) if len(shape) == 3 and shape[1] * shape[2] > 1 else None)
    if kind == "ZeroPadding2D":
        return (*_zero_padding(cfg, shape), None)
    if kind == "ReLU":
        return (*_relu(name, cfg, shape), flat_from)
    if kind == "Activation":
        module = _activation(cfg.get("activation"), name)
        return ([] if module is None else [module]), shape, None, flat_from
    if kind in ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout"):  # identities at inference
        return [], shape, None, flat_from
    raise ConversionError(f"Keras layer '{name}' is a {kind}, which spikeconv does not read; supported: "
                          + ", ".join(SUPPORTED_LAYERS))


SUPPORTED_LAYERS = ("InputLayer", "Conv2D", "DepthwiseConv2D", "Dense", "BatchNormalization", "Activation", "ReLU",
                    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Flatten", "Dropout", "Add",
                    "Concatenate", "ZeroPadding2D")
