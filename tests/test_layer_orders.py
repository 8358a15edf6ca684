"""The layer orders users write, converted exactly: on random QReLU networks of each order (hypothesis: widths,
batch-norm statistics, seeds), the converted network's analog twin with P steps computes the quantized ANN
(every scale, fold and move of BatchNorm, activation, pooling, dropout and flatten is exact, with a BatchNorm
before a concatenation and a max-pool on the network input); where one neuron layer feeds the head, the
buffered SNN itself reads out the quantized ANN at T = P (paper 000's Eq. 11). Deeper networks at T = P
also carry the residual charge of late inputs (docs/reports), so there the twin is the exact check."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.analysis import analog_twin
from spikeconv.quant import QReLU

LEVELS = 4


def _q():
    return QReLU(levels=LEVELS, bound=1.0, phi=0.5)


def _bn(channels, generator, dims=2):
    norm = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels)
    with torch.no_grad():  # positive scales (a negative one turns a later max-pool into a min-pool)
        norm.running_mean.uniform_(-0.3, 0.3, generator=generator)
        norm.running_var.uniform_(0.5, 2.0, generator=generator)
        norm.weight.uniform_(0.5, 1.5, generator=generator)
        norm.bias.uniform_(-0.3, 0.3, generator=generator)
    return norm


class _Concat(nn.Module):
    """Two branches, each Conv -> ReLU -> BN, concatenated (BN after the activation, before the concat)."""

    def __init__(self, width, generator):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, width, 3, padding=1), nn.Conv2d(3, width, 1)
        self.qa, self.qb, self.q = _q(), _q(), _q()
        self.na, self.nb = _bn(width, generator), _bn(width, generator)
        self.c = nn.Conv2d(2 * width, width, 3)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * 6 * 6, 5))

    def forward(self, x):
        return self.head(self.q(self.c(torch.cat([self.na(self.qa(self.a(x))), self.nb(self.qb(self.b(x)))], 1))))


def _orders(width, generator):
    w = width
    return {
        "conv-bn-relu-pool": nn.Sequential(nn.Conv2d(3, w, 3, padding=1), _bn(w, generator), _q(), nn.MaxPool2d(2),
                                           nn.Flatten(), nn.Linear(w * 16, 5)),
        "conv-relu-bn-pool": nn.Sequential(nn.Conv2d(3, w, 3, padding=1), _q(), _bn(w, generator), nn.MaxPool2d(2),
                                           nn.Flatten(), nn.Linear(w * 16, 5)),
        "conv-relu-pool-bn": nn.Sequential(nn.Conv2d(3, w, 3, padding=1), _q(), nn.MaxPool2d(2), _bn(w, generator),
                                           nn.Conv2d(w, w, 3), _q(), nn.Flatten(), nn.Linear(w * 4, 5)),
        "relu-flatten-bn-linear": nn.Sequential(nn.Conv2d(3, w, 3, padding=1), _q(), nn.Flatten(),
                                                _bn(w * 64, generator, 1), nn.Linear(w * 64, 8), _q(), nn.Linear(8, 5)),
        "relu-bn-concat": _Concat(w, generator),
        "maxpool-on-input": nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(3, w, 3, padding=1), _q(), nn.Flatten(),
                                          nn.Linear(w * 16, 5)),
        "dropout-and-flatten-anywhere": nn.Sequential(nn.Dropout(), nn.Conv2d(3, w, 3, padding=1), nn.Dropout2d(),
                                                      _q(), nn.Flatten(), nn.Dropout(), nn.Linear(w * 64, 5)),
    }


ORDERS = list(_orders(2, torch.Generator()))
#: orders with one neuron layer before the head: their SNN equals the quantized ANN at T = P
ONE_NEURON_LAYER = {"conv-bn-relu-pool", "conv-relu-bn-pool", "maxpool-on-input", "dropout-and-flatten-anywhere"}


@pytest.mark.parametrize("order", ORDERS)
@settings(max_examples=6, deadline=None)
@given(width=st.integers(1, 6), seed=st.integers(0, 2**16))
@torch.no_grad()
def test_every_order_converts_exactly(order, width, seed):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = _orders(width, generator)[order].eval()
    x = torch.rand(4, 3, 8, 8, generator=generator)
    snn = convert(net, x, ConversionConfig())
    assert not [r for r in snn.report if r.status == "unsupported"]
    torch.testing.assert_close(analog_twin(snn, steps=LEVELS)(x), net(x), rtol=0, atol=1e-5)
    if order in ONE_NEURON_LAYER:
        torch.testing.assert_close(simulate(snn, x, LEVELS)[-1], net(x), rtol=0, atol=1e-5)


def test_a_max_pool_on_the_input_is_reported_as_an_ann_pool():
    net = _orders(3, torch.Generator().manual_seed(0))["maxpool-on-input"].eval()
    snn = convert(net, torch.rand(2, 3, 8, 8), ConversionConfig())
    row = next(r for r in snn.report if "MaxPool" in r.operation)
    assert row.status == "passed" and "network input" in row.detail
    assert isinstance(snn.body[0], nn.MaxPool2d)


def test_a_max_pool_on_currents_inside_the_network_is_refused_with_the_remedy():
    from spikeconv.errors import ConversionError

    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.MaxPool2d(2), _q(), nn.Flatten(), nn.Linear(32, 5)).eval()
    with pytest.raises(ConversionError, match="max-pooling '1' receives analog currents.*after the activation"):
        convert(net, torch.rand(2, 3, 8, 8), ConversionConfig())
