"""Scale propagation through a traced graph (the core of Algorithm 1), and data-based bounds for ReLU.

Every tensor of the SNN carries a scale ``sigma``: ``ANN value = sigma * SNN value``. See
:mod:`spikeconv.convert.converter` for the rules.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..errors import ConversionError
from ..quant import percentile
from .graph import Graph, Node
from .network import NodeReport
from .rules import Role, absorb_input_scale_, scale_output_


def operation_name(node: Node) -> str:
    """``Conv2d`` for a module node, the function name otherwise."""
    return type(node.module).__name__ if node.kind == "module" else node.target


def reshape_scale(sigma: Tensor, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Tensor:
    """The scale after an operation that commutes with it (pooling, flatten, dropout...)."""
    if sigma.numel() == 1 or in_shape == out_shape:
        return sigma
    per_channel = sigma.numel() == in_shape[0] and sigma.shape[0] == in_shape[0]
    if per_channel and len(in_shape) == len(out_shape) and in_shape[0] == out_shape[0]:
        return sigma  # a per-channel scale through pooling
    full = sigma.expand(in_shape)
    if full.numel() != torch.Size(out_shape).numel():
        raise ConversionError(f"cannot carry a per-channel scale from shape {in_shape} to {out_shape}")
    return full.reshape(out_shape)


@torch.no_grad()
def data_bounds(net: nn.Module, nodes: list[Node], calibration: Iterable | None, p: float,
                per_channel: bool) -> dict[int, Tensor]:
    """Bounds lambda for activations without a learned one: the ``p``-th percentile (100 = max) of their
    positive outputs over the calibration batches, per layer or per channel; capped at a clip value."""
    if not nodes:
        return {}
    if calibration is None:
        raise ConversionError(
            f"activation '{nodes[0].name}' is a plain ReLU with no learned bound: pass calibration batches "
            "(convert(..., calibration=loader)) for data-based normalization, or train with QReLU"
        )
    seen: dict[int, list[Tensor]] = {n.index: [] for n in nodes}
    names = {n.index: n.name for n in nodes}

    def hook_for(index: int):
        def hook(_m: nn.Module, _inputs: tuple, output: Tensor) -> None:
            if not bool(torch.isfinite(output).all()):
                raise ConversionError(f"calibration produced NaN/inf activations at '{names[index]}'; check the "
                                      "model weights and the calibration inputs")
            out = output.detach().float()
            seen[index].append(out.transpose(0, 1).reshape(out.shape[1], -1).cpu() if per_channel and out.dim() >= 2
                               else out.reshape(-1).cpu())

        return hook

    handles = [n.module.register_forward_hook(hook_for(n.index)) for n in nodes]
    batches = 0
    try:
        for batch in calibration:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
            if not isinstance(batch, Tensor):
                raise ConversionError(f"calibration batches must be tensors, got {type(batch).__name__}")
            net(batch)
            batches += 1
    finally:
        for handle in handles:
            handle.remove()
    if batches == 0:
        raise ConversionError("the calibration data yielded no batches; give at least one batch of inputs")
    bounds = {}
    for node in nodes:
        values = torch.cat(seen[node.index], dim=-1)
        cap = float(node.module.max_val) if isinstance(node.module, nn.Hardtanh) else float("inf")
        rows = values if (per_channel and values.dim() == 2) else values.reshape(1, -1)
        lams = []
        for row in rows:
            positive = row[row > 0]
            lams.append(percentile(positive, p) if positive.numel() else torch.tensor(1.0))
        lam = torch.stack(lams).clamp(min=1e-6, max=cap)
        bounds[node.index] = lam.view(-1, *([1] * (len(node.shape) - 1))) if rows.shape[0] > 1 else lam.reshape(())
    return bounds


class Scaler:
    """Walks the graph in execution order, giving every tensor its scale and every layer its weights.

    Rules: weight layers absorb their input's scale (output in ANN units); a neuron with bound lambda
    pushes ``sigma_in * V_th / lambda`` back into the layer (or WAdd) producing its current; its spikes
    have scale lambda; pooling, flatten, dropout, max-pooling and concatenation carry scales along.
    """

    def __init__(self, graph: Graph, roles: dict[int, Role], threshold: float, input_scale: float,
                 spiking_maxpool: bool = True) -> None:
        self.graph, self.roles, self.threshold, self.input_scale = graph, roles, threshold, input_scale
        self.spiking_maxpool = spiking_maxpool
        self.sigma: dict[int, Tensor] = {}
        self.spiking: set[int] = set()  # nodes whose output is an integer spike train
        self.depth: dict[int, int] = {}  # neuron layers on the longest path from the input

    def input_shape(self, node: Node, k: int = 0) -> tuple[int, ...]:
        return self.graph.nodes[node.inputs[k]].shape

    def push_gain(self, node: Node, gain: Tensor, consumer: Node) -> None:
        """Make ``node``'s output ``gain`` times larger by changing the parameters that produce it."""
        role = self.roles[node.index]
        if len(set(node.users)) > 1:
            raise ConversionError(
                f"the current of neuron '{consumer.name}' comes from '{node.name}', whose output also feeds "
                "other layers, so it cannot be rescaled for this neuron alone; insert a separate Conv/Linear "
                "or a WAdd before the activation")
        if role in (Role.WEIGHT, Role.WADD):
            scale_output_(node.module, gain)
        elif role in (Role.PASS, Role.MAXPOOL) and node.kind != "input":  # both commute with a gain > 0
            gain_in = reshape_scale(gain, node.shape, self.input_shape(node)) if gain.numel() > 1 else gain
            self.push_gain(self.graph.nodes[node.inputs[0]], gain_in, consumer)
        elif role is Role.ADD:
            for index in node.inputs:
                if index >= 0:
                    self.push_gain(self.graph.nodes[index], gain, consumer)
        elif role is Role.CONCAT:
            full = gain.expand(node.shape) if gain.numel() > 1 else None
            offset = 0
            for index in node.inputs:
                part_node = self.graph.nodes[index]
                size = part_node.shape[0]
                self.push_gain(part_node, gain if full is None else full[offset:offset + size], consumer)
                offset += size
        else:
            raise ConversionError(
                f"the input current of neuron '{consumer.name}' comes straight from '{node.name}' "
                f"({operation_name(node)}), which has no weights to carry its scale; put a Conv/Linear or WAdd "
                "between them")

    def run(self, bounds: dict[int, Tensor], report: list[NodeReport]) -> None:
        for node in self.graph.nodes:
            role = self.roles[node.index]
            ins = [self.sigma[i] if i >= 0 else None for i in node.inputs]
            self.depth[node.index] = max((self.depth[i] for i in node.inputs if i >= 0), default=0)
            if node.kind == "input":
                self.sigma[node.index] = torch.tensor(float(self.input_scale))
            elif role is Role.WEIGHT:
                absorb_input_scale_(node.module, ins[0], self.input_shape(node))
                self.sigma[node.index] = torch.ones(())
                report.append(NodeReport(node.name, operation_name(node), "scaled"))
            elif role in (Role.PASS, Role.MAXPOOL):
                if role is Role.MAXPOOL and self.spiking_maxpool and node.inputs[0] not in self.spiking:
                    raise ConversionError(
                        f"max-pooling '{node.name}' receives analog currents, not spikes; put the max-pool after "
                        "the activation (ReLU and max-pooling commute) or choose ConversionConfig(maxpool='average')")
                self.sigma[node.index] = reshape_scale(ins[0], self.input_shape(node), node.shape)
                if node.inputs[0] in self.spiking and (role is Role.MAXPOOL or operation_name(node) not in (
                        "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "avg_pool2d",
                        "adaptive_avg_pool2d")):
                    self.spiking.add(node.index)
                report.append(NodeReport(node.name, operation_name(node),
                                         "converted" if role is Role.MAXPOOL else "passed"))
            elif role is Role.NEURON:
                lam = bounds[node.index]
                self.push_gain(self.graph.nodes[node.inputs[0]], ins[0] * self.threshold / lam, node)
                self.sigma[node.index] = lam
                self.spiking.add(node.index)
                self.depth[node.index] += 1
                detail = f"lambda={lam.item():.4g}" if lam.numel() == 1 else f"lambda per channel ({lam.numel()})"
                report.append(NodeReport(node.name, operation_name(node), "converted", detail))
            elif role is Role.WADD:
                for k, (w, sigma) in enumerate(zip(node.module.weights(), ins)):
                    node.module.set_weight(k, w * sigma)
                self.sigma[node.index] = torch.ones(())
                report.append(NodeReport(node.name, "WAdd", "scaled"))
            elif role is Role.CONCAT:
                self.sigma[node.index] = self._concat_scale(node, ins)
                if all(i in self.spiking for i in node.inputs):
                    self.spiking.add(node.index)
                report.append(NodeReport(node.name, operation_name(node), "passed"))
            elif role is Role.ADD:
                a, b = (s.expand(node.shape) for s in ins if s is not None)
                if not torch.equal(a, b):
                    raise ConversionError(
                        f"'{node.name}' adds two spike trains with different scales; use spikeconv.layers.WAdd "
                        "(or let the fx rewrite do it) so that each input gets its own weight")
                self.sigma[node.index] = ins[0]
                report.append(NodeReport(node.name, "add", "passed"))
            elif role is Role.SOFTMAX:
                if ins[0] is None or ins[0].numel() != 1 or float(ins[0]) != 1.0:
                    raise ConversionError(f"softmax '{node.name}' must follow a weight layer (the ANN head)")
                self.sigma[node.index] = torch.ones(())
                report.append(NodeReport(node.name, operation_name(node), "converted"))

    def _concat_scale(self, node: Node, ins: list[Tensor | None]) -> Tensor:
        if all(s is not None and s.numel() == 1 for s in ins) and all(torch.equal(ins[0], s) for s in ins):
            return ins[0]
        if node.module is not None:
            dim = node.module.dim
        else:
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim == 0 or dim == -len(node.shape) - 1:
            raise ConversionError(f"'{node.name}' concatenates along the batch dimension, which is not supported")
        dim = dim - 1 if dim > 0 else dim
        parts = [s.expand(self.graph.nodes[i].shape) for s, i in zip(ins, node.inputs)]
        full = torch.cat(parts, dim=dim)
        channel = full.reshape(full.shape[0], -1)
        if bool((channel == channel[:, :1]).all()):
            return channel[:, :1].reshape(full.shape[0], *([1] * (full.dim() - 1)))
        return full
