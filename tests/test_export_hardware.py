"""The integer hardware export (spikeconv.export.hardware) and its NumPy reference simulator
(spikeconv.export.reference_numpy): the reference, given the first neuron's input current, reproduces every
spike of spikeconv's integer engine bit for bit on real MNIST and CIFAR-10 test images, for the plain IF and
the buffered neuron, S^max 1 and 2, both resets; memory and synaptic operations counted; refusals named."""

import numpy as np
import pytest
import torch

from conftest import CHECKPOINTS
from spikeconv import ConversionConfig, convert, simulate
from spikeconv.analysis import record
from spikeconv.export import reference_numpy as reference
from spikeconv.export.hardware import save_hardware
from spikeconv.export.nir import ExportError
from spikeconv.neuron import IFNeuron
from spikeconv.tasks.exporting import host_currents

STEPS = 8


def _images(dataset, count):
    from spikeconv.data import make_dataset, make_loader

    return next(iter(make_loader(make_dataset(dataset, "test", limit=count), count)))[0]


@pytest.mark.exactness
@pytest.mark.parametrize("dataset, checkpoint", [("mnist", "mnist_lenet_qrelu.pt"), ("cifar10", "cifar10_vgg_qrelu.pt")])
@pytest.mark.parametrize("options", [{}, {"max_strength": 2}, {"signed": False, "reset": "zero"}],
                         ids=["buffered", "buffered-smax2", "if-reset-zero"])
@torch.no_grad()
def test_the_numpy_reference_reproduces_every_spike(dataset, checkpoint, options, tmp_path, data_available):
    from spikeconv.tasks.checkpoint import load_model

    model, _ = load_model(CHECKPOINTS / checkpoint)
    x = _images(dataset, 8)
    snn = convert(model, x, ConversionConfig(weight_bits=8, **options))
    path = save_hardware(snn, x, tmp_path / "net.npz")
    with record(snn) as recording:
        simulate(snn, x, STEPS, order="step")
    ours = [layer.spikes.contiguous().numpy() for layer in recording.values() if isinstance(layer.module, IFNeuron)]
    hardware = reference.load(path)
    theirs = reference.run(hardware, host_currents(snn, x), STEPS)
    assert len(theirs) == len(ours) >= 3
    for k, (a, b) in enumerate(zip(theirs, ours)):
        assert np.array_equal(a, b.reshape(a.shape)), f"layer {k}: {(a != b.reshape(a.shape)).mean():.4f} differ"
    assert sum(float(np.abs(a).sum()) for a in theirs) > 0
    memory = reference.memory_bytes(hardware)
    codes = sum(a.size for key, a in hardware["arrays"].items() if key.endswith(".codes"))
    assert memory["weights"] == codes + 8 * sum(a.size for key, a in hardware["arrays"].items() if key.endswith(".scale"))
    assert reference.synaptic_operations(hardware, theirs) > 0


def test_synaptic_operations_and_memory_count_by_hand(tmp_path):
    # conv 1 -> 2 channels 3x3 (padding 1) on a 3x3 map, then IF, flatten, linear 18 -> 4, IF
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1, bias=False), torch.nn.ReLU(), torch.nn.Conv2d(1, 2, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(18, 4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 2)).eval()
    x = torch.rand(3, 1, 3, 3)
    snn = convert(net, x, ConversionConfig(weight_bits=8, signed=False), calibration=[x])
    hardware = reference.load(save_hardware(snn, x, tmp_path / "net.npz"))
    spikes = [np.zeros((1, 1, 1, 3, 3), np.float32), np.zeros((1, 1, 18), np.float32), np.zeros((1, 1, 4), np.float32)]
    spikes[0][0, 0, 0, 1, 1] = 1.0  # the centre pixel reaches all 9 outputs of both channels: 18
    spikes[0][0, 0, 0, 0, 0] = 1.0  # a corner reaches 4 outputs of each: 8
    spikes[1][0, 0, :5] = 1.0  # 5 spikes into the 4-wide linear layer: 20
    assert reference.synaptic_operations(hardware, spikes) == 18 + 8 + 20
    assert reference.memory_bytes(hardware) == {"weights": 2 * 9 + 2 * 8 + 18 * 4 + 4 * 8,
                                                "state": 9 * 4 + 18 * 4 + 4 * 4}


def test_what_the_hardware_export_refuses(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8, 2)).eval()
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ExportError, match="convert it"):
        save_hardware(net, x, tmp_path / "a.npz")
    float_snn = convert(net, x, ConversionConfig(), calibration=[x])
    with pytest.raises(ExportError, match="weight_bits"):
        save_hardware(float_snn, x, tmp_path / "b.npz")
    pooled = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                                 torch.nn.Conv2d(2, 2, 1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(2, 2)).eval()
    with pytest.raises(ExportError, match="no integer hardware mapping"):
        save_hardware(convert(pooled, x, ConversionConfig(weight_bits=8), calibration=[x]), x, tmp_path / "c.npz")
    assert not list(tmp_path.iterdir())  # nothing written
