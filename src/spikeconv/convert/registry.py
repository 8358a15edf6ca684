"""The conversion registry: every operation the converter knows is one :class:`Rule` object.

A rule says, in one place, everything the library needs to know about one operation (a module type or a
torch function called between modules):

* ``role``: a label for reports and for the shorthand ``convert(..., rules={MyModule: Role.PASS})``;
* :meth:`Rule.propagate`: how the scale of its output follows from its inputs' (Algorithm 1 of paper 000;
  weight layers absorb their input scale into their weights here);
* :meth:`Rule.push_gain`: how its output can be made ``g`` times larger for the neuron it feeds;
* :meth:`Rule.keeps_spikes`: whether integer spikes in give integer spikes out;
* :meth:`Rule.spiking`: the module that replaces it in the SNN (``None``: kept as it is);
* :meth:`Rule.analog`: the rate (ANN) twin of that spiking module, for :mod:`spikeconv.analysis`;
* :meth:`Rule.fanout` and :meth:`Rule.macs`: its synaptic operations and its ANN multiply-accumulates;
* ``export``: its mapping to an interchange format (filled by :mod:`spikeconv.export`).

Lookup is by type along the MRO (a subclass inherits its base's rule unless it has its own), user rules
first, then the registered ones. Adding an operation is one file::

    from spikeconv.convert import PassRule, register_rule

    class Shuffle(nn.Module): ...                      # a user layer that commutes with positive scales

    register_rule(Shuffle, PassRule())                 # or per call: convert(..., rules={Shuffle: PassRule()})

The scale notation: every tensor of the SNN carries a scale ``sigma`` with ``ANN value = sigma * SNN value``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from ..errors import ConversionError

if TYPE_CHECKING:  # pragma: no cover
    from .converter import ConversionConfig
    from .graph import Node
    from .scaling import Scaler


class Role(str, Enum):
    """What an operation is, as reported by :func:`spikeconv.convert.inspect_model`."""

    WEIGHT = "weight"
    PASS = "pass"
    NEURON = "neuron"
    WADD = "wadd"
    CONCAT = "concat"
    ADD = "add"
    BATCHNORM = "batchnorm"
    MAXPOOL = "maxpool"
    SOFTMAX = "softmax"
    UNSUPPORTED = "unsupported"


class Rule:
    """How the converter treats one operation. Subclass it for a new operation and override what differs.

    The defaults describe an operation the converter cannot handle: :meth:`propagate` raises.
    """

    role: Role = Role.UNSUPPORTED
    #: what :func:`~spikeconv.convert.inspect_model` reports for it
    status: str = "unsupported"
    #: spiking module types this rule creates; :meth:`analog` turns them back into rate modules
    spiking_types: tuple[type, ...] = ()
    #: whether :meth:`fanout` and :meth:`macs` count it (a layer of synapses)
    synapses: bool = False
    #: ``{format: callable}`` filled by the exporters
    export: dict[str, Any]

    def __init__(self) -> None:
        self.export = {}

    def supports(self, module: nn.Module | None) -> bool:
        """Whether this instance of the operation can be converted (e.g. only ``Hardtanh(0, m)``)."""
        return self.role is not Role.UNSUPPORTED

    def propagate(self, scaler: Scaler, node: Node, ins: list[Tensor | None]) -> Tensor:
        """The scale of ``node``'s output from its inputs' scales ``ins``; may rescale the parameters."""
        raise ConversionError(f"'{node.name}' has no conversion rule")

    def push_gain(self, scaler: Scaler, node: Node, gain: Tensor, consumer: Node) -> None:
        """Make ``node``'s output ``gain`` times larger (for the neuron ``consumer``)."""
        raise ConversionError(
            f"the input current of neuron '{consumer.name}' comes straight from '{node.name}' "
            f"({operation_name(node)}), which has no weights to carry its scale; put a Conv/Linear or WAdd "
            "between them")

    def keeps_spikes(self, node: Node, spiking_inputs: list[bool], config: ConversionConfig) -> bool:
        """Whether ``node``'s output holds only integer spikes, given which of its inputs do."""
        return False

    def shape_only(self, node: Node) -> bool:
        """Whether every value passes unchanged (only the shape changes): spikes may stay int8 through it."""
        return False

    def spiking(self, node: Node, config: ConversionConfig, scaler: Scaler) -> nn.Module | None:
        """The module replacing ``node.module`` in the SNN; ``None`` keeps it."""
        return None

    def analog(self, module: nn.Module, steps: int | None) -> nn.Module | None:
        """The rate (ANN) twin of ``module``, a spiking module of ``spiking_types``; ``None`` keeps it."""
        return None

    def fanout(self, module: nn.Module, x: Tensor) -> Tensor | None:
        """Per sample: sum over input elements of ``x`` times their fan-out (``None``: not a synapse layer)."""
        return None

    def macs(self, module: nn.Module, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int | None:
        """Dense multiply-accumulates of one sample (``None``: not a weight layer)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class UnsupportedRule(Rule):
    """An operation the converter does not know."""


def operation_name(node: Node) -> str:
    """``Conv2d`` for a module node, the function name otherwise."""
    return type(node.module).__name__ if node.kind == "module" else node.target


#: ``Role -> rule`` used when a user names a role instead of a rule; filled by :mod:`spikeconv.convert.ops`.
ROLE_RULES: dict[Role, Rule] = {}


class RuleSet:
    """Module rules keyed by type (MRO-aware) and function rules keyed by name; user rules win."""

    def __init__(self) -> None:
        self.modules: dict[type, Rule] = {}
        self.functions: dict[str, Rule] = {}

    def add(self, key: type | str, rule: Rule) -> None:
        if not isinstance(rule, Rule):
            raise TypeError(f"a rule must be a spikeconv.convert.Rule instance, got {type(rule).__name__}")
        (self.functions if isinstance(key, str) else self.modules)[key] = rule

    def lookup(self, module: nn.Module, user: Mapping[type, Any] | None = None) -> Rule:
        """The rule of ``module``: the first type along its MRO with a user rule, else a registered one."""
        for klass in type(module).__mro__:
            if user and klass in user:
                return as_rule(user[klass], module)
            if klass in self.modules:
                rule = self.modules[klass]
                return rule if rule.supports(module) else UNSUPPORTED
        return UNSUPPORTED

    def function(self, name: str) -> Rule:
        return self.functions.get(name, UNSUPPORTED)

    def for_spiking(self, module: nn.Module) -> Rule | None:
        """The rule that creates modules of ``module``'s type (MRO-aware), for the analog twin."""
        for klass in type(module).__mro__:
            for rule in (*self.modules.values(), *self.functions.values()):
                if klass in rule.spiking_types:
                    return rule
        return None


UNSUPPORTED = UnsupportedRule()

#: the library's rules; :func:`register_rule` adds to it.
REGISTRY = RuleSet()


def register_rule(key: type | str, rule: Rule) -> Rule:
    """Register ``rule`` for a module type (MRO-aware) or a torch function name, for every conversion.

    Example:
        >>> from torch import nn
        >>> class Scale2(nn.Module):
        ...     def forward(self, x):
        ...         return 2 * x
        >>> _ = register_rule(Scale2, ROLE_RULES[Role.UNSUPPORTED])
        >>> REGISTRY.lookup(Scale2()).role
        <Role.UNSUPPORTED: 'unsupported'>
    """
    REGISTRY.add(key, rule)
    return rule


def as_rule(value: Any, module: nn.Module | None = None) -> Rule:
    """A user's rule value as a :class:`Rule`: a rule, a :class:`Role` (its standard rule), or a function
    ``module -> Rule | Role`` (for types whose treatment depends on an attribute)."""
    if isinstance(value, Rule):
        return value
    if isinstance(value, (Role, str)):
        if value == Role.WEIGHT:
            raise ValueError("Role.WEIGHT says too little for a weight layer: register a subclass of "
                             "spikeconv.convert.WeightRule that says how its weights absorb a scale")
        try:
            return ROLE_RULES[Role(value)]
        except (ValueError, KeyError) as exc:
            raise ValueError(f"unknown role {value!r}; use one of {[r.value for r in Role]} or a Rule") from exc
    if callable(value):
        return as_rule(value(module), module)
    raise TypeError(f"a user rule must be a Rule, a Role or a function of the module, got {type(value).__name__}")


def rule_of(node: Node, user: Mapping[type, Any] | None = None) -> Rule:
    """The rule for a traced node (the input node passes its value on)."""
    if node.kind == "input":
        return ROLE_RULES[Role.PASS]
    if node.kind == "module":
        return REGISTRY.lookup(node.module, user)
    return REGISTRY.function(node.target)
