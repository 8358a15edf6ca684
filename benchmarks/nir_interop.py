"""spikeconv's NIR export run by the other simulators' NIR importers, compared spike by spike.

Each shipped network is converted with the options plain NIR can represent (IF neuron with reset to zero,
binary spikes, membrane from 0: ``ConversionConfig(reset="zero", signed=False, max_strength=1, phi=0.0)``),
exported with :func:`spikeconv.export.nir.to_nir`, imported by norse (``norse.torch.from_nir``), sinabs
(``sinabs.from_nir``) and snnTorch (``snntorch.import_nir.import_from_nir``), and run for T steps on the same
real test images (the same analog current every step). Every spiking layer's spikes are compared with
spikeconv's, step by step: the fraction of differing entries and the spike counts. An importer that fails
is reported with its error. Needs the bench extra.

    python benchmarks/nir_interop.py [--timesteps 8] [--json docs/results/nir_interop.json]
"""

from __future__ import annotations

import argparse
import json
import warnings

import torch

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.analysis import record
from spikeconv.data import make_dataset, make_loader
from spikeconv.export.nir import nir_report, to_nir
from spikeconv.tasks.checkpoint import load_model

MODELS = {"mnist": ("checkpoints/mnist_lenet_qrelu.pt", 16), "cifar10": ("checkpoints/cifar10_vgg_qrelu.pt", 8)}
PLAIN = dict(signed=False, max_strength=1, phi=0.0, skip_silent=False, channels_last=False)


def spikeconv_spikes(snn, x, steps) -> list[torch.Tensor]:
    with record(snn) as recording:
        simulate(snn, x, steps, order="step")
    return [layer.spikes for layer in recording.values() if layer.spikes.dim() > 2]


def hooked(net, kind, outs):
    return [m.register_forward_hook(lambda m, i, o: outs.append(o[0] if isinstance(o, tuple) else o))
            for m in net.modules() if kind(m)]


def run_norse(graph, x, steps, layers):
    """norse's IAFCell per layer; its Flatten also flattens the batch axis, so one sample at a time."""
    import norse.torch as norse

    net = norse.from_nir(graph, dt=1.0)
    samples = []
    for b in range(x.shape[0]):
        outs: list[torch.Tensor] = []
        handles = hooked(net, lambda m: type(m).__name__ == "IAFCell", outs)
        state = None
        for _ in range(steps):
            _, state = net(x[b:b + 1], state)
        for handle in handles:
            handle.remove()
        samples.append([torch.stack(outs[k::layers]) for k in range(layers)])
    return [torch.stack([s[k].reshape(steps, -1) for s in samples], 1) for k in range(layers)]


def run_sinabs(graph, x, steps, layers):
    """sinabs' IAFSqueeze per layer, time folded into the batch (batch-major)."""
    import sinabs

    batch = x.shape[0]
    net = sinabs.from_nir(graph, batch_size=batch)
    outs: list[torch.Tensor] = []
    handles = hooked(net, lambda m: isinstance(m, sinabs.layers.StatefulLayer), outs)
    net(x.unsqueeze(1).expand(batch, steps, *x.shape[1:]).flatten(0, 1))
    for handle in handles:
        handle.remove()
    return [o.reshape(batch, steps, -1).transpose(0, 1) for o in outs]


def run_snntorch(graph, x, steps, layers):
    import snntorch
    from snntorch.import_nir import import_from_nir

    net = import_from_nir(graph)
    outs: list[torch.Tensor] = []
    handles = hooked(net, lambda m: isinstance(m, snntorch.Leaky), outs)
    for _ in range(steps):
        net(x)
    for handle in handles:
        handle.remove()
    return [torch.stack(outs[k::layers]).reshape(steps, x.shape[0], -1) for k in range(layers)]


def compare(theirs, ours) -> list[dict]:
    rows = []
    for k, (a, b) in enumerate(zip(theirs, ours)):
        b = b.reshape(a.shape)
        rows.append({"layer": k, "differing": float((a != b).float().mean()), "equal": bool(torch.equal(a, b)),
                     "their_spikes": float(a.sum()), "spikeconv_spikes": float(b.sum())})
    return rows


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    results = {}
    for dataset, (path, count) in MODELS.items():
        model, _ = load_model(path)
        x, _ = next(iter(make_loader(make_dataset(dataset, "test", limit=count), count)))
        nir_if = convert(model, x, ConversionConfig(reset="zero", **PLAIN))
        subtract = convert(model, x, ConversionConfig(reset="subtract", **PLAIN))
        graph = to_nir(nir_if, x)
        plain_nodes = sorted(name for name, where in nir_report(graph).items() if where != "any")
        references = {"NIR IF (reset to zero)": spikeconv_spikes(nir_if, x, args.timesteps),
                      "reset by subtraction": spikeconv_spikes(subtract, x, args.timesteps)}
        layers = len(references["NIR IF (reset to zero)"])
        rows = {"nodes needing spikeconv's metadata": plain_nodes}
        for peer, run in (("norse", run_norse), ("sinabs", run_sinabs), ("snntorch", run_snntorch)):
            try:
                theirs = run(graph, x, args.timesteps, layers)
            except Exception as error:  # noqa: BLE001 - a peer's importer may fail in any way: report it
                rows[peer] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
                print(f"{dataset} {peer}: failed: {rows[peer]['error']}")
                continue
            rows[peer] = {name: compare(theirs, ours) for name, ours in references.items()}
            for name, table in rows[peer].items():
                cells = ", ".join("equal" if r["equal"] else f"{r['differing']:.3f} differ ({r['their_spikes']:.0f} vs "
                                  f"{r['spikeconv_spikes']:.0f} spikes)" for r in table)
                print(f"{dataset} {peer} against spikeconv {name}: {cells}", flush=True)
        results[dataset] = rows
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
