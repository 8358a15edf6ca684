"""What negative spikes cost the int8 convolution, and the paths that recover it.

The buffered neuron sends signed spikes; oneDNN's uint8 kernel then needs a zero point (spikes + 128).
:class:`spikeconv.layers.IntegerConv2d` has three exact ways to run a signed convolution with padding
(``IntegerConv2d._path``): "kernel" (oneDNN pads with the zero point itself), "self-padded" (the layer
pads the shifted spikes itself, kernel padding 0) and "shifted" (``spike_bound`` known: the unsigned kernel
on ``S + c`` with unit scales, minus ``c`` times the window sums of the weights). For the spiking
convolutions of the VGG-style and ResNet-18 CIFAR-10 nets (batch = samples x steps per call, signed spikes
with |S| <= 2 at a 20% firing rate) time, interleaved, the unsigned kernel on |S| (the plain IF neuron's
cost) and each signed path forced; check that all signed paths give the same bits; print medians, ratios
to the unsigned kernel, and the path the layer picks by itself (``SMALL_MAP_POSITIONS``).

    python benchmarks/signed_spikes.py [--repeats 9] [--batch 32] [--json docs/results/signed_spikes_cpu.json]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from event_driven import CONVS, grid_weight, measure  # benchmarks/ is on the path when a script here runs
from spikeconv.layers import IntegerConv2d, integer_kernels_available

SHAPES = CONVS + [("conv 128->128 3x3 @16", 128, 128, 3, 1, 1, 16), ("conv 128->256 3x3 /2 @16", 128, 256, 3, 2, 1, 16),
                  ("conv 256->512 3x3 /2 @8", 256, 512, 3, 2, 1, 8)]


class _Forced(IntegerConv2d):
    """An IntegerConv2d that always takes ``path`` (benchmark only)."""

    path = "kernel"

    def _path(self, x, negative=None):
        return self.path


def forced(conv: nn.Conv2d, path: str) -> IntegerConv2d:
    layer = _Forced.from_layer(conv, 8, input_signed=True, spike_bound=2)
    layer.path = path
    return layer


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
    paths = ("kernel", "self-padded", "shifted")
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, |S| <= 2, rate 0.2")
    print(f"{'layer':<26} {'unsigned ms':>11} " + " ".join(f"{p:>11}" for p in paths) + f" {'picks':>11}")
    for name, cin, cout, k, stride, pad, size in SHAPES:
        conv = nn.Conv2d(cin, cout, k, stride, pad)
        conv.weight.data = grid_weight((cout, cin, k, k))
        unsigned = IntegerConv2d.from_layer(conv, 8, input_signed=False)
        layers = {path: forced(conv, path) for path in paths}
        shape = (args.batch, cin, size, size)
        fire = torch.rand(shape, generator=gen) < 0.2
        x = (torch.randint(-2, 3, shape, generator=gen) * fire).to(torch.int8).contiguous(memory_format=torch.channels_last)
        magnitude = x.abs()
        outputs = [layer(x) for layer in layers.values()]
        if not all(torch.equal(outputs[0], out) for out in outputs):
            raise SystemExit(f"{name}: the signed paths differ")
        runs = {"unsigned": lambda: unsigned(magnitude)}
        runs.update({path: (lambda layer=layer: layer(x)) for path, layer in layers.items()})
        t = measure(runs, args.repeats)
        picks = IntegerConv2d.from_layer(conv, 8, input_signed=True, spike_bound=2)._path(x)
        rows.append({"layer": name, "unsigned_ms": 1e3 * t["unsigned"], "picks": picks,
                     **{f"{path}_ratio": t[path] / t["unsigned"] for path in paths}})
        print(f"{name:<26} {1e3 * t['unsigned']:>11.3f} " + " ".join(f"{t[p] / t['unsigned']:>11.2f}" for p in paths)
              + f" {picks:>11}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
                       "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
