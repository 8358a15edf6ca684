"""A read-only dynamic trace of a model's dataflow, at the level the converter reasons about.

:func:`trace` runs the model once on an example input and records a :class:`Graph` of *nodes*: calls of
leaf modules (modules without children, or modules of a type the converter treats as one unit) and
torch functions called *between* modules (``x + y``, ``torch.flatten``, ``F.relu``, ``torch.cat``...).
It uses forward hooks and a ``TorchFunctionMode``; nothing on the model changes and every hook is
removed on exit, also after an exception. Because the trace follows the real execution, models with
data-dependent Python control flow trace fine (for the path the example input takes), which
``torch.fx`` cannot do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

#: torch functions that never produce data in the graph (metadata queries and the like).
_IGNORED_FUNCTIONS = {"size", "dim", "numel", "__get__", "__len__", "__format__", "__repr__", "__bool__",
                      "item", "tolist", "__iter__", "is_floating_point", "stride", "storage_offset",
                      "requires_grad_", "data_ptr", "__hash__", "__index__"}


@dataclass
class Node:
    """One recorded operation.

    ``kind`` is ``"input"``, ``"module"`` or ``"function"``; ``target`` is the module path (e.g.
    ``layer1.0.conv1``) or the function name (e.g. ``add``); ``inputs`` are the indices of the nodes whose
    outputs this node consumed, in argument order (``-1`` marks a tensor that no node produced, such as
    a constant or a parameter used functionally); ``args``/``kwargs`` are the call's arguments.
    """

    index: int
    kind: str
    target: str
    module: nn.Module | None = None
    func: Any = None
    inputs: list[int] = field(default_factory=list)
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    shape: tuple[int, ...] = ()
    users: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        """A readable path: the module path, or ``function:<name>#<index>``."""
        return self.target if self.kind != "function" else f"{self.target}#{self.index}"


@dataclass
class Graph:
    """The recorded nodes in execution order and the node indices of the model's output tensors."""

    nodes: list[Node]
    outputs: list[int]

    def producer(self, node: Node, k: int = 0) -> Node | None:
        """The node that produced ``node``'s ``k``-th tensor input (``None`` for a constant)."""
        index = node.inputs[k]
        return self.nodes[index] if index >= 0 else None


def _function_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or repr(func)
    return name


def trace(model: nn.Module, example: Tensor, *, leaf_types: tuple[type, ...] = ()) -> Graph:
    """Run ``model(example)`` once under ``torch.no_grad`` and record its dataflow :class:`Graph`.

    ``leaf_types`` are module types recorded as single nodes even if they have children.

    Example:
        >>> g = trace(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), torch.zeros(1, 2))
        >>> [n.target for n in g.nodes]
        ['input', '0', '1']
    """
    nodes: list[Node] = [Node(0, "input", "input", shape=tuple(example.shape[1:]))]
    producers: dict[int, int] = {id(example): 0}
    keep_alive: list[Tensor] = [example]
    depth = [0]
    names = {id(m): name for name, m in model.named_modules()}
    leaves = {id(m) for _, m in model.named_modules() if not list(m.children()) or isinstance(m, leaf_types)}

    def inputs_of(values: Any) -> list[int]:
        flat, _ = tree_flatten(values)
        return [producers.get(id(v), -1) for v in flat if isinstance(v, Tensor)]

    def add_node(kind: str, target: str, inputs: list[int], output: Any, **extra: Any) -> None:
        flat, _ = tree_flatten(output)
        tensors = [t for t in flat if isinstance(t, Tensor)]
        node = Node(len(nodes), kind, target, inputs=inputs,
                    shape=tuple(tensors[0].shape[1:]) if tensors else (), **extra)
        nodes.append(node)
        for index in set(inputs):
            if index >= 0:
                nodes[index].users.append(node.index)
        for t in tensors:
            producers[id(t)] = node.index
            keep_alive.append(t)

    pending: dict[int, list[int]] = {}

    def pre_hook(module: nn.Module, args: tuple) -> None:
        if id(module) in leaves and depth[0] == 0:
            pending[id(module)] = inputs_of(args)
        if id(module) in leaves:
            depth[0] += 1

    def post_hook(module: nn.Module, args: tuple, output: Any) -> None:
        if id(module) in leaves:
            depth[0] -= 1
            if depth[0] == 0:
                add_node("module", names.get(id(module), type(module).__name__), pending.pop(id(module)),
                         output, module=module)

    class _Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            if depth[0] == 0:
                name = _function_name(func)
                flat, _ = tree_flatten(result)
                if name not in _IGNORED_FUNCTIONS and any(isinstance(t, Tensor) for t in flat):
                    add_node("function", name, inputs_of((args, kwargs)), result, func=func,
                             args=args, kwargs=kwargs)
            return result

    handles = []
    try:
        for module in model.modules():
            if id(module) in leaves:
                handles.append(module.register_forward_pre_hook(pre_hook))
                handles.append(module.register_forward_hook(post_hook))
        with torch.no_grad(), _Recorder():
            output = model(example)
    finally:
        for handle in handles:
            handle.remove()
    flat, _ = tree_flatten(output)
    outputs = [producers.get(id(t), -1) for t in flat if isinstance(t, Tensor)]
    return Graph(nodes, outputs)
