"""Conversion rules keyed by module type (MRO-aware; user rules win) and by torch function name.

A rule says what *role* an operation plays when scales are propagated through the network:

* ``WEIGHT``: a linear layer with parameters (Conv, Linear, ChannelAffine). It absorbs the scale of
  its input into its weights (``W[:, c] *= sigma_c``) and can scale its output (``W[o] *= g_o``,
  ``b[o] *= g_o``), so its output is in ANN units.
* ``PASS``: commutes with a positive per-channel scale (pooling, flatten, dropout in eval, identity).
* ``NEURON``: an activation replaced by an IF neuron (QReLU, ReLU).
* ``WADD``: the weighted add; each input weight absorbs that input's scale.
* ``CONCAT``: concatenation; scales are concatenated.
* ``ADD``: a plain ``x + y``; both inputs must already share one scale.
* ``BATCHNORM``: folded into the preceding weight layer, or turned into a ``ChannelAffine``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from torch import Tensor, nn

from ..layers import ChannelAffine, Concat, WAdd
from ..quant import QReLU


class Role(str, Enum):
    """What an operation does to the scales of the tensors flowing through it."""

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


DEFAULT_MODULE_RULES: dict[type, Role] = {
    nn.Conv1d: Role.WEIGHT,
    nn.Conv2d: Role.WEIGHT,
    nn.Linear: Role.WEIGHT,
    ChannelAffine: Role.WEIGHT,
    nn.BatchNorm1d: Role.BATCHNORM,
    nn.BatchNorm2d: Role.BATCHNORM,
    nn.AvgPool1d: Role.PASS,
    nn.AvgPool2d: Role.PASS,
    nn.AdaptiveAvgPool1d: Role.PASS,
    nn.AdaptiveAvgPool2d: Role.PASS,
    nn.Flatten: Role.PASS,
    nn.Dropout: Role.PASS,
    nn.Dropout2d: Role.PASS,
    nn.Identity: Role.PASS,
    QReLU: Role.NEURON,
    nn.ReLU: Role.NEURON,
    nn.Hardtanh: Role.NEURON,  # ReLU6 and Hardtanh(0, m) only; checked in module_role
    nn.MaxPool2d: Role.MAXPOOL,
    nn.Softmax: Role.SOFTMAX,
    WAdd: Role.WADD,
    Concat: Role.CONCAT,
}

#: torch functions between modules, by name.
DEFAULT_FUNCTION_RULES: dict[str, Role] = {
    "flatten": Role.PASS,
    "view": Role.PASS,
    "reshape": Role.PASS,
    "contiguous": Role.PASS,
    "clone": Role.PASS,
    "dropout": Role.PASS,
    "avg_pool2d": Role.PASS,
    "adaptive_avg_pool2d": Role.PASS,
    "add": Role.ADD,
    "__add__": Role.ADD,
    "__iadd__": Role.ADD,
    "__radd__": Role.ADD,
    "cat": Role.CONCAT,
    "softmax": Role.SOFTMAX,
    "max_pool2d": Role.MAXPOOL,
}


def module_role(module: nn.Module, user_rules: dict[type, Role | Callable[[nn.Module], Role]] | None = None) -> Role:
    """The role of ``module``: the first match along its MRO, user rules before the defaults.

    A user rule is a :class:`Role` or a function ``module -> Role`` (for types whose role depends on
    an attribute, like a generic binary-operation module).

    Example:
        >>> module_role(nn.Conv2d(1, 1, 1))
        <Role.WEIGHT: 'weight'>
    """
    for klass in type(module).__mro__:
        if user_rules and klass in user_rules:
            rule = user_rules[klass]
            return rule if isinstance(rule, Role) else Role(rule(module))
        if klass in DEFAULT_MODULE_RULES:
            role = DEFAULT_MODULE_RULES[klass]
            if isinstance(module, nn.Hardtanh) and not (module.min_val == 0 and module.max_val > 0):
                return Role.UNSUPPORTED  # only clipped ReLUs are activations an IF neuron can represent
            return role
    return Role.UNSUPPORTED


def function_role(name: str) -> Role:
    """The role of a torch function called between modules, by its name."""
    return DEFAULT_FUNCTION_RULES.get(name, Role.UNSUPPORTED)


def _per_out(scale: Tensor, count: int) -> Tensor:
    scale = scale.detach().reshape(-1)
    return scale.expand(count) if scale.numel() == 1 else scale


def absorb_input_scale_(module: nn.Module, sigma: Tensor, input_shape: tuple[int, ...]) -> None:
    """Multiply ``module``'s weights by the scale of its input, per input channel (in place).

    ``sigma`` broadcasts to the per-sample input shape; for convolutions it must be constant over space.
    """
    if isinstance(module, nn.Linear):
        full = sigma.expand(input_shape).reshape(-1) if sigma.numel() > 1 else sigma.reshape(())
        module.weight.data.mul_(full)
    elif isinstance(module, (nn.Conv1d, nn.Conv2d)):
        channels = module.in_channels
        per_channel = channel_vector(sigma, channels, input_shape)
        groups = module.groups
        per_out = per_channel.view(groups, channels // groups).repeat_interleave(module.out_channels // groups, 0)
        module.weight.data.mul_(per_out.view(*per_out.shape, *([1] * (module.weight.dim() - 2))))
    elif isinstance(module, ChannelAffine):
        module.scale.mul_(channel_vector(sigma, module.scale.numel(), input_shape))
    else:
        raise TypeError(f"no weight rule for {type(module).__name__}")


def scale_output_(module: nn.Module, gain: Tensor) -> None:
    """Multiply ``module``'s output by ``gain`` (scalar or per output channel) through its parameters."""
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        count = module.weight.shape[0]
        g = _per_out(gain, count)
        module.weight.data.mul_(g.view(count, *([1] * (module.weight.dim() - 1))))
        if module.bias is not None:
            module.bias.data.mul_(g)
    elif isinstance(module, ChannelAffine):
        g = _per_out(gain, module.scale.numel())
        module.scale.mul_(g)
        module.bias.mul_(g)
    elif isinstance(module, WAdd):
        for k, w in enumerate(module.weights()):
            module.set_weight(k, w * gain)
    else:
        raise TypeError(f"no output-scaling rule for {type(module).__name__}")


def channel_vector(sigma: Tensor, channels: int, shape: tuple[int, ...]) -> Tensor:
    """A scale as a vector over the ``channels`` of a ``[C, ...]`` feature map; raises if it varies in space."""
    if sigma.numel() == 1:
        return sigma.reshape(1).expand(channels).clone()
    full = sigma.expand(shape).reshape(channels, -1)
    if not bool((full == full[:, :1]).all()):
        raise ValueError("a scale that varies across positions of a feature map cannot enter a convolution")
    return full[:, 0].clone()
