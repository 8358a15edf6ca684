"""spikeconv's engine against SpikingJelly, snntorch, sinabs and norse on the same converted weights.

One converted network (random-weight ReLU ANN, 99.9th-percentile normalisation, IF neurons with
threshold 1) is run by every simulator: the peers get a copy of its body with each spikeconv IFNeuron
replaced by their own IF neuron (type-keyed replacement). Every variant is first checked against
spikeconv's readout on the same input (norse resets to zero, so it is compared with spikeconv's
reset-to-zero network), then timed interleaved (A B C ... A B C ...); medians and ratios to 8 ANN
forward passes of the original ANN, all from this one run. ``--memory`` runs each variant in its own
process and reports the peak resident memory it needs (see :func:`peak_memory_mib`).

The peers are a benchmark extra, never needed by the library; install them with torch pinned::

    .venv/bin/pip install -c <(printf 'torch==2.14.1\\ntorchvision==0.29.1\\n') spikingjelly snntorch sinabs norse

    python benchmarks/peers.py [--models vgg_cifar_small resnet18_cifar] [--batch 32] [--timesteps 8] [--memory]
                               [--profile]

``--models`` also takes trained spikeconv CIFAR-10 checkpoints (``.pt``): then the input is the first
``--batch`` CIFAR-10 test images and the timing baseline is the ANN with its QReLUs replaced by ReLU.
The peers always get plain ``Conv2d``/``Linear`` layers (no silent-frame skipping, which is spikeconv's);
"spikeconv IF, dense" is spikeconv without it. On trained weights the peers' contiguous convolutions round
differently from spikeconv's channels-last ones, so a few spikes near threshold differ (``max abs diff``
~1e-2); ``--peers-channels-last`` removes that (and speeds the peers up too). The buffered variants are
checked against spikeconv's own buffered network run step by step with a float32 buffer (the
"float32 buffer" variant times that choice; the engine otherwise keeps -V^b in int8 while steps * S^max <= 127).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace

import torch
from torch import nn

from measure import device_peak_mib, peak_memory_mib, profile_run, synchronize  # benchmarks/ is on the path
from silent_frames import skipped_share  # benchmarks/ is on the path when a script here runs
from spikeconv import ConversionConfig, IFNeuron, convert, simulate
from spikeconv.layers import IntegerConv2d, IntegerLinear, skip_silent_frames
from spikeconv.sim import event_driven
from spikeconv.models import build_model


def replaced(model: nn.Module, kind: type | tuple[type, ...], factory: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """``model`` (changed in place) with every module of type ``kind`` replaced by ``factory(module)``."""
    for name, module in list(model.named_modules()):
        if isinstance(module, kind):
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, factory(module))
    return model


def replace_neurons(body: nn.Module, factory: Callable[[IFNeuron], nn.Module], device: torch.device) -> nn.Module:
    """A contiguous-format copy of ``body`` with every IFNeuron replaced by ``factory(neuron)``, on ``device``
    (moved after the neurons are made: snntorch keeps constants in its neurons).

    The peers get the weights in PyTorch's default memory format, as their own converters produce them;
    channels-last is one of spikeconv's optimisations (``--peers-channels-last`` gives it to them too).
    """
    return replaced(plain_layers(body).to(memory_format=MEMORY_FORMAT[0]), IFNeuron, factory).to(device)


def plain_layers(body: nn.Module) -> nn.Module:
    """A copy of ``body`` whose integer layers (``--weight-bits``) are plain Conv2d/Linear with the same
    (quantized) weights and whose neurons emit float spikes: what a peer runs, and spikeconv's float
    arithmetic on the same weights."""
    return float_spikes(replaced(copy.deepcopy(body), (IntegerConv2d, IntegerLinear), lambda layer: layer.float_layer()))


def float_spikes(body: nn.Module) -> nn.Module:
    """``body`` (changed in place) with every IFNeuron emitting float32 spikes instead of int8."""
    for module in body.modules():
        if isinstance(module, IFNeuron):
            module.spike_dtype = None
    return body


class _Fold(nn.Module):
    """Run a multi-step neuron ([T, B, ...]) inside a body whose stateless layers see [T*B, ...]."""

    def __init__(self, node: nn.Module, steps: int) -> None:
        super().__init__()
        self.node, self.steps = node, steps

    def forward(self, x):
        return self.node(x.view(self.steps, -1, *x.shape[1:])).flatten(0, 1)


class _NorseIF(nn.Module):
    """norse's IAFCell (functional state) as a stateful module, the way a user wraps it in a Sequential."""

    def __init__(self) -> None:
        super().__init__()
        from norse.torch import IAFCell
        self.cell, self.state = IAFCell(), None

    def forward(self, x):
        z, self.state = self.cell(x, self.state)
        return z


MEMORY_FORMAT = [torch.contiguous_format]


def float_buffer(run: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``run`` with every buffered neuron keeping its buffer (-V^b) in float32, as before the int8 buffer
    (the engine otherwise keeps it in int8 while ``steps * S^max <= 127``): measures what the int8 buffer saves."""
    from unittest import mock

    def wrapped() -> torch.Tensor:
        with mock.patch("spikeconv.neuron.modules.compact_buffer_fits", lambda config, steps: False):
            return run()
    return wrapped


def _single_step(body: nn.Module, reset: Callable[[nn.Module], None], x, steps: int):
    reset(body)
    total = body(x)
    for _ in range(steps - 1):
        total = total + body(x)
    return total / steps


def peer_variants(snn_sub, snn_zero, x, steps: int) -> dict[str, tuple[Callable[[], torch.Tensor], str]]:
    """``name -> (run, reference)``; ``reference`` names the spikeconv network it must match."""
    variants = {}
    batch = x.shape[0]
    if importlib.util.find_spec("spikingjelly"):
        from spikingjelly.activation_based import functional as sjf
        from spikingjelly.activation_based import neuron as sjn
        single = replace_neurons(snn_sub.body, lambda n: sjn.IFNode(v_threshold=1.0, v_reset=None), x.device)
        multi = replace_neurons(snn_sub.body, lambda n: _Fold(sjn.IFNode(v_threshold=1.0, v_reset=None,
                                                                          step_mode="m"), steps), x.device)
        folded = x.unsqueeze(0).expand(steps, *x.shape).flatten(0, 1)

        def sj_multi():
            sjf.reset_net(multi)
            return multi(folded).view(steps, batch, -1).mean(0)
        variants["SpikingJelly single-step"] = (lambda: _single_step(single, sjf.reset_net, x, steps), "sub")
        variants["SpikingJelly multi-step"] = (sj_multi, "sub")
    if importlib.util.find_spec("snntorch"):
        import snntorch
        import snntorch.utils
        net = replace_neurons(snn_sub.body, lambda n: snntorch.Leaky(beta=1.0, threshold=1.0, init_hidden=True,
                                                                     reset_mechanism="subtract"), x.device)
        variants["snntorch"] = (lambda: _single_step(net, snntorch.utils.reset, x, steps), "sub")
    if importlib.util.find_spec("sinabs"):
        import sinabs.utils
        from sinabs.activation import MembraneSubtract, SingleSpike
        from sinabs.layers import IAFSqueeze
        net_s = replace_neurons(snn_sub.body, lambda n: IAFSqueeze(batch_size=batch, spike_threshold=1.0,
                                                                   spike_fn=SingleSpike, reset_fn=MembraneSubtract()), x.device)
        batch_major = x.unsqueeze(1).expand(batch, steps, *x.shape[1:]).flatten(0, 1)

        def sinabs_run():
            sinabs.utils.reset_states(net_s)
            return net_s(batch_major).view(batch, steps, -1).mean(1)
        variants["sinabs"] = (sinabs_run, "sub")
    if importlib.util.find_spec("norse"):
        net_n = replace_neurons(snn_zero.body, lambda n: _NorseIF(), x.device)

        def norse_reset(body):
            for m in body.modules():
                if isinstance(m, _NorseIF):
                    m.state = None
        variants["norse (reset to zero)"] = (lambda: _single_step(net_n, norse_reset, x, steps), "zero")
    return variants


def load_network(name: str, batch: int) -> tuple[nn.Module, torch.Tensor]:
    """A registry model with random weights and uniform random input, or (``name`` ending in ``.pt``) a
    trained spikeconv CIFAR-10 checkpoint with the first ``batch`` CIFAR-10 test images."""
    torch.manual_seed(0)
    if not name.endswith(".pt"):
        return build_model(name, activation=nn.ReLU).eval(), torch.rand(batch, 3, 32, 32)
    from spikeconv.data.loaders import dataset_info, eval_transform, load_split
    from spikeconv.tasks.checkpoint import load_model
    images, _ = load_split("cifar10", "test")
    transform = eval_transform(dataset_info("cifar10"))
    return load_model(name)[0], torch.stack([transform(torch.from_numpy(images[i])) for i in range(batch)])


def relu_twin(ann: nn.Module) -> nn.Module:
    """The ANN with every QReLU replaced by ReLU: the timing baseline is the same convolutions with the
    cheapest activation (a QReLU's quantization would make the ANN slower and the ratios look better)."""
    from spikeconv.quant import QReLU
    return replaced(copy.deepcopy(ann), QReLU, lambda module: nn.ReLU())


def build(name: str, batch: int, steps: int, weight_bits: int | None = None, device: str = "cpu"):
    """ANN, input, and the spikeconv variants: ``name -> (run, reference)``; plus the skipped-frame share.

    Converted on the CPU (calibration), then every network and the input moved to ``device``: on CUDA the
    integer layers take their float path (oneDNN's int8 kernels are CPU-only) and "auto" folds all of T.

    Trained checkpoints convert with ``phi = 0`` (the peers' neurons start at zero membrane). With
    ``weight_bits`` every network (spikeconv's and the peers') has those hardware weights; spikeconv's
    spike-fed layers then compute in integers, the peers' in float32 (the ANN baseline keeps float weights).
    """
    ann, x = load_network(name, batch)
    # plain Conv2d/Linear layers for the peers and spikeconv's dense path; the default (skipping) networks
    # are the same conversions with the layers swapped, as convert(skip_silent=True) does
    base = dict(percentile=99.9, phi=0.0, skip_silent=False, weight_bits=weight_bits)
    sub_dense = convert(ann, x, ConversionConfig(signed=False, **base), calibration=[x])
    zero_dense = convert(ann, x, ConversionConfig(signed=False, reset="zero", **base), calibration=[x])
    buffered_dense = convert(ann, x, ConversionConfig(signed=True, max_strength=2, **base), calibration=[x])
    sub, zero, buffered = (skip_silent_frames(net) for net in (sub_dense, zero_dense, buffered_dense))
    ann, x = relu_twin(ann).to(device), x.to(device)
    for net in (sub_dense, zero_dense, buffered_dense, sub, zero, buffered):
        net.body.to(device)

    def ours(net, **kw):
        return lambda: simulate(net.body, x, steps, **kw)[-1]
    variants = {
        "ANN x 8": (lambda: [ann(x) for _ in range(steps)][-1], None),
        "spikeconv IF (auto order)": (ours(sub), "sub"),
        "spikeconv IF, dense (no frame skipping)": (ours(sub_dense), "sub"),
        **({} if weight_bits is None else {
            "spikeconv IF, float arithmetic": (ours(SimpleNamespace(
                body=plain_layers(sub_dense.body).to(memory_format=torch.channels_last))), "sub"),
            "spikeconv IF, float32 spikes": (ours(SimpleNamespace(body=float_spikes(copy.deepcopy(sub.body)))), "sub"),
            "spikeconv buffered S^max=2, float32 spikes": (
                ours(SimpleNamespace(body=float_spikes(copy.deepcopy(buffered.body)))), "buffered")}),
        "spikeconv IF, dense, reused outputs": (ours(sub_dense, reuse_outputs=True), "sub"),
        "spikeconv IF, layer order": (ours(sub, order="layer"), "sub"),
        "spikeconv IF, step order": (ours(sub, order="step"), "sub"),
        "spikeconv IF, 48 MiB budget": (ours(sub, memory_budget=48 << 20), "sub"),
        "spikeconv IF, 32 MiB budget": (ours(sub, memory_budget=32 << 20), "sub"),
        "spikeconv IF, 16 MiB budget": (ours(sub, memory_budget=16 << 20), "sub"),
        "spikeconv IF, compiled": (ours(sub, compile=True), "sub"),
        **({  # the CPU default is the C scan (spikeconv.native); fused=False: the eager scan
            "spikeconv IF, eager scan": (ours(sub, fused=False), "sub"),
            "spikeconv buffered S^max=2, eager scan": (ours(buffered, fused=False), "buffered"),
        } if device == "cpu" else {  # the fused Triton scan (simulate(fused=True)), opt-in on CUDA
            "spikeconv IF, fused scan": (ours(sub, fused=True), "sub"),
            "spikeconv buffered S^max=2, fused scan": (ours(buffered, fused=True), "buffered")}),
        **({"spikeconv IF, event-driven": (ours(SimpleNamespace(body=event_driven(sub.body))), "sub"),
            "spikeconv IF, event-driven fixed": (  # paths fixed from one measured run (same input)
                ours(SimpleNamespace(body=event_driven(sub.body, inputs=x, timesteps=steps))), "sub"),
            "spikeconv buffered S^max=2, event-driven": (ours(SimpleNamespace(body=event_driven(buffered.body))),
                                                         "buffered")} if device == "cpu" else {}),
        "spikeconv IF reset to zero": (ours(zero), "zero"),
        "spikeconv buffered S^max=2": (ours(buffered), "buffered"),
        "spikeconv buffered S^max=2, dense": (ours(buffered_dense), "buffered"),
        "spikeconv buffered S^max=2, compiled": (ours(buffered, compile=True), "buffered"),
        "spikeconv buffered S^max=2, float32 buffer": (float_buffer(ours(buffered)), "buffered"),
    }
    variants.update(peer_variants(sub_dense, zero_dense, x, steps))
    references = {"sub": simulate(sub.body, x, steps, order="layer", fused=False)[-1],  # the eager scan
                  "zero": simulate(zero.body, x, steps, order="layer", fused=False)[-1],
                  "buffered": float_buffer(lambda: simulate(buffered_dense.body, x, steps, order="step",
                                                            fused=False)[-1])()}
    return variants, references, skipped_share(sub.body, x, steps)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["vgg_cifar_small", "resnet18_cifar"],
                        help="registry names (random weights, random input) or trained CIFAR-10 checkpoints (.pt)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory", action="store_true", help="peak memory, each variant in its own process")
    parser.add_argument("--variants", nargs="+", help="time only the variants whose name contains one of these")
    parser.add_argument("--peers-channels-last", action="store_true", help="give the peers channels-last weights")
    parser.add_argument("--weight-bits", type=int, help="hardware weights for every SNN (spikeconv: integer layers)")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: every network and the input there")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one run of each variant (operators, CUDA kernels and their time)")
    parser.add_argument("--json")
    args = parser.parse_args()
    steps = args.timesteps
    if args.peers_channels_last:
        MEMORY_FORMAT[0] = torch.channels_last
    if args.only:  # child process of --memory
        variants, _, _ = build(args.models[0], args.batch, steps, args.weight_bits, args.device)
        run = variants[args.only][0]
        print(json.dumps(peak_memory_mib(run)))
        return
    bits = "float weights" if args.weight_bits is None else f"{args.weight_bits}-bit weights"
    where = args.device if args.device == "cpu" else torch.cuda.get_device_name(args.device)
    print(f"torch {torch.__version__}, {where}, threads {torch.get_num_threads()}, batch {args.batch}, T={steps}, {bits}")
    results = {}
    for name in args.models:
        variants, references, share = build(name, args.batch, steps, args.weight_bits, args.device)
        if args.variants:
            variants = {k: v for k, v in variants.items()
                        if k == "ANN x 8" or any(part in k for part in args.variants)}
        rows = {}
        for key, (run, ref) in list(variants.items()):
            try:
                out = run()  # warm-up, and the spike check
            except Exception as error:  # a peer that fails here (e.g. on CUDA) must not cost the others' figures
                print(f"{key}: failed, left out: {type(error).__name__}: {error}".splitlines()[0])
                del variants[key]
                continue
            rows[key] = {"max_abs_diff": None if ref is None else float((out - references[ref]).abs().max())}
        times = {key: [] for key in variants}
        for _ in range(args.repeats):
            for key, (run, _) in variants.items():
                synchronize(args.device)
                start = time.perf_counter()
                run()
                synchronize(args.device)
                times[key].append(time.perf_counter() - start)
        base = statistics.median(times["ANN x 8"])
        for key in variants:
            rows[key]["median_s"] = statistics.median(times[key])
            rows[key]["ratio_to_ann"] = rows[key]["median_s"] / base
        if args.profile:
            for key, (run, _) in variants.items():
                rows[key]["profile"] = profile_run(run, args.device)
        if args.memory and args.device != "cpu":
            for key, (run, _) in variants.items():
                rows[key]["peak_mib"] = device_peak_mib(run, args.device)
        elif args.memory:
            for key in variants:
                cmd = [sys.executable, __file__, "--models", name, "--batch", str(args.batch), "--timesteps",
                       str(steps), "--only", key] + (["--peers-channels-last"] if args.peers_channels_last else [])
                cmd += [] if args.weight_bits is None else ["--weight-bits", str(args.weight_bits)]
                env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}  # see peak_memory_mib
                done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                rows[key]["peak_mib"] = float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
        results[name] = {"variants": rows, "skipped_frame_share": share}
        print(f"\n{name} (frames skipped as silent: {share:.1%})\n| variant | median s | ratio to 8 x ANN | max abs diff vs spikeconv | peak MiB |")
        print("|---|---|---|---|---|")
        for key, row in rows.items():
            diff = "-" if row["max_abs_diff"] is None else f"{row['max_abs_diff']:.1e}"
            mem = f"{row['peak_mib']:.0f}" if row.get("peak_mib") is not None else "-"
            print(f"| {key} | {row['median_s']:.3f} | {row['ratio_to_ann']:.2f} | {diff} | {mem} |", flush=True)
        for key, row in rows.items():
            if "profile" in row:
                print(f"profile {key}: {json.dumps(row['profile'])}")
        if args.json:  # after each model, so that a run stopped at a time limit keeps what it measured
            with open(args.json, "w") as handle:
                json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
