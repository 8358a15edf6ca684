"""Seconds and page faults per training step of the fast CIFAR-10 network, with glibc's malloc as it comes
and inside :func:`spikeconv.tasks.allocator.keep_freed_memory` (what the ``spikeconv`` command does).

Each setting runs in a fresh process (float32, channels-last, FastNet with QReLU P = 8, a random batch):
one warm-up step, then ``--steps`` timed steps; median seconds, and minor page faults and kernel (system)
seconds per timed step from ``getrusage``.

    python benchmarks/train_allocator.py [--batch 1024] [--steps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SETTINGS = {"glibc defaults": "0", "keep_freed_memory": "1"}


def measure(batch: int, steps: int) -> dict:
    """Run in this process: the step times and per-step page faults and system seconds."""
    import torch

    from spikeconv.models.fast import fastnet_cifar
    from spikeconv.quant import QReLU
    from spikeconv.tasks.allocator import keep_freed_memory

    torch.manual_seed(0)
    model = fastnet_cifar(activation=lambda: QReLU(levels=8)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.85, nesterov=True)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.2, reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with keep_freed_memory() as kept:
        step()
        before = resource.getrusage(resource.RUSAGE_SELF)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
    return {"kept": kept, "step_s": times, "median_step_s": statistics.median(times),
            "page_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
            "system_s_per_step": (after.ru_stime - before.ru_stime) / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(measure(args.batch, args.steps)))
        return
    import torch

    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch, "settings": {}}
    for name, flag in SETTINGS.items():
        done = subprocess.run([sys.executable, __file__, "--inside", "--batch", str(args.batch), "--steps",
                               str(args.steps)], env={**os.environ, "SPIKECONV_KEEP_MEMORY": flag},
                              capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        result["settings"][name] = row
        print(f"{name:<18} {row['median_step_s']:7.2f} s/step  {row['page_faults_per_step']:>12,.0f} page faults/step  "
              f"{row['system_s_per_step']:6.2f} s in the kernel/step  (in effect: {row['kept']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
