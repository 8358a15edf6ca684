"""The conversion registry: one rule object per operation; user rules through the same public API."""

import pytest
import torch
from torch import nn

from spikeconv import ConversionConfig, QReLU, Role, convert, register_rule, simulate
from spikeconv.convert import REGISTRY, PassRule, WeightRule, inspect_model
from spikeconv.errors import UnsupportedLayerError
from spikeconv.layers import ChannelAffine


class Reverse(nn.Module):
    """Reverses the feature order: commutes with any scale shared by all features."""

    def forward(self, x):
        return x.flip(-1)


class Gain(nn.Module):
    """``y = g * x`` per feature: a user's weight layer."""

    def __init__(self, n):
        super().__init__()
        self.g = nn.Parameter(torch.linspace(0.5, 1.5, n))

    def forward(self, x):
        return x * self.g


class GainRule(WeightRule):
    """The whole conversion rule of :class:`Gain`: how its weights absorb a scale and carry a gain."""

    def absorb_(self, module, sigma, input_shape):
        module.g.data.mul_(sigma.expand(input_shape))

    def scale_output_(self, module, gain):
        module.g.data.mul_(gain.reshape(-1))


def _net(middle: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), QReLU(levels=4, bound=1.0, phi=0.5), middle,
                        QReLU(levels=4, bound=1.0, phi=0.5), nn.Linear(8, 3)).eval()
    return net


def test_unknown_layer_is_refused_with_the_remedy():
    with pytest.raises(UnsupportedLayerError, match=r"'2' \(Gain\).*spikeconv inspect.*register_rule"):
        convert(_net(Gain(8)), torch.zeros(1, 6))


def test_per_call_rule_converts_a_user_weight_layer_exactly_like_the_builtin_equivalent():
    x = torch.rand(16, 6)
    gain = Gain(8)
    affine = ChannelAffine(gain.g.detach(), torch.zeros(8))
    user = convert(_net(gain), x, rules={Gain: GainRule()})
    builtin = convert(_net(affine), x)
    assert torch.equal(simulate(user, x, timesteps=8), simulate(builtin, x, timesteps=8))
    rows = {r.node: r.status for r in inspect_model(_net(Gain(8)), x, rules={Gain: GainRule()})}
    assert rows["2"] == "converted"


def _shallow(middle: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), QReLU(levels=4, bound=1.0, phi=0.5), middle, nn.Linear(8, 3)).eval()


def test_registered_rule_applies_to_every_call_and_to_subclasses():
    class Reverse2(Reverse):
        pass

    x = torch.rand(16, 6)
    register_rule(Reverse, PassRule())
    try:
        snn = convert(_shallow(Reverse2()), x)  # found along the MRO
        assert type(snn.body[2]) is Reverse2
        # one neuron layer with constant input and T = P: its rate is the QReLU level, the readout the qANN's
        out = simulate(snn, x, timesteps=4)[-1]
        assert torch.allclose(out, _shallow(Reverse2())(x), atol=1e-5)
        assert not torch.allclose(out, simulate(convert(_shallow(nn.Identity()), x), x, timesteps=4)[-1], atol=1e-3)
    finally:
        REGISTRY.modules.pop(Reverse)
    with pytest.raises(UnsupportedLayerError):
        convert(_shallow(Reverse()), x)


def test_roles_are_shorthands_and_weight_needs_a_rule():
    x = torch.rand(4, 6)
    convert(_shallow(Reverse()), x, rules={Reverse: Role.PASS})
    convert(_shallow(Reverse()), x, rules={Reverse: lambda module: Role.PASS})  # decided per module
    with pytest.raises(ValueError, match="WeightRule"):
        convert(_net(Gain(8)), x, rules={Gain: Role.WEIGHT})
    with pytest.raises(TypeError, match="Rule, a Role or a function"):
        convert(_net(Gain(8)), x, rules={Gain: 3})


def test_every_builtin_rule_is_one_object_per_operation():
    rules = {REGISTRY.lookup(m) for m in (nn.Conv2d(1, 1, 1), nn.Linear(1, 1), nn.ReLU(), QReLU(), nn.MaxPool2d(2),
                                          nn.AvgPool2d(2), nn.Flatten(), nn.BatchNorm2d(1), nn.Softmax(-1))}
    assert len(rules) == 8  # Conv and Linear differ; flatten and the shape-only ops share one
    assert REGISTRY.lookup(nn.Hardtanh(-1, 1)).role is Role.UNSUPPORTED  # only clipped ReLUs are neurons
    assert REGISTRY.lookup(nn.ReLU6()).role is Role.NEURON
    assert REGISTRY.function("cat").role is Role.CONCAT
    assert REGISTRY.function("gelu").role is Role.UNSUPPORTED


def test_convert_of_user_rule_does_not_mutate_the_input():
    net = _net(Gain(8))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    convert(net, torch.rand(4, 6), ConversionConfig(), rules={Gain: GainRule()})
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
