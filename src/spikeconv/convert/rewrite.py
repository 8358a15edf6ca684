"""A torch.fx rewrite that makes functional code convertible by module replacement.

Module replacement (swap one module for one module) keeps the user's classes and state-dict keys but
cannot see ``F.relu(x)`` or ``x + y`` in a ``forward``. When the model is symbolically traceable, this
pass rewrites, on a copy:

* functional activations (``F.relu``, ``torch.relu``, ``x.relu()``, ``relu_``, ``clamp(min=0)``,
  ``clamp(0, m)``, ``F.relu6``, ``F.hardtanh(x, 0, m)``) into ``nn.ReLU`` / ``nn.Hardtanh`` modules;
* tensor additions (``x + y``, ``x += y``, ``torch.add``) into :class:`~spikeconv.layers.WAdd`;
* ``F.max_pool2d`` into ``nn.MaxPool2d``;
* a module called more than once (e.g. torchvision's ``self.relu``) into one copy per call.

If tracing fails (data-dependent control flow), the model is returned unchanged with a note saying that
functional operations were not rewritten; the runtime trace of the converter still sees every operation
and reports the unsupported ones by name instead of converting silently.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..layers import WAdd
from .registry import REGISTRY, Role

_RELU_FUNCTIONS = {F.relu, torch.relu, torch.relu_, getattr(F, "relu_", F.relu)}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_ADD_METHODS = {"add", "add_", "__add__", "__iadd__"}
_STATEFUL_WHEN_CONVERTED = (nn.ReLU, nn.Hardtanh, nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d,
                            nn.MaxPool2d, WAdd)


def _arg(node: fx.Node, index: int, name: str, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _activation_for(node: fx.Node) -> nn.Module | None:
    """The module equal to a functional activation node, or None if the node is not one."""
    target = node.target
    if node.op == "call_function" and target in _RELU_FUNCTIONS:
        return nn.ReLU()
    if node.op == "call_method" and target in ("relu", "relu_"):
        return nn.ReLU()
    if (node.op == "call_function" and target in (torch.clamp, torch.clip)) or (
        node.op == "call_method" and target in ("clamp", "clamp_", "clip", "clip_")
    ):
        low, high = _arg(node, 1, "min"), _arg(node, 2, "max")
        if low == 0 and high is None:
            return nn.ReLU()
        if low == 0 and isinstance(high, (int, float)) and high > 0:
            return nn.Hardtanh(0.0, float(high))
        return None
    if node.op == "call_function" and target is F.relu6:
        return nn.Hardtanh(0.0, 6.0)
    if node.op == "call_function" and target is F.hardtanh:
        low, high = _arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0)
        return nn.Hardtanh(0.0, float(high)) if low == 0 else None
    return None


def _is_tensor_add(node: fx.Node) -> bool:
    is_add = (node.op == "call_function" and node.target in _ADD_FUNCTIONS) or (
        node.op == "call_method" and node.target in _ADD_METHODS
    )
    if not is_add or len(node.args) < 2 or node.kwargs.get("alpha", 1) != 1:
        return False
    return all(isinstance(a, fx.Node) for a in node.args[:2])


class _Tracer(fx.Tracer):
    """Keeps every module without children, and every module with a conversion rule, as one call."""

    def __init__(self, rules: Mapping[type, Any] | None) -> None:
        super().__init__()
        self.rules = rules

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if not list(m.children()) or REGISTRY.lookup(m, self.rules).role is not Role.UNSUPPORTED:
            return not isinstance(m, nn.Sequential)
        return super().is_leaf_module(m, module_qualified_name)


def rewrite_functional(model: nn.Module, rules: Mapping[type, Any] | None = None) -> tuple[nn.Module, list[str]]:
    """Return ``(model or a rewritten fx.GraphModule copy, notes)``; ``model`` itself is not modified.

    The result shares submodules with ``model``; :func:`~spikeconv.convert.convert` calls it on its own copy.

    Example:
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__(); self.fc = nn.Linear(2, 2)
        ...     def forward(self, x):
        ...         return torch.relu(self.fc(x)) + x
        >>> rewritten, notes = rewrite_functional(Net())
        >>> sorted(type(m).__name__ for m in rewritten.children())
        ['Linear', 'ReLU', 'WAdd']
    """
    try:
        tracer = _Tracer(rules)
        graph = tracer.trace(model)
        gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: fall back, and say so
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return model, [f"torch.fx could not trace the model ({reason}); functional operations were not rewritten "
                       "and are checked by the runtime trace only"]
    notes: list[str] = []
    graph = gm.graph
    calls: dict[str, int] = {}
    counter = 0
    for node in list(graph.nodes):
        replacement: nn.Module | None = None
        inputs: tuple = ()
        activation = _activation_for(node)
        if activation is not None:
            replacement, inputs = activation, (node.args[0],)
        elif _is_tensor_add(node):
            replacement, inputs = WAdd(), tuple(node.args[:2])
        elif node.op == "call_function" and node.target is F.max_pool2d:
            replacement = nn.MaxPool2d(_arg(node, 1, "kernel_size"), _arg(node, 2, "stride"), _arg(node, 3, "padding", 0),
                                       _arg(node, 4, "dilation", 1), ceil_mode=bool(_arg(node, 5, "ceil_mode", False)))
            inputs = (node.args[0],)
        elif node.op == "call_module" and REGISTRY.lookup(gm.get_submodule(node.target), rules).role is Role.ADD:
            replacement, inputs = WAdd(), tuple(node.args[:2])
        elif node.op == "call_module":
            module = gm.get_submodule(node.target)
            calls[node.target] = calls.get(node.target, 0) + 1
            if calls[node.target] > 1 and isinstance(module, _STATEFUL_WHEN_CONVERTED):
                name = f"{node.target.replace('.', '_')}_call{calls[node.target]}"
                gm.add_submodule(name, copy.deepcopy(module))
                notes.append(f"module '{node.target}' is called {calls[node.target]} times: call "
                             f"{calls[node.target]} uses its own copy '{name}'")
                node.target = name
            continue
        if replacement is None:
            continue
        counter += 1
        name = f"spikeconv_{type(replacement).__name__.lower()}_{counter}"
        gm.add_submodule(name, replacement)
        with graph.inserting_after(node):
            new = graph.call_module(name, args=inputs)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        notes.append(f"'{node.name}' ({getattr(node.target, '__name__', node.target)}) rewritten as module "
                     f"'{name}' ({type(replacement).__name__})")
    if not notes:
        return model, []
    graph.lint()
    gm.recompile()
    return gm, notes
