"""Warm-up (spikeconv.neuron.warmup): the initial-membrane shift from a pre-run, exact on synthetic currents,
its place in the engine (one chunk, refusals), and its effect on a real network."""

import pytest
import torch
from torch import nn

from conftest import CHECKPOINTS
from spikeconv import ConversionConfig, convert, simulate
from spikeconv.cli.main import main
from spikeconv.neuron import IFNeuron, NeuronConfig, if_init, if_scan, warmed_up_membrane
from spikeconv.sim import SimulationConfig
from spikeconv.tasks.analyze import AnalyzeConfig


def test_the_shift_is_the_offset_the_pre_run_leaves():
    cfg = NeuronConfig(phi=0.5)
    # late charge: V(4) = 2.5 -> two spikes up; the neuron's count was exact already -> no shift;
    # an early spike undone by a later negative current: V(4) = -0.5 with one spike -> one spike down
    x = torch.tensor([[0.0, 0.75, 2.0], [0.0, 0.75, -2.0], [0.0, 0.75, 0.0], [3.0, 0.75, 0.0]])
    assert warmed_up_membrane(x, cfg, steps=4).tolist() == [2.5, 0.5, -0.5]
    # only the first `steps` currents count: after 3 steps the late neuron has nothing to shift
    assert warmed_up_membrane(x, cfg, steps=3).tolist() == [0.5, 0.5, -0.5]
    # a constant (analog) current is already exact: no shift; buffered neurons use the same rule
    assert warmed_up_membrane(torch.tensor([0.3, 1.0]), NeuronConfig(phi=0.5, signed=True), 8, constant=True).tolist() == [0.5, 0.5]
    late = if_scan(x[:, :1], if_init(x[0, :1], cfg)._replace(v=torch.tensor([2.5])), cfg)[0]
    assert late.squeeze(1).tolist() == [1.0, 1.0, 0.0, 1.0]  # 3 spikes = floor(0.5 + 3), the ANN's count
    with pytest.raises(ValueError, match="needs that many input steps"):
        warmed_up_membrane(x, cfg, steps=5)


def test_simulate_with_warmup_reads_the_late_charge():
    net = nn.Sequential(IFNeuron(NeuronConfig(phi=0.5)))
    frames = torch.tensor([0.0, 0.0, 0.0, 3.0]).view(4, 1, 1)
    plain = simulate(net, frames, 4, sequence=True)[-1].item()
    warm = simulate(net, frames, 4, sequence=True, warmup=4)[-1].item()
    assert (plain, warm) == (0.25, 0.75)
    # a warm-up of 2 steps sees no charge yet: the same as none
    assert simulate(net, frames, 4, sequence=True, warmup=2)[-1].item() == 0.25


def test_warmup_runs_one_chunk_in_any_order_and_refuses_what_it_cannot_do():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 36, 3)).eval()
    x = torch.rand(128, 1, 6, 6)
    snn = convert(ann, x, ConversionConfig(signed=True), calibration=[x])
    default = simulate(snn, x, 8, warmup=8)  # batch 128 on the CPU: the default order folds 1 step a chunk
    assert torch.equal(default, simulate(snn, x, 8, order="layer", warmup=8))
    assert torch.equal(default, simulate(snn, x, 8, warmup=8, fused=False))  # the pre-run's scan: C or eager
    assert not torch.equal(default, simulate(snn, x, 8))  # the second layer's input is not constant
    with pytest.raises(ValueError, match="exceed timesteps"):
        simulate(snn, x, 4, warmup=8)
    with pytest.raises(ValueError, match="whole input"):
        simulate(snn, x, 8, order="step", warmup=8)
    with pytest.raises(ValueError, match="memory_budget"):
        SimulationConfig(warmup=2, memory_budget=1 << 20)
    with pytest.raises(ValueError, match="warmup must be"):
        SimulationConfig(warmup=-1)
    clamped = nn.Sequential(IFNeuron(NeuronConfig(), clamp_steps=2))
    with pytest.raises(ValueError, match="voltage clamp"):
        simulate(clamped, torch.ones(1, 1), 4, warmup=2)


def test_warmup_brings_a_real_network_to_its_quantized_ann(data_available, tmp_path, capsys):
    """MNIST LeNet (shipped), 1,000 test images, buffered S^max = 1 at T = 4 (measured: quantized ANN 99.20,
    SNN 98.70, with a warm-up of 2 steps 99.20)."""
    import json

    out = tmp_path / "warm.json"
    assert main(["evaluate", str(CHECKPOINTS / "mnist_lenet_qrelu.pt"), "--timesteps", "2", "4", "--neurons",
                 "buffered", "--max-strengths", "1", "--warmup", "2", "4", "--limit", "1000", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    snn, qann = result["snn_accuracy"], result["qann_accuracy"]
    assert result["quantized"] is True  # QReLU: the quantized ANN and the clip-only ANN are two models
    assert list(snn["buffered/smax1+warm4"]) == ["4"]  # read only at the T >= the warm-up
    assert snn["buffered/smax1+warm2"]["4"] >= qann - 0.3
    assert snn["buffered/smax1+warm2"]["4"] >= snn["buffered/smax1"]["4"] + 0.2
    assert "buffered/smax1+warm4" in capsys.readouterr().out


def test_a_second_round_reaches_the_ideal_count_on_every_input_of_a_grid():
    """Buffered S^max = 1, T = 4, V(0) = V_th / 2, every sequence of 4 currents from {-1, -0.5, ..., 2} (2,401,
    all exact in binary): one pre-run leaves 23 neurons off the ideal count of their mean current (late charge
    behind an early negative one), a second from the shifted start leaves none, and a third changes no count."""
    import itertools

    from spikeconv.neuron import ideal_count

    cfg = NeuronConfig(phi=0.5, signed=True, max_strength=1)
    values = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    x = torch.tensor(list(itertools.product(values, repeat=4))).T.contiguous()  # [4, 2401]
    ideal = ideal_count(x.mean(0), 1.0, 0.5, 4, 1)
    starts = {rounds: warmed_up_membrane(x, cfg, 4, rounds=rounds) for rounds in (1, 2, 3)}
    counts = {r: if_scan(x, if_init(x[0], cfg)._replace(v=v0), cfg)[0].sum(0) for r, v0 in starts.items()}
    assert int((counts[1] != ideal).sum()) == 23
    assert torch.equal(counts[2], ideal) and torch.equal(counts[3], ideal)
    # the first miss: -1, -0.5, 2, 2 (mean 0.625, ideal 3): one round sends 2 spikes, two rounds 3
    first = x[:, (counts[1] != ideal).nonzero()[0, 0]]
    assert first.tolist() == [-1.0, -0.5, 2.0, 2.0]
    # a neuron exact after one round keeps its start, unless its input exceeds what 4 steps can send (clipped:
    # charge is left at every round, the start rises, the count stays at its maximum)
    exact = (counts[1] == ideal) & (ideal < 4)
    assert torch.equal(starts[2][exact], starts[1][exact])
    with pytest.raises(ValueError, match="warm-up rounds must be a positive integer"):
        warmed_up_membrane(x, cfg, 4, rounds=0)


def test_warmup_rounds_through_simulate_and_evaluate(capsys):
    net = nn.Sequential(IFNeuron(NeuronConfig(phi=0.5, signed=True)))
    frames = torch.tensor([-1.0, -0.5, 2.0, 2.0]).view(4, 1, 1)
    one = simulate(net, frames, 4, sequence=True, warmup=4)[-1].item()
    two = simulate(net, frames, 4, sequence=True, warmup=4, warmup_rounds=2)[-1].item()
    assert (one, two) == (0.5, 0.75)  # 2 spikes, then the ideal 3
    for rounds in (0, True, 2.0):  # counts only: not a bool, not a float
        with pytest.raises(ValueError, match="warmup_rounds must be a positive integer"):
            SimulationConfig(warmup=2, warmup_rounds=rounds)
        with pytest.raises(ValueError, match="warmup_rounds=.* must be a positive integer"):
            AnalyzeConfig(timesteps=4, warmup=2, warmup_rounds=rounds)
    code = main(["evaluate", str(CHECKPOINTS / "mnist_lenet_qrelu.pt"), "--timesteps", "4", "--warmup-rounds", "2",
                 "--limit", "10"])
    assert code == 2 and "give --warmup RHO too" in capsys.readouterr().err
