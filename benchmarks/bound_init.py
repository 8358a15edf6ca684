"""The fast recipe's first QReLU bounds, calibrated in eval mode and under batch statistics, for a few seeds.

Builds FastNet as ``train_fast`` does before its first step (whitening from 5,000 training images, BatchNorm
statistics and the 99.9th-percentile bounds from one seeded batch of 1,024) and prints each QReLU's bound
both ways, with the largest activation of the last QReLU's input in eval mode.

    python benchmarks/bound_init.py --seeds 0 1 2 3 [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json

import torch

from spikeconv.data import make_dataset
from spikeconv.models.fast import fastnet_cifar, whitening_init_
from spikeconv.quant import QReLU, calibrate_bounds_
from spikeconv.tasks.fast import _batchnorm_statistics_, _seeded_sample


@torch.no_grad()
def first_bounds(seed: int, train, batch_statistics: bool) -> tuple[list[float], float]:
    torch.manual_seed(seed)
    model = fastnet_cifar(activation=functools.partial(QReLU, levels=8, phi=0.5))
    whitening_init_(model.whiten, train.transform(train.images[:5000]).float())
    first = train.transform(_seeded_sample(train.images, 1024, seed)).float()
    _batchnorm_statistics_(model, first)
    bounds = calibrate_bounds_(model, [first], p=99.9, batch_statistics=batch_statistics)
    seen = {}
    last = [m for m in model.modules() if isinstance(m, QReLU)][-1]
    handle = last.register_forward_pre_hook(lambda _m, args: seen.setdefault("x", args[0]))
    model.eval()(first)
    handle.remove()
    return [round(b, 2) for b in bounds.values()], round(seen["x"].max().item(), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--json")
    args = parser.parse_args()
    train = make_dataset("cifar10", "train", limit=10240)
    result = {}
    for seed in args.seeds:
        eval_bounds, largest = first_bounds(seed, train, False)
        batch_bounds, _ = first_bounds(seed, train, True)
        result[seed] = {"eval_mode": eval_bounds, "batch_statistics": batch_bounds, "last_input_max_eval": largest}
        print(f"seed {seed}: eval mode {eval_bounds} (last input max {largest}); batch statistics {batch_bounds}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
