"""ANN-to-SNN conversion: the rule registry, BN folding, scaling (Algorithm 1), data-based normalization.

Every operation the converter knows is one :class:`Rule` in one registry (:mod:`spikeconv.convert.registry`;
the library's rules are in :mod:`spikeconv.convert.ops`, one file per family).
"""

from .converter import ConversionConfig, MaxPoolMode, SoftmaxMode, convert, inspect_model
from .fold import batchnorm_affine, fold_batchnorm_
from .graph import Graph, Node, trace
from .network import NodeReport, SpikingNetwork
from .ops import (AddRule, BatchNormRule, ChannelAffineRule, ConcatRule, ConvRule, LinearRule, MaxPoolRule, NeuronRule,
                  PassRule, SoftmaxRule, WAddRule, WeightRule)
from .registry import REGISTRY, Role, Rule, as_rule, register_rule
from .rewrite import rewrite_functional

__all__ = [
    "REGISTRY",
    "AddRule",
    "BatchNormRule",
    "ChannelAffineRule",
    "ConcatRule",
    "ConversionConfig",
    "ConvRule",
    "Graph",
    "LinearRule",
    "MaxPoolMode",
    "MaxPoolRule",
    "NeuronRule",
    "Node",
    "NodeReport",
    "PassRule",
    "Role",
    "Rule",
    "SoftmaxMode",
    "SoftmaxRule",
    "SpikingNetwork",
    "WAddRule",
    "WeightRule",
    "as_rule",
    "batchnorm_affine",
    "convert",
    "fold_batchnorm_",
    "inspect_model",
    "register_rule",
    "rewrite_functional",
    "trace",
]
