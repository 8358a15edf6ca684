"""Scale propagation through a traced graph (the core of Algorithm 1), and data-based bounds for ReLU.

Every tensor of the SNN carries a scale ``sigma``: ``ANN value = sigma * SNN value``. The
:class:`Scaler` walks the graph once and asks each node's :class:`~spikeconv.convert.Rule` for its output
scale; what each operation does is in its rule (:mod:`spikeconv.convert.ops`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..errors import ConversionError
from ..layers.replace import set_submodule
from ..quant import percentile
from .graph import Graph, Node
from .network import NodeReport
from .ops import NeuronRule
from .registry import Rule, operation_name


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
    batches, informative = 0, False
    try:
        for batch in calibration:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
            if not isinstance(batch, Tensor):
                raise ConversionError(f"calibration batches must be tensors, got {type(batch).__name__}")
            try:
                net(batch)
            except RuntimeError as exc:
                raise ConversionError(f"a calibration batch of shape {tuple(batch.shape)} does not fit the model "
                                      f"({str(exc).splitlines()[0]}); calibrate with inputs like the training "
                                      "data") from exc
            batches += 1
            if batch.numel() and not informative:  # one varying input is enough
                informative = bool(batch.ne(batch.reshape(-1)[0]).any())
    finally:
        for handle in handles:
            handle.remove()
    if batches == 0:
        raise ConversionError("the calibration data yielded no batches; give at least one batch of inputs")
    if not informative:
        raise ConversionError("every calibration input is one constant value (all zeros?), so the activations "
                              "it gives do not measure the data; calibrate with real training images")
    if not any(bool((torch.cat(seen[n.index], dim=-1) > 0).any()) for n in nodes):
        raise ConversionError(
            f"no activation of the {len(nodes)} plain ReLU layer(s) was ever positive on the calibration batches "
            "(all-zero or unrepresentative inputs?); calibrate with real training images")
    bounds = {}
    for node in nodes:
        values = torch.cat(seen[node.index], dim=-1)
        cap = NeuronRule.cap(node.module)
        rows = values if (per_channel and values.dim() == 2) else values.reshape(1, -1)
        lams = []
        for row in rows:
            positive = row[row > 0]
            lams.append(percentile(positive, p) if positive.numel() else torch.tensor(1.0))
        lam = torch.stack(lams).clamp(min=1e-6, max=cap)
        bounds[node.index] = lam.view(-1, *([1] * (len(node.shape) - 1))) if rows.shape[0] > 1 else lam.reshape(())
    return bounds


class Scaler:
    """The state of one conversion: the traced graph, each node's rule, and every tensor's scale.

    :meth:`run` walks the graph in execution order; each rule sets its node's output scale ``sigma`` (and
    rescales its parameters), neurons push ``sigma_in * V_th / lambda`` back through :meth:`push_gain`.
    ``spiking[i]`` says whether node ``i``'s output holds only integer spikes; ``depth[i]`` counts the neuron
    layers on the longest path from the input (for the voltage clamp).
    """

    def __init__(self, net: nn.Module, graph: Graph, rules: dict[int, Rule], config, report: list[NodeReport]) -> None:
        self.net, self.graph, self.rules, self.config, self.report = net, graph, rules, config, report
        self.spiking_maxpool = config.maxpool.value != "average"
        self.bounds: dict[int, Tensor] = {}
        self.sigma: dict[int, Tensor] = {}
        self.spiking: dict[int, bool] = {}
        self.depth: dict[int, int] = {}
        self.readout_softmax: int | None = None

    def rule(self, node: Node) -> Rule:
        return self.rules[node.index]

    def input_shape(self, node: Node, k: int = 0) -> tuple[int, ...]:
        return self.graph.nodes[node.inputs[k]].shape

    def note(self, node: Node, status: str, detail: str = "", operation: str | None = None) -> None:
        """Add a line to the conversion report."""
        self.report.append(NodeReport(node.name, operation or operation_name(node), status, detail))

    def set_module(self, node: Node, new: nn.Module) -> None:
        """Put ``new`` in place of ``node``'s module in the network being converted."""
        set_submodule(self.net, node.target, new)
        node.module = new

    def push_gain(self, node: Node, gain: Tensor, consumer: Node) -> None:
        """Make ``node``'s output ``gain`` times larger for the neuron ``consumer`` (through its rule)."""
        if len(set(node.users)) > 1:
            raise ConversionError(
                f"the current of neuron '{consumer.name}' comes from '{node.name}', whose output also feeds "
                "other layers, so it cannot be rescaled for this neuron alone; insert a separate Conv/Linear "
                "or a WAdd before the activation")
        self.rule(node).push_gain(self, node, gain, consumer)

    def run(self, bounds: dict[int, Tensor]) -> None:
        self.bounds = bounds
        for node in self.graph.nodes:
            self.depth[node.index] = max((self.depth[i] for i in node.inputs if i >= 0), default=0)
            if node.kind == "input":
                self.sigma[node.index] = torch.tensor(float(self.config.input_scale))
                self.spiking[node.index] = False
                continue
            rule = self.rule(node)
            ins = [self.sigma[i] if i >= 0 else None for i in node.inputs]
            self.sigma[node.index] = rule.propagate(self, node, ins)
            self.spiking[node.index] = rule.keeps_spikes(node, [self.spiking.get(i, False) for i in node.inputs],
                                                         self.config)

