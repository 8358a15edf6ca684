"""The library's conversion rules, one file per family of operations; importing this package registers them.

| file | operations |
|---|---|
| ``weights.py`` | Conv1d, Conv2d, Linear, ChannelAffine |
| ``neurons.py`` | QReLU, ReLU, clipped ReLU (Hardtanh(0, m), ReLU6) -> IF neuron |
| ``passing.py`` | identity, flatten, view, dropout, average pooling, max-pooling -> spiking max-pool |
| ``merges.py`` | WAdd, concatenation, plain add |
| ``normalization.py`` | BatchNorm (folded), softmax (ANN head or spiking) |
| ``resampling.py`` | nearest / bilinear upsampling |
| ``padding.py`` | zero padding (ZeroPad2d, ConstantPad2d with 0, F.pad with 0) |
"""

from ..registry import ROLE_RULES, UNSUPPORTED, Role
from .merges import ADD, CONCAT, WADD, AddRule, ConcatRule, WAddRule
from .neurons import NEURON, NeuronRule
from .normalization import BATCHNORM, SOFTMAX, BatchNormRule, SoftmaxRule
from .passing import AVERAGE_POOL, MAXPOOL, PASS, MaxPoolRule, PassRule, reshape_scale
from .padding import ZERO_PAD, ZeroPadRule
from .resampling import UPSAMPLE, UpsampleRule
from .weights import AFFINE, CONV, LINEAR, ChannelAffineRule, ConvRule, LinearRule, WeightRule, channel_vector

ROLE_RULES.update({Role.PASS: PASS, Role.NEURON: NEURON, Role.WADD: WADD, Role.CONCAT: CONCAT,
                   Role.ADD: ADD, Role.BATCHNORM: BATCHNORM, Role.MAXPOOL: MAXPOOL, Role.SOFTMAX: SOFTMAX,
                   Role.UNSUPPORTED: UNSUPPORTED})

__all__ = ["ADD", "AFFINE", "AVERAGE_POOL", "BATCHNORM", "CONCAT", "CONV", "LINEAR", "MAXPOOL", "NEURON", "PASS", "SOFTMAX", "UPSAMPLE", "WADD", "ZERO_PAD",
           "AddRule", "BatchNormRule", "ChannelAffineRule", "ConcatRule", "ConvRule", "LinearRule", "MaxPoolRule",
           "NeuronRule", "PassRule", "SoftmaxRule", "UpsampleRule", "WAddRule", "WeightRule", "ZeroPadRule", "channel_vector", "reshape_scale"]
