"""Conversion: BN folding, scaling (Algorithm 1), hygiene, coverage errors, normalization."""

import copy

import pytest
import torch
from helpers import randomise_batchnorm_, tiny_resnet
from torch import nn

from spikeconv import ConversionConfig, IFNeuron, QReLU, WAdd, convert, simulate
from spikeconv.convert import fold_batchnorm_
from spikeconv.errors import ConversionError, UnsupportedLayerError
from spikeconv.layers import Concat
from spikeconv.sim import neuron_runs


def test_fold_batchnorm_conv_and_linear():
    torch.manual_seed(0)
    for layer, bn, x in [
        (nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), torch.randn(4, 3, 6, 6)),
        (nn.Linear(7, 5, bias=False), nn.BatchNorm1d(5), torch.randn(4, 7)),
    ]:
        randomise_batchnorm_(nn.Sequential(bn))
        bn.eval()
        expected = bn(layer(x))
        fold_batchnorm_(layer, bn)
        assert torch.allclose(layer(x), expected, atol=1e-5)


def test_convert_never_mutates_its_input_and_leaves_no_hooks():
    model, x = tiny_resnet()
    before = copy.deepcopy(model.state_dict())
    reference = model(x)
    snn = convert(model, x)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(model(x), reference)
    assert not model.training
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert not isinstance(m, IFNeuron)
    assert sum(isinstance(m, IFNeuron) for m in snn.modules()) == sum(isinstance(m, QReLU) for m in model.modules())


def test_converted_network_passes_integer_spikes_and_every_threshold_is_vth():
    model, x = tiny_resnet()
    cfg = ConversionConfig(threshold=0.75, max_strength=4, signed=True)
    snn = convert(model, x, cfg)
    seen = []
    handles = [n.register_forward_hook(lambda m, i, o: seen.append(o.clone())) for _, n in snn.neurons()]
    simulate(snn, x, 6)
    for h in handles:
        h.remove()
    assert seen
    for spikes in seen:
        assert torch.equal(spikes, spikes.round())
        assert set(spikes.unique().tolist()) <= {-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0}
    assert {n.config.threshold for _, n in snn.neurons()} == {0.75}


def test_first_layer_is_exact():
    """The first neuron layer's spike count is floor(T * a / lambda) of its ANN pre-activation a."""
    model, x = tiny_resnet(levels=8)
    snn = convert(model, x, ConversionConfig(signed=False))
    first = snn.neurons()[0][1]
    counts = []
    h = first.register_forward_hook(lambda m, i, o: counts.append(o.view(8, x.shape[0], *o.shape[1:]).sum(0)))
    simulate(snn, x, 8, order="layer")
    h.remove()
    stem = model.stem
    a = stem[1](stem[0](x))
    lam = stem[2].bound.item()
    expected = torch.clamp(torch.floor(8 * a / lam), 0, 8)
    mismatch = (counts[0] != expected).float().mean().item()
    assert mismatch < 1e-3  # only float ties at exact multiples may differ


def test_train_mode_and_bad_example_are_rejected():
    model, x = tiny_resnet()
    model.train()
    with pytest.raises(ConversionError, match="eval"):
        convert(model, x)
    model.eval()
    with pytest.raises(ValueError, match="NaN"):
        convert(model, torch.full_like(x, float("nan")))


def test_unsupported_layer_names_the_path_and_the_remedy():
    model = nn.Sequential(nn.Linear(4, 4), nn.SiLU(), nn.Linear(4, 2)).eval()
    with pytest.raises(UnsupportedLayerError, match=r"'1' \(SiLU\).*register a rule"):
        convert(model, torch.zeros(1, 4))


def test_reused_activation_module_is_an_error():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.act = nn.Linear(3, 3), nn.Linear(3, 3), QReLU()

        def forward(self, x):
            return self.act(self.b(self.act(self.a(x))))

    with pytest.raises(ConversionError, match="called 2 times"):
        convert(Reuse().eval(), torch.zeros(1, 3))


class _PlainAdd(nn.Module):
    def __init__(self, data_dependent: bool = False):
        super().__init__()
        self.data_dependent = data_dependent
        self.fc1, self.q1 = nn.Linear(4, 4), QReLU(levels=64, bound=1.0)
        self.fc2, self.q2 = nn.Linear(4, 4), QReLU(levels=64, bound=2.0)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        a = self.q1(self.fc1(x))
        if self.data_dependent and bool(x.sum() > 1e9):  # control flow torch.fx cannot trace
            return x
        return self.out(a + self.q2(self.fc2(a)))


def test_plain_add_is_rewritten_into_wadd_by_fx():
    torch.manual_seed(0)
    ann = _PlainAdd().eval()
    x = torch.randn(16, 4)
    snn = convert(ann, x)
    assert any(r.status == "rewritten" and "WAdd" in r.detail for r in snn.report)
    assert (simulate(snn, x, 256)[-1] - ann(x)).abs().max().item() < 0.05


def test_untraceable_plain_add_of_differently_scaled_spikes_asks_for_wadd():
    with pytest.raises(ConversionError, match="WAdd"):
        convert(_PlainAdd(data_dependent=True).eval(), torch.zeros(1, 4))


def test_wadd_residual_and_concat_convert_accurately():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.q1 = nn.Linear(6, 8), QReLU(levels=64, bound=1.0)
            self.fc2, self.q2 = nn.Linear(8, 8), QReLU(levels=64, bound=3.0)
            self.add, self.q3 = WAdd(), QReLU(levels=64, bound=2.0)
            self.cat = Concat(dim=1)
            self.out = nn.Linear(16, 3)

        def forward(self, x):
            a = self.q1(self.fc1(x))
            b = self.q2(self.fc2(a))
            c = self.q3(self.add(b, a))
            return self.out(self.cat(c, a))

    torch.manual_seed(1)
    ann = Net().eval()
    x = torch.randn(32, 6)
    snn = convert(ann, x, ConversionConfig(signed=True))
    err = (simulate(snn, x, 256)[-1] - ann(x)).abs().max().item()
    assert err < 0.05


def test_relu_needs_calibration_and_percentile_bounds_are_used():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(256, 5)
    with pytest.raises(ConversionError, match="calibration"):
        convert(ann, x)
    with pytest.raises(ConversionError, match="no batches"):
        convert(ann, x, calibration=[])
    snn_max = convert(ann, x, ConversionConfig(percentile=100, per_channel=False), calibration=[x])
    lam_max = float(snn_max.report[[r.operation for r in snn_max.report].index("ReLU")].detail.split("=")[1])
    assert lam_max == pytest.approx(ann[1](ann[0](x)).max().item(), rel=1e-3)
    snn_pc = convert(ann, x, ConversionConfig(percentile=99.0, per_channel=True), calibration=[x])
    assert "per channel (16)" in [r.detail for r in snn_pc.report if r.operation == "ReLU"][0]


def test_fidelity_improves_over_a_t_ladder():
    """Reset by subtraction, percentile-normalised ReLU net: error to the ANN falls monotonically in T."""
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5))
    randomise_batchnorm_(ann)
    ann.eval()
    x = torch.rand(16, 3, 16, 16)
    snn = convert(ann, x, ConversionConfig(percentile=100, signed=False), calibration=[x])
    readout = simulate(snn, x, 512)
    target = ann(x)
    errors = [(readout[t - 1] - target).abs().mean().item() for t in (4, 16, 64, 256, 512)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.02 * target.abs().mean().item()


def test_neuron_state_is_cleared_even_after_an_exception():
    model, x = tiny_resnet()
    snn = convert(model, x)
    with pytest.raises(RuntimeError, match="boom"):
        with neuron_runs(snn, x.shape[0]):
            raise RuntimeError("boom")
    assert all(n._run is None for _, n in snn.neurons())
    with pytest.raises(RuntimeError, match="simulate"):
        snn(x)
