"""A NIR graph as a module :func:`spikeconv.simulate` runs: one torch module per NIR node, executed in
topological order; the edges that meet at a node are summed (NIR's semantics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import SpikeconvError
from ..neuron import IFNeuron, NeuronConfig, SpikingMaxPool2d


class Scale(nn.Module):
    """``y = s * x`` for a scale of the per-sample shape (broadcast over the batch), or one value per channel
    (dimension 1) when ``s`` is a vector and ``x`` has more dimensions."""

    def __init__(self, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.float())

    def forward(self, x: Tensor) -> Tensor:
        s = self.scale
        if s.dim() == 1 and x.dim() > 2 and s.numel() == x.shape[1]:
            s = s.view(-1, *([1] * (x.dim() - 2)))
        return x * s


def _tensor(value: Any) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(value, dtype=np.float32)))


def _pair(value: Any) -> tuple[int, int]:
    flat = np.asarray(value).reshape(-1).tolist()
    return (int(flat[0]), int(flat[-1])) if flat else (1, 1)


def _conv(name: str, node, meta: dict) -> nn.Module:
    weight = _tensor(node.weight)
    out_ch, in_per_group = weight.shape[:2]
    groups = int(node.groups)
    padding = node.padding if isinstance(node.padding, str) else _pair(node.padding)
    conv = nn.Conv2d(in_per_group * groups, out_ch, tuple(weight.shape[2:]), stride=_pair(node.stride),
                     padding=padding, dilation=_pair(node.dilation), groups=groups, bias=True)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(_tensor(node.bias).reshape(-1))
    return conv


def _affine(name: str, node, meta: dict) -> nn.Module:
    weight = _tensor(node.weight)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=hasattr(node, "bias"))
    with torch.no_grad():
        layer.weight.copy_(weight)
        if hasattr(node, "bias"):
            layer.bias.copy_(_tensor(node.bias).reshape(-1))
    return layer


def _if(name: str, node, meta: dict) -> nn.Module:
    threshold = np.unique(np.asarray(node.v_threshold))
    v_reset = getattr(node, "v_reset", None)  # nir <= 1.0.4 has no such field: reset to zero
    reset_to = np.unique(np.asarray(v_reset)) if v_reset is not None else np.zeros(1)
    if threshold.size != 1 or reset_to.size != 1 or float(reset_to[0]) != 0.0:
        raise SpikeconvError(f"NIR node '{name}': spikeconv runs IF layers with one threshold and v_reset = 0; this "
                             f"one has thresholds {threshold[:4]} and v_reset {reset_to[:4]}")
    config = NeuronConfig(threshold=float(threshold[0]), reset=str(meta.get("reset", "zero")),
                          max_strength=int(meta.get("max_strength", 1)), signed=bool(meta.get("signed", False)),
                          phi=float(meta.get("phi", 0.0)))
    neuron = IFNeuron(config, clamp_steps=int(meta.get("clamp_steps", 0)))
    r = np.unique(np.asarray(node.r))
    return neuron if r.size == 1 and float(r[0]) == 1.0 else nn.Sequential(Scale(_tensor(node.r)), neuron)


def _sum_pool(name: str, node, meta: dict) -> nn.Module:
    kernel, stride = _pair(node.kernel_size), _pair(node.stride)
    if meta.get("op") == "max_pool":
        return SpikingMaxPool2d(kernel, stride, mode=str(meta.get("mode", "count")))
    return nn.AvgPool2d(kernel, stride, _pair(node.padding), divisor_override=1)  # a sum


def _avg_pool(name: str, node, meta: dict) -> nn.Module:
    return nn.AvgPool2d(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding))


def _flatten(name: str, node, meta: dict) -> nn.Module:
    start, end = int(node.start_dim), int(node.end_dim)  # NIR counts without the batch dimension
    return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)


def _scale(name: str, node, meta: dict) -> nn.Module:
    return Scale(_tensor(node.scale))


#: NIR node type name -> builder ``(name, node, spikeconv metadata) -> module``
BUILDERS: dict[str, Callable[[str, Any, dict], nn.Module]] = {
    "Conv2d": _conv, "Affine": _affine, "Linear": _affine, "IF": _if, "SumPool2d": _sum_pool,
    "AvgPool2d": _avg_pool, "Flatten": _flatten, "Scale": _scale,
}


def _order(names: list[str], edges: list[tuple[str, str]]) -> list[str]:
    incoming = {n: 0 for n in names}
    for _, dst in edges:
        incoming[dst] += 1
    ready = [n for n in names if incoming[n] == 0]
    order = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for src, dst in edges:
            if src == name:
                incoming[dst] -= 1
                if incoming[dst] == 0:
                    ready.append(dst)
    if len(order) != len(names):
        raise SpikeconvError("the NIR graph has a cycle; spikeconv runs feed-forward graphs only")
    return order


class NIRNetwork(nn.Module):
    """The modules of a NIR graph's nodes (``layers``, keyed ``n0, n1, ...`` in topological order)."""

    def __init__(self, graph, key: str = "spikeconv") -> None:
        super().__init__()
        nodes, edges = dict(graph.nodes), [tuple(e) for e in graph.edges]
        for src, dst in edges:
            for end in (src, dst):
                if end not in nodes:
                    raise SpikeconvError(f"the NIR graph has an edge to or from '{end}', which is not a node")
        self.layers = nn.ModuleDict()
        self.plan: list[tuple[str, str | None, list[str]]] = []  # (node, module key or None, its sources)
        for name in _order(list(nodes), edges):
            node, kind = nodes[name], type(nodes[name]).__name__
            sources = [src for src, dst in edges if dst == name]
            if kind in ("Input", "Output"):
                self.plan.append((name, None, sources))
                continue
            if kind not in BUILDERS:
                raise SpikeconvError(f"NIR node '{name}' is a {kind}, which spikeconv cannot run; it runs "
                                     f"{', '.join(sorted(BUILDERS))}")
            meta = dict((getattr(node, "metadata", None) or {}).get(key, {}))
            module_key = f"n{len(self.layers)}"
            self.layers[module_key] = BUILDERS[kind](name, node, meta)
            self.plan.append((name, module_key, sources))

    def forward(self, x: Tensor) -> Tensor:
        values: dict[str, Tensor] = {}
        out = x
        for name, key, sources in self.plan:
            if not sources:
                out = x
            else:
                out = values[sources[0]]
                for src in sources[1:]:
                    out = out + values[src]
            if key is not None:
                out = self.layers[key](out)
            values[name] = out
        return out
