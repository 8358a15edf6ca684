"""SNN wall time relative to 8 ANN forward passes (issue 5's yardstick), spikeconv engine only.

Same weights, interleaved runs (A B A B ...), medians; only same-run ratios count on noisy machines.

    python benchmarks/engine_speed.py [--batch 32] [--timesteps 8] [--repeats 7]
"""

import argparse
import statistics
import time

import torch

from spikeconv import ConversionConfig, QReLU, convert, simulate
from spikeconv.models import build_model
from spikeconv.quant import calibrate_bounds_


def build(name: str, batch: int):
    torch.manual_seed(0)
    model = build_model(name, activation=lambda: QReLU(levels=8, phi=0.5))
    x = torch.randn(batch, 3, 32, 32)
    calibrate_bounds_(model, [x], p=99.9)
    return model.eval(), x


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", nargs="+", default=["vgg_cifar_small", "resnet18_cifar"])
    args = parser.parse_args()
    T = args.timesteps
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, T={T}")
    print("| model | variant | median s | ratio to 8 x ANN |")
    print("|---|---|---|---|")
    for name in args.models:
        model, x = build(name, args.batch)
        variants = {
            "ANN x T": lambda: [model(x) for _ in range(T)],
            "IF, layer order": (lambda s: lambda: simulate(s, x, T))(convert(model, x, ConversionConfig(signed=False))),
            "IF, step order": (lambda s: lambda: simulate(s, x, T, order="step"))(
                convert(model, x, ConversionConfig(signed=False))),
            "buffered S^max=2, layer": (lambda s: lambda: simulate(s, x, T))(
                convert(model, x, ConversionConfig(signed=True, max_strength=2))),
        }
        for fn in variants.values():
            fn()  # warm-up
        times = {k: [] for k in variants}
        for _ in range(args.repeats):
            for key, fn in variants.items():
                times[key].append(timed(fn))
        base = statistics.median(times["ANN x T"])
        for key, values in times.items():
            med = statistics.median(values)
            print(f"| {name} | {key} | {med:.3f} | {med / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
