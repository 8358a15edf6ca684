"""Rebuild an ``nn.Module`` tree from a ``torch.export`` program, so that the converter can replace its layers.

A ``torch.export`` artifact (``.pt2``) holds a graph of ATen operators whose weights are graph inputs:
there are no ``nn.Conv2d`` or ``nn.ReLU`` modules to replace. :func:`lift_exported` walks that graph once
and writes a new ``torch.fx.GraphModule`` in which every operator with a module counterpart becomes that
module, holding copies of the program's own tensors:

==========================================================  ============================================
ATen operator                                               becomes
==========================================================  ============================================
``conv1d``, ``conv2d``                                      ``nn.Conv1d`` / ``nn.Conv2d``
``linear``                                                  ``nn.Linear``
``batch_norm``, ``_native_batch_norm_legit_no_training``    ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` (eval)
``relu``, ``relu_``, ``clamp_min(x, 0)``, ``clamp(x, 0)``   ``nn.ReLU``
``relu6``, ``hardtanh(x, 0, m)``, ``clamp(x, 0, m)``        ``nn.Hardtanh(0, m)`` (``ReLU6``)
``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d``     the pooling modules
``mean(x, [-1, -2])``                                       ``nn.AdaptiveAvgPool2d(1)`` (+ ``flatten``)
``dropout``                                                 ``nn.Dropout``
``softmax``, ``_softmax``                                   ``nn.Softmax``
``add``/``add_`` (two tensors), ``cat``, ``flatten``,       ``x + y``, ``torch.cat``, ``torch.flatten``,
``view``, ``reshape``                                       ``torch.reshape`` (the converter's own rules)
``clone``, ``contiguous``, ``alias``, ``detach``            nothing (the value passes through)
==========================================================  ============================================

Every other operator is kept as it is, so the converter's coverage report names it (e.g. ``silu.default``)
as unsupported instead of converting silently.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import Tensor, fx, nn

from ..errors import ConversionError

_PASS_THROUGH = {"clone", "contiguous", "alias", "detach", "lift_fresh_copy"}


def _packet(target: Any) -> str:
    """``conv2d`` for ``torch.ops.aten.conv2d.default``; ``""`` for anything that is not an ATen operator."""
    packet = getattr(target, "_overloadpacket", None)
    return getattr(packet, "__name__", "") if packet is not None else ""


def _bind(node: fx.Node) -> dict[str, Any]:
    """The node's arguments by schema name, defaults filled in."""
    schema = node.target._schema
    bound: dict[str, Any] = {}
    for k, argument in enumerate(schema.arguments):
        if k < len(node.args):
            bound[argument.name] = node.args[k]
        elif argument.name in node.kwargs:
            bound[argument.name] = node.kwargs[argument.name]
        elif argument.has_default_value():
            bound[argument.name] = argument.default_value
    return bound


def _rank(node: fx.Node) -> int | None:
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    return value.dim() if isinstance(value, Tensor) else None


def _pair(value: Any, length: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * length
    values = tuple(int(v) for v in value)
    return values * length if len(values) == 1 else values


class _Lifter:
    """One pass over the exported graph (see the module docstring)."""

    def __init__(self, source: fx.GraphModule) -> None:
        self.source = source
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.env: dict[fx.Node, Any] = {}
        self.tensors: dict[fx.Node, Tensor] = {}
        self.count: dict[str, int] = {}

    def tensor(self, value: Any) -> Tensor | None:
        if value is None:
            return None
        if isinstance(value, fx.Node) and value in self.tensors:
            return self.tensors[value]
        raise ConversionError(f"operator input {value} is computed inside the graph, not a stored weight; "
                              "export the model with its weights as parameters")

    def add_module(self, kind: str, module: nn.Module, *inputs: Any) -> fx.Node:
        index = self.count.get(kind, 0)
        self.count[kind] = index + 1
        name = f"{kind}{index}"
        self.root.add_module(name, module)
        return self.graph.call_module(name, tuple(self.value(v) for v in inputs))

    def value(self, arg: Any) -> Any:
        """The new graph's value for an argument of the old graph (weights used as data become buffers)."""
        if isinstance(arg, fx.Node):
            if arg in self.env:
                return self.env[arg]
            if arg in self.tensors:  # a stored tensor used as data: register it once
                name = f"constant_{arg.name}"
                self.root.register_buffer(name, self.tensors[arg].detach().clone())
                self.env[arg] = self.graph.get_attr(name)
                return self.env[arg]
            raise ConversionError(f"exported graph node {arg.name} is used before it is defined")
        if isinstance(arg, (list, tuple)):
            return type(arg)(self.value(a) for a in arg)
        return arg

    def run(self) -> fx.GraphModule:
        for node in self.source.graph.nodes:
            if node.op == "placeholder":
                self.env[node] = self.graph.placeholder(node.name)
            elif node.op == "get_attr":
                target = self.source
                for part in node.target.split("."):
                    target = getattr(target, part)
                if isinstance(target, Tensor):
                    self.tensors[node] = target
                # submodules (the export's guard function) carry no computation
            elif node.op == "call_module":
                if not node.target.startswith("_guards"):
                    raise ConversionError(f"unexpected module call {node.target} in the exported graph")
            elif node.op == "call_function":
                self.env[node] = self.lift(node)
            elif node.op == "output":
                outputs = self.value(node.args[0])
                single = isinstance(outputs, (list, tuple)) and len(outputs) == 1
                self.graph.output(outputs[0] if single else outputs)
        self.graph.lint()
        return fx.GraphModule(self.root, self.graph, class_name="LiftedExport")

    def lift(self, node: fx.Node) -> Any:
        if node.target is operator.getitem:
            source, index = node.args
            lifted = self.env.get(source)
            if isinstance(lifted, tuple):  # an operator with several outputs, lifted to one module output
                return lifted[index]
            return self.graph.call_function(operator.getitem, (self.value(source), index))
        name = _packet(node.target)
        if not name:
            return self.graph.call_function(node.target, self.value(node.args), self.value(node.kwargs))
        args = _bind(node)
        x = args.get("input", args.get("self"))
        if name in _PASS_THROUGH:
            return self.value(x)
        builder = getattr(self, f"_lift_{name}", None)
        if builder is not None:
            lifted = builder(node, args, x)
            if lifted is not None:
                return lifted
        return self.graph.call_function(node.target, self.value(node.args), self.value(node.kwargs))

    # --- weight layers -------------------------------------------------------------------------------
    def _conv(self, args: dict, x: Any, dims: int) -> fx.Node:
        weight, bias = self.tensor(args["weight"]), self.tensor(args.get("bias"))
        groups = int(args.get("groups", 1))
        padding = args.get("padding", 0)
        klass = nn.Conv1d if dims == 1 else nn.Conv2d
        conv = klass(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
                     stride=_pair(args.get("stride", 1), dims),
                     padding=padding if isinstance(padding, str) else _pair(padding, dims),
                     dilation=_pair(args.get("dilation", 1), dims), groups=groups, bias=bias is not None)
        conv.weight = nn.Parameter(weight.detach().clone())
        if bias is not None:
            conv.bias = nn.Parameter(bias.detach().clone())
        return self.add_module("conv", conv, x)

    def _lift_conv2d(self, node, args, x):
        return self._conv(args, x, 2)

    def _lift_conv1d(self, node, args, x):
        return self._conv(args, x, 1)

    def _lift_linear(self, node, args, x):
        weight, bias = self.tensor(args["weight"]), self.tensor(args.get("bias"))
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        linear.weight = nn.Parameter(weight.detach().clone())
        if bias is not None:
            linear.bias = nn.Parameter(bias.detach().clone())
        return self.add_module("linear", linear, x)

    def _batchnorm(self, node, args, x) -> fx.Node:
        if args.get("training"):
            raise ConversionError(f"{node.name}: batch norm was exported in training mode; call model.eval() "
                                  "before torch.export.export")
        mean, var = self.tensor(args["running_mean"]), self.tensor(args["running_var"])
        weight, bias = self.tensor(args.get("weight")), self.tensor(args.get("bias"))
        rank = _rank(node.args[0])
        klass = nn.BatchNorm2d if rank in (None, 4) else nn.BatchNorm1d
        norm = klass(mean.numel(), eps=float(args["eps"]), affine=weight is not None)
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)
        if weight is not None:
            norm.weight.data.copy_(weight)
            norm.bias.data.copy_(bias if bias is not None else torch.zeros_like(weight))
        return self.add_module("bn", norm.eval(), x)

    def _lift_batch_norm(self, node, args, x):
        return self._batchnorm(node, args, x)

    def _lift__native_batch_norm_legit_no_training(self, node, args, x):
        out = self._batchnorm(node, {**args, "training": False}, x)
        return (out, None, None)

    # --- activations ---------------------------------------------------------------------------------
    def _lift_relu(self, node, args, x):
        return self.add_module("relu", nn.ReLU(), x)

    _lift_relu_ = _lift_relu

    def _lift_hardtanh(self, node, args, x):
        return self.add_module("hardtanh", nn.Hardtanh(float(args["min_val"]), float(args["max_val"])), x)

    _lift_hardtanh_ = _lift_hardtanh

    def _lift_relu6(self, node, args, x):
        return self.add_module("hardtanh", nn.Hardtanh(0.0, 6.0), x)

    _lift_relu6_ = _lift_relu6

    def _lift_clamp(self, node, args, x):
        low, high = args.get("min"), args.get("max")
        if isinstance(low, (int, float)) and low == 0 and high is None:
            return self.add_module("relu", nn.ReLU(), x)
        if isinstance(low, (int, float)) and low == 0 and isinstance(high, (int, float)):
            return self.add_module("hardtanh", nn.Hardtanh(0.0, float(high)), x)
        return None

    def _lift_clamp_min(self, node, args, x):
        low = args.get("min")
        return self.add_module("relu", nn.ReLU(), x) if isinstance(low, (int, float)) and low == 0 else None

    # --- pooling, reshaping, joining -----------------------------------------------------------------
    def _lift_max_pool2d(self, node, args, x):
        kernel = _pair(args["kernel_size"], 2)
        stride = _pair(args["stride"], 2) if args.get("stride") else kernel
        return self.add_module("maxpool", nn.MaxPool2d(kernel, stride, _pair(args.get("padding", 0), 2),
                                                       _pair(args.get("dilation", 1), 2),
                                                       ceil_mode=bool(args.get("ceil_mode", False))), x)

    def _lift_avg_pool2d(self, node, args, x):
        kernel = _pair(args["kernel_size"], 2)
        stride = _pair(args["stride"], 2) if args.get("stride") else kernel
        pool = nn.AvgPool2d(kernel, stride, _pair(args.get("padding", 0), 2), ceil_mode=bool(args.get("ceil_mode")),
                            count_include_pad=bool(args.get("count_include_pad", True)),
                            divisor_override=args.get("divisor_override"))
        return self.add_module("avgpool", pool, x)

    def _lift_adaptive_avg_pool2d(self, node, args, x):
        return self.add_module("avgpool", nn.AdaptiveAvgPool2d(tuple(args["output_size"])), x)

    def _lift_mean(self, node, args, x):
        dims = args.get("dim")
        rank = _rank(node.args[0])
        if rank != 4 or dims is None or sorted(d % 4 for d in dims) != [2, 3]:
            return None
        pooled = self.add_module("avgpool", nn.AdaptiveAvgPool2d(1), x)
        return pooled if args.get("keepdim") else self.graph.call_function(torch.flatten, (pooled, 1))

    def _lift_dropout(self, node, args, x):
        return self.add_module("dropout", nn.Dropout(float(args.get("p", 0.5))), x)

    def _lift_softmax(self, node, args, x):
        return self.add_module("softmax", nn.Softmax(int(args["dim"])), x)

    _lift__softmax = _lift_softmax

    def _lift_add(self, node, args, x):
        other = args.get("other")
        if not (isinstance(other, fx.Node) and args.get("alpha", 1) == 1):
            return None
        return self.graph.call_function(operator.add, (self.value(x), self.value(other)))

    _lift_add_ = _lift_add

    def _lift_cat(self, node, args, x):
        return self.graph.call_function(torch.cat, (self.value(list(args["tensors"])), int(args.get("dim", 0))))

    def _lift_flatten(self, node, args, x):
        return self.graph.call_function(torch.flatten, (self.value(x), int(args.get("start_dim", 0)),
                                                        int(args.get("end_dim", -1))))

    def _lift_view(self, node, args, x):
        return self.graph.call_function(torch.reshape, (self.value(x), self.value(list(args["size"]))))

    _lift__unsafe_view = _lift_view

    def _lift_reshape(self, node, args, x):
        return self.graph.call_function(torch.reshape, (self.value(x), self.value(list(args["shape"]))))


def lift_exported(program: "torch.export.ExportedProgram") -> fx.GraphModule:
    """A module tree equivalent to ``program`` (see the module docstring), in eval mode.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
        >>> program = torch.export.export(net, (torch.randn(1, 1, 5, 5),))
        >>> sorted(type(m).__name__ for m in lift_exported(program).children())
        ['Conv2d', 'ReLU']
    """
    module = program.module()
    return _Lifter(module).run().eval()
