"""One realistic CNN per layer order, trained briefly on real CIFAR-10 and converted: the orders users write
convert without special cases and the SNN follows its quantized ANN.

Each network: three conv blocks of 32/64/128 channels in the given order, QReLU (P = 8, phi = 0.5), a linear
head; trained with the standard recipe (SGD, cosine, label smoothing) for ``--epochs`` on ``--train``
training images; evaluated on the first ``--test`` test images: the quantized ANN and the buffered SNN at
T = 2, 4, 8 (S^max = 1).

    python references/layer_orders_cifar.py [--epochs 2] [--train 10000] [--test 2000] [--json F]
"""

import argparse
import json
import time

import torch
from torch import nn

from spikeconv import ConversionConfig, convert
from spikeconv.data import make_dataset, make_loader
from spikeconv.quant import QReLU
from spikeconv.tasks.classification import TrainConfig, evaluate_ann, evaluate_snn, train_classifier


def q():
    return QReLU(levels=8, phi=0.5)


def block(order: str, cin: int, cout: int) -> list[nn.Module]:
    conv, bn, act, pool = nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), q(), nn.MaxPool2d(2)
    return {"conv-bn-relu-pool": [conv, bn, act, pool], "conv-relu-bn-pool": [conv, act, bn, pool],
            "conv-relu-pool-bn": [conv, act, pool, bn]}[order]


def network(order: str) -> nn.Module:
    if order == "conv-bn-relu-pool, bn1d before the head":
        layers = block("conv-bn-relu-pool", 3, 32) + block("conv-bn-relu-pool", 32, 64) + \
            block("conv-bn-relu-pool", 64, 128)
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 16, 256), q(), nn.BatchNorm1d(256),
                             nn.Dropout(0.2), nn.Linear(256, 10))
    if order == "max-pool on the input":
        layers = [nn.MaxPool2d(2), *block("conv-bn-relu-pool", 3, 32), *block("conv-bn-relu-pool", 32, 64),
                  *block("conv-bn-relu-pool", 64, 128)]
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4, 10))
    layers = block(order, 3, 32) + block(order, 32, 64) + block(order, 64, 128)
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.2), nn.Linear(128 * 16, 10))


ORDERS = ["conv-bn-relu-pool", "conv-relu-bn-pool", "conv-relu-pool-bn", "conv-bn-relu-pool, bn1d before the head",
          "max-pool on the input"]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--train", type=int, default=10000)
parser.add_argument("--test", type=int, default=2000)
parser.add_argument("--json")
args = parser.parse_args()
train_set = make_dataset("cifar10", "train", augment=True, limit=args.train)
test_loader = make_loader(make_dataset("cifar10", "test", limit=args.test), 500)
example = next(iter(test_loader))[0][:2]
results = {}
for order in ORDERS:
    torch.manual_seed(0)
    model = network(order)
    start = time.perf_counter()
    train_classifier(model, train_set, TrainConfig(epochs=args.epochs, batch_size=128, lr=0.05, device="cpu"))
    model.eval()
    snn = convert(model, example, ConversionConfig())
    row = {"train_s": round(time.perf_counter() - start, 1), "ann": evaluate_ann(model, test_loader),
           "snn": evaluate_snn(snn, test_loader, [2, 4, 8]),
           "statuses": sorted({r.status for r in snn.report})}
    results[order] = row
    print(f"{order}: quantized ANN {row['ann']:.2f}%, SNN {row['snn']}, trained in {row['train_s']} s", flush=True)
if args.json:
    with open(args.json, "w") as handle:
        json.dump(results, handle, indent=2)
