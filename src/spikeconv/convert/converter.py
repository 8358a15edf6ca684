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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConversionError, UnsupportedLayerError, is_count
from ..layers.grid import check_weight_bits
from ..layers.sparse import skip_silent_frames_
from ..neuron import NeuronConfig, Reset, check_max_strength
from .graph import Graph, Node, trace
from .integer import int8_spikes_, quantize_weights_
from .network import NodeReport, SpikingNetwork
from .registry import Role, Rule, operation_name, rule_of
from .rewrite import rewrite_functional
from .scaling import Scaler, data_bounds


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
        phi: initial membrane fraction; ``None`` takes each QReLU's ``phi``, and 0.5 for plain ReLUs
            (``convert.ops.neurons.RELU_PHI``: the half-threshold start that rounds instead of flooring).
        percentile: for plain ReLU, the bound is this percentile of its positive calibration
            activations (100 = the maximum, Diehl 2015; 99.9/99.99 = robust normalization, paper 004).
        per_channel: for plain ReLU, one bound per channel instead of per layer. The plain-ReLU defaults
            (99.9th percentile per channel, ``phi`` 0.5) were the most accurate at T = 8..256 on two CIFAR-10
            CNNs (benchmarks/relu_latency.py, docs/results.md); paper 004's setting is ``percentile=99.99,
            per_channel=False, phi=0.0``.
        input_scale: the value one input unit stands for (1 for analog input; the encoder's scale for
            rate-coded input, e.g. 1 for Poisson spikes of pixels in [0, 1]).
        voltage_clamp: paper 004's voltage clamp: a neuron ``d`` neuron layers deep holds its membrane
            for ``(d - 1) * voltage_clamp`` steps before integrating (0 = off).
        maxpool: :class:`MaxPoolMode`: ``"count"`` (default; output count = max of input counts),
            ``"spiking"`` (the SNN Toolbox gate of paper 004) or ``"average"`` (opt-in approximation).
        softmax: :class:`SoftmaxMode`.
        channels_last: store 4-D weights channels-last (NHWC); the convolutions, neuron states and
            spikes then stay channels-last. Measured about 25% faster on CPU (docs/simulation.md).
        skip_silent: plain ``Conv2d`` and ``Linear`` layers become :class:`~spikeconv.layers.SkipSilentConv2d`
            / :class:`~spikeconv.layers.SkipSilentLinear`: frames (sample x step) without any spike are not
            computed, their output is the bias (exact; pays where layers are silent for whole steps, e.g.
            during the voltage clamp or before deep layers start firing; docs/simulation.md).
        weight_bits: ``None`` keeps the float weights; ``b`` (2..8) puts every Conv/Linear weight on a ``b``-bit
            grid with one scale per output channel (hardware weights), and layers whose input is spikes
            compute in exact integer arithmetic (:class:`~spikeconv.layers.IntegerConv2d`; 2-3x faster
            convolutions on x86 CPUs, docs/simulation.md). Changes accuracy slightly: measure it. Neurons
            whose spikes go only to integer layers and weighted adds then emit int8 spikes
            (``IFNeuron.spike_dtype``; same values, a quarter of the memory).
    """

    threshold: float = 1.0
    reset: Reset = Reset.SUBTRACT
    max_strength: int = 1
    signed: bool = True
    phi: float | None = None
    percentile: float = 99.9
    per_channel: bool = True
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
        if not is_count(self.voltage_clamp, least=0):
            raise ValueError(f"voltage_clamp must be a non-negative integer, got {self.voltage_clamp!r}")
        NeuronConfig(threshold=self.threshold, phi=self.phi or 0.0)  # validates both


def _rules(graph: Graph, user: Mapping[type, Any] | None) -> dict[int, Rule]:
    return {node.index: rule_of(node, user) for node in graph.nodes}


def _check_supported(graph: Graph, rules: dict[int, Rule]) -> None:
    bad = [n for n in graph.nodes if not rules[n.index].supports(n.module)]
    if bad:
        shown = 8
        listing = ", ".join(f"'{n.name}' ({operation_name(n)})" for n in bad[:shown])
        more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
        raise UnsupportedLayerError(
            f"cannot convert {len(bad)} operation(s): {listing}{more} ('spikeconv inspect' lists them all). "
            "Options: replace them by supported layers (ReLU/QReLU/ReLU6 activations, Conv/Linear/BatchNorm, "
            "pooling, WAdd, Concat), or register a rule: convert(..., rules={YourModule: spikeconv.Role.PASS}) "
            "or spikeconv.register_rule(YourModule, rule) (docs/conversion.md)")
    calls: dict[int, list[Node]] = {}
    for node in graph.nodes:
        if node.kind == "module":
            calls.setdefault(id(node.module), []).append(node)
    for nodes in calls.values():
        if len(nodes) > 1 and rules[nodes[0].index].role not in (Role.PASS, Role.CONCAT):
            raise ConversionError(
                f"module '{nodes[0].target}' ({operation_name(nodes[0])}) is called {len(nodes)} times in one "
                "forward pass and the model could not be rewritten by torch.fx; a spiking layer needs its own "
                "state and scale per call: give each call its own module instance")


def _prepare(model: nn.Module, example: Tensor, rules: Mapping[type, Any] | None
             ) -> tuple[nn.Module, Graph, dict[int, Rule], list[NodeReport]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert() needs a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ConversionError("the model is in training mode; call model.eval() before convert()")
    if not isinstance(example, Tensor) or example.dim() < 1:
        raise TypeError("example must be an input tensor with a batch dimension, e.g. one batch of data")
    if example.shape[0] == 0:
        raise ValueError("the example input is an empty batch; give at least one sample")
    if example.is_floating_point() and not bool(torch.isfinite(example).all()):
        raise ValueError("the example input contains NaN or infinite values")
    bad = [name for name, t in [*model.named_parameters(), *model.named_buffers()]
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ConversionError(f"the model holds NaN or infinite values in {', '.join(bad[:4])}"
                              f"{f' and {len(bad) - 4} more' if len(bad) > 4 else ''}; fix the weights before converting")
    net, notes = rewrite_functional(copy.deepcopy(model), rules)
    report = [NodeReport("-", "torch.fx", "note" if "could not trace" in note else "rewritten", note)
              for note in notes]
    try:
        graph = trace(net, example[:2])
    except RuntimeError as exc:
        raise ConversionError(f"the model does not run on an example input of shape {tuple(example.shape)} "
                              f"({str(exc).splitlines()[0]}); give an input of the shape it was trained on") from exc
    return net, graph, _rules(graph, rules), report


def inspect_model(model: nn.Module, example: Tensor, *, rules: Mapping[type, Any] | None = None) -> list[NodeReport]:
    """Coverage report, without converting: every traced operation as converted, passed, folded or
    unsupported, by node path (also what the torch.fx rewrite changed or could not check).

    Example:
        >>> rows = inspect_model(nn.Sequential(nn.Linear(2, 2), nn.GELU()).eval(), torch.zeros(1, 2))
        >>> [(r.node, r.status) for r in rows]
        [('0', 'converted'), ('1', 'unsupported')]
    """
    _, graph, node_rules, report = _prepare(model, example, rules)
    for node in graph.nodes[1:]:
        rule = node_rules[node.index]
        report.append(NodeReport(node.name, operation_name(node), rule.status if rule.supports(node.module)
                                 else "unsupported"))
    return report


def convert(
    model: nn.Module,
    example: Tensor,
    config: ConversionConfig | None = None,
    *,
    calibration: Iterable[Tensor] | None = None,
    rules: Mapping[type, Any] | None = None,
) -> SpikingNetwork:
    r"""Convert a trained ANN into a hardware-faithful SNN; the input model is never modified.

    Args:
        model: the ANN, in eval mode, with QReLU (learned bounds) or ReLU/ReLU6 activations.
        example: one input batch ``[B, ...]`` used to trace the dataflow.
        config: :class:`ConversionConfig` (threshold, reset, S^max, buffered neuron, normalization...).
        calibration: input batches for data-based normalization of plain ReLU activations.
        rules: extra ``{module type: Rule | Role}`` rules for this call; they win over the registered ones
            (:func:`spikeconv.convert.register_rule` adds rules for every call).

    Returns:
        A :class:`SpikingNetwork`; simulate it with :func:`spikeconv.sim.simulate`.

    Example:
        >>> from spikeconv.quant import QReLU
        >>> ann = nn.Sequential(nn.Linear(2, 4), QReLU(levels=4, bound=1.0), nn.Linear(4, 2)).eval()
        >>> snn = convert(ann, torch.zeros(1, 2), ConversionConfig(max_strength=1))
        >>> [type(m).__name__ for m in snn.body]
        ['SkipSilentLinear', 'IFNeuron', 'SkipSilentLinear']
    """
    config = ConversionConfig() if config is None else config
    if not isinstance(config, ConversionConfig):
        raise TypeError(f"config must be a spikeconv.ConversionConfig, got {type(config).__name__}; e.g. "
                        "ConversionConfig(signed=True, max_strength=2)")
    net, graph, node_rules, report = _prepare(model, example, rules)
    _check_supported(graph, node_rules)
    scaler = Scaler(net, graph, node_rules, config, report)
    for node in graph.nodes:  # BatchNorm folds away before any scale is set
        fold = getattr(node_rules[node.index], "fold_", None)
        if fold is not None:
            node_rules[node.index] = fold(scaler, node)
    neuron_nodes = [n for n in graph.nodes if node_rules[n.index].role is Role.NEURON]
    bounds: dict[int, Tensor] = {}
    for node in neuron_nodes:
        learned = node_rules[node.index].learned_bound(node.module)
        if learned is not None:
            bounds[node.index] = learned
    others = [n for n in neuron_nodes if n.index not in bounds]
    bounds.update(data_bounds(net, others, calibration, config.percentile, config.per_channel))
    with torch.no_grad():
        scaler.run({k: (v / config.max_strength).to(example.device) for k, v in bounds.items()})
    for node in graph.nodes:
        new = node_rules[node.index].spiking(node, config, scaler)
        if new is not None:
            scaler.set_module(node, new)
    if len(graph.outputs) != 1 or graph.outputs[0] < 0:
        raise ConversionError("the model must return exactly one tensor computed from its input")
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if config.weight_bits is not None:
        quantize_weights_(net, graph, scaler, config.weight_bits, report=report)
    if config.skip_silent:
        skip_silent_frames_(net)
    if config.weight_bits is not None:  # spikes that only integer layers and weighted adds read travel as int8
        int8_spikes_(net, graph, node_rules)
    return SpikingNetwork(net, scaler.sigma[graph.outputs[0]], report, readout_softmax=scaler.readout_softmax,
                          input_shape=tuple(example.shape[1:]))
