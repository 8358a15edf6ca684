"""TFP and TFI reconstructions of the five REDS spike streams against their ground truth (PSNR, SSIM).

Usage: python benchmarks/reconstruction.py [--scale 1.67] [--window 41] [--json OUT]
The key frame is index 150; ``scale`` maps a firing rate to intensity (theta / gain of the camera that made
the streams: 1.67 matches every stream's mean rate to its ground truth, docs/data.md).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from spikeconv.data.reconstruct import quality, tfi, tfp
from spikeconv.data.spikecam import reds_streams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.67)
    parser.add_argument("--window", type=int, default=41)
    parser.add_argument("--data-root")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for name, frames, image in reds_streams(args.data_root):
        spikes, truth = torch.from_numpy(frames), torch.from_numpy(image)
        row = {"stream": name}
        for name, image in (("tfp", tfp(spikes, 150, args.window)), ("tfi", tfi(spikes, 150))):
            row.update({f"{name}_{k}": v for k, v in quality(args.scale * image, truth).items()})
        rows.append(row)
        print(f"{row['stream']:<32} TFP {row['tfp_psnr']:6.2f} dB {row['tfp_ssim']:.3f}   "
              f"TFI {row['tfi_psnr']:6.2f} dB {row['tfi_ssim']:.3f}")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "stream"}
    print(f"{'mean':<32} TFP {mean['tfp_psnr']:6.2f} dB {mean['tfp_ssim']:.3f}   "
          f"TFI {mean['tfi_psnr']:6.2f} dB {mean['tfi_ssim']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"scale": args.scale, "window": args.window, "streams": rows,
                                               "mean": mean}, indent=2))


if __name__ == "__main__":
    main()
