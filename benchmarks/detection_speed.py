"""Simulation cost of a converted detector: time of T SNN steps against T passes of its ANN, and peak memory.

Usage: MALLOC_MMAP_THRESHOLD_=65536 python benchmarks/detection_speed.py checkpoints/coco128_yolov3_tiny_qrelu.pt
       [--batch 16] [--timesteps 4 8] [--repeats 3] [--json OUT]
Median of ``repeats`` runs on ``batch`` COCO128 val2017 images (letterboxed to the checkpoint's input size);
the buffered neuron at S^max = 1 and 2. The ANN pass is the faster of the QReLU ANN and its clipped-ReLU
twin in channels-last layout (the SNN runs channels-last). Peak memory: resident-set high-water mark above the level before the
run (``benchmarks/measure.py peak_memory_mib``). Ratios are from one run on a noisy machine.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from measure import peak_memory_mib  # noqa: E402

from spikeconv import ConversionConfig, convert, simulate  # noqa: E402
from spikeconv.data.detection import coco128, collate  # noqa: E402
from spikeconv.tasks.checkpoint import load_model  # noqa: E402
from spikeconv.tasks.classification import dequantized  # noqa: E402


def timed(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--timesteps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model, payload = load_model(args.checkpoint)
    size = int(payload["model_kwargs"]["input_size"])
    data = coco128("val2017", image_size=size, limit=args.batch)
    x, _ = collate([data[k] for k in range(len(data))])
    qann_pass = timed(lambda: model(x), args.repeats)
    clip = dequantized(model).to(memory_format=torch.channels_last)  # the plain clipped-ReLU ANN, NHWC
    xc = x.contiguous(memory_format=torch.channels_last)
    ann_pass = min(timed(lambda: clip(xc), args.repeats), qann_pass)
    ann_memory = peak_memory_mib(lambda: clip(xc))
    rows = {"ann_pass_s": ann_pass, "qann_pass_s": qann_pass, "ann_peak_mib": ann_memory, "batch": args.batch,
            "input": size, "threads": torch.get_num_threads(), "snn": {}}
    print(f"batch {args.batch} x {size}x{size}, {torch.get_num_threads()} threads: one ANN pass {ann_pass * 1e3:.1f} ms "
          f"(the faster of the clipped-ReLU ANN, channels-last, and the QReLU ANN: {qann_pass * 1e3:.1f} ms), "
          f"peak {ann_memory:.0f} MiB")
    for smax in (1, 2):
        snn = convert(model, x[:2], ConversionConfig(max_strength=smax))
        for steps in args.timesteps:
            seconds = timed(lambda: simulate(snn, x, steps), args.repeats)
            memory = peak_memory_mib(lambda: simulate(snn, x, steps))
            key = f"buffered/smax{smax}/T{steps}"
            rows["snn"][key] = {"seconds": seconds, "ratio_to_T_ann_passes": seconds / (steps * ann_pass),
                                "peak_mib": memory}
            print(f"{key:<22} {seconds * 1e3:8.1f} ms = {seconds / (steps * ann_pass):.2f} x {steps} ANN passes, "
                  f"peak {memory:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
