"""Layer orders users write: a BatchNorm between the activation and a max-pool (Conv -> ReLU -> BN -> MaxPool)."""

import pytest
import torch
from helpers import dyadic, randomise_batchnorm_
from torch import nn

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.convert import inspect_model
from spikeconv.errors import ConversionError


def _keras_order(seed: int, pool_then_bn: bool = False) -> nn.Sequential:
    """Conv -> ReLU -> BN -> MaxPool twice (or, with ``pool_then_bn``, the same weights as ReLU -> MaxPool -> BN)."""
    torch.manual_seed(seed)
    layers = []
    for cin, cout in ((3, 8), (8, 8)):
        conv, bn, pool = nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.MaxPool2d(2)
        layers += [conv, nn.ReLU(), pool, bn] if pool_then_bn else [conv, nn.ReLU(), bn, pool]
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    randomise_batchnorm_(net, seed)  # scales in [0.5, 1.5]: positive, as BatchNorms learn them
    return net.eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batchnorm_between_relu_and_maxpool_converts_exactly_like_the_pool_first_order(seed):
    x = dyadic(6, 3, 16, 16, seed=seed)
    keras, pool_first = _keras_order(seed), _keras_order(seed, pool_then_bn=True)
    assert torch.equal(keras(x), pool_first(x))  # max(a x + c) = a max(x) + c, exactly for a > 0
    config = ConversionConfig(percentile=100, signed=False)
    snn = convert(keras, x, config, calibration=[x])
    reference = convert(pool_first, x, config, calibration=[x])
    readout = simulate(snn, x, 64)
    assert torch.equal(readout, simulate(reference, x, 64))
    # and it is a faithful SNN of the ANN: at T = 64 the readout follows the ANN's logits closely
    ann = keras(x)
    assert torch.nn.functional.cosine_similarity(readout[-1].flatten(), ann.flatten(), dim=0) > 0.98
    rows = {r.node: (r.status, r.detail) for r in snn.report if r.operation == "BatchNorm"}
    assert rows["2"][0] == "moved" and "max-pool '3'" in rows["2"][1]


def test_a_negative_scale_would_make_a_min_pool_and_is_refused_by_name():
    net = _keras_order(0)
    with torch.no_grad():
        net[2].weight[3] = -0.7
    x = dyadic(2, 3, 16, 16)
    with pytest.raises(ConversionError, match=r"BatchNorm '2'.*max-pool '3'.*channel\(s\) \[3\]"):
        convert(net, x, ConversionConfig(percentile=100), calibration=[x])


def test_the_model_itself_is_untouched_and_inspect_still_reports_the_batchnorm():
    net = _keras_order(0)
    kinds = [type(m).__name__ for m in net]
    x = dyadic(2, 3, 16, 16)
    convert(net, x, ConversionConfig(percentile=100), calibration=[x])
    assert [type(m).__name__ for m in net] == kinds
    assert {r.node: r.status for r in inspect_model(net, x)}["2"] == "folded"
