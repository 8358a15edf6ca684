"""Where a simulation's time goes: the convolution / linear kernels against everything else.

Profiles (torch.profiler, CPU) ``--runs`` simulations of a converted network and as many sets of T ANN
forward passes, and prints the self time of the operators, grouped: weight kernels (float convolution,
linear, the oneDNN int8 kernels, spikeconv's event-driven convolution ``spikeconv::event_conv2d``), the neuron
scan (the operator ``spikeconv::if_scan_``, the CPU default; with ``--eager`` the PyTorch scan, whose passes
count as "other"), the rest of the SNN (eager neuron passes, weighted adds, conversions, checks). The ratio
"SNN weight
kernels / T ANN passes" is the floor for that arithmetic: the time the simulation would take with a free
neuron. Profiler times carry its overhead; read the shares, not seconds.

    python benchmarks/profile_share.py --model runs/cifar10_resnet18_short.pt [--weight-bits 8] [--buffered]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from peers import load_network, relu_twin  # benchmarks/ is on the path when a script here runs
from spikeconv import ConversionConfig, convert, simulate

WEIGHT_KERNELS = ("aten::mkldnn_convolution", "aten::convolution_overrideable", "aten::addmm", "aten::mm",
                  "onednn::qconv2d_pointwise", "onednn::qlinear_pointwise", "aten::_convolution_mode")


def self_times(fn, runs: int) -> dict[str, float]:
    """Self CPU seconds per operator over ``runs`` calls of ``fn`` (after one warm-up call)."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            fn()
    return {event.key: event.self_cpu_time_total / 1e6 for event in prof.key_averages()}


def group_of(name: str) -> str:
    """The group of one profiler event: the event-driven convolution (spikeconv's operator) counts as a weight
    kernel."""
    if name in WEIGHT_KERNELS or name == "spikeconv::event_conv2d":
        return "weight kernels"
    return "neuron scan (spikeconv::if_scan_)" if name == "spikeconv::if_scan_" else "other"


def grouped(times: dict[str, float]) -> dict[str, float]:
    groups: dict[str, float] = defaultdict(float)
    for name, seconds in times.items():
        groups[group_of(name)] += seconds
    return dict(groups)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/cifar10_resnet18_short.pt")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--weight-bits", type=int)
    parser.add_argument("--buffered", action="store_true", help="buffered neuron with S^max = 2 (else plain IF)")
    parser.add_argument("--compile", action="store_true", help="simulate(compile=True): the compiled neuron scan")
    parser.add_argument("--eager", action="store_true", help="simulate(fused=False): the PyTorch neuron scan")
    parser.add_argument("--top", type=int, default=8, help="also list this many operators of the SNN")
    parser.add_argument("--json")
    args = parser.parse_args()
    ann, x = load_network(args.model, args.batch)
    config = ConversionConfig(percentile=99.9, phi=0.0, weight_bits=args.weight_bits, signed=args.buffered,
                              max_strength=2 if args.buffered else 1)
    snn = convert(ann, x, config, calibration=[x])
    baseline = relu_twin(ann)
    snn_times = self_times(lambda: simulate(snn.body, x, args.timesteps, compile=args.compile,
                                                  fused=False if args.eager else None), args.runs)
    ann_times = self_times(lambda: [baseline(x) for _ in range(args.timesteps)], args.runs)
    snn_groups, ann_total = grouped(snn_times), sum(ann_times.values())
    snn_total = sum(snn_groups.values())
    print(f"{args.model}, T={args.timesteps}, batch {args.batch}, weight bits {args.weight_bits}, "
          f"{'buffered S^max=2' if args.buffered else 'IF'}{', compiled' if args.compile else ''}; profiler self time over {args.runs} runs")
    for group, seconds in snn_groups.items():
        print(f"  SNN {group:<15} {seconds:8.3f} s  {seconds / snn_total:6.1%} of the SNN  "
              f"{seconds / ann_total:5.2f} of {args.timesteps} ANN passes")
    print(f"  SNN total           {snn_total:8.3f} s  {snn_total / ann_total:5.2f} of {args.timesteps} ANN passes")
    print(f"  ANN weight kernels  {grouped(ann_times)['weight kernels'] / ann_total:6.1%} of the ANN's time")
    for name, seconds in sorted(snn_times.items(), key=lambda item: -item[1])[:args.top]:
        print(f"    {name:<40} {seconds / snn_total:6.1%}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"model": args.model, "weight_bits": args.weight_bits, "buffered": args.buffered, "compile": args.compile,
                       "eager": args.eager, "snn": snn_times, "ann": ann_times}, handle, indent=1)


if __name__ == "__main__":
    main()
