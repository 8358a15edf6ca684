"""How spikeconv's simulation cost grows with T, batch, depth and firing rate.

Every row is a median of interleaved runs, as a ratio to the ANN forward passes it replaces
(T x ANN for the same batch), measured in this one run:

    python benchmarks/scaling.py [--repeats 5] [--json out.json]

The orders run the dense engine (``skip_silent=False``); "auto+skip" is the default conversion, whose
weight layers skip silent frames (random-weight nets stay silent in deep layers for several steps, so
its gain shrinks with T and with the firing rate); "auto int8" is the dense engine on the same network
converted with 8-bit hardware weights (``weight_bits=8``: integer arithmetic in the spike-fed layers;
the ANN baseline keeps float32 weights and arithmetic). Along T, "auto buffered" and "auto int8 buffered"
are the same two dense engines with the buffered S^max=2 neuron (its -V^b is int8 while steps * 2 <= 127,
so at T = 64 the last step runs with a widened float32 buffer). "auto events" is the dense network made
event-driven with paths fixed from one measured run on the same input (``event_driven(snn, inputs=x,
timesteps=T)``: float layers whose input density is below their crossover accumulate only their spikes).

    python benchmarks/scaling.py --axes T --repeats 3     # one axis only (T, batch, depth, rate)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.layers import IntegerConv2d, IntegerLinear, skip_silent_frames
from spikeconv.models import build_model
from spikeconv.sim import event_driven


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ratio(ann, snn, x, steps: int, repeats: int, **kw) -> tuple[float, float]:
    """(SNN time / (T x ANN time), SNN seconds), the two interleaved."""
    snn_t, ann_t = [], []
    for _ in range(repeats):
        snn_t.append(median_time(lambda: simulate(snn, x, steps, **kw), 1))
        ann_t.append(median_time(lambda: [ann(x) for _ in range(steps)], 1))
    return statistics.median(snn_t) / statistics.median(ann_t), statistics.median(snn_t)


def dense_conversions(ann, x, **config):
    """The dense (``skip_silent=False``) conversions of ``ann`` with float and with 8-bit weights."""
    return [convert(ann, x, ConversionConfig(percentile=99.9, skip_silent=False, weight_bits=bits, **config),
                    calibration=[x]) for bits in (None, 8)]


def setup(name: str, batch: int, gain: float = 1.0):
    """ANN, the dense SNN, the default (skipping) SNN, the 8-bit integer SNN and the input. ``gain`` (a power
    of two, so integer layers stay on their grid) scales every layer's input current: more or fewer spikes,
    same shapes."""
    torch.manual_seed(0)
    ann = build_model(name, activation=nn.ReLU).eval()
    x = torch.rand(batch, 3, 32, 32)
    nets = dense_conversions(ann, x, signed=False)
    if gain != 1.0:
        for module in (m for net in nets for m in net.modules()):
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.data *= gain
            if isinstance(module, (IntegerConv2d, IntegerLinear)):
                module.weight_scale *= gain
    return ann, nets[0], skip_silent_frames(nets[0]), nets[1], x


def firing_rate(snn, x, steps: int) -> float:
    from spikeconv.analysis import record
    with record(snn) as rec:
        simulate(snn, x, steps)
    counts = [r.spikes.abs().sum().item() for r in rec.values()]
    sizes = [r.spikes.numel() for r in rec.values()]
    return sum(counts) / sum(sizes)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--axes", nargs="+", default=["T", "batch", "depth", "rate"],
                        choices=["T", "batch", "depth", "rate"], help="measure only these axes")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []

    def report(axis, value, name, steps, batch, r, seconds, order="auto", rate=None):
        row = dict(axis=axis, value=value, model=name, T=steps, batch=batch, order=order, ratio=r, seconds=seconds,
                   firing_rate=rate)
        rows.append(row)
        extra = "" if rate is None else f" | rate {rate:.3f}"
        print(f"| {axis} | {value} | {name} | T={steps} B={batch} {order} | {r:.2f} | {seconds:.3f}{extra} |", flush=True)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| axis | value | model | setting | ratio to T x ANN | SNN s |\n|---|---|---|---|---|---|")
    ann, snn, skipping, integer, x = setup("vgg_cifar_small", 32)
    buffered, integer_buffered = (dense_conversions(ann, x, signed=True, max_strength=2) if "T" in args.axes
                                  else (None, None))
    for steps in [1, 2, 4, 8, 16, 32, 64] if "T" in args.axes else []:
        for order in ["step", "layer", "auto"]:
            r, s = ratio(ann, snn, x, steps, args.repeats, order=order)
            report("T", steps, "vgg_cifar_small", steps, 32, r, s, order)
        for net, order, kw in ((skipping, "auto+skip", {}), (integer, "auto int8", {}),
                               (buffered, "auto buffered", {}), (integer_buffered, "auto int8 buffered", {}),
                               (integer, "auto int8, eager scan", dict(fused=False)),
                               (integer_buffered, "auto int8 buffered, eager scan", dict(fused=False))):
            r, s = ratio(ann, net, x, steps, args.repeats, **kw)
            report("T", steps, "vgg_cifar_small", steps, 32, r, s, order)
        r, s = ratio(ann, event_driven(snn, inputs=x, timesteps=steps), x, steps, args.repeats)
        report("T", steps, "vgg_cifar_small", steps, 32, r, s, "auto events")
    for batch in [1, 8, 32, 128] if "batch" in args.axes else []:
        ann, snn, _, integer, x = setup("vgg_cifar_small", batch)
        for order in ["step", "layer", "auto"]:
            r, s = ratio(ann, snn, x, 8, args.repeats, order=order)
            report("batch", batch, "vgg_cifar_small", 8, batch, r, s, order)
        r, s = ratio(ann, integer, x, 8, args.repeats)
        report("batch", batch, "vgg_cifar_small", 8, batch, r, s, "auto int8")
    for name in ["resnet_tiny", "vgg_cifar_small", "resnet18_cifar", "vgg16_cifar"] if "depth" in args.axes else []:
        ann, snn, skipping, integer, x = setup(name, 32)
        events = event_driven(snn, inputs=x, timesteps=8)
        for net, order in ((snn, "auto"), (skipping, "auto+skip"), (integer, "auto int8"), (events, "auto events")):
            r, s = ratio(ann, net, x, 8, args.repeats)
            report("depth", name, name, 8, 32, r, s, order)
    for gain in [0.25, 0.5, 1.0, 2.0, 4.0] if "rate" in args.axes else []:
        ann, snn, skipping, integer, x = setup("vgg_cifar_small", 32, gain)
        rate = firing_rate(snn, x, 8)
        events = event_driven(snn, inputs=x, timesteps=8)
        for net, order in ((snn, "auto"), (skipping, "auto+skip"), (integer, "auto int8"), (events, "auto events")):
            r, s = ratio(ann, net, x, 8, args.repeats)
            report("firing rate", f"gain {gain}", "vgg_cifar_small", 8, 32, r, s, order, rate=rate)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
