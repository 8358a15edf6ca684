"""What a target that runs only plain NIR semantics costs in accuracy: the shipped CIFAR-10 VGG (and MNIST
LeNet) converted step by step from spikeconv's default (buffered neuron, reset by subtraction, initial
membrane phi * V_th) down to what NIR's IF neuron runs (reset to zero, binary spikes, membrane from 0),
each simulated by spikeconv on the full test set; accuracy after T = 8 and 32 steps.

    python references/nir_semantics_cost.py [--limit N] [--json docs/results/nir_semantics_cost.json]
"""

import argparse
import json

import torch

from spikeconv import ConversionConfig, convert
from spikeconv.data import make_dataset, make_loader
from spikeconv.tasks.checkpoint import load_model
from spikeconv.tasks.classification import evaluate_ann, evaluate_snn

VARIANTS = {
    "spikeconv default: buffered, reset by subtraction, phi from the QReLU": {},
    "plain IF, reset by subtraction, phi from the QReLU": dict(signed=False),
    "plain IF, reset by subtraction, phi = 0": dict(signed=False, phi=0.0),
    "plain IF, reset to zero, phi = 0 (NIR's IF)": dict(signed=False, phi=0.0, reset="zero"),
}
MODELS = {"cifar10": "checkpoints/cifar10_vgg_qrelu.pt", "mnist": "checkpoints/mnist_lenet_qrelu.pt"}

torch.set_grad_enabled(False)
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--limit", type=int)
parser.add_argument("--json")
args = parser.parse_args()
results = {}
for dataset, path in MODELS.items():
    model, _ = load_model(path)
    loader = make_loader(make_dataset(dataset, "test", limit=args.limit), 500)
    example = next(iter(loader))[0][:2]
    rows = {"quantized ANN": evaluate_ann(model, loader)}
    for name, options in VARIANTS.items():
        snn = convert(model, example, ConversionConfig(**options))
        rows[name] = evaluate_snn(snn, loader, [8, 32])
        print(f"{dataset}: {name}: {rows[name]}", flush=True)
    results[dataset] = rows
    print(dataset, "quantized ANN", rows["quantized ANN"], flush=True)
if args.json:
    with open(args.json, "w") as handle:
        json.dump(results, handle, indent=2)
