"""QReLU (Eq. 1), its straight-through gradients, calibration, parameter groups, and its SNN equivalence."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from spikeconv import ConversionConfig, QReLU, convert, simulate
from spikeconv.quant import calibrate_bounds_, param_groups, percentile


@given(k=st.integers(-300, 300), levels=st.sampled_from([1, 2, 4, 8, 16]), lam=st.sampled_from([0.5, 1.0, 2.0]))
def test_qrelu_matches_eq1(k, levels, lam):
    x = k / 128
    q = QReLU(levels=levels, bound=lam)
    expected = 0.0 if x <= 0 else lam if x >= lam else math.floor(x * levels / lam) * lam / levels
    assert q(torch.tensor([x])).item() == pytest.approx(expected, abs=1e-6)


def test_qrelu_straight_through_gradients():
    q = QReLU(levels=4, bound=1.0, phi=0.0)
    x = torch.tensor([-0.5, 0.3, 0.6, 1.5], requires_grad=True)
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    # d/dlambda: 0 below 0, (floor(u) - u)/P inside (u = P x / lambda), 1 above lambda
    u = torch.tensor([0.3, 0.6]) * 4
    inside = ((torch.floor(u) - u) / 4).sum().item()
    assert q.bound.grad.item() == pytest.approx(inside + 1.0, abs=1e-6)


def test_percentile_and_calibration():
    values = torch.arange(1.0, 1001.0)
    assert percentile(values, 100).item() == 1000.0
    assert percentile(values, 99.9).item() == 999.0
    net = nn.Sequential(nn.Identity(), QReLU(levels=4))
    bounds = calibrate_bounds_(net, [torch.arange(-10.0, 101.0).unsqueeze(0)], p=50)
    assert bounds["1"] == 50.0
    with pytest.raises(ValueError, match="no batches"):
        calibrate_bounds_(net, [])


def test_calibration_under_batch_statistics_sees_what_a_training_step_sees_and_keeps_the_buffers():
    # BatchNorm's running statistics (mean 0, var 1) pass x = 10 + k through (divided by sqrt(1 + eps));
    # the batch's own (mean 60, var 850) normalise it to (k - 50) / sqrt(850 + eps), positive for k > 50
    bn = nn.BatchNorm1d(1)
    net = nn.Sequential(bn, QReLU(levels=4)).eval()
    x = (10.0 + torch.arange(101.0)).unsqueeze(1)
    assert calibrate_bounds_(net, [x], p=100)["1"] == pytest.approx(110 / math.sqrt(1 + bn.eps), rel=1e-6)
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    bound = calibrate_bounds_(net, [x], p=100, batch_statistics=True)["1"]
    assert bound == pytest.approx(50 / math.sqrt(x.var(unbiased=False).item() + bn.eps), rel=1e-6)
    assert all(torch.equal(v, bn.state_dict()[k]) for k, v in before.items()) and not net.training


def test_param_groups_separate_bounds():
    net = nn.Sequential(nn.Linear(3, 3), QReLU(), nn.Linear(3, 2), QReLU())
    groups = param_groups(net, lr=0.2, bound_lr=0.02, weight_decay=1e-4)
    assert [len(g["params"]) for g in groups] == [4, 2]
    assert groups[1]["lr"] == 0.02 and groups[1]["weight_decay"] == 0.0
    assert {id(p) for p in groups[1]["params"]} == {id(m.bound) for m in net if isinstance(m, QReLU)}


@pytest.mark.parametrize("timesteps,max_strength", [(8, 1), (4, 2), (16, 1)])
@pytest.mark.parametrize("phi", [0.0, 0.5])
@pytest.mark.parametrize("threshold", [1.0, 0.75])
def test_one_layer_snn_equals_qrelu_when_t_times_smax_is_p(timesteps, max_strength, phi, threshold):
    """Design rule 2: with T * S^max = P, rate * lambda of the converted layer equals QReLU exactly."""
    levels = timesteps * max_strength
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(6, 32), QReLU(levels=levels, bound=1.5, phi=phi)).eval()
    x = torch.randn(64, 6)
    snn = convert(ann, x, ConversionConfig(threshold=threshold, max_strength=max_strength, signed=False))
    readout = simulate(snn, x, timesteps)[-1]
    expected = ann(x)
    step = 1.5 / levels
    # both sides are integer multiples of the step: compare the integers
    assert torch.equal(torch.round(readout / step), torch.round(expected / step))
    assert (readout - expected).abs().max().item() < 1e-5
