r"""ANN-to-SNN conversion (paper 000, Algorithm 1; paper 004's normalization for plain ReLU).

Every activation ``j`` with clipping bound ``lambda_j`` becomes an IF neuron with threshold ``V_th``
that emits integer spikes. Writing every tensor of the SNN as ``ANN value = sigma * SNN value``, the
converter walks the traced graph once:

* the input has ``sigma = 1``;
* a weight layer absorbs its input's scale, ``W[:, c] <- W[:, c] * sigma_c``; its output is then in
  ANN units (``sigma = 1``; the bias is unchanged);
* a neuron with bound ``lambda_j`` needs its input current in units of ``lambda_j / V_th``: the gain
  ``g = sigma_in * V_th / lambda_j`` is pushed back into the weight layer (or WAdd) that produced it;
  its output spikes have ``sigma = lambda_j``.

For a chain this is exactly ``W^s = (lambda_i / lambda_j) W^a`` (and ``b^s = b^a / lambda_j``) of
Algorithm 1, with ``lambda = lambda^b / S^max`` and the currents multiplied by ``V_th`` (Eq. 4). The
network passes only integer spikes between layers and every threshold is ``V_th``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConversionError, UnsupportedLayerError
from ..neuron import IFNeuron, NeuronConfig, Reset, check_max_strength
from ..quant import QReLU, percentile
from .fold import batchnorm_as_affine, fold_batchnorm_
from .graph import Graph, Node, trace
from .network import NodeReport, SpikingNetwork
from .rules import Role, absorb_input_scale_, function_role, module_role, scale_output_


@dataclass(frozen=True)
class ConversionConfig:
    """Options of :func:`convert`.

    Args:
        threshold: ``V_th`` of every neuron.
        reset: reset by subtraction (default) or to zero.
        max_strength: ``S^max``; 1 for single spikes. ``lambda = lambda^b / S^max``.
        signed: use the buffered neuron with negative spikes (paper 000 Algorithm 2).
        phi: initial membrane fraction; ``None`` takes each QReLU's ``phi`` (0 for ReLU).
        percentile: for plain ReLU, the bound is this percentile of its calibration activations
            (100 = the maximum, Diehl 2015; 99.9/99.99 = robust normalization, Rueckauer 2017).
        per_channel: for plain ReLU, one bound per channel instead of per layer.
    """

    threshold: float = 1.0
    reset: Reset = Reset.SUBTRACT
    max_strength: int = 1
    signed: bool = True
    phi: float | None = None
    percentile: float = 99.99
    per_channel: bool = False

    def __post_init__(self) -> None:
        check_max_strength(self.max_strength)
        object.__setattr__(self, "reset", Reset(self.reset))
        if not 0 < self.percentile <= 100:
            raise ValueError(f"percentile must lie in (0, 100], got {self.percentile!r}")
        NeuronConfig(threshold=self.threshold, phi=self.phi or 0.0)  # validates both


def _set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, attr = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, attr, new)


def _operation(node: Node) -> str:
    return type(node.module).__name__ if node.kind == "module" else node.target


def _roles(graph: Graph, rules: dict[type, Role] | None) -> dict[int, Role]:
    roles: dict[int, Role] = {}
    calls: dict[int, list[Node]] = {}
    for node in graph.nodes:
        if node.kind == "input":
            roles[node.index] = Role.PASS
        elif node.kind == "module":
            roles[node.index] = module_role(node.module, rules)
            calls.setdefault(id(node.module), []).append(node)
        else:
            roles[node.index] = function_role(node.target)
    bad = [n for n in graph.nodes if roles[n.index] is Role.UNSUPPORTED]
    if bad:
        listing = ", ".join(f"'{n.name}' ({_operation(n)})" for n in bad[:8])
        raise UnsupportedLayerError(
            f"cannot convert {len(bad)} operation(s): {listing}. Options: replace them by supported layers "
            "(ReLU/QReLU activations, Conv/Linear/BatchNorm, average pooling, WAdd, Concat), or register a "
            "rule: convert(..., rules={YourModule: Role.PASS})"
        )
    for nodes in calls.values():
        if len(nodes) > 1 and roles[nodes[0].index] in (Role.NEURON, Role.WEIGHT, Role.BATCHNORM, Role.WADD):
            raise ConversionError(
                f"module '{nodes[0].target}' ({_operation(nodes[0])}) is called {len(nodes)} times in one "
                "forward pass; a spiking layer needs its own state and scale per call: give each call its "
                "own module instance"
            )
    return roles


def _handle_batchnorms(net: nn.Module, graph: Graph, roles: dict[int, Role], report: list[NodeReport]) -> None:
    for node in graph.nodes:
        if roles[node.index] is not Role.BATCHNORM:
            continue
        producer = graph.producer(node) if node.inputs else None
        if (
            producer is not None
            and producer.kind == "module"
            and isinstance(producer.module, (nn.Conv1d, nn.Conv2d, nn.Linear))
            and producer.users == [node.index]
        ):
            fold_batchnorm_(producer.module, node.module)
            _set_module(net, node.target, nn.Identity())
            node.module = net.get_submodule(node.target)
            roles[node.index] = Role.PASS
            report.append(NodeReport(node.name, "BatchNorm", "folded", f"into {producer.name}"))
        else:
            _set_module(net, node.target, batchnorm_as_affine(node.module))
            node.module = net.get_submodule(node.target)
            roles[node.index] = Role.WEIGHT
            report.append(NodeReport(node.name, "BatchNorm", "converted", "to a per-channel affine layer"))


@torch.no_grad()
def _relu_bounds(
    net: nn.Module, nodes: list[Node], calibration: Iterable[Tensor] | None, config: ConversionConfig
) -> dict[int, Tensor]:
    """Bounds for plain ReLU neurons from calibration data (max or percentile, per layer or channel)."""
    if not nodes:
        return {}
    if calibration is None:
        raise ConversionError(
            f"activation '{nodes[0].name}' is a plain ReLU with no learned bound: pass calibration batches "
            "(convert(..., calibration=loader)) for data-based normalization, or train with QReLU"
        )
    seen: dict[int, list[Tensor]] = {n.index: [] for n in nodes}
    handles = []

    def hook_for(index: int):
        def hook(_m: nn.Module, _inputs: tuple, output: Tensor) -> None:
            if not bool(torch.isfinite(output).all()):
                raise ConversionError(
                    f"calibration produced NaN/inf activations at '{graph_names[index]}'; check the model "
                    "weights and the calibration inputs"
                )
            if config.per_channel and output.dim() >= 2:
                seen[index].append(output.detach().transpose(0, 1).reshape(output.shape[1], -1).float().cpu())
            else:
                seen[index].append(output.detach().reshape(-1).float().cpu())

        return hook

    graph_names = {n.index: n.name for n in nodes}
    batches = 0
    try:
        for node in nodes:
            handles.append(node.module.register_forward_hook(hook_for(node.index)))
        for batch in calibration:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
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
        if config.per_channel and values.dim() == 2:
            per = []
            for row in values:
                positive = row[row > 0]
                per.append(percentile(positive, config.percentile) if positive.numel() else torch.tensor(1.0))
            lam = torch.stack(per).clamp(min=1e-6)
            bounds[node.index] = lam.view(-1, *([1] * (len(node.shape) - 1)))
        else:
            positive = values[values > 0]
            lam = percentile(positive, config.percentile) if positive.numel() else torch.tensor(1.0)
            bounds[node.index] = lam.clamp(min=1e-6).reshape(())
    return bounds


def _reshape_scale(sigma: Tensor, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Tensor:
    """The scale after an operation that commutes with it (pooling, flatten, dropout...)."""
    if sigma.numel() == 1 or in_shape == out_shape:
        return sigma
    if len(in_shape) == len(out_shape) and in_shape[0] == out_shape[0] and sigma.shape[0] == in_shape[0] and (
        sigma.numel() == in_shape[0]
    ):
        return sigma  # per-channel scale through pooling
    full = sigma.expand(in_shape)
    if full.numel() != torch.Size(out_shape).numel():
        raise ConversionError(f"cannot carry a per-channel scale from shape {in_shape} to {out_shape}")
    return full.reshape(out_shape)


class _Scaler:
    """Propagates scales through the graph and pushes neuron gains into producing layers."""

    def __init__(self, graph: Graph, roles: dict[int, Role], config: ConversionConfig) -> None:
        self.graph, self.roles, self.config = graph, roles, config
        self.sigma: dict[int, Tensor] = {}

    def input_shape(self, node: Node, k: int = 0) -> tuple[int, ...]:
        return self.graph.nodes[node.inputs[k]].shape

    def push_gain(self, node: Node, gain: Tensor, consumer: Node) -> None:
        """Make ``node``'s output ``gain`` times larger by changing the parameters that produce it."""
        role = self.roles[node.index]
        if len(set(node.users)) > 1:
            raise ConversionError(
                f"the current of neuron '{consumer.name}' comes from '{node.name}', whose output also feeds "
                f"other layers, so it cannot be rescaled for this neuron alone; insert a separate "
                "Conv/Linear or a WAdd before the activation"
            )
        if role in (Role.WEIGHT, Role.WADD):
            scale_output_(node.module, gain)
        elif role is Role.PASS and node.kind != "input":
            gain_in = gain
            if gain.numel() > 1:
                gain_in = _reshape_scale(gain, node.shape, self.input_shape(node))
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
                part = gain if full is None else full[offset:offset + size]
                self.push_gain(part_node, part, consumer)
                offset += size
        else:
            raise ConversionError(
                f"the input current of neuron '{consumer.name}' comes straight from '{node.name}' "
                f"({_operation(node)}), which has no weights to carry its scale; put a Conv/Linear or WAdd "
                "between them"
            )

    def run(self, bounds: dict[int, Tensor], report: list[NodeReport]) -> None:
        v_th = self.config.threshold
        for node in self.graph.nodes:
            role = self.roles[node.index]
            ins = [self.sigma[i] if i >= 0 else None for i in node.inputs]
            if node.kind == "input":
                self.sigma[node.index] = torch.ones(())
            elif role is Role.WEIGHT:
                absorb_input_scale_(node.module, ins[0], self.input_shape(node))
                self.sigma[node.index] = torch.ones(())
                report.append(NodeReport(node.name, _operation(node), "scaled"))
            elif role is Role.PASS:
                self.sigma[node.index] = _reshape_scale(ins[0], self.input_shape(node), node.shape)
                report.append(NodeReport(node.name, _operation(node), "passed"))
            elif role is Role.NEURON:
                lam = bounds[node.index]
                gain = ins[0] * v_th / lam
                self.push_gain(self.graph.nodes[node.inputs[0]], gain, node)
                self.sigma[node.index] = lam
                detail = f"lambda={float(lam):.4g}" if lam.numel() == 1 else f"lambda per channel ({lam.numel()})"
                report.append(NodeReport(node.name, _operation(node), "converted", detail))
            elif role is Role.WADD:
                for k, (w, sigma) in enumerate(zip(node.module.weights(), ins)):
                    node.module.set_weight(k, w * sigma)
                self.sigma[node.index] = torch.ones(())
                report.append(NodeReport(node.name, "WAdd", "scaled"))
            elif role is Role.CONCAT:
                self.sigma[node.index] = self._concat_scale(node, ins)
                report.append(NodeReport(node.name, _operation(node), "passed"))
            elif role is Role.ADD:
                a, b = (s.expand(node.shape) for s in ins if s is not None)
                if not torch.equal(a, b):
                    raise ConversionError(
                        f"'{node.name}' adds two spike trains with different scales; use spikeconv.layers.WAdd "
                        "for residual connections so that each input gets its own weight"
                    )
                self.sigma[node.index] = ins[0]
                report.append(NodeReport(node.name, "add", "passed"))

    def _concat_scale(self, node: Node, ins: list[Tensor | None]) -> Tensor:
        if all(s is not None and s.numel() == 1 for s in ins) and all(torch.equal(ins[0], s) for s in ins):
            return ins[0]
        dim = node.module.dim if node.module is not None else node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim in (0, -len(node.shape) - 1):
            raise ConversionError(f"'{node.name}' concatenates along the batch dimension, which is not supported")
        dim = dim - 1 if dim > 0 else dim
        parts = [s.expand(self.graph.nodes[i].shape) for s, i in zip(ins, node.inputs)]
        full = torch.cat(parts, dim=dim)
        channel = full.reshape(full.shape[0], -1)
        if dim == 0 and bool((channel == channel[:, :1]).all()):
            return channel[:, :1].reshape(full.shape[0], *([1] * (full.dim() - 1)))
        return full


def convert(
    model: nn.Module,
    example: Tensor,
    config: ConversionConfig | None = None,
    *,
    calibration: Iterable[Tensor] | None = None,
    rules: dict[type, Role] | None = None,
) -> SpikingNetwork:
    r"""Convert a trained ANN into a hardware-faithful SNN; the input model is never modified.

    Args:
        model: the ANN, in eval mode, with QReLU (learned bounds) or ReLU activations.
        example: one input batch ``[B, ...]`` used to trace the dataflow.
        config: :class:`ConversionConfig` (threshold, reset, S^max, buffered neuron, normalization).
        calibration: input batches for data-based normalization of plain ReLU activations.
        rules: extra ``{module type: Role}`` rules; they win over the defaults.

    Returns:
        A :class:`SpikingNetwork`; simulate it with :func:`spikeconv.sim.simulate`.

    Example:
        >>> ann = nn.Sequential(nn.Linear(2, 4), QReLU(levels=4, bound=1.0), nn.Linear(4, 2)).eval()
        >>> snn = convert(ann, torch.zeros(1, 2), ConversionConfig(max_strength=1))
        >>> [type(m).__name__ for m in snn.body]
        ['Linear', 'IFNeuron', 'Linear']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert() needs a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ConversionError("the model is in training mode; call model.eval() before convert()")
    if not isinstance(example, Tensor) or example.dim() < 1:
        raise TypeError("example must be an input tensor with a batch dimension, e.g. one batch of data")
    if example.is_floating_point() and not bool(torch.isfinite(example).all()):
        raise ValueError("the example input contains NaN or infinite values")
    config = config or ConversionConfig()
    net = copy.deepcopy(model)
    graph = trace(net, example[:2])
    roles = _roles(graph, rules)
    report: list[NodeReport] = []
    _handle_batchnorms(net, graph, roles, report)
    neuron_nodes = [n for n in graph.nodes if roles[n.index] is Role.NEURON]
    bounds: dict[int, Tensor] = {}
    relus = []
    for node in neuron_nodes:
        if isinstance(node.module, QReLU):
            bounds[node.index] = node.module.bound.detach().clamp(min=QReLU.min_bound).float().cpu() / config.max_strength
        else:
            relus.append(node)
    bounds.update(_relu_bounds(net, relus, calibration, config))
    if relus:
        for node in relus:
            bounds[node.index] = bounds[node.index] / config.max_strength
    scaler = _Scaler(graph, roles, config)
    with torch.no_grad():
        scaler.run({k: v.to(example.device) for k, v in bounds.items()}, report)
    for node in neuron_nodes:
        phi = config.phi if config.phi is not None else getattr(node.module, "phi", 0.0)
        neuron = IFNeuron(NeuronConfig(threshold=config.threshold, reset=config.reset,
                                       max_strength=config.max_strength, signed=config.signed, phi=phi))
        _set_module(net, node.target, neuron)
    if len(graph.outputs) != 1 or graph.outputs[0] < 0:
        raise ConversionError("the model must return exactly one tensor computed from its input")
    output_scale = scaler.sigma[graph.outputs[0]]
    return SpikingNetwork(net, output_scale, report)
