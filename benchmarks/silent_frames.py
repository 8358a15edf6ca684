"""Where silent-frame skipping pays: share of frames skipped and time with / without it, per network.

Silent-frame skipping (``spikeconv.layers.SkipSilentConv2d``, on by default in ``convert``) computes a
weight layer only on the frames (sample x step) whose input carries spikes. How much it saves depends on
how long the layers stay silent at the start of a run. This script measures it on

* the random-weight benchmark nets of ``benchmarks/peers.py`` (uniform random input, 99.9th percentile,
  IF neurons), and
* the trained CIFAR-10 checkpoints shipped in ``checkpoints/`` on real test images (the default buffered
  conversion of the QReLU VGG; the ReLU VGG with IF neurons, 99.9th percentile on 256 training images),
  also with paper 004's voltage clamp (deep layers hold for ``(depth - 1) * clamp`` steps).

For each: share of the weight layers' input frames skipped, the number of steps in which each neuron layer
is silent for every sample, whether the readout equals the dense one (``torch.equal``), and the median time
with skipping over the time without (interleaved runs, same process)::

    python benchmarks/silent_frames.py [--timesteps 4 8 32] [--batch 32] [--repeats 7] [--checkpoint PT ...]
                                       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from spikeconv import ConversionConfig, IFNeuron, convert, simulate
from spikeconv.data.loaders import dataset_info, eval_transform, load_split
from spikeconv.layers import SkipSilentConv2d, SkipSilentLinear, computed_span, skip_silent_frames
from spikeconv.models import build_model
from spikeconv.tasks.checkpoint import load_model

ROOT = Path(__file__).resolve().parent.parent


def cifar_images(split: str, start: int, count: int) -> torch.Tensor:
    images, _ = load_split("cifar10", split)
    transform = eval_transform(dataset_info("cifar10"))
    return torch.stack([transform(torch.from_numpy(images[i])) for i in range(start, start + count)])


def networks(batch: int, checkpoints: list[str]):
    """``label -> (ann, input, ConversionConfig kwargs, calibration)``."""
    torch.manual_seed(0)
    noise = torch.rand(batch, 3, 32, 32)
    relu_if = dict(signed=False, percentile=99.9)
    nets = {}
    for name in ("vgg_cifar_small", "resnet18_cifar"):
        nets[f"{name}, random weights, random input"] = (build_model(name, activation=nn.ReLU).eval(), noise,
                                                         relu_if, [noise])
    images, calibration = cifar_images("test", 0, batch), cifar_images("train", 0, 256)
    qrelu = ROOT / "checkpoints" / "cifar10_vgg_qrelu.pt"
    relu = ROOT / "checkpoints" / "cifar10_vgg_relu.pt"
    if qrelu.exists():
        ann = load_model(qrelu)[0]
        nets["CIFAR-10 VGG QReLU (trained), buffered S^max=1"] = (ann, images, {}, None)
        nets["CIFAR-10 VGG QReLU (trained), buffered, voltage clamp 1"] = (ann, images, dict(voltage_clamp=1), None)
    if relu.exists():
        nets["CIFAR-10 VGG ReLU (trained), IF, 99.9%"] = (load_model(relu)[0], images, relu_if, [calibration])
    for path in checkpoints:  # further CIFAR-10 checkpoints, e.g. runs/cifar10_resnet18_short.pt
        ann, payload = load_model(path)
        nets[f"{payload.get('model', Path(path).stem)} ({Path(path).name}), buffered S^max=1"] = (ann, images, {}, None)
        nets[f"{payload.get('model', Path(path).stem)} ({Path(path).name}), IF, phi=0"] = (
            ann, images, dict(signed=False, phi=0.0), None)
    return nets


def silent_steps(body: nn.Module, x: torch.Tensor, steps: int) -> list[int]:
    """Per neuron layer: the number of steps in which no sample of the batch fires."""
    counts = []

    def hook(module, inputs, output):
        frames = output.reshape(steps, x.shape[0], -1)
        counts.append(int((frames.abs().amax(dim=(1, 2)) == 0).sum()))
    handles = [m.register_forward_hook(hook) for m in body.modules() if isinstance(m, IFNeuron)]
    simulate(body, x, steps, order="layer")
    for handle in handles:
        handle.remove()
    return counts


def skipped_share(body: nn.Module, x: torch.Tensor, steps: int) -> float:
    """Share of the weight layers' input frames skipped as silent (default, auto order)."""
    totals = [0, 0]

    def count(module, inputs):
        first, stop = computed_span(inputs[0])
        totals[0] += inputs[0].shape[0] - (stop - first)
        totals[1] += inputs[0].shape[0]
    handles = [m.register_forward_pre_hook(count) for m in body.modules()
               if isinstance(m, (SkipSilentConv2d, SkipSilentLinear))]
    simulate(body, x, steps)
    for handle in handles:
        handle.remove()
    return totals[0] / max(totals[1], 1)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, nargs="+", default=[4, 8, 32])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--checkpoint", nargs="*", default=[], help="further CIFAR-10 spikeconv checkpoints")
    parser.add_argument("--json")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    print("| network | T | frames skipped | silent steps per neuron layer | equal | time skip / dense |")
    print("|---|---|---|---|---|---|")
    results = []
    for label, (ann, x, kwargs, calibration) in networks(args.batch, args.checkpoint).items():
        dense = convert(ann, x, ConversionConfig(**kwargs, skip_silent=False), calibration=calibration)
        skipping = skip_silent_frames(dense)  # what convert's default (skip_silent=True) gives
        for steps in args.timesteps:
            equal = torch.equal(simulate(skipping.body, x, steps), simulate(dense.body, x, steps))
            runs = {"skip": lambda: simulate(skipping.body, x, steps), "dense": lambda: simulate(dense.body, x, steps)}
            times = {key: [] for key in runs}
            for _ in range(args.repeats):
                for key, run in runs.items():
                    start = time.perf_counter()
                    run()
                    times[key].append(time.perf_counter() - start)
            ratio = statistics.median(times["skip"]) / statistics.median(times["dense"])
            row = {"network": label, "timesteps": steps, "skipped_share": skipped_share(skipping.body, x, steps),
                   "silent_steps": silent_steps(dense.body, x, steps), "equal": equal, "time_ratio": ratio}
            results.append(row)
            print(f"| {label} | {steps} | {row['skipped_share']:.1%} | {' '.join(map(str, row['silent_steps']))} | "
                  f"{'yes' if equal else 'NO'} | {ratio:.2f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
