"""Agreement with the quantized ANN: per-layer shares of neurons off their level, and per-image disagreement."""

import json

import pytest
import torch
from torch import nn

from spikeconv import ConversionConfig, QReLU, convert, simulate
from spikeconv.analysis import analog_twin, layer_agreement, prediction_agreement, record, twin_currents


def _late_charge_net():
    """Two neuron layers, T = P = 4, S^max = 1, V_th = 1: neuron A fires once, at the last step (constant
    input 0.15), and B receives A's spike times 3: its level is floor(4 * 0.75 + 0.5) = 3, but the charge
    arrives at t = 4, when one spike is all it can send."""
    qann = nn.Sequential(nn.Linear(1, 2, bias=False), QReLU(levels=4, bound=1.0, phi=0.5),
                         nn.Linear(2, 1, bias=False), QReLU(levels=4, bound=1.0, phi=0.5),
                         nn.Linear(1, 1, bias=False)).eval()
    with torch.no_grad():
        qann[0].weight.copy_(torch.tensor([[0.15], [0.5]]))
        qann[2].weight.copy_(torch.tensor([[3.0, 0.0]]))
        qann[4].weight.fill_(1.0)
    x = torch.ones(1, 1)
    return qann, convert(qann, x, ConversionConfig(signed=True, max_strength=1)), x


@pytest.mark.parametrize("warmup,expected", [
    (0, {"differs": 1.0, "own": 1.0, "inherited": 0.0, "level_error": 2.0}),   # 1 spike instead of 3
    (4, {"differs": 0.0, "own": 0.0, "inherited": 0.0, "level_error": 0.0}),   # the warm-up sends all 3
])
def test_layer_agreement_separates_own_timing_from_input(warmup, expected):
    qann, snn, x = _late_charge_net()
    levels, _ = twin_currents(analog_twin(snn, steps=4), x)
    with record(snn) as rec:
        simulate(snn, x, 4, order="layer", warmup=warmup)
    agreement = layer_agreement(rec, levels)
    first, second = agreement.values()
    assert first == {"differs": 0.0, "own": 0.0, "inherited": 0.0, "level_error": 0.0}  # A: 1 and 2 spikes
    assert second == expected
    assert rec[list(agreement)[1]].spikes.sum().item() == (3 if warmup else 1)


def test_layer_agreement_counts_an_input_that_changes_the_level():
    """An ANN current one level above the SNN's (as if an earlier layer had sent one spike too few): B's count,
    right for its own input after the warm-up, is off the level, and the table calls it inherited."""
    qann, snn, x = _late_charge_net()
    levels, _ = twin_currents(analog_twin(snn, steps=4), x)
    name = list(levels)[1]  # the second neuron layer
    levels[name] = levels[name] + 0.25  # 0.75 -> 1.0: level 4 instead of 3
    with record(snn) as rec:
        simulate(snn, x, 4, order="layer", warmup=4)
    second = list(layer_agreement(rec, levels).values())[1]
    assert second == {"differs": 1.0, "own": 0.0, "inherited": 1.0, "level_error": 1.0}


def test_prediction_agreement_accounts_for_the_accuracy_difference():
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (200,))
    ann = torch.where(torch.rand(200) < 0.8, labels, torch.randint(0, 5, (200,)))
    snn = torch.where(torch.rand(200) < 0.9, ann, torch.randint(0, 5, (200,)))
    result = prediction_agreement(snn, ann, labels)
    assert result["differ"] == int((snn != ann).sum()) and result["images"] == 200
    assert result["snn_right_ann_wrong"] - result["ann_right_snn_wrong"] == int((snn == labels).sum() - (ann == labels).sum())
    with pytest.raises(ValueError, match="one entry per image"):
        prediction_agreement(snn[:3], ann, labels)


def test_analyze_report_says_where_the_snn_leaves_the_quantized_ann(tmp_path, data_available):
    """On 100 real MNIST images at T = 4 (shipped LeNet, P = 4 = T): the image counts add up to the accuracy
    difference, the analog first layer matches its levels, and the report has the section."""
    from conftest import CHECKPOINTS

    from spikeconv.cli.main import main

    code = main(["analyze", str(CHECKPOINTS / "mnist_lenet_qrelu.pt"), "--out", str(tmp_path), "--timesteps", "4",
                 "--limit", "100", "--detail-samples", "8", "--batch-size", "50"])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    images = report["prediction_agreement"]
    assert images["images"] == 100
    difference = report["snn_accuracy_per_t"]["4"] - report["ann_accuracy"]
    assert difference == pytest.approx(images["snn_right_ann_wrong"] - images["ann_right_snn_wrong"], abs=1e-9)
    layers = list(report["level_agreement"].values())
    assert list(report["level_agreement"]) == list(report["decomposition"])
    assert layers[0]["differs"] == layers[0]["own"] == 0.0  # constant input current: exact by construction
    assert all(0.0 <= a[k] <= 1.0 for a in layers for k in ("differs", "own", "inherited"))
    assert "## Against the quantized ANN" in (tmp_path / "report.md").read_text()
