"""Classifiers trained on images, run on simulated spike-camera streams of the real test images (paper 000
section B, for classification): accuracy against T, camera threshold and window, next to the image accuracy.

Usage: python benchmarks/camera_classification.py checkpoints/mnist_lenet_qrelu.pt --limit 1000
       [--thresholds 1 0.5] [--windows 1 4] [--timesteps 4 8 16 32] [--json OUT]
The buffered SNN (S^max = 1) of the checkpoint; analog image input gives the reference row.
"""

import argparse
import json
from pathlib import Path

import torch
from torchvision.transforms import v2

from spikeconv import ConversionConfig, SimulationConfig, convert
from spikeconv.data import DATASETS, make_dataset, make_loader
from spikeconv.data.camera import CameraEncoder
from spikeconv.tasks.checkpoint import load_model
from spikeconv.tasks.classification import evaluate_snn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--mode", default="binary", choices=["binary", "count"], help="frames of a window >1")
    parser.add_argument("--timesteps", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--json")
    args = parser.parse_args()
    model, payload = load_model(args.checkpoint)
    info = DATASETS[payload["dataset"]]
    normalize = v2.Normalize(info.mean, info.std)
    test = make_dataset(payload["dataset"], "test", limit=args.limit)
    raw = [(x * torch.tensor(info.std).view(1, -1, 1, 1) + torch.tensor(info.mean).view(1, -1, 1, 1)).clamp(0, 1)
           for x, _ in make_loader(test, 250)]  # back to [0, 1]: what the camera sees
    labels = [y for _, y in make_loader(test, 250)]
    example = next(iter(make_loader(test, 2)))[0]
    snn = convert(model, example, ConversionConfig())
    rows = {"image (analog)": evaluate_snn(snn, make_loader(test, 250), args.timesteps)}
    for threshold in args.thresholds:
        for window in args.windows:
            encoder = CameraEncoder(threshold, window=window, mode=args.mode, normalize=lambda f: normalize(f.flatten(0, 1)).view(f.shape))
            loader = list(zip(raw, labels))
            rows[f"camera theta={threshold} window={window}{' ' + args.mode if window > 1 else ''}"] = evaluate_snn(
                snn, loader, args.timesteps, config=SimulationConfig(encoder=encoder))
    width = max(len(k) for k in rows)
    print(f"{'input':<{width}}" + "".join(f"{'T=' + str(t):>9}" for t in args.timesteps))
    for key, accs in rows.items():
        print(f"{key:<{width}}" + "".join(f"{accs[t]:>9.2f}" for t in args.timesteps))
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "samples": len(test),
                                               "accuracy": {k: {str(t): a for t, a in v.items()} for k, v in rows.items()}},
                                              indent=2))


if __name__ == "__main__":
    main()
