"""Zero padding (``nn.ZeroPad2d``, ``nn.ConstantPad2d`` with value 0, ``F.pad`` with value 0), as Keras'
``ZeroPadding2D`` and TensorFlow's asymmetric ``"same"`` padding produce.

A zero is no spike and ``s * 0 = 0`` for any scale, so zero padding keeps spikes integer and passes a
per-channel scale through unchanged. Padding with any other value does not commute with a scale and is
left unsupported.
"""

from __future__ import annotations

from torch import nn

from ..registry import REGISTRY
from .passing import PassRule


def _value(node) -> float:
    if node.module is not None:
        return float(getattr(node.module, "value", 0.0))
    mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
    value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else 0.0)
    return 0.0 if mode == "constant" and (value or 0.0) == 0.0 else float("nan")


class ZeroPadRule(PassRule):
    """Constant padding with zeros: spikes stay spikes, scales pass (module docstring)."""

    def supports(self, module: nn.Module | None) -> bool:
        return module is None or float(getattr(module, "value", 0.0)) == 0.0

    def keeps_spikes(self, node, spiking_inputs, config):
        return _value(node) == 0.0 and bool(spiking_inputs) and spiking_inputs[0]


ZERO_PAD = ZeroPadRule()
for _kind in (nn.ZeroPad2d, nn.ConstantPad2d, "pad"):
    REGISTRY.add(_kind, ZERO_PAD)
