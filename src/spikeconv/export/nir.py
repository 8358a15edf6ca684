"""NIR interchange (the ``nir`` package): :func:`to_nir` writes a converted network as a NIR graph, losing
nothing, and :func:`from_nir` reads one back into a network :func:`spikeconv.simulate` runs.

Each conversion rule carries its NIR mapping in ``rule.export["nir"]`` (filled below), so a new operation
adds its own. The mappings:

| spikeconv | NIR | kept in node metadata (``metadata["spikeconv"]``) |
|---|---|---|
| Conv2d (float, skipping, integer layers: their weights on the grid) | ``Conv2d`` | |
| Linear | ``Affine`` | |
| IF neuron | ``IF(r=1, v_threshold=V_th, v_reset=0)`` | reset rule, buffered (negative spikes), ``S^max``, ``phi``, voltage clamp |
| spiking max-pool | ``SumPool2d`` | that it is a max-pool and its mode (``count`` or ``gate``) |
| average pooling (also adaptive, when it divides) | ``AvgPool2d`` | |
| per-channel affine (unfolded BatchNorm) | 1x1 ``Conv2d`` with a diagonal weight | |
| weighted add (WAdd) | one ``Scale`` per input; NIR sums the edges that meet at a node | |
| flatten | ``Flatten`` | |
| identity, dropout, folded BatchNorm | nothing (an edge) | |

NIR's IF resets to ``v_reset``; spikeconv's default resets by subtraction and may send negative or multi-bit
spikes. :func:`nir_report` says, node by node, which targets run a graph exactly: ``"any"`` (plain NIR
semantics hold), ``"spikeconv"`` (the node needs its metadata).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..convert import REGISTRY, Role, SpikingNetwork
from ..convert.graph import Node, trace
from ..convert.ops import AFFINE, AVERAGE_POOL, CONV, LINEAR, MAXPOOL, NEURON, PASS, WADD
from ..errors import SpikeconvError
from ..sim.engine import neuron_runs
from .graph_module import NIRNetwork

KEY = "spikeconv"


class ExportError(SpikeconvError, ValueError):
    """A network or graph that cannot be exported or imported; the message names the node."""


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ExportError("NIR export needs the 'nir' package: pip install 'spikeconv[export]'") from exc
    return nir


def _array(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu().contiguous().numpy().copy()


def _pair(value) -> np.ndarray:
    return np.array(value if isinstance(value, (tuple, list)) else (value, value))


def _conv(nir, node: Node, module: nn.Module):
    bias = module.bias if module.bias is not None else torch.zeros(module.out_channels)
    return nir.Conv2d(input_shape=tuple(node.input_shape[1:]), weight=_array(module.weight),
                      stride=tuple(module.stride), padding=tuple(module.padding), dilation=tuple(module.dilation),
                      groups=module.groups, bias=_array(bias))


def _linear(nir, node: Node, module: nn.Module):
    bias = module.bias if module.bias is not None else torch.zeros(module.out_features)
    return nir.Affine(weight=_array(module.weight), bias=_array(bias))


def _neuron(nir, node: Node, module: nn.Module):
    c, shape = module.config, node.shape
    meta = {"reset": c.reset.value, "signed": c.signed, "max_strength": c.max_strength, "phi": c.phi,
            "clamp_steps": module.clamp_steps}
    if module.current_offset is not None:
        raise ExportError(f"neuron '{node.name}' carries a calibrated current offset, which NIR's IF has no field "
                          "for; export the network before calibrate_offsets")
    # nir <= 1.0.4 (which sinabs pins) has no v_reset field: its IF resets to zero, as written here
    reset = {"v_reset": np.zeros(shape, np.float32)} if "v_reset" in nir.IF.__dataclass_fields__ else {}
    return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, c.threshold, np.float32), **reset,
                  metadata={KEY: meta})


def _maxpool(nir, node: Node, module: nn.Module):
    if module.padding != 0 and module.padding != (0, 0):
        raise ExportError(f"max-pool '{node.name}' pads its input; NIR's SumPool2d carries no padding value")
    return nir.SumPool2d(kernel_size=_pair(module.kernel_size), stride=_pair(module.stride or module.kernel_size),
                         padding=np.array((0, 0)), metadata={KEY: {"op": "max_pool", "mode": module.mode}})


def _avgpool(nir, node: Node, module: nn.Module):
    if isinstance(module, nn.AdaptiveAvgPool2d):
        (h, w), (oh, ow) = node.input_shape[1:], node.shape[1:]
        if h % oh or w % ow:
            raise ExportError(f"adaptive average pool '{node.name}' maps {h}x{w} to {oh}x{ow}, not a whole kernel")
        kernel = stride = np.array((h // oh, w // ow))
        padding = np.array((0, 0))
    else:
        kernel, stride, padding = _pair(module.kernel_size), _pair(module.stride or module.kernel_size), _pair(module.padding)
    return nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=padding)


def _affine(nir, node: Node, module: nn.Module):
    # a dense 1x1 convolution with a diagonal weight: NIR's type inference ignores a Conv2d's groups
    weight = torch.diag(module.scale.detach().reshape(-1))[:, :, None, None]
    return nir.Conv2d(input_shape=tuple(node.input_shape[1:]), weight=_array(weight), stride=1, padding=0, dilation=1,
                      groups=1, bias=_array(module.bias))


def _pass(nir, node: Node, module: nn.Module | None):
    if len(node.shape) < len(node.input_shape):  # flatten, view to fewer dimensions
        return nir.Flatten(input_type={"input": np.array(node.input_shape)}, start_dim=0, end_dim=-1)
    if tuple(node.shape) != tuple(node.input_shape):
        raise ExportError(f"'{node.name}' reshapes {node.input_shape} to {node.shape}; NIR has Flatten only")
    return None  # identity, dropout, folded BatchNorm: an edge


def _wadd(nir, node: Node, module: nn.Module):
    return [nir.Scale(scale=_array(w.detach().reshape(w.shape if w.dim() else (1,)).expand(node.shape)))
            for w in module.weights()]


CONV.export["nir"] = _conv
LINEAR.export["nir"] = _linear
NEURON.export["nir"] = _neuron
MAXPOOL.export["nir"] = _maxpool
AVERAGE_POOL.export["nir"] = _avgpool
AFFINE.export["nir"] = _affine
PASS.export["nir"] = _pass
WADD.export["nir"] = _wadd


def _rule(node: Node):
    if node.kind == "function":
        return REGISTRY.function(node.target)
    rule = REGISTRY.lookup(node.module)
    return rule if rule.role is not Role.UNSUPPORTED else (REGISTRY.for_spiking(node.module) or rule)


def to_nir(snn: SpikingNetwork, example: Tensor):
    """The converted network ``snn`` as a ``nir.NIRGraph`` (module docstring), traced on ``example [B, ...]``.

    Example::

        graph = to_nir(snn, x[:1])
        nir.write("net.nir", graph)
    """
    nir = _nir()
    if not isinstance(snn, SpikingNetwork):
        raise ExportError(f"to_nir exports a converted network (spikeconv.convert); got {type(snn).__name__}. "
                          "Convert the ANN first: snn = convert(ann, x)")
    with neuron_runs(snn.body, 1) as runs:  # one step of one sample: the neurons run, nothing is kept
        for run in runs:
            run.steps, run.start = 1, 0
        graph = trace(snn.body, example[:1])
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(graph.nodes[0].shape)})}
    edges: list[tuple[str, str]] = []
    ends: dict[int, list[str]] = {0: ["input"]}  # the NIR nodes that carry each traced node's output
    for node in graph.nodes[1:]:
        node.input_shape = graph.nodes[node.inputs[0]].shape if node.inputs and node.inputs[0] >= 0 else ()
        mapping: Callable | None = _rule(node).export.get("nir")
        if mapping is None:
            raise ExportError(f"'{node.name}' ({type(node.module).__name__ if node.module is not None else node.target}) "
                              "has no NIR mapping; register one in its rule's export['nir']")
        made = mapping(nir, node, node.module)
        sources = [name for i in node.inputs if i >= 0 for name in ends[i]]
        if made is None:
            ends[node.index] = sources
            continue
        parts = made if isinstance(made, list) else [made]
        # no dots in node names: nirtorch-based importers (sinabs, snnTorch) read a dot as a submodule path
        base = node.name.replace(".", "_")
        while base in nodes:
            base += "_"
        names = [base if len(parts) == 1 else f"{base}_{k}" for k in range(len(parts))]
        if len(parts) == 1:
            edges += [(s, names[0]) for s in sources]
        else:  # a weighted add: input k through its own scale
            for k, i in enumerate(node.inputs):
                edges += [(s, names[k]) for s in ends[i]]
        nodes.update(zip(names, parts))
        ends[node.index] = names
    tail = ends[graph.outputs[0]]
    scale = snn.output_scale
    if not (scale.numel() == 1 and float(scale) == 1.0):
        out_shape = graph.nodes[graph.outputs[0]].shape
        nodes["output_scale"] = nir.Scale(scale=_array(scale.reshape(scale.shape if scale.dim() else (1,)).expand(out_shape)))
        edges += [(s, "output_scale") for s in tail]
        tail = ["output_scale"]
    nodes["output"] = nir.Output(output_type={"output": np.array(graph.nodes[graph.outputs[0]].shape)})
    edges += [(s, "output") for s in tail]
    channels_last = any(m.weight.dim() == 4 and m.weight.is_contiguous(memory_format=torch.channels_last)
                        and not m.weight.is_contiguous() for m in snn.modules() if isinstance(m, nn.Conv2d))
    meta = {KEY: {"channels_last": channels_last}}
    if snn.readout_softmax is not None:  # NIR metadata holds no None: the key is left out instead
        meta[KEY]["readout_softmax"] = snn.readout_softmax
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def nir_report(graph) -> dict[str, str]:
    """``{node: "any" | "spikeconv"}``: whether plain NIR semantics run the node exactly, or only spikeconv
    (reset by subtraction, negative or multi-bit spikes, a phase, a clamp, a max-pool kept in metadata)."""
    report = {}
    for name, node in graph.nodes.items():
        meta = (getattr(node, "metadata", None) or {}).get(KEY, {})
        plain_if = (meta.get("reset", "zero") == "zero" and not meta.get("signed", False)
                    and int(meta.get("max_strength", 1)) == 1 and float(meta.get("phi", 0.0)) == 0.0
                    and int(meta.get("clamp_steps", 0)) == 0)
        report[name] = "spikeconv" if meta and (meta.get("op") == "max_pool" or not plain_if) else "any"
    return report


def from_nir(graph) -> SpikingNetwork:
    """A network :func:`spikeconv.simulate` runs, from a ``nir.NIRGraph`` (or a path to a ``.nir`` file).

    spikeconv's own metadata restores its neurons and pools exactly; a graph from another library runs with
    NIR's semantics (IF with reset to ``v_reset``, binary spikes).
    """
    nir = _nir()
    if isinstance(graph, (str, Path)):
        try:
            graph = nir.read(graph)
        except Exception as exc:  # noqa: BLE001 - h5py/keys errors of a file that is not NIR
            raise ExportError(f"{graph} is not a readable NIR file ({type(exc).__name__}: {exc})") from exc
    net = NIRNetwork(graph, key=KEY)
    meta = (graph.metadata or {}).get(KEY, {})
    softmax = meta.get("readout_softmax")
    if bool(meta.get("channels_last", False)):
        net = net.to(memory_format=torch.channels_last)
    from ..layers.sparse import skip_silent_frames_

    skip_silent_frames_(net)
    return SpikingNetwork(net, torch.ones(()), [], readout_softmax=None if softmax is None else int(softmax))


__all__ = ["ExportError", "from_nir", "nir_report", "to_nir"]
