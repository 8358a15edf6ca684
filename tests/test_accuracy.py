"""Accuracy of the shipped checkpoints on strided slices of the real test sets (bounds measured here,
with a small margin; the full-test-set numbers are in README.md)."""

import pytest
from conftest import CHECKPOINTS

from spikeconv import ConversionConfig, convert
from spikeconv.data import make_dataset, make_loader
from spikeconv.tasks.checkpoint import load_model
from spikeconv.tasks.classification import evaluate_ann, evaluate_snn

CASES = {
    # checkpoint: (samples, {(signed, S^max): {T: minimum accuracy}}); measured on these slices: MNIST 98.7, 98.6, 99.2; CIFAR 84.6, 85.8
    "mnist_lenet_qrelu.pt": (1000, {(True, 1): {4: 98.4, 8: 98.3}, (True, 2): {2: 98.9}}),
    "cifar10_vgg_qrelu.pt": (500, {(True, 1): {8: 84.0}, (True, 2): {4: 85.2}}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_checkpoint_accuracy(name, data_available):
    path = CHECKPOINTS / name
    if not path.exists():
        pytest.skip(f"{name} not shipped")
    samples, expectations = CASES[name]
    model, payload = load_model(path)
    loader = make_loader(make_dataset(payload["dataset"], "test", limit=samples), 250)
    ann = evaluate_ann(model, loader)
    example = next(iter(loader))[0][:2]
    for (signed, smax), bounds in expectations.items():
        snn = convert(model, example, ConversionConfig(signed=signed, max_strength=smax))
        accs = evaluate_snn(snn, loader, list(bounds))
        for t, minimum in bounds.items():
            assert accs[t] >= minimum, (name, signed, smax, t, accs[t], ann)
