"""NIR export and import: nothing lost (bit-identical round trips through a file), clear refusals."""

import pytest
import torch
from conftest import CHECKPOINTS
from helpers import dyadic, on_grid_, tiny_resnet
from torch import nn

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.errors import SpikeconvError
from spikeconv.models import build_model

nir = pytest.importorskip("nir")
from spikeconv.export.nir import ExportError, from_nir, nir_report, to_nir  # noqa: E402

VARIANTS = [ConversionConfig(signed=False, max_strength=1), ConversionConfig(signed=False, max_strength=2),
            ConversionConfig(signed=True, max_strength=1), ConversionConfig(signed=True, max_strength=2)]


def _round_trip(snn, x, tmp_path, timesteps=8):
    graph = to_nir(snn, x)
    nir.write(tmp_path / "net.nir", graph)
    back = from_nir(tmp_path / "net.nir")
    assert torch.equal(simulate(snn, x, timesteps), simulate(back, x, timesteps))
    return graph


@pytest.mark.parametrize("checkpoint,dataset", [("mnist_lenet_qrelu.pt", "mnist"), ("cifar10_vgg_qrelu.pt", "cifar10")])
@pytest.mark.parametrize("config", VARIANTS, ids=["if1", "if2", "buffered1", "buffered2"])
def test_shipped_networks_round_trip_bit_for_bit(checkpoint, dataset, config, tmp_path, data_available):
    from spikeconv.data import make_dataset, make_loader
    from spikeconv.tasks.checkpoint import load_model

    model, _ = load_model(CHECKPOINTS / checkpoint)
    x, _ = next(iter(make_loader(make_dataset(dataset, "test", limit=8), 8)))
    graph = _round_trip(convert(model, x, config), x, tmp_path)
    neurons = [n for n in graph.nodes.values() if isinstance(n, nir.IF)]
    meta = neurons[0].metadata["spikeconv"]
    assert (meta["signed"], meta["max_strength"], meta["reset"]) == (config.signed, config.max_strength, "subtract")
    assert set(nir_report(graph).values()) == {"any", "spikeconv"}  # reset by subtraction needs the metadata


def test_residual_maxpool_and_affine_networks_round_trip(tmp_path):
    model, x = tiny_resnet()  # WAdd residuals with a strided 1x1 shortcut
    graph = _round_trip(convert(model, x, ConversionConfig(max_strength=2)), x, tmp_path)
    assert sum(isinstance(n, nir.Scale) for n in graph.nodes.values()) == 4  # two WAdds, one scale per input
    torch.manual_seed(0)
    pool_net = build_model("cnn_maxpool_mnist").eval()  # ReLU, max-pool, biases
    x = torch.rand(4, 1, 28, 28)
    graph = _round_trip(convert(pool_net, x, ConversionConfig(percentile=100), calibration=[x]), x, tmp_path)
    pools = [n for n in graph.nodes.values() if isinstance(n, nir.SumPool2d)]
    assert [p.metadata["spikeconv"]["mode"] for p in pools] == ["count", "count"]
    affine = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 3, padding=1), nn.ReLU(),
                           nn.Flatten(), nn.Linear(2 * 26 * 26, 3)).eval()  # the BatchNorm stays an affine layer
    x = dyadic(4, 1, 28, 28)  # exported as a diagonal 1x1 conv: exact sums (grid) make it equal on any machine
    _round_trip(on_grid_(convert(affine, x, ConversionConfig(percentile=100), calibration=[x])), x, tmp_path)


def test_plain_reset_to_zero_network_is_plain_nir():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.rand(3, 4)
    graph = to_nir(convert(net, x, ConversionConfig(reset="zero", signed=False, phi=0.0, percentile=100),
                           calibration=[x]), x)
    assert set(nir_report(graph).values()) == {"any"}


def test_refusals_name_the_cause(tmp_path):
    ann = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(ExportError, match="Convert the ANN first"):
        to_nir(ann, torch.zeros(1, 4))
    (tmp_path / "bad.nir").write_text("not hdf5")
    with pytest.raises(ExportError, match="bad.nir is not a readable NIR file"):
        from_nir(tmp_path / "bad.nir")
    import numpy as np
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                                "lif": nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
                                "output": nir.Output(output_type={"output": np.array([3])})},
                         edges=[("input", "lif"), ("lif", "output")])
    with pytest.raises(SpikeconvError, match="NIR node 'lif' is a LIF, which spikeconv cannot run"):
        from_nir(graph)


def test_cli_export_writes_a_graph_that_loads_and_refuses_to_overwrite_its_input(tmp_path, capsys, data_available):
    from spikeconv.cli.main import main

    out = tmp_path / "lenet.nir"
    assert main(["export", str(CHECKPOINTS / "mnist_lenet_qrelu.pt"), "--out", str(out), "--neuron", "if",
                 "--reset", "zero", "--phi", "0"]) == 0
    line = capsys.readouterr().out
    assert f"wrote {out}" in line and "need spikeconv's semantics" in line
    graph = nir.read(out)
    neuron = next(n for n in graph.nodes.values() if isinstance(n, nir.IF))
    assert neuron.metadata["spikeconv"]["reset"] == "zero"
    assert set(nir_report(graph).values()) == {"any"}  # reset to zero, binary spikes, phi 0: plain NIR
    before = (CHECKPOINTS / "mnist_lenet_qrelu.pt").read_bytes()
    assert main(["export", str(CHECKPOINTS / "mnist_lenet_qrelu.pt"), "--out",
                 str(CHECKPOINTS / "mnist_lenet_qrelu.pt")]) == 2
    assert "is the checkpoint this command reads" in capsys.readouterr().err
    assert (CHECKPOINTS / "mnist_lenet_qrelu.pt").read_bytes() == before
