"""TFP and TFI of spikeconv next to spikezoo's (a peer, the ``bench`` extra) on the five shared REDS streams.

Usage: python benchmarks/spikezoo_reconstruction.py [--repeats 20] [--json OUT]
spikezoo's reconstruction networks are loaded straight from its ``archs/{tfp,tfi}/nets.py`` (its package
``__init__`` pulls in imageio, pyiqa and more; ``pip install --no-deps spikezoo opencv-python-headless`` is
enough for these two), given the 41 frames centred on the key frame 150 exactly as spikezoo crops them, and
divided by spikezoo's REDS ``rate`` 0.6; spikeconv's ``tfp``/``tfi`` get the whole stream and the same scale
1 / 0.6. PSNR and SSIM: ``spikeconv.data.reconstruct.quality`` for both. Time: median of ``repeats`` calls.
"""

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from spikeconv.data.reconstruct import quality, tfi, tfp
from spikeconv.data.spikecam import reds_streams

RATE = 0.6  # spikezoo's REDS_BASE rate: image = reconstruction / rate
KEY, WINDOW = 150, 41


def spikezoo_net(kind: str):
    found = importlib.util.find_spec("spikezoo")  # located, not imported (its __init__ needs more packages)
    if found is None:
        raise SystemExit("spikezoo is not installed: pip install --no-deps spikezoo opencv-python-headless")
    base = Path(found.submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location(f"spikezoo_{kind}", base / "archs" / kind / "nets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = getattr(module, f"{kind.upper()}Model")(WINDOW)
    net.device = "cpu"  # TFIModel hard-codes CUDA
    return net.eval()


def timed(run, repeats: int):
    out = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--data-root")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    nets = {"tfp": spikezoo_net("tfp"), "tfi": spikezoo_net("tfi")}
    ours = {"tfp": lambda s: tfp(s, KEY, WINDOW), "tfi": lambda s: tfi(s, KEY)}
    rows = []
    for name, frames, image in reds_streams(args.data_root):
        spikes, truth = torch.from_numpy(frames), torch.from_numpy(image)
        crop = spikes[KEY - WINDOW // 2:KEY + WINDOW // 2 + 1].float()[None]  # spikezoo's crop, key frame in the middle
        row = {"stream": name}
        for kind in ("tfp", "tfi"):
            theirs, t_theirs = timed(lambda: nets[kind](crop)[0, 0], args.repeats)
            mine, t_mine = timed(lambda: ours[kind](spikes), args.repeats)
            for who, image in (("spikezoo", theirs), ("spikeconv", mine)):
                row.update({f"{kind}_{who}_{k}": v for k, v in quality(image / RATE, truth).items()})
            row[f"{kind}_time_ratio"] = t_mine / t_theirs
        rows.append(row)
        print(f"{row['stream']:<30} TFP {row['tfp_spikeconv_psnr']:6.2f} / {row['tfp_spikezoo_psnr']:6.2f} dB   "
              f"TFI {row['tfi_spikeconv_psnr']:6.2f} / {row['tfi_spikezoo_psnr']:6.2f} dB  (spikeconv / spikezoo)")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "stream"}
    for kind in ("tfp", "tfi"):
        print(f"mean {kind.upper()}: spikeconv {mean[f'{kind}_spikeconv_psnr']:.2f} dB / {mean[f'{kind}_spikeconv_ssim']:.3f}, "
              f"spikezoo {mean[f'{kind}_spikezoo_psnr']:.2f} dB / {mean[f'{kind}_spikezoo_ssim']:.3f}; "
              f"time spikeconv / spikezoo {mean[f'{kind}_time_ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rate": RATE, "key": KEY, "window": WINDOW, "streams": rows,
                                               "mean": mean}, indent=2))


if __name__ == "__main__":
    main()
