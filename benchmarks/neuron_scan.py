"""The neuron scan alone: the eager PyTorch scan against the C scan (spikeconv.native), per step.

For channels-last float32 currents ``[steps, 32, C, H, W]`` (random, about a fifth of the neurons firing),
the plain IF neuron and the buffered S^max=2 neuron (int8 ``-V^b``, as in a ``simulate`` run on the CPU),
int8 or float32 spikes, chunks of 1, 2 and 8 steps: median microseconds per step of each scan (interleaved
runs), C / eager, and buffered / IF for each scan. Both scans are checked equal before timing.

    python benchmarks/neuron_scan.py [--repeats 7] [--json docs/results/neuron_scan_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from spikeconv.neuron import NeuronConfig, if_init
from spikeconv.neuron.functional import _scan_steps_, _stacked_like
from spikeconv.neuron.fused import native_available, native_scan_

SHAPES = [(32, 64, 32, 32), (32, 128, 16, 16), (32, 256, 8, 8)]
NEURONS = {"IF": (NeuronConfig(), None), "buffered S^max=2": (NeuronConfig(signed=True, max_strength=2), torch.int8)}


def setup(shape, steps, config, buffer_dtype, spike_dtype):
    generator = torch.Generator().manual_seed(steps)
    x = torch.randn((steps * shape[0], *shape[1:]), generator=generator) * 0.8
    x = x.contiguous(memory_format=torch.channels_last).view(steps, *shape)
    state = if_init(x[0], config, buffer_dtype=buffer_dtype)
    return x, state, _stacked_like(x[0], steps, spike_dtype)


def scans(shape, steps, config, buffer_dtype, spike_dtype):
    """``{"eager": fn, "C": fn}``, each advancing its own state; checked equal over three calls."""
    runs = {}
    for name in ("eager", "C"):
        x, state, spikes = setup(shape, steps, config, buffer_dtype, spike_dtype)
        work = {}
        if name == "eager":
            runs[name] = (lambda x=x, s=state, o=spikes, w=work: _scan_steps_(x, s.v, s.buffer, o, config, w,
                                                                           config.signed, False), state, spikes)
        else:
            runs[name] = (lambda x=x, s=state, o=spikes: native_scan_(x, s.v, s.buffer, o, config, config.signed,
                                                                   False), state, spikes)
    for _ in range(3):
        for run, _, _ in runs.values():
            run()
        (_, a, sa), (_, b, sb) = runs.values()
        if not (torch.equal(sa, sb) and torch.equal(a.v, b.v)):
            raise SystemExit(f"the C scan differs from the eager scan: {shape} {steps} {config}")
    return {name: run for name, (run, _, _) in runs.items()}


def per_step_us(run, steps: int, calls: int = 20) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args()
    if not native_available():
        raise SystemExit("the C kernels are not built here (see spikeconv doctor)")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; microseconds per step, medians")
    print("| shape | steps | spikes | IF eager | IF C | C / eager | buffered eager | buffered C | C / eager "
          "| buffered / IF, eager | buffered / IF, C |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for spike_dtype in (torch.int8, torch.float32):
        for steps in (1, 2, 8):
            for shape in SHAPES:
                runs = {neuron: scans(shape, steps, config, buffer_dtype, spike_dtype)
                        for neuron, (config, buffer_dtype) in NEURONS.items()}
                times = {(neuron, kind): [] for neuron in runs for kind in ("eager", "C")}
                for _ in range(args.repeats):  # interleaved
                    for (neuron, kind), samples in times.items():
                        samples.append(per_step_us(runs[neuron][kind], steps))
                med = {key: statistics.median(samples) for key, samples in times.items()}
                row = dict(shape=list(shape), steps=steps, spikes=str(spike_dtype).split(".")[-1],
                           us_per_step={f"{n} {k}": v for (n, k), v in med.items()})
                rows.append(row)
                (ie, ic, be, bc) = (med[("IF", "eager")], med[("IF", "C")], med[("buffered S^max=2", "eager")],
                                    med[("buffered S^max=2", "C")])
                print(f"| {tuple(shape)} | {steps} | {row['spikes']} | {ie:.0f} | {ic:.0f} | {ic / ie:.2f} | {be:.0f} "
                      f"| {bc:.0f} | {bc / be:.2f} | {be / ie:.2f} | {bc / ic:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
