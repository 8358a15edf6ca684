"""What negative spikes cost the int8 convolution, and the paths that recover it.

The buffered neuron sends signed spikes; oneDNN's uint8 kernel then needs a zero point (spikes + 128).
:class:`spikeconv.layers.IntegerConv2d` has four exact ways to run a signed convolution with padding
(``IntegerConv2d._path``): "kernel" (oneDNN pads with the zero point itself), "self-padded" (the layer
pads the shifted spikes itself, kernel padding 0), "shifted" (``spike_bound`` known: the unsigned kernel
on ``S + c`` with unit scales, minus ``c`` times the window sums of the weights) and "split" (two unsigned
calls on the positive and negative parts; the only exact one besides "shifted" on a CPU without VNNI). For the spiking
convolutions of the VGG-style and ResNet-18 CIFAR-10 nets (batch = samples x steps per call, signed spikes
with |S| <= 2 at a 20% firing rate) time, interleaved, the unsigned kernel on |S| (the plain IF neuron's
cost) and each signed path forced; check that all signed paths give the same bits; print medians, ratios
to the unsigned kernel, and the path the layer picks by itself (``SHIFTED_MAX_POSITIONS``...).

With ``--models`` the same for every signed convolution of trained checkpoints on the spikes it really
receives: each net converted twice (plain IF and buffered S^max=2, 8-bit weights), one ``simulate`` run
(T = 8, ``--batch`` images) records every call's input, then each layer's calls of one run are timed
together: the IF layer on the IF net's spikes (the unsigned reference), and the buffered layer with each
signed path forced (calls without a negative spike included, as they come). Random spikes rank the paths
closer than real ones do (docs/simulation.md).

    python benchmarks/signed_spikes.py [--repeats 9] [--batch 32] [--json docs/results/signed_spikes_cpu.json]
    python benchmarks/signed_spikes.py --models checkpoints/cifar10_vgg_qrelu.pt runs/cifar10_resnet18_short.pt
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from event_driven import CONVS, grid_weight, measure  # benchmarks/ is on the path when a script here runs
from spikeconv.layers import IntegerConv2d, integer_kernels_available
from spikeconv.layers.onednn import saturating_pairs

SHAPES = CONVS + [("conv 128->128 3x3 @16", 128, 128, 3, 1, 1, 16), ("conv 128->256 3x3 /2 @16", 128, 256, 3, 2, 1, 16),
                  ("conv 256->512 3x3 /2 @8", 256, 512, 3, 2, 1, 8)]


class _Forced(IntegerConv2d):
    """An IntegerConv2d that always takes ``path`` (benchmark only)."""

    path = "kernel"

    def _path(self, x, negative=None):
        return self.path if self._negative(x) else "kernel"  # as the layer: no negative spike, no signed path


def forced(conv: nn.Conv2d, path: str) -> IntegerConv2d:
    layer = _Forced.from_layer(conv, 8, input_signed=True, spike_bound=2)
    layer.path = path
    return layer


def recorded_calls(net, x, steps: int) -> dict[str, list]:
    """``layer name -> [(layer, input), ...]`` for every IntegerConv2d call of one ``simulate`` run."""
    from spikeconv import simulate
    calls: dict[str, list] = {}
    hooks = [module.register_forward_pre_hook(
        lambda module, inputs, name=name: calls.setdefault(name, []).append((module, inputs[0].clone())))
        for name, module in net.body.named_modules() if isinstance(module, IntegerConv2d)]
    simulate(net.body, x, steps)
    for hook in hooks:
        hook.remove()
    return calls


def real_spikes(models: list[str], batch: int, repeats: int, paths: tuple[str, ...]) -> list[dict]:
    """Per signed layer of each trained net: the IF layer's time on its own spikes and each forced signed
    path's time on the buffered net's spikes, over the calls of one run (see the module docstring)."""
    from peers import load_network
    from spikeconv import ConversionConfig, convert
    rows = []
    print(f"{'net / layer':<40} {'calls':>5} {'IF ms':>8} " + " ".join(f"{p:>11}" for p in paths) + f" {'picks':>11}")
    for model in models:
        ann, x = load_network(model, batch)
        base = dict(percentile=99.9, phi=0.0, weight_bits=8)
        plain = recorded_calls(convert(ann, x, ConversionConfig(**base), calibration=[x]), x, 8)
        buffered = recorded_calls(convert(ann, x, ConversionConfig(signed=True, max_strength=2, **base),
                                          calibration=[x]), x, 8)
        for name, calls in buffered.items():
            layer = calls[0][0]
            if not layer.input_signed:
                continue
            forced_layers = {path: _Forced.from_layer(layer.float_layer(), 8, input_signed=True,
                                                      skip_silent=layer.skip_silent, spike_bound=layer.spike_bound)
                             for path in paths}
            for path, forced_layer in forced_layers.items():
                forced_layer.path = path
            outputs = [[forced_layer(spikes) for _, spikes in calls] for forced_layer in forced_layers.values()]
            if not all(torch.equal(a, b) for out in outputs[1:] for a, b in zip(outputs[0], out)):
                raise SystemExit(f"{model} {name}: the signed paths differ")
            runs = {"IF": lambda pairs=plain[name]: [module(spikes) for module, spikes in pairs]}
            runs.update({path: (lambda forced_layer=forced_layer: [forced_layer(spikes) for _, spikes in calls])
                         for path, forced_layer in forced_layers.items()})
            t = measure(runs, repeats)
            picks = sorted({layer._path(spikes) for _, spikes in calls})
            label = f"{model.rsplit('/', 1)[-1].removesuffix('.pt')} {name}"
            rows.append({"net": model, "layer": name, "calls": len(calls), "if_ms": 1e3 * t["IF"], "picks": picks,
                         **{f"{path}_ratio": t[path] / t["IF"] for path in paths}})
            print(f"{label:<40} {len(calls):>5} {1e3 * t['IF']:>8.3f} "
                  + " ".join(f"{t[p] / t['IF']:>11.2f}" for p in paths) + f" {'/'.join(picks):>11}", flush=True)
    return rows


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=32, help="samples x steps folded into one call")
    parser.add_argument("--json", default=None)
    parser.add_argument("--models", nargs="+", help="trained checkpoints: time their signed layers on real spikes")
    args = parser.parse_args()
    if not integer_kernels_available():
        raise SystemExit("this PyTorch build has no oneDNN int8 kernels")
    gen = torch.Generator().manual_seed(0)
    # without VNNI the zero point's shifted spikes saturate oneDNN's int16 pair sums (spikeconv/layers/onednn.py):
    # there the two zero-point paths are not exact and the layer splits signed spikes instead
    paths = ("shifted", "split") if saturating_pairs() else ("kernel", "self-padded", "shifted", "split")
    if saturating_pairs():
        print("no VNNI on this CPU: the zero-point paths (kernel, self-padded) would not be exact; not timed")
    if args.models:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, T = 8, "
              "time / IF layer")
        rows = real_spikes(args.models, args.batch, args.repeats, paths)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
                           "models": args.models, "rows": rows}, handle, indent=1)
        return
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
