"""Mean output rate of each spiking max-pool against the analog twin, for gate vs count pool and both
resets (CIFAR-10 ReLU VGG, 200 test images, T=128, 99.9th percentile): why the gate over-counts.

    python references/maxpool_rates.py
"""

import torch
from spikeconv import ConversionConfig, convert, simulate
from spikeconv.analysis import record, analog_twin
from spikeconv.data import make_dataset, make_loader
from spikeconv.tasks.checkpoint import load_model
from spikeconv.neuron import SpikingMaxPool2d
torch.set_grad_enabled(False)
model, _ = load_model("checkpoints/cifar10_vgg_relu.pt")
x, y = next(iter(make_loader(make_dataset("cifar10", "test", limit=200), 200)))
cal = [a for a, _ in make_loader(make_dataset("cifar10", "train", limit=1000), 250)]
print("ann", (model(x).argmax(1) == y).float().mean().item())
for reset in ("zero", "subtract"):
  for mp in ("spiking", "count"):
    snn = convert(model, x[:2], ConversionConfig(percentile=99.9, reset=reset, signed=False, maxpool=mp), calibration=cal)
    twin = analog_twin(snn)
    outs = {}
    hs = [m.register_forward_hook(lambda mod, i, o, n=n: outs.__setitem__(n, o)) for n, m in twin.named_modules() if isinstance(m, torch.nn.MaxPool2d)]
    twin(x)
    with record(snn) as rec:
        out = simulate(snn, x, 128, order="layer")
    acc = (out[-1].argmax(1) == y).float().mean().item()
    rows = []
    for n, r in rec.items():
        if isinstance(r.module, SpikingMaxPool2d):
            rate = r.spikes.sum(0) / 128
            rows.append((n, round(rate.mean().item(), 4), round(outs[n].mean().item(), 4)))

    print(reset, mp, f"accuracy {acc:.3f}", "(pool, SNN rate, twin rate):", rows)
