"""The GPU figures of the fast CIFAR-10 recipe in one run, written to one JSON after every step.

Steps, in order of priority, each run only if its estimated time fits what is left of ``--budget`` seconds:

1. ``fast``: ``configs/cifar10_fast.toml`` trained on the GPU (seed 0), quantized-ANN accuracy on the full
   test set and the converted SNN at T = 1..16 (buffered S^max = 1 and 2, plain IF) from one simulation
   per variant, then offset calibration (buffered S^max = 1 for T = 4, S^max = 2 for T = 2) and warm-up
   (S^max = 1 at T = 8 and 4, S^max = 2 at T = 2, each with a pre-run of T steps); checkpoint kept.
2. ``p4``: the same for ``configs/cifar10_fast_p4.toml`` (P = 4 levels: exact at T = 4 with S^max = 1 and
   at T = 2 with S^max = 2).
3. ``relu``: the same network and recipe with plain ReLU (paper 004's path; checkpoint kept): SNN at
   T = 16..256 with the default normalization (99.9th percentile per channel, V(0) = V_th / 2) and with paper 004's
   (99.99th per layer, V(0) = 0).
4. ``ablations``: one recipe option changed at a time (quantized-ANN accuracy only).
5. ``wide``: the GPU headline, widths 128 / 384 / 384 for twice the epochs.
6. ``stability``: paper 000's Table 2 for the recipe: seeds 0..7 (seed 0 reused from step 1), mean and
   sample std of the quantized ANN, the buffered SNN at T = 8 and their difference; each run's mean stem
   BatchNorm bias too (the CPU-trained networks end with negative means, -0.21 and -0.14 for seeds 0 and 1,
   and seed 0 converts worse at low T than the one GPU network kept, whose mean is +0.32).
7. ``resnet18``: paper 000's ResNet-18 recipe (``configs/cifar10_resnet18.toml``) for as many epochs as fit.

``--smoke`` runs every step on a few CPU-sized slices (tiny widths, one epoch, 200 test images) so that CI
checks the script end to end. ``scripts/device_check.sh`` calls this and times the engine afterwards.

    python benchmarks/gpu_suite.py --device cuda --budget 290 --json out/gpu_suite.json --out out/
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from spikeconv.analysis import calibrate_offsets
from spikeconv.atomic import atomic_write
from spikeconv.cli.config import load_run_config
from spikeconv.convert import ConversionConfig, convert
from spikeconv.data import make_dataset, make_loader
from spikeconv.tasks.checkpoint import build_from_spec, save_checkpoint
from spikeconv.tasks.classification import SNNVariant, accuracy_table, evaluate_ann, evaluate_snn
from spikeconv.tasks.recipes import recipe
from spikeconv.tasks.stability import summarize

PAPER_004 = ConversionConfig(percentile=99.99, per_channel=False, phi=0.0)


class Suite:
    """Runs steps against a deadline; every step's result (or its error) goes into one JSON at once."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.deadline = time.monotonic() + args.budget
        self.result: dict[str, Any] = {"device": _describe(args.device), "torch": torch.__version__,
                                       "smoke": args.smoke, "budget_s": args.budget, "steps": {}}
        # one training run of the default recipe once warm, from step 1's epochs after the first (the first
        # carries cuDNN's autotuning: 5.0 s of 23.9 on an H200, where later epochs took 0.55 s)
        self.seconds_per_run: float | None = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def step(self, name: str, need: float, run: Callable[[], dict[str, Any]]) -> None:
        if self.left() < need:
            self.result["steps"][name] = {"skipped": f"needs about {need:.0f} s, {self.left():.0f} s left"}
            print(f"[{name}] skipped: needs about {need:.0f} s, {self.left():.0f} s left", flush=True)
        else:
            started = time.monotonic()
            print(f"[{name}] started, {self.left():.0f} s left", flush=True)
            try:
                record = run()
            except Exception as exc:  # a failed step is reported and the next one runs
                record = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
                print(record["traceback"], flush=True)
            record["seconds"] = round(time.monotonic() - started, 1)
            self.result["steps"][name] = record
            print(f"[{name}] {json.dumps({k: v for k, v in record.items() if k != 'traceback'})[:600]}", flush=True)
        atomic_write(self.args.json, lambda tmp: Path(tmp).write_text(json.dumps(self.result, indent=1)))


def _describe(device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"


class Data:
    """The CIFAR-10 sets, decoded once: the uint8 training set and a test loader."""

    def __init__(self, args: argparse.Namespace) -> None:
        train_limit, test_limit = (1024, 200) if args.smoke else (None, None)
        self.train = make_dataset("cifar10", "train", root=args.data_root, limit=train_limit)
        self.test = make_dataset("cifar10", "test", root=args.data_root, limit=test_limit)
        self.loader = make_loader(self.test, 500)
        self.example = next(iter(make_loader(self.test, 2)))[0]
        calibration = make_dataset("cifar10", "train", root=args.data_root, limit=256 if args.smoke else 2000)
        self.calibration = [x for x, _ in make_loader(calibration, 500)]


def _fast_config(args: argparse.Namespace, name: str = "cifar10_fast", **train_changes: Any):
    """The packaged fast recipe ``name`` on ``args.device``, with ``train_changes``; smoke runs shrink it."""
    config = load_run_config(name)
    changes = {"device": args.device, **train_changes}
    if args.smoke:
        changes.setdefault("epochs", 1)
        changes["batch_size"] = 256
        config = dataclasses.replace(config, model_kwargs={"widths": [8, 16, 16]})
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))


def _train(config, data: Data, *, activation: dict[str, Any] | None = None,
           model_kwargs: dict[str, Any] | None = None) -> tuple[torch.nn.Module, dict[str, Any], float]:
    spec = config.spec
    spec["activation"] = activation or spec["activation"]
    spec["model_kwargs"] = {**spec["model_kwargs"], **(model_kwargs or {})}
    model = build_from_spec(spec)
    started = time.monotonic()
    history = recipe(config.recipe).train(model, data.train, config.train)
    if config.train.device.startswith("cuda"):
        torch.cuda.synchronize()
    return model, {"spec": spec, "history": history}, time.monotonic() - started


def _offset_rows(model: torch.nn.Module, data: Data, device: str, cases: list[tuple[int, int]]) -> dict[str, float]:
    """Buffered SNN accuracy after offset calibration, ``{"buffered/smax<S>+cal<T>": accuracy at T}``."""
    rows = {}
    model = model.cpu()
    for strength, steps in cases:
        snn = convert(model, data.example, ConversionConfig(signed=True, max_strength=strength)).to(device)
        calibrated = calibrate_offsets(snn, [x.to(device) for x in data.calibration], steps, iterations=2)
        rows[f"buffered/smax{strength}+cal{steps}"] = evaluate_snn(calibrated, data.loader, [steps])[steps]
    return rows


def _warmup_rows(model: torch.nn.Module, data: Data, device: str, cases: list[tuple[int, int]]) -> dict[str, float]:
    """Buffered SNN accuracy with a warm-up of T steps (spikeconv.neuron.warmup), ``{"buffered/smax<S>+warm<T>":
    accuracy at T}``."""
    rows = {}
    for strength, steps in cases:
        snn = convert(model.cpu(), data.example, ConversionConfig(signed=True, max_strength=strength)).to(device)
        rows[f"buffered/smax{strength}+warm{steps}"] = evaluate_snn(snn, data.loader, [steps], warmup=steps)[steps]
    return rows


def _keep(args: argparse.Namespace, config, model: torch.nn.Module, info: dict[str, Any]) -> None:
    """Save the trained ``model`` as ``<out>/<config's checkpoint name>_gpu.pt``."""
    save_checkpoint(Path(args.out) / f"{config.output.stem}_gpu.pt", model, info["spec"],
                    history=info["history"], command=f"benchmarks/gpu_suite.py on {_describe(args.device)}")


def fast_step(suite: Suite, data: Data, name: str = "cifar10_fast") -> dict[str, Any]:
    """Train the packaged fast config ``name``, convert it (T table), calibrate offsets for T = 4 and 2 and
    add the warm-up rows."""
    args = suite.args
    config = _fast_config(args, name)
    model, info, seconds = _train(config, data)
    epochs = [record["seconds"] for record in info["history"]]
    if suite.seconds_per_run is None:
        suite.seconds_per_run = sum(epochs[1:]) * len(epochs) / (len(epochs) - 1) if len(epochs) > 1 else seconds
    steps = [1, 2, 4] if args.smoke else list(range(1, 17))
    variants = [SNNVariant("buffered", 1), SNNVariant("buffered", 2), SNNVariant("if", 1)]
    table = accuracy_table(model, data.loader, data.example, steps, variants, device=args.device)
    model = model.cpu()
    if name == "cifar10_fast":  # the stability study reuses it as seed 0
        suite.fast_model = model
    _keep(args, config, model, info)
    offsets = _offset_rows(model, data, args.device, [(1, 4), (2, 2)] if not args.smoke else [(1, 2)])
    warm = _warmup_rows(model, data, args.device, [(1, 8), (1, 4), (2, 2)] if not args.smoke else [(1, 2)])
    return {"train_seconds": round(seconds, 1), "epochs": config.train.epochs, "history": info["history"],
            "stem_bias_mean": model.stem_bias.mean().item(), **table, "offset_calibrated": offsets,
            "warmup": warm}


def relu_step(suite: Suite, data: Data) -> dict[str, Any]:
    args = suite.args
    config = _fast_config(args, "cifar10_fast_relu")
    model, info, seconds = _train(config, data)
    _keep(args, config, model.cpu(), info)
    steps = [16, 32] if args.smoke else [16, 32, 64, 128, 256]
    loader = make_loader(data.test, 100)  # T = 256 folded on the GPU: 25,600 frames per batch
    default = accuracy_table(model, loader, data.example, steps,
                             [SNNVariant("buffered", 1), SNNVariant("if", 1)], calibration=data.calibration,
                             device=args.device)
    paper = accuracy_table(model, loader, data.example, steps, [SNNVariant("if", 1)], conversion=PAPER_004,
                           calibration=data.calibration, device=args.device)
    return {"train_seconds": round(seconds, 1), "ann_accuracy": default["qann_accuracy"],
            "default_normalization": default["snn_accuracy"], "paper_004_normalization": paper["snn_accuracy"]}


def wide_step(suite: Suite, data: Data) -> dict[str, Any]:
    args = suite.args
    epochs = 1 if args.smoke else 2 * load_run_config("cifar10_fast").train.epochs
    widths = [16, 24, 24] if args.smoke else [128, 384, 384]
    model, info, seconds = _train(_fast_config(args, epochs=epochs), data, model_kwargs={"widths": widths})
    steps = [1, 2, 4] if args.smoke else [1, 2, 4, 8, 16]
    table = accuracy_table(model, data.loader, data.example, steps,
                           [SNNVariant("buffered", 1), SNNVariant("buffered", 2)], device=args.device)
    return {"train_seconds": round(seconds, 1), "epochs": epochs, "widths": widths, **table}


def stability_step(suite: Suite, data: Data) -> dict[str, Any]:
    args = suite.args
    rows = []
    seeds = range(2) if args.smoke else range(8)
    for seed in seeds:
        if seed == 0 and getattr(suite, "fast_model", None) is not None:
            model = suite.fast_model
        elif rows and suite.left() < 1.5 * (suite.seconds_per_run or 60.0) + 10:
            break
        else:
            model, _, _ = _train(_fast_config(args, seed=seed), data)
        ann = evaluate_ann(model.to(args.device), data.loader)
        snn = convert(model.cpu(), data.example, ConversionConfig(signed=True)).to(args.device)
        at8 = evaluate_snn(snn, data.loader, [8])[8]
        rows.append({"seed": seed, "ann_accuracy": ann, "snn_accuracy": at8, "difference": at8 - ann,
                     "stem_bias_mean": model.stem_bias.mean().item()})
    summary = {key: summarize([r[key] for r in rows]) for key in ("ann_accuracy", "snn_accuracy", "difference")}
    return {"timesteps": 8, "runs": rows, **summary}


ABLATIONS = {  # name -> (train changes, activation, model options); the quantized ANN's accuracy only
    "no quantizer on the whitened image": ({}, None, {"stem_activation": False}),
    "P = 16 levels": ({}, {"kind": "qrelu", "levels": 16, "phi": 0.5}, None),
    "twice the epochs": ({"epochs": 40}, None, None),
    "fixed bounds (bound_lr 0)": ({"bound_lr": 0.0}, None, None),
    "float32 (no bfloat16)": ({"bf16": False}, None, None),
}


def ablation_step(suite: Suite, data: Data) -> dict[str, Any]:
    args = suite.args
    rows = {}
    for name, (changes, activation, options) in ABLATIONS.items():
        factor = 2 if "epochs" in changes else 1
        if rows and suite.left() < factor * (suite.seconds_per_run or 60.0) + 10:
            rows[name] = "skipped: out of time"
            continue
        if args.smoke:  # one ablation checks the path
            if rows:
                break
            changes = {k: v for k, v in changes.items() if k != "epochs"}
        model, _, seconds = _train(_fast_config(args, **changes), data, activation=activation, model_kwargs=options)
        rows[name] = {"qann_accuracy": evaluate_ann(model.to(args.device), data.loader),
                      "train_seconds": round(seconds, 1)}
    return rows


def resnet18_step(suite: Suite, data: Data) -> dict[str, Any]:
    args = suite.args
    config = load_run_config("cifar10_resnet18")
    seconds_per_epoch = 8.0  # H200, batch 256, bf16, 8 loader workers (estimate; the JSON has the measurement)
    epochs = 1 if args.smoke else max(1, min(60, int((suite.left() - 40) / seconds_per_epoch)))
    train = dataclasses.replace(config.train, epochs=epochs, stages=1, device=args.device,
                                workers=0 if args.smoke else 8, batch_size=32 if args.smoke else 256)
    train_set = make_dataset("cifar10", "train", root=args.data_root, augment=True, limit=64 if args.smoke else None)
    model = build_from_spec(config.spec)
    started = time.monotonic()
    history = recipe("standard").train(model, train_set, train)
    seconds = time.monotonic() - started
    steps = [1, 2] if args.smoke else [1, 2, 4, 8]
    loader = make_loader(data.test if not args.smoke else make_dataset("cifar10", "test", root=args.data_root,
                                                                       limit=32), 500)
    table = accuracy_table(model, loader, data.example, steps, [SNNVariant("buffered", 1)], device=args.device)
    return {"epochs": epochs, "train_seconds": round(seconds, 1), "history": history, **table}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget", type=float, default=290.0, help="seconds for all steps together")
    parser.add_argument("--json", default="gpu_suite.json")
    parser.add_argument("--out", default=".", help="folder for the trained checkpoints")
    parser.add_argument("--data-root")
    parser.add_argument("--smoke", action="store_true", help="tiny slices on any device (CI)")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    suite = Suite(args)
    data = Data(args)
    suite.step("fast", 0, lambda: fast_step(suite, data))
    run = suite.seconds_per_run or 60.0
    suite.step("p4", run + 30, lambda: fast_step(suite, data, "cifar10_fast_p4"))
    suite.step("relu", run + 30, lambda: relu_step(suite, data))
    suite.step("ablations", run + 10, lambda: ablation_step(suite, data))
    suite.step("wide", 5 * run + 20, lambda: wide_step(suite, data))
    suite.step("stability", 2 * run + 20, lambda: stability_step(suite, data))
    suite.step("resnet18", 60, lambda: resnet18_step(suite, data))
    failed = [k for k, v in suite.result["steps"].items() if "error" in v]
    print(f"wrote {args.json}; failed steps: {failed or 'none'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
