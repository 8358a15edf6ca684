"""A detector trained on images, run on spike-camera streams (paper 000 section B): mAP50 against T.

Usage: python benchmarks/camera_detection.py checkpoints/coco128_yolov3_tiny_qrelu.pt [--split val2017]
       [--thresholds 1 0.5] [--timesteps 4 8 16 32 64] [--limit 128] [--json OUT]
The COCO128 images (letterboxed, values in [0, 1]) are seen by a simulated spike camera
(:class:`spikeconv.data.camera.CameraEncoder`: an integrate-and-fire pixel per colour channel, threshold
``theta``; step t gets ``theta * S(t)``, the camera's spikes in intensity units) and the buffered SNN
(S^max = 1) integrates the spikes; the anytime readout is decoded at every T. Reference rows: the quantized
ANN on the images, and the same SNN on the images (analog input). Agreement: mAP50 of the SNN's boxes against
the quantized ANN's boxes on the images (score >= 0.25).
"""

import argparse
import json
from pathlib import Path

from torch.utils.data import DataLoader

from spikeconv import SimulationConfig
from spikeconv.data.camera import CameraEncoder
from spikeconv.data.detection import coco128, collate
from spikeconv.tasks.classification import SNNVariant
from spikeconv.tasks.checkpoint import load_model
from spikeconv.tasks.detection_eval import detection_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--split", default="val2017")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--timesteps", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--json")
    args = parser.parse_args()
    model, payload = load_model(args.checkpoint)
    data = coco128(args.split, image_size=int(payload["model_kwargs"]["input_size"]), limit=args.limit)
    loader = DataLoader(data, batch_size=16, collate_fn=collate)
    example = next(iter(loader))[0][:2]
    variant = [SNNVariant("buffered", 1)]
    rows = {"images": detection_table(model, loader, example, args.timesteps, variant)}
    for theta in args.thresholds:
        camera = SimulationConfig(encoder=CameraEncoder(threshold=theta))
        rows[f"camera theta={theta}"] = detection_table(model, loader, example, args.timesteps, variant,
                                                        simulation=camera)
    first = rows["images"]
    print(f"{payload['dataset']}/{args.split}, {first['images']} images; quantized ANN on the images: mAP50 "
          f"{100 * first['qann']['map50']:.2f}")
    print(f"{'buffered/smax1 input':<24}" + "".join(f"{'T=' + str(t):>16}" for t in args.timesteps))
    for name, table in rows.items():
        cells = table["snn"]["buffered/smax1"]
        print(f"{name:<24}" + "".join(f"{100 * (cells[t]['map50'] or 0):>7.2f} ({100 * (cells[t]['agreement50'] or 0):5.1f})"
                                      for t in args.timesteps))
    print("cells: mAP50 (agreement mAP50 with the quantized ANN on the images)")
    if args.json:
        Path(args.json).write_text(json.dumps({k: {**v, "snn": {kk: {str(t): c for t, c in vv.items()}
                                                                for kk, vv in v["snn"].items()}}
                                               for k, v in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
