"""Seconds per training step of the fast CIFAR-10 network in each precision and memory layout.

Answers whether bfloat16 autocast helps on this machine (``train.bf16 = "auto"`` decides from the CPU's
instructions; docs/training.md): one forward, backward and SGD step of FastNet (the shipped 64/256/256
widths, QReLU P = 8) on a random batch, repeated, median reported. A variant whose first step exceeds
``--give-up`` seconds is stopped after it.

    python benchmarks/train_precision.py [--batch 1024] [--steps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from spikeconv.models.fast import fastnet_cifar
from spikeconv.quant import QReLU
from spikeconv.tasks.fast import uses_bf16

VARIANTS = {"float32, channels_last": (False, True), "float32, contiguous": (False, False),
            "bfloat16, channels_last": (True, True)}


def step_seconds(bf16: bool, channels_last: bool, batch: int, steps: int, give_up: float) -> list[float]:
    """Wall seconds of each of ``steps`` training steps (fewer if one exceeds ``give_up``)."""
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = fastnet_cifar(activation=lambda: QReLU(levels=8)).to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.85, nesterov=True)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (batch,))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        if times[-1] > give_up:
            break
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--give-up", type=float, default=30.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    caps = torch.cpu.get_capabilities()
    result = {"cpu": caps.get("cpu_name"), "threads": torch.get_num_threads(),
              "avx512_bf16": caps.get("avx512_bf16"), "amx_bf16": caps.get("amx_bf16"),
              "auto_uses_bf16": uses_bf16("auto", torch.device("cpu")), "batch": args.batch, "seconds": {}}
    print(f"{result['cpu']}, {result['threads']} threads; bf16 = \"auto\" trains in "
          f"{'bfloat16' if result['auto_uses_bf16'] else 'float32'}")
    for name, (bf16, channels_last) in VARIANTS.items():
        times = step_seconds(bf16, channels_last, args.batch, args.steps, args.give_up)
        result["seconds"][name] = statistics.median(times)
        print(f"{name:<26} {statistics.median(times):7.2f} s per step of {args.batch} ({len(times)} steps)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
