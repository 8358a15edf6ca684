"""What each C kernel of spikeconv saves end to end, on the trained CIFAR-10 nets, in the mode it serves.

For each kernel, the same simulation (T steps, the first ``--batch`` CIFAR-10 test images, 99.9th-percentile
conversion) is timed with the C kernel and with the PyTorch path the library takes where the kernel is not
built, interleaved (A B A B ...), medians over ``--repeats``; the saving is ``1 - with / without``. A kernel
that saves less than 10% in its mode is not worth its build step and its second implementation.

Modes: the neuron scan (operator ``spikeconv::if_scan_``) in plain ``simulate``, float and 8-bit weights, IF
and buffered S^max = 2, against the eager scan; the event convolution (``spikeconv::event_conv2d``) in
``event_driven`` networks, against its PyTorch scatter reference. Both paths are checked to give the same
readout first. (The silent-frame check and the integer layers' helpers were C kernels too; this script at
commit cd3ecc9 measured them under 10% and they were replaced by PyTorch: docs/results/native_gain_cpu.json.)

    python benchmarks/native_gain.py [--models A.pt B.pt] [--batch 32] [--timesteps 8] [--repeats 9] [--json F]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from unittest import mock

import torch

from spikeconv import ConversionConfig, convert, native, simulate
from spikeconv.sim import SimulationConfig, event_driven

MODELS = ["checkpoints/cifar10_vgg_qrelu.pt", "checkpoints/cifar10_fastnet_qrelu.pt"]


def cifar_batch(path: str, batch: int):
    from spikeconv.data.loaders import dataset_info, eval_transform, load_split
    from spikeconv.tasks.checkpoint import load_model
    images, _ = load_split("cifar10", "test")
    transform = eval_transform(dataset_info("cifar10"))
    return load_model(path)[0].eval(), torch.stack([transform(torch.from_numpy(images[i])) for i in range(batch)])


def without(*targets: tuple[str, object]):
    """A context in which each ``module.attribute`` of ``targets`` is replaced (the PyTorch path)."""
    stack = contextlib.ExitStack()
    for name, value in targets:
        stack.enter_context(mock.patch(name, value))
    return stack


def _scatter(spikes, rows, bias, stride, padding, max_density=1.0):
    """The event operator as its PyTorch reference computes it (a machine without the C kernel)."""
    events = int(torch.count_nonzero(spikes))
    if events > max_density * spikes.numel():
        return None, events
    return native.event_conv2d_reference(spikes, rows, bias, stride, padding), events


NO_EVENT_KERNEL = (("spikeconv.native.event_conv2d", _scatter), ("spikeconv.native.runs_compiled", lambda x: False))


def cases(ann, x):
    """``name -> (network, patches, config with the kernel, config without)``; ``patches`` turn it off."""
    base = dict(percentile=99.9)
    plain = convert(ann, x, ConversionConfig(signed=False, **base), calibration=[x]).body
    buffered = convert(ann, x, ConversionConfig(signed=True, max_strength=2, **base), calibration=[x]).body
    integer = convert(ann, x, ConversionConfig(signed=True, max_strength=2, weight_bits=8, **base),
                      calibration=[x]).body
    plain_integer = convert(ann, x, ConversionConfig(signed=False, weight_bits=8, **base), calibration=[x]).body
    scan = (SimulationConfig(kernel="native"), SimulationConfig(kernel="eager"))
    default = (SimulationConfig(), SimulationConfig())
    return {
        "IF scan, plain IF": (plain, (), *scan),
        "IF scan, buffered S^max=2": (buffered, (), *scan),
        "IF scan, plain IF, 8-bit weights": (plain_integer, (), *scan),
        "IF scan, buffered S^max=2, 8-bit weights": (integer, (), *scan),
        "event convolution, event-driven plain IF": (event_driven(plain), NO_EVENT_KERNEL, *default),
    }


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--cases", nargs="+", help="only the rows whose name contains one of these")
    parser.add_argument("--json")
    args = parser.parse_args()
    steps = args.timesteps
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, T={steps}")
    results = {}
    for path in args.models:
        ann, x = cifar_batch(path, args.batch)
        rows = {}
        for name, (net, patches, on, off) in cases(ann, x).items():
            if args.cases and not any(part in name for part in args.cases):
                continue
            def with_kernel(net=net, on=on):
                return simulate(net, x, steps, on)[-1]

            def without_kernel(net=net, off=off, patches=patches):
                with without(*patches):
                    return simulate(net, x, steps, off)[-1]
            pair = {"with": with_kernel, "without": without_kernel}
            outs = {key: run() for key, run in pair.items()}  # warm-up, and the check
            diff = float((outs["with"] - outs["without"]).abs().max())
            times = {key: [] for key in pair}
            for _ in range(args.repeats):
                for key, run in pair.items():
                    start = time.perf_counter()
                    run()
                    times[key].append(time.perf_counter() - start)
            medians = {key: statistics.median(values) for key, values in times.items()}
            rows[name] = {"with_s": medians["with"], "without_s": medians["without"],
                          "saving": 1 - medians["with"] / medians["without"], "max_abs_diff": diff}
        results[path] = rows
        print(f"\n{path}\n| kernel, mode | with C (s) | PyTorch path (s) | saving | max abs diff |\n|---|---|---|---|---|")
        for name, row in rows.items():
            print(f"| {name} | {row['with_s']:.3f} | {row['without_s']:.3f} | {row['saving']:+.1%} | "
                  f"{row['max_abs_diff']:.1e} |", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
