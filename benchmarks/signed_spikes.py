"""What negative spikes cost the int8 convolution, and the shifted path that recovers it on small maps.

The buffered neuron sends signed spikes; oneDNN's uint8 kernel then needs a zero point (spikes + 128), and
with padding the layer pads the shifted spikes itself (:class:`spikeconv.layers.IntegerConv2d`). The
shifted path (``spike_bound`` known) instead runs the unsigned kernel on ``S + c`` with unit scales and
subtracts ``c`` times the window sums of the weights, exactly. For the spiking convolutions of the
VGG-style and ResNet-18 CIFAR-10 nets (batch = samples x steps per call, signed spikes with |S| <= 2 at a
20% firing rate) time, interleaved: the unsigned kernel on |S| (the plain IF neuron's cost), the zero-point
path and the shifted path; check that both signed paths give the same bits; print medians and ratios to
the unsigned kernel, and which path the layer picks (``SHIFTED_MAX_POSITIONS``).

    python benchmarks/signed_spikes.py [--repeats 9] [--batch 32] [--json docs/results/signed_spikes_cpu.json]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from event_driven import CONVS, grid_weight, measure  # benchmarks/ is on the path when a script here runs
from spikeconv.layers import IntegerConv2d, integer_kernels_available

SHAPES = CONVS + [("conv 64->128 3x3 /2 @32", 64, 128, 3, 2, 1, 32), ("conv 128->256 3x3 /2 @16", 128, 256, 3, 2, 1, 16),
                  ("conv 256->512 3x3 /2 @8", 256, 512, 3, 2, 1, 8)]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=32, help="samples x steps folded into one call")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not integer_kernels_available():
        raise SystemExit("this PyTorch build has no oneDNN int8 kernels")
    gen = torch.Generator().manual_seed(0)
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, |S| <= 2, rate 0.2")
    print(f"{'layer':<26} {'unsigned ms':>11} {'zero point':>11} {'shifted':>8} {'picks':>8}")
    for name, cin, cout, k, stride, pad, size in SHAPES:
        conv = nn.Conv2d(cin, cout, k, stride, pad)
        conv.weight.data = grid_weight((cout, cin, k, k))
        unsigned = IntegerConv2d.from_layer(conv, 8, input_signed=False)
        zero_point = IntegerConv2d.from_layer(conv, 8, input_signed=True)
        shifted = IntegerConv2d.from_layer(conv, 8, input_signed=True, spike_bound=2)
        shape = (args.batch, cin, size, size)
        fire = torch.rand(shape, generator=gen) < 0.2
        x = (torch.randint(-2, 3, shape, generator=gen) * fire).to(torch.int8).contiguous(memory_format=torch.channels_last)
        magnitude = x.abs()
        if not torch.equal(zero_point(x), shifted._shifted_forward(x)):
            raise SystemExit(f"{name}: the zero-point and shifted paths differ")
        t = measure({"unsigned": lambda: unsigned(magnitude), "zero point": lambda: zero_point(x),
                     "shifted": lambda: shifted._shifted_forward(x)}, args.repeats)
        picks = "shifted" if shifted._shifts(x) else "zero pt"
        rows.append({"layer": name, "unsigned_ms": 1e3 * t["unsigned"], "zero_point_ratio": t["zero point"] / t["unsigned"],
                     "shifted_ratio": t["shifted"] / t["unsigned"], "picks": picks})
        print(f"{name:<26} {1e3 * t['unsigned']:>11.3f} {t['zero point'] / t['unsigned']:>11.2f} "
              f"{t['shifted'] / t['unsigned']:>8.2f} {picks:>8}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
                       "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
