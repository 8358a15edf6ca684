"""ANN-to-SNN conversion: rule registry, BN folding, scaling (Algorithm 1), data-based normalization."""

from .converter import ConversionConfig, MaxPoolMode, SoftmaxMode, convert, inspect_model
from .fold import batchnorm_affine, fold_batchnorm_
from .graph import Graph, Node, trace
from .network import NodeReport, SpikingNetwork
from .rewrite import rewrite_functional
from .rules import DEFAULT_MODULE_RULES, Role, module_role

__all__ = [
    "DEFAULT_MODULE_RULES",
    "ConversionConfig",
    "MaxPoolMode",
    "SoftmaxMode",
    "inspect_model",
    "Graph",
    "Node",
    "NodeReport",
    "Role",
    "SpikingNetwork",
    "batchnorm_affine",
    "convert",
    "fold_batchnorm_",
    "module_role",
    "rewrite_functional",
    "trace",
]
