"""Paper 004's evaluation grid for a plain-ReLU checkpoint: SNN accuracy vs T for max / 99.9 / 99.99
percentile normalization, reset to zero / by subtraction, analog / Poisson input (plain IF neurons).

    python references/relu_grid.py checkpoints/mnist_cnn_relu.pt [--limit N] [--json out.json]
"""

import argparse
import itertools
import json
import time

import torch

from spikeconv import ConversionConfig, convert
from spikeconv.data import PoissonEncoder, make_dataset, make_loader
from spikeconv.tasks.checkpoint import load_model
from spikeconv.tasks.classification import evaluate_ann, evaluate_snn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--timesteps", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--percentiles", type=float, nargs="+", default=[100.0, 99.9, 99.99])
    parser.add_argument("--resets", nargs="+", default=["zero", "subtract"], choices=["zero", "subtract"])
    parser.add_argument("--codings", nargs="+", default=["analog", "poisson"], choices=["analog", "poisson"])
    parser.add_argument("--maxpool", default="count", choices=["spiking", "count"],
                        help="spiking max-pool: exact max of counts (default) or gating by counts (SNN Toolbox)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--json")
    args = parser.parse_args()
    model, payload = load_model(args.checkpoint)
    test = make_dataset(payload["dataset"], "test", limit=args.limit)
    loader = make_loader(test, args.batch_size)
    calibration = [x for x, _ in make_loader(make_dataset(payload["dataset"], "train", limit=2000), 250)]
    example = next(iter(loader))[0][:2]
    scale = max(float(x.abs().max()) for x, _ in loader)
    results = {"dataset": payload["dataset"], "test_samples": len(test), "ann_accuracy": evaluate_ann(model, loader),
               "maxpool": args.maxpool, "snn_accuracy": {}}
    print(f"ANN {results['ann_accuracy']:.2f}% on {len(test)} samples; Poisson scale {scale:.3f}")
    header = "| normalization | reset | input | " + " | ".join(f"T={t}" for t in args.timesteps) + " |"
    print(header + "\n|" + "---|" * (3 + len(args.timesteps)))
    for p, reset, coding in itertools.product(args.percentiles, args.resets, args.codings):
        start = time.time()
        input_scale = scale if coding == "poisson" else 1.0
        cfg = ConversionConfig(percentile=p, reset=reset, signed=False, phi=0.0, per_channel=False,
                               input_scale=input_scale,
                               maxpool=args.maxpool)
        snn = convert(model, example, cfg, calibration=calibration)
        encoder = PoissonEncoder(seed=0, scale=scale) if coding == "poisson" else None
        accs = evaluate_snn(snn, loader, args.timesteps, encoder=encoder)
        key = f"p{p:g}/{reset}/{coding}"
        results["snn_accuracy"][key] = {str(t): a for t, a in accs.items()}
        print(f"| {'max' if p == 100 else f'{p:g}%'} | {reset} | {coding} | "
              + " | ".join(f"{accs[t]:.2f}" for t in args.timesteps) + f" |  ({time.time() - start:.0f}s)", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
