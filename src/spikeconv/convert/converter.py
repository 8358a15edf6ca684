r"""ANN-to-SNN conversion (paper 000, Algorithm 1; paper 004's normalization for plain ReLU).

Every activation ``j`` with clipping bound ``lambda_j`` becomes an IF neuron with threshold ``V_th`` that
emits integer spikes. Writing every tensor of the SNN as ``ANN value = sigma * SNN value``, the converter
walks the traced graph once (:class:`~spikeconv.convert.scaling.Scaler`):

* the input has ``sigma = 1`` (or the input encoder's scale);
* a weight layer absorbs its input's scale, ``W[:, c] <- W[:, c] * sigma_c``; its output is then in ANN
  units (``sigma = 1``, the bias unchanged: a constant current);
* a neuron with bound ``lambda_j`` needs its current in units of ``lambda_j / V_th``: the gain
  ``g = sigma_in * V_th / lambda_j`` is pushed back into the weight layer (or WAdd) producing it; its
  spikes have ``sigma = lambda_j``.

For a chain this is exactly ``W^s = (lambda_i / lambda_j) W^a`` and ``b^s = b^a / lambda_j`` of
Algorithm 1, with ``lambda = lambda^b / S^max`` and currents multiplied by ``V_th`` (Eq. 4).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor, nn

from ..errors import ConversionError, UnsupportedLayerError
from ..layers.integer import check_weight_bits
from ..layers.sparse import skip_silent_frames_
from ..neuron import IFNeuron, NeuronConfig, Reset, SpikingMaxPool2d, SpikingSoftmax, check_max_strength
from ..quant import QReLU
from .fold import batchnorm_affine, batchnorm_as_affine, fold_batchnorm_
from .graph import Graph, Node, trace
from .integer import int8_spikes_, quantize_weights_
from .network import NodeReport, SpikingNetwork
from .rewrite import rewrite_functional
from .rules import Role, function_role, module_role
from .scaling import Scaler, data_bounds, operation_name


class MaxPoolMode(str, Enum):
    """How max-pooling is converted: a real spiking max-pool (gating by accumulated spike counts, SNN
    Toolbox; or ``COUNT``, whose output count is the max of the input counts at every step), or (opt-in)
    an average pool."""

    SPIKING = "spiking"
    COUNT = "count"
    AVERAGE = "average"


class SoftmaxMode(str, Enum):
    """How a final softmax is converted: applied to the readout (ANN head) or as spiking softmax."""

    HEAD = "head"
    SPIKING = "spiking"


@dataclass(frozen=True)
class ConversionConfig:
    """Options of :func:`convert`.

    Args:
        threshold: ``V_th`` of every neuron.
        reset: reset by subtraction (default) or to zero, for every neuron.
        max_strength: ``S^max``; 1 for single spikes. ``lambda = lambda^b / S^max``.
        signed: use the buffered neuron with negative spikes (paper 000 Algorithm 2).
        phi: initial membrane fraction; ``None`` takes each QReLU's ``phi`` (0 for ReLU).
        percentile: for plain ReLU, the bound is this percentile of its positive calibration
            activations (100 = the maximum, Diehl 2015; 99.9/99.99 = robust normalization, paper 004).
        per_channel: for plain ReLU, one bound per channel instead of per layer.
        input_scale: the value one input unit stands for (1 for analog input; the encoder's scale for
            rate-coded input, e.g. 1 for Poisson spikes of pixels in [0, 1]).
        voltage_clamp: paper 004's voltage clamp: a neuron ``d`` neuron layers deep holds its membrane
            for ``(d - 1) * voltage_clamp`` steps before integrating (0 = off).
        maxpool: :class:`MaxPoolMode`: ``"count"`` (default; output count = max of input counts),
            ``"spiking"`` (the SNN Toolbox gate of paper 004) or ``"average"`` (opt-in approximation).
        softmax: :class:`SoftmaxMode`.
        channels_last: store 4-D weights channels-last (NHWC); the convolutions, neuron states and
            spikes then stay channels-last. Measured about 25% faster on CPU (docs/performance.md).
        skip_silent: plain ``Conv2d`` and ``Linear`` layers become :class:`~spikeconv.layers.SkipSilentConv2d`
            / :class:`~spikeconv.layers.SkipSilentLinear`: frames (sample x step) without any spike are not
            computed, their output is the bias (exact; pays where layers are silent for whole steps, e.g.
            during the voltage clamp or before deep layers start firing; docs/performance.md).
        weight_bits: ``None`` keeps the float weights; ``b`` (2..8) puts every Conv/Linear weight on a ``b``-bit
            grid with one scale per output channel (hardware weights), and layers whose input is spikes
            compute in exact integer arithmetic (:class:`~spikeconv.layers.IntegerConv2d`; 2-3x faster
            convolutions on x86 CPUs, docs/performance.md). Changes accuracy slightly: measure it. Neurons
            whose spikes go only to integer layers and weighted adds then emit int8 spikes
            (``IFNeuron.spike_dtype``; same values, a quarter of the memory).
    """

    threshold: float = 1.0
    reset: Reset = Reset.SUBTRACT
    max_strength: int = 1
    signed: bool = True
    phi: float | None = None
    percentile: float = 99.99
    per_channel: bool = False
    input_scale: float = 1.0
    voltage_clamp: int = 0
    maxpool: MaxPoolMode = MaxPoolMode.COUNT
    softmax: SoftmaxMode = SoftmaxMode.HEAD
    channels_last: bool = True
    skip_silent: bool = True
    weight_bits: int | None = None

    def __post_init__(self) -> None:
        check_max_strength(self.max_strength)
        if self.weight_bits is not None:
            check_weight_bits(self.weight_bits)
        for name, kind in (("reset", Reset), ("maxpool", MaxPoolMode), ("softmax", SoftmaxMode)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError as exc:
                raise ValueError(f"{name} must be one of {[k.value for k in kind]}, got {getattr(self, name)!r}") from exc
        if not 0 < self.percentile <= 100:
            raise ValueError(f"percentile must lie in (0, 100], got {self.percentile!r}")
        if not self.input_scale > 0:
            raise ValueError(f"input_scale must be positive, got {self.input_scale!r}")
        if isinstance(self.voltage_clamp, bool) or not isinstance(self.voltage_clamp, int) or self.voltage_clamp < 0:
            raise ValueError(f"voltage_clamp must be a non-negative integer, got {self.voltage_clamp!r}")
        NeuronConfig(threshold=self.threshold, phi=self.phi or 0.0)  # validates both


def _set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, attr = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, attr, new)


def _roles(graph: Graph, rules: dict[type, Role] | None) -> dict[int, Role]:
    roles: dict[int, Role] = {}
    for node in graph.nodes:
        if node.kind == "input":
            roles[node.index] = Role.PASS
        elif node.kind == "module":
            roles[node.index] = module_role(node.module, rules)
        else:
            roles[node.index] = function_role(node.target)
    return roles


def _check_supported(graph: Graph, roles: dict[int, Role]) -> None:
    bad = [n for n in graph.nodes if roles[n.index] is Role.UNSUPPORTED]
    if bad:
        listing = ", ".join(f"'{n.name}' ({operation_name(n)})" for n in bad[:8])
        raise UnsupportedLayerError(
            f"cannot convert {len(bad)} operation(s): {listing}. Options: replace them by supported layers "
            "(ReLU/QReLU/ReLU6 activations, Conv/Linear/BatchNorm, pooling, WAdd, Concat), or register a "
            "rule: convert(..., rules={YourModule: Role.PASS})")
    calls: dict[int, list[Node]] = {}
    for node in graph.nodes:
        if node.kind == "module":
            calls.setdefault(id(node.module), []).append(node)
    for nodes in calls.values():
        if len(nodes) > 1 and roles[nodes[0].index] not in (Role.PASS, Role.CONCAT):
            raise ConversionError(
                f"module '{nodes[0].target}' ({operation_name(nodes[0])}) is called {len(nodes)} times in one "
                "forward pass and the model could not be rewritten by torch.fx; a spiking layer needs its own "
                "state and scale per call: give each call its own module instance")
    functional = [n for n in graph.nodes if n.kind == "function" and roles[n.index] in (Role.MAXPOOL, Role.SOFTMAX)]
    if functional:
        raise ConversionError(f"functional '{functional[0].name}' must be a module to be converted; use nn.MaxPool2d "
                              "/ nn.Softmax (the torch.fx rewrite does this when the model is traceable)")


def _fold_forward_(bn: nn.Module, layer: nn.Module) -> bool:
    """Fold ``bn`` into the Linear or padding-free Conv ``layer`` that follows it; False if impossible."""
    if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or any(p != 0 for p in layer.padding)
                                         or layer.padding_mode != "zeros"):
        return False
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        return False
    a, c = batchnorm_affine(bn)
    weight = layer.weight.data
    shift = (weight * c.view(1, -1, *([1] * (weight.dim() - 2)))).flatten(1).sum(1)
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device))
    layer.bias.data.add_(shift)
    weight.mul_(a.view(1, -1, *([1] * (weight.dim() - 2))))
    return True


def _handle_batchnorms(net: nn.Module, graph: Graph, roles: dict[int, Role], report: list[NodeReport]) -> None:
    for node in graph.nodes:
        if roles[node.index] is not Role.BATCHNORM:
            continue
        producer = graph.producer(node) if node.inputs else None
        users = sorted(set(node.users))
        consumer = graph.nodes[users[0]] if len(users) == 1 else None
        if (producer is not None and producer.kind == "module"
                and isinstance(producer.module, (nn.Conv1d, nn.Conv2d, nn.Linear)) and producer.users == [node.index]):
            fold_batchnorm_(producer.module, node.module)
            detail = f"into {producer.name}"
        elif (consumer is not None and consumer.kind == "module" and roles[consumer.index] is Role.WEIGHT
              and _fold_forward_(node.module, consumer.module)):
            detail = f"forward into {consumer.name}"
        else:
            _set_module(net, node.target, batchnorm_as_affine(node.module))
            node.module = net.get_submodule(node.target)
            roles[node.index] = Role.WEIGHT
            report.append(NodeReport(node.name, "BatchNorm", "converted", "to a per-channel affine layer"))
            continue
        _set_module(net, node.target, nn.Identity())
        node.module = net.get_submodule(node.target)
        roles[node.index] = Role.PASS
        report.append(NodeReport(node.name, "BatchNorm", "folded", detail))


def _prepare(model: nn.Module, example: Tensor, rules: dict[type, Role] | None
             ) -> tuple[nn.Module, Graph, dict[int, Role], list[NodeReport]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert() needs a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ConversionError("the model is in training mode; call model.eval() before convert()")
    if not isinstance(example, Tensor) or example.dim() < 1:
        raise TypeError("example must be an input tensor with a batch dimension, e.g. one batch of data")
    if example.is_floating_point() and not bool(torch.isfinite(example).all()):
        raise ValueError("the example input contains NaN or infinite values")
    net, notes = rewrite_functional(copy.deepcopy(model), rules)
    report = [NodeReport("-", "torch.fx", "note" if "could not trace" in note else "rewritten", note)
              for note in notes]
    graph = trace(net, example[:2])
    return net, graph, _roles(graph, rules), report


def inspect_model(model: nn.Module, example: Tensor, *, rules: dict[type, Role] | None = None) -> list[NodeReport]:
    """Coverage report, without converting: every traced operation as converted, passed, folded or
    unsupported, by node path (also what the torch.fx rewrite changed or could not check).

    Example:
        >>> rows = inspect_model(nn.Sequential(nn.Linear(2, 2), nn.GELU()).eval(), torch.zeros(1, 2))
        >>> [(r.node, r.status) for r in rows]
        [('0', 'converted'), ('1', 'unsupported')]
    """
    _, graph, roles, report = _prepare(model, example, rules)
    status = {Role.WEIGHT: "converted", Role.NEURON: "converted", Role.WADD: "converted", Role.MAXPOOL: "converted",
              Role.SOFTMAX: "converted", Role.BATCHNORM: "folded", Role.PASS: "passed", Role.CONCAT: "passed",
              Role.ADD: "passed", Role.UNSUPPORTED: "unsupported"}
    for node in graph.nodes[1:]:
        report.append(NodeReport(node.name, operation_name(node), status[roles[node.index]]))
    return report


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
        model: the ANN, in eval mode, with QReLU (learned bounds) or ReLU/ReLU6 activations.
        example: one input batch ``[B, ...]`` used to trace the dataflow.
        config: :class:`ConversionConfig` (threshold, reset, S^max, buffered neuron, normalization...).
        calibration: input batches for data-based normalization of plain ReLU activations.
        rules: extra ``{module type: Role}`` rules; they win over the defaults.

    Returns:
        A :class:`SpikingNetwork`; simulate it with :func:`spikeconv.sim.simulate`.

    Example:
        >>> ann = nn.Sequential(nn.Linear(2, 4), QReLU(levels=4, bound=1.0), nn.Linear(4, 2)).eval()
        >>> snn = convert(ann, torch.zeros(1, 2), ConversionConfig(max_strength=1))
        >>> [type(m).__name__ for m in snn.body]
        ['SkipSilentLinear', 'IFNeuron', 'SkipSilentLinear']
    """
    config = config or ConversionConfig()
    net, graph, roles, report = _prepare(model, example, rules)
    _check_supported(graph, roles)
    _handle_batchnorms(net, graph, roles, report)
    neuron_nodes = [n for n in graph.nodes if roles[n.index] is Role.NEURON]
    bounds: dict[int, Tensor] = {}
    for node in neuron_nodes:
        if isinstance(node.module, QReLU):
            bounds[node.index] = node.module.bound.detach().clamp(min=QReLU.min_bound).float().cpu()
    others = [n for n in neuron_nodes if n.index not in bounds]
    bounds.update(data_bounds(net, others, calibration, config.percentile, config.per_channel))
    bounds = {k: (v / config.max_strength).to(example.device) for k, v in bounds.items()}
    scaler = Scaler(graph, roles, config.threshold, config.input_scale,
                    spiking_maxpool=config.maxpool is not MaxPoolMode.AVERAGE)
    with torch.no_grad():
        scaler.run(bounds, report)
    for node in neuron_nodes:
        phi = config.phi if config.phi is not None else getattr(node.module, "phi", 0.0)
        neuron_config = NeuronConfig(threshold=config.threshold, reset=config.reset,
                                     max_strength=config.max_strength, signed=config.signed, phi=phi)
        clamp = (scaler.depth[node.index] - 1) * config.voltage_clamp
        _set_module(net, node.target, IFNeuron(neuron_config, clamp_steps=clamp))
    readout_softmax = None
    for node in graph.nodes:
        role = roles[node.index]
        if role is Role.MAXPOOL:
            pool = node.module
            if config.maxpool is MaxPoolMode.AVERAGE:
                new = nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
                report.append(NodeReport(node.name, "MaxPool2d", "replaced", "by average pooling (maxpool='average')"))
            else:
                new = SpikingMaxPool2d(pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode,
                                       mode="count" if config.maxpool is MaxPoolMode.COUNT else "gate")
            _set_module(net, node.target, new)
        elif role is Role.SOFTMAX:
            if graph.outputs != [node.index]:
                raise ConversionError(f"softmax '{node.name}' is only supported as the last operation of the model")
            if config.softmax is SoftmaxMode.SPIKING:
                _set_module(net, node.target, SpikingSoftmax(dim=node.module.dim))
            else:
                _set_module(net, node.target, nn.Identity())
                readout_softmax = node.module.dim if node.module.dim is not None else -1
    if len(graph.outputs) != 1 or graph.outputs[0] < 0:
        raise ConversionError("the model must return exactly one tensor computed from its input")
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if config.weight_bits is not None:
        quantize_weights_(net, graph, roles, config.weight_bits, signed=config.signed, max_strength=config.max_strength,
                          spiking_maxpool=config.maxpool is not MaxPoolMode.AVERAGE, skip_silent=config.skip_silent,
                          report=report)
    if config.skip_silent:
        skip_silent_frames_(net)
    if config.weight_bits is not None:  # spikes that only integer layers and weighted adds read travel as int8
        int8_spikes_(net, graph, roles)
    return SpikingNetwork(net, scaler.sigma[graph.outputs[0]], report, readout_softmax=readout_softmax)
