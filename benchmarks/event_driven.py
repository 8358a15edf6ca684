"""Where event-driven accumulation beats the dense layer, as a function of the input firing rate.

For layer shapes of the VGG-style CIFAR-10 net (spikes folded 64 samples x steps, as the CPU engine runs
them), time the dense channels-last convolution / linear layer and :func:`spikeconv.sim.event_conv2d` /
:func:`event_linear` on random signed spikes at each rate, interleaved (A B A B), and print the medians,
the ratio event/dense and the crossover rate. Both results are compared on every row (integer weights:
bit-identical).

    python benchmarks/event_driven.py [--repeats 7] [--json docs/results/event_driven_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from spikeconv.sim import event_conv2d, event_linear

# (name, C_in, C_out, kernel, stride, padding, H=W): the VGG-style CIFAR net's spiking convs, and its classifier
CONVS = [
    ("conv 32->32 3x3 @32", 32, 32, 3, 1, 1, 32),
    ("conv 32->64 3x3 /2 @32", 32, 64, 3, 2, 1, 32),
    ("conv 64->64 3x3 @16", 64, 64, 3, 1, 1, 16),
    ("conv 128->128 3x3 @8", 128, 128, 3, 1, 1, 8),
]
LINEARS = [("linear 2048->10", 2048, 10), ("linear 4096->512", 4096, 512)]
RATES = [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def spikes(shape, rate, gen, channels_last=False):
    s = (torch.rand(shape, generator=gen) < rate).float() * torch.randint(-1, 2, shape, generator=gen).float()
    return s.contiguous(memory_format=torch.channels_last) if channels_last else s


def measure(dense, event, repeats: int) -> tuple[float, float]:
    dense()
    event()
    d, e = [], []
    for _ in range(repeats):
        d.append(timed(dense))
        e.append(timed(event))
    return statistics.median(d), statistics.median(e)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64, help="samples x steps folded into one call")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(f"{'layer':<24} {'rate':>7} {'dense ms':>9} {'event ms':>9} {'event/dense':>12}")
    for name, cin, cout, k, stride, pad, size in CONVS:
        weight = torch.randint(-127, 128, (cout, cin, k, k)).float().contiguous(memory_format=torch.channels_last)
        for rate in RATES:
            x = spikes((args.batch, cin, size, size), rate, gen, channels_last=True)
            if not torch.equal(F.conv2d(x, weight, None, stride, pad), event_conv2d(x, weight, None, stride, pad)):
                raise SystemExit(f"{name} at rate {rate}: event and dense results differ")
            d, e = measure(lambda: F.conv2d(x, weight, None, stride, pad),
                           lambda: event_conv2d(x, weight, None, stride, pad), args.repeats)
            rows.append({"layer": name, "rate": rate, "dense_ms": 1e3 * d, "event_ms": 1e3 * e, "ratio": e / d})
            print(f"{name:<24} {rate:>7.4f} {1e3 * d:>9.3f} {1e3 * e:>9.3f} {e / d:>12.2f}")
    for name, fin, fout in LINEARS:
        weight = torch.randint(-127, 128, (fout, fin)).float()
        for rate in RATES:
            x = spikes((args.batch, fin), rate, gen)
            if not torch.equal(F.linear(x, weight), event_linear(x, weight)):
                raise SystemExit(f"{name} at rate {rate}: event and dense results differ")
            d, e = measure(lambda: F.linear(x, weight), lambda: event_linear(x, weight), args.repeats)
            rows.append({"layer": name, "rate": rate, "dense_ms": 1e3 * d, "event_ms": 1e3 * e, "ratio": e / d})
            print(f"{name:<24} {rate:>7.4f} {1e3 * d:>9.3f} {1e3 * e:>9.3f} {e / d:>12.2f}")
    print("\ncrossover (highest measured rate at which events are faster):")
    crossover = {}
    for name in dict.fromkeys(r["layer"] for r in rows):
        wins = [r["rate"] for r in rows if r["layer"] == name and r["ratio"] < 1.0]
        crossover[name] = max(wins) if wins else None
        print(f"  {name:<24} {crossover[name] if wins else 'never (down to 0.0003)'}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
                       "rows": rows, "crossover": crossover}, handle, indent=1)


if __name__ == "__main__":
    main()
