"""The stem of the fast CIFAR-10 network: its BatchNorm bias and how sparse its QReLU output is.

The shipped CPU-trained FastNet converts worse at low T than the GPU-trained one with a near-equal ANN
(docs/training.md); the clearest difference in their weights is the stem. This prints, per checkpoint, the
mean of the whitening BatchNorm's bias and the share of ``act0`` outputs at each QReLU level (test images),
and with ``--train-epochs N`` trains the recipe for N epochs per precision and prints the bias mean after
each epoch (does bfloat16 move it?).

    python benchmarks/stem_sparsity.py CKPT [CKPT ...] [--images 256]
    python benchmarks/stem_sparsity.py --train-epochs 1 --precisions bf16 fp32
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from spikeconv.data import make_dataset
from spikeconv.models.fast import fastnet_cifar
from spikeconv.quant import QReLU
from spikeconv.tasks.checkpoint import load_model
from spikeconv.tasks.fast import FastTrainConfig, train_fast_dataset


class _Enough(Exception):
    """Ends a training run after the requested epochs."""


def level_shares(model: torch.nn.Module, images: torch.Tensor) -> list[float]:
    """Percent of ``act0`` outputs at each level ``0..P`` (output / (lambda / P), rounded)."""
    act = model.act0
    out = act(model.whiten_bn(model.whiten(images)))
    counts = torch.bincount((out / (act.bound / act.levels)).round().long().flatten(), minlength=act.levels + 1)
    return (100 * counts / counts.sum()).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument("--images", type=int, default=256, help="test images for the level shares")
    parser.add_argument("--train-epochs", type=int, default=0)
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    args = parser.parse_args()
    test = make_dataset("cifar10", "test", limit=args.images)
    images = test.transform(test.images).float()
    for path in args.checkpoints:
        model = load_model(path)[0].eval()
        with torch.no_grad():
            shares = level_shares(model, images)
        print(f"{path}: stem bias mean {model.stem_bias.mean().item():+.3f}; act0 levels (%) "
              + " ".join(f"{s:.1f}" for s in shares))
    if args.train_epochs:
        train = make_dataset("cifar10", "train")
        for precision in args.precisions:
            torch.manual_seed(0)
            model = fastnet_cifar(activation=functools.partial(QReLU, levels=8, phi=0.5))
            started = time.perf_counter()

            def report(epoch: int, record: dict, model=model, precision=precision, started=started) -> None:
                print(f"{precision} epoch {epoch} ({time.perf_counter() - started:.0f} s): train accuracy "
                      f"{record['train_accuracy']:.2f}, stem bias mean {model.stem_bias.mean().item():+.3f}",
                      flush=True)
                if epoch >= args.train_epochs:
                    raise _Enough

            try:
                train_fast_dataset(model, train, FastTrainConfig(epochs=20, seed=0, bf16=precision == "bf16"),
                                   on_epoch=report)
            except _Enough:
                pass


if __name__ == "__main__":
    main()
