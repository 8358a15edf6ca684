r"""Integer hardware export: a converted network with ``weight_bits`` as one self-contained ``.npz`` file.

What a chip team needs to run the spiking part: for every layer between the first IF neuron and the last,
its integer weights (``int8`` codes ``Q``), its per-output-channel scale ``s`` and bias ``b`` (float32), and
every neuron's parameters, in graph order; plus the memory the model needs and, from
:mod:`spikeconv.export.reference_numpy`, its synaptic operations per inference. The spiking part computes

    x = fl(fl(float32(Q * S) * s) + b)          (Q * S: an exact integer sum of int8 weights times spikes)
    V' = fl(V + x);  S = clamp(floor(V'), lower, S^max);  S = max(S, -V^b) [buffered];  S = sign(S) A(|S|)
    -V^b -= S [buffered];  V = V' - S (reset by subtraction) or 0 where S != 0 (reset to zero)

which is what spikeconv's integer engine computes, so the NumPy reference reproduces its spikes bit for bit
(``tests/test_export_hardware.py``, real MNIST and CIFAR-10 test images). The layers before the first
neuron see analog input (the image) and the layers after the last one form the readout: both stay on the
host in float (paper 000's hybrid inference); the file keeps their float weights in ``host_*`` arrays and
the reference takes the first neuron's input current.

Supported between the first and the last neuron: integer Conv2d / Linear layers fed by spikes, IF neurons
(threshold 1; either reset; plain or buffered; any ``S^max``; ``phi``), flatten and shape-only operations.
Anything else there (pooling, residual adds, a float layer) is refused by name.

Example::

    snn = convert(ann, x, ConversionConfig(weight_bits=8))
    save_hardware(snn, x, "net.npz")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..convert import SpikingNetwork
from ..convert.graph import trace
from ..layers import IntegerConv2d, IntegerLinear
from ..neuron import IFNeuron
from ..sim.engine import neuron_runs
from .nir import ExportError

FORMAT = "spikeconv-hardware-1"


def _codes(layer: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    weight, scale = layer.weight.detach().float(), layer.weight_scale.detach().float()
    shape = (-1,) + (1,) * (weight.dim() - 1)
    codes = torch.round(weight / scale.view(shape))
    if not torch.equal(codes * scale.view(shape), weight) or codes.abs().max() > 127:
        raise ExportError("an integer layer's weight is off its grid (weight_scale x int8 codes)")
    return codes.to(torch.int8).numpy(), scale.numpy().astype(np.float32)


def _layer_entry(name: str, module: nn.Module, arrays: dict[str, np.ndarray]) -> dict:
    if isinstance(module, IFNeuron):
        c = module.config
        if c.threshold != 1.0 or module.current_offset is not None or module.clamp_steps:
            raise ExportError(f"neuron '{name}': the hardware export takes threshold-1 neurons without a calibrated "
                              "offset or voltage clamp (the converter's defaults)")
        return {"op": "if", "name": name, "reset": c.reset.value, "signed": bool(c.signed),
                "max_strength": int(c.max_strength), "phi": float(c.phi)}
    if isinstance(module, (IntegerConv2d, IntegerLinear)):
        codes, scale = _codes(module)
        bias = (module.bias.detach().float().numpy() if module.bias is not None
                else np.zeros(codes.shape[0], np.float32))
        key = f"layer{len(arrays) // 3}"
        arrays.update({f"{key}.codes": codes, f"{key}.scale": scale, f"{key}.bias": bias.astype(np.float32)})
        entry = {"op": "conv" if isinstance(module, IntegerConv2d) else "linear", "name": name, "arrays": key}
        if isinstance(module, IntegerConv2d):
            if module.groups != 1 or tuple(module.dilation) != (1, 1) or isinstance(module.padding, str):
                raise ExportError(f"'{name}': the hardware export takes convolutions without groups or dilation")
            entry.update(stride=list(module.stride), padding=list(module.padding))
        return entry
    raise ExportError(f"'{name}' ({type(module).__name__}) lies between spiking layers and has no integer "
                      "hardware mapping; the export takes integer Conv2d/Linear layers, IF neurons and flatten "
                      "there")


def to_hardware(snn: SpikingNetwork, example: torch.Tensor) -> tuple[dict, dict[str, np.ndarray]]:
    """``(graph, arrays)`` of the spiking part of ``snn`` (module docstring); ``graph["layers"]`` in order.

    Raises:
        ExportError: not a converted network with ``weight_bits``, or a layer without an integer mapping.
    """
    if not isinstance(snn, SpikingNetwork):
        raise ExportError(f"the hardware export takes a converted network; got {type(snn).__name__}: convert "
                          "it with ConversionConfig(weight_bits=8) first")
    with neuron_runs(snn.body, 1) as runs:
        for run in runs:
            run.steps, run.start = 1, 0
        graph = trace(snn.body, example[:1])
    modules = [(node, node.module) for node in graph.nodes[1:] if node.module is not None]
    neurons = [k for k, (_, m) in enumerate(modules) if isinstance(m, IFNeuron)]
    if not neurons:
        raise ExportError("the network has no IF neuron to export")
    if not any(isinstance(m, (IntegerConv2d, IntegerLinear)) for _, m in modules):
        raise ExportError("the network has no integer layers: convert it with ConversionConfig(weight_bits=8)")
    if any(len(node.inputs) != 1 for node, _ in modules[neurons[0]:neurons[-1] + 1]):
        raise ExportError("the spiking part is not a chain of layers (a residual add or a concatenation); the "
                          "hardware export takes chains")
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for node, module in modules[neurons[0]:neurons[-1] + 1]:
        if isinstance(module, nn.Flatten):
            layers.append({"op": "flatten", "name": node.name})
        elif isinstance(module, (nn.Identity, nn.Dropout)):
            continue
        else:
            layers.append(_layer_entry(node.name, module, arrays))
    first = modules[neurons[0]][0]
    meta = {"format": FORMAT, "layers": layers, "input_shape": list(graph.nodes[first.inputs[0]].shape),
            "host_before": [n.name for n, _ in modules[:neurons[0]]],
            "host_after": [n.name for n, _ in modules[neurons[-1] + 1:]]}
    for side in ("host_before", "host_after"):
        for name in meta[side]:
            for key, value in snn.body.get_submodule(name).state_dict().items():
                arrays[f"{side}.{name}.{key}"] = value.detach().float().numpy()
    return meta, arrays


def save_hardware(snn: SpikingNetwork, example: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write :func:`to_hardware` to one ``.npz`` (the graph as JSON in ``graph``), atomically."""
    from ..atomic import atomic_write

    meta, arrays = to_hardware(snn, example)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, graph=np.array(json.dumps(meta)), **arrays)
    return atomic_write(path, write, suffix=".npz")


__all__ = ["FORMAT", "save_hardware", "to_hardware"]
