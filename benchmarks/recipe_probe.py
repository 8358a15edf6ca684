"""Which change to the fast recipe moves CIFAR-10 test accuracy: one training run per variant, on a GPU.

Each variant is the shipped recipe (``configs/cifar10_fast.toml``, 20 epochs) with one or more changes taken
from the published fast-training network: no BatchNorm after the whitening stem (``stem_norm=False``), max-pool
before the BatchNorm (training only: the order changes which values the batch statistics see), lookahead
averaging with a schedule ending at zero, BatchNorm eps 1e-12, GELU; ReLU and GELU variants show the float
ceiling, QReLU ones the quantized network. Each is scored on the full test set without and with test-time
augmentation (``tta1``: the image and its mirror; ``tta2``: also both shifted by one pixel).

    python benchmarks/recipe_probe.py --budget 285 --json out/recipe_probe.json     # about 3 min on an H200
    python benchmarks/recipe_probe.py --smoke                                      # tiny, on the CPU
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import torch
from torch import nn

from spikeconv.data import make_dataset
from spikeconv.models.fast import fastnet_cifar
from spikeconv.quant import QReLU
from spikeconv.tasks.fast import FastTrainConfig, train_fast_dataset


def pool_first(model: nn.Module) -> None:
    """``conv-BN-act-pool`` -> ``conv-pool-BN-act`` in every block (the published order; not convertible)."""
    blocks = list(model.blocks)
    for i in range(0, len(blocks), 7):
        blocks[i:i + 4] = [blocks[i], blocks[i + 3], blocks[i + 1], blocks[i + 2]]
    model.blocks = nn.Sequential(*blocks)


def tiny_eps(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-12


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "qrelu": functools.partial(QReLU, levels=8, phi=0.5)}
PUBLISHED = {"average": "lookahead", "ema": 0.95, "warmup": 0.2, "final_lr": 0.0}
ALL = ({"stem_norm": False}, PUBLISHED, (pool_first, tiny_eps))
VARIANTS = [  # name, activation, model options, training changes, model edits
    ("relu base", "relu", {}, {}, ()),
    ("relu stem without BN", "relu", {"stem_norm": False}, {}, ()),
    ("relu pool first", "relu", {}, {}, (pool_first,)),
    ("relu lookahead+schedule", "relu", {}, PUBLISHED, ()),
    ("relu eps 1e-12", "relu", {}, {}, (tiny_eps,)),
    ("relu all four", "relu", *ALL),
    ("gelu all four", "gelu", *ALL),
    ("gelu all four 10 epochs", "gelu", ALL[0], {**PUBLISHED, "epochs": 10}, ALL[2]),
    ("qrelu base", "qrelu", {}, {}, ()),
    ("qrelu stem without BN", "qrelu", {"stem_norm": False}, {}, ()),
    ("qrelu all four", "qrelu", *ALL),
    ("qrelu stem w/o BN + lookahead", "qrelu", {"stem_norm": False}, PUBLISHED, ()),
    ("relu all four 40 epochs", "relu", ALL[0], {**PUBLISHED, "epochs": 40}, ALL[2]),
    ("qrelu all four 40 epochs", "qrelu", ALL[0], {**PUBLISHED, "epochs": 40}, ALL[2]),
    ("qrelu all four wide", "qrelu", {**ALL[0], "widths": (128, 384, 384)}, PUBLISHED, ALL[2]),
]


@torch.no_grad()
def accuracy(model: nn.Module, test, tta: int) -> float:
    """Test accuracy in %, with ``tta`` 0 (the image), 1 (+ mirror) or 2 (+ both shifted by one pixel)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for k in range(0, len(test.images), 1000):
        x = test.transform(test.images[k:k + 1000].to(device)).float()
        logits = model(x)
        if tta >= 1:
            logits = logits + model(x.flip(-1))
        if tta == 2:
            padded = nn.functional.pad(x, (1,) * 4, mode="reflect")
            views = (padded[..., :-2, :-2], padded[..., 2:, 2:])
            logits = 0.5 * logits + 0.25 * sum(model(v) + model(v.flip(-1)) for v in views)
        correct += (logits.argmax(1).cpu() == test.labels[k:k + 1000]).sum().item()
    return 100 * correct / len(test.images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=285.0, help="seconds; variants that would not fit are skipped")
    parser.add_argument("--json", default="recipe_probe.json")
    parser.add_argument("--smoke", action="store_true", help="2,048 training images, one epoch, tiny widths")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = device == "cuda"
    deadline = time.monotonic() + args.budget
    train = make_dataset("cifar10", "train", limit=2048 if args.smoke else None)
    test = make_dataset("cifar10", "test", limit=500 if args.smoke else None)
    results: dict[str, object] = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    last = 5.0
    for name, activation, options, changes, edits in VARIANTS:
        factor = 2 if "40 epochs" in name else 3 if "wide" in name else 1
        if time.monotonic() + factor * last + 5 > deadline:
            results[name] = "skipped: out of time"
            continue
        torch.manual_seed(0)
        options = {"widths": (64, 256, 256), **options, **({"widths": (8, 16, 16)} if args.smoke else {})}
        model = fastnet_cifar(activation=ACTIVATIONS[activation], **options)
        for edit in edits:
            edit(model)
        config = FastTrainConfig(**{"epochs": 1 if args.smoke else 20, "device": device, **changes})
        started = time.monotonic()
        history = train_fast_dataset(model, train, config)
        last = time.monotonic() - started
        results[name] = {"train_s": round(last, 1), "train_acc": round(history[-1]["train_accuracy"], 2),
                         **{key: accuracy(model, test, tta) for key, tta in (("acc", 0), ("tta1", 1), ("tta2", 2))}}
        print(name, results[name], flush=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
