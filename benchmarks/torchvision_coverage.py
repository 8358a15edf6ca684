"""Convert torchvision models with random weights and calibrated BN statistics; report the SNN-vs-ANN
output correlation at T. Usage: python benchmarks/torchvision_coverage.py [--timesteps 256]"""

import argparse
import time

import torch
import torchvision

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.errors import ConversionError

MODELS = ["resnet18", "vgg11_bn", "mobilenet_v2", "googlenet"]


def calibrated(name: str, size: int, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    for m in model.modules():  # BN statistics from a few calibration batches (cumulative average)
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(8, 3, size, size))
    return model.eval(), torch.rand(4, 3, size, size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=256)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--buffered", action="store_true", help="buffered neurons with phi = 0.5 (else plain IF)")
    parser.add_argument("--maxpool", choices=["spiking", "count"], default="count",
                        help="spiking max-pool: gating by counts (SNN Toolbox) or output count = max input count")
    parser.add_argument("--max-strength", type=int, default=1, help="S^max (multi-bit spikes)")
    parser.add_argument("--percentile", type=float, default=99.99)
    args = parser.parse_args()
    neuron = dict(signed=True, phi=0.5) if args.buffered else dict(signed=False, phi=0.0)
    print(f"| model | status | corr(SNN, ANN) at T={args.timesteps} | seconds |")
    print("|---|---|---|---|")
    for name in args.models:
        model, x = calibrated(name, args.size)
        start = time.time()
        try:
            calib = [torch.rand(8, 3, args.size, args.size) for _ in range(4)]
            snn = convert(model, x, ConversionConfig(percentile=args.percentile, per_channel=False, maxpool=args.maxpool,
                                                     max_strength=args.max_strength, **neuron), calibration=calib)
            out = simulate(snn, x, args.timesteps)[-1]
            ref = model(x)
            corr = torch.corrcoef(torch.stack([out.flatten(), ref.flatten()]))[0, 1].item()
            print(f"| {name} | converted | {corr:.4f} | {time.time() - start:.0f} |", flush=True)
        except ConversionError as exc:
            print(f"| {name} | error: {exc} | - | - |", flush=True)


if __name__ == "__main__":
    main()
