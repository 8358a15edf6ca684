"""Upsampling (``nn.Upsample``, ``F.interpolate``), as in the two-scale YOLO detectors.

Nearest-neighbour upsampling copies values, so spikes stay spikes and a per-channel scale passes through
unchanged. Bilinear upsampling mixes neighbours with positive weights that sum to one: it commutes with a
per-channel scale as well, but its output is no longer integer spikes (like average pooling).
"""

from __future__ import annotations

from torch import nn

from ..registry import REGISTRY, Role
from .passing import PassRule

_LINEAR_MODES = ("nearest", "bilinear", "linear")


def _mode(node) -> str:
    if node.module is not None:
        return node.module.mode
    return node.kwargs.get("mode", node.args[3] if len(node.args) > 3 else "nearest")


class UpsampleRule(PassRule):
    """``nn.Upsample`` / ``F.interpolate`` with mode ``nearest`` (keeps spikes) or ``(bi)linear``."""

    role = Role.PASS
    status = "passed"

    def supports(self, module: nn.Module | None) -> bool:
        return module is None or (module.mode in _LINEAR_MODES and not getattr(module, "align_corners", False))

    def keeps_spikes(self, node, spiking_inputs, config):
        return _mode(node) == "nearest" and bool(spiking_inputs) and spiking_inputs[0]

    def shape_only(self, node):
        return _mode(node) == "nearest"


UPSAMPLE = UpsampleRule()
REGISTRY.add(nn.Upsample, UPSAMPLE)
REGISTRY.add("interpolate", UPSAMPLE)
