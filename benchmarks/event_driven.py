"""Where event-driven accumulation and integer arithmetic beat the dense float layer, vs the input firing rate.

For layer shapes of the VGG-style and ResNet-18 CIFAR-10 nets (spikes folded ``--batch`` = samples x steps,
as the CPU engine runs them; 256 = 32 samples x 8 steps), time the exact ways to apply a layer to spikes at
each rate, interleaved (A B C A B C): the dense float32 channels-last convolution / linear layer, the C
event kernel (:func:`spikeconv.native.event_conv2d`: nonzero spikes listed per position, weight rows gathered
per output position; what :class:`spikeconv.sim.EventDriven` runs), the PyTorch scatter version
(:func:`spikeconv.sim.event_conv2d` / :func:`event_linear`, ``index_add_``; only up to rate 0.03, where it is
already many times slower), and the int8 kernels of :class:`spikeconv.layers.IntegerConv2d` / ``IntegerLinear``
(8-bit weights, int32 sums; signed spikes with the bound 1 that the converter gives S^max = 1 layers). Print
the medians, the ratios to dense and the crossover rates. The weights
are integers in [-127, 127] with one 127 per output channel (scale exactly 1), so every sum is exact and
the results are compared bit for bit on every row. ``--unsigned``: 0/1 spikes (the plain IF neuron's) instead
of -1/0/1.

    python benchmarks/event_driven.py [--repeats 7] [--batch 256] [--unsigned] [--json docs/results/F.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from spikeconv import native
from spikeconv.layers import IntegerConv2d, IntegerLinear, integer_kernels_available
from spikeconv.sim import event_conv2d, event_linear

# (name, C_in, C_out, kernel, stride, padding, H=W): the VGG-style net's spiking convs, then ResNet-18's
CONVS = [
    ("conv 32->32 3x3 @32", 32, 32, 3, 1, 1, 32),
    ("conv 32->64 3x3 /2 @32", 32, 64, 3, 2, 1, 32),
    ("conv 64->64 3x3 @16", 64, 64, 3, 1, 1, 16),
    ("conv 128->128 3x3 @8", 128, 128, 3, 1, 1, 8),
    ("conv 64->64 3x3 @32", 64, 64, 3, 1, 1, 32),
    ("conv 256->256 3x3 @8", 256, 256, 3, 1, 1, 8),
    ("conv 512->512 3x3 @4", 512, 512, 3, 1, 1, 4),
    ("conv 64->128 3x3 /2 @32", 64, 128, 3, 2, 1, 32),
    ("conv 64->128 1x1 /2 @32", 64, 128, 1, 2, 0, 32),
    ("conv 256->512 3x3 /2 @8", 256, 512, 3, 2, 1, 8),
]
LINEARS = [("linear 2048->10", 2048, 10), ("linear 4096->512", 4096, 512)]
RATES = [0.001, 0.01, 0.03, 0.1, 0.2, 0.3, 0.4, 0.5]
SCATTER_UP_TO = 0.03  # the index_add_ version is timed up to this rate only


def grid_weight(shape) -> torch.Tensor:
    """Integer weights in [-127, 127] with 127 in every output channel: an 8-bit grid with scale 1."""
    weight = torch.randint(-127, 128, shape).float()
    weight.view(shape[0], -1)[:, 0] = 127.0
    return weight


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def spikes(shape, rate, gen, channels_last=False, signed=True):
    """Spikes with ``rate`` of them nonzero: -1 or 1 (``signed``), else 1."""
    s = (torch.rand(shape, generator=gen) < rate).float()
    if signed:
        s *= torch.randint(0, 2, shape, generator=gen).float() * 2 - 1
    return s.contiguous(memory_format=torch.channels_last) if channels_last else s


def measure(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each ``name -> fn``, called interleaved after one warm-up call each."""
    for fn in runs.values():
        fn()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(timed(fn))
    return {name: statistics.median(t) for name, t in times.items()}


def cases(batch: int, gen: torch.Generator, signed: bool):
    """``(layer name, rate, {method: fn})`` for every layer shape and rate."""
    for name, cin, cout, k, stride, pad, size in CONVS:
        weight = grid_weight((cout, cin, k, k)).contiguous(memory_format=torch.channels_last)
        rows = weight.permute(2, 3, 1, 0).contiguous()
        conv = nn.Conv2d(cin, cout, k, stride, pad, bias=False)
        conv.weight.data = weight
        integer = IntegerConv2d.from_layer(conv, 8, input_signed=signed, spike_bound=1 if signed else None)
        for rate in RATES:
            x = spikes((batch, cin, size, size), rate, gen, channels_last=True, signed=signed)
            yield name, rate, {"dense": lambda: F.conv2d(x, weight, None, stride, pad),
                               "event C": lambda: native.event_conv2d(x, rows, None, (stride,) * 2, (pad,) * 2)[0],
                               **({"event scatter": lambda: event_conv2d(x, weight, None, stride, pad)}
                                  if rate <= SCATTER_UP_TO else {}),
                               "int8": lambda: integer(x)}
    for name, fin, fout in LINEARS:
        weight = grid_weight((fout, fin))
        rows = weight.t().contiguous()[None, None]
        fc = nn.Linear(fin, fout, bias=False)
        fc.weight.data = weight
        integer = IntegerLinear.from_layer(fc, 8, input_signed=signed, spike_bound=1 if signed else None)
        for rate in RATES:
            x = spikes((batch, fin), rate, gen, signed=signed)
            yield name, rate, {"dense": lambda: F.linear(x, weight),
                               "event C": lambda: native.event_conv2d(x[:, :, None, None], rows, None, (1, 1),
                                                                      (0, 0))[0].view(batch, fout),
                               **({"event scatter": lambda: event_linear(x, weight)} if rate <= SCATTER_UP_TO else {}),
                               "int8": lambda: integer(x)}


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=256, help="samples x steps folded into one call")
    parser.add_argument("--unsigned", action="store_true", help="0/1 spikes instead of -1/0/1")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not integer_kernels_available():
        raise SystemExit("this PyTorch build has no oneDNN int8 kernels")
    if not native.native_build().available:
        raise SystemExit(f"spikeconv's C kernel is unavailable: {native.native_build().reason}")
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{'0/1' if args.unsigned else '-1/0/1'} spikes")
    print(f"{'layer':<26} {'rate':>6} {'dense ms':>9} {'C events':>9} {'scatter':>8} {'int8':>6}  (time / dense)")
    for name, rate, runs in cases(args.batch, gen, not args.unsigned):
        results = {method: fn() for method, fn in runs.items()}
        if not all(torch.equal(results["dense"], out) for out in results.values()):
            raise SystemExit(f"{name} at rate {rate}: the methods' results differ")
        t = measure(runs, args.repeats)
        row = {"layer": name, "rate": rate, **{f"{m.replace(' ', '_')}_ms": 1e3 * v for m, v in t.items()},
               **{f"{m.replace(' ', '_')}_ratio": v / t["dense"] for m, v in t.items() if m != "dense"}}
        rows.append(row)
        scatter = f"{row['event_scatter_ratio']:>8.2f}" if "event_scatter_ratio" in row else f"{'-':>8}"
        print(f"{name:<26} {rate:>6.3f} {1e3 * t['dense']:>9.2f} {row['event_C_ratio']:>9.2f} {scatter} "
              f"{row['int8_ratio']:>6.2f}", flush=True)
    print("\nhighest measured rate at which the C events beat dense float32, and int8:")
    crossover = {}
    for name in dict.fromkeys(r["layer"] for r in rows):
        mine = [r for r in rows if r["layer"] == name]
        wins = [r["rate"] for r in mine if r["event_C_ratio"] < 1.0]
        beats_int8 = [r["rate"] for r in mine if r["event_C_ms"] < r["int8_ms"]]
        crossover[name] = {"events_beat_dense_up_to": max(wins) if wins else None,
                           "events_beat_int8_up_to": max(beats_int8) if beats_int8 else None}
        print(f"  {name:<26} events < dense up to {crossover[name]['events_beat_dense_up_to']}, "
              f"events < int8 up to {crossover[name]['events_beat_int8_up_to']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
                       "signed": not args.unsigned, "rows": rows, "crossover": crossover}, handle, indent=1)


if __name__ == "__main__":
    main()
