"""The commands about one model file: ``inspect`` (what converts), ``export`` (NIR) and ``doctor`` (the
machine, and what a model file is)."""

from __future__ import annotations

import argparse

from ..errors import SpikeconvError
from .help import calibration_options
from .report import _report


def resolve_model(source: str, weights: str | None = None, example=None):
    """A model from a registry name, ``torchvision:NAME`` (random weights), a checkpoint, a .onnx file, a
    ``torch.export`` archive (.pt2), a Keras file (.keras, .h5), a TorchScript archive (needs ``example``) or
    ``file.py:Class``;
    returns ``(model in eval mode, extra conversion rules)``."""
    from ..models import build_model, list_models
    from ..tasks.loading import load_user_model, onnx_rules

    if source in list_models():
        return build_model(source).eval(), None
    if source.startswith("torchvision:"):
        import torchvision

        name = source.split(":", 1)[1]
        try:
            return torchvision.models.get_model(name, weights=None).eval(), None
        except ValueError as exc:
            raise SpikeconvError(f"unknown torchvision model {name!r}") from exc
    model = load_user_model(source, weights=weights, example=example)
    onnx_made = any(type(m).__module__.startswith("onnx2torch") for m in model.modules())
    return model, onnx_rules() if onnx_made else None


def _checkpoint_input_shape(source: str) -> tuple[int, ...] | None:
    """The per-sample input shape of a spikeconv checkpoint's data set (``None`` for other model files)."""
    from ..errors import CheckpointError
    from ..tasks.checkpoint import load_checkpoint
    from ..tasks.samples import input_shape

    from ..models.shipped import shipped_checkpoint

    if not source.endswith(".pt") and shipped_checkpoint(source) is None:
        return None
    try:
        return input_shape(load_checkpoint(source))
    except CheckpointError:
        return None


def cmd_inspect(args: argparse.Namespace) -> int:
    import torch

    from ..convert import inspect_model

    shape = args.input_shape or _checkpoint_input_shape(args.model)
    example = torch.zeros(2, *(shape or (3, 32, 32)))
    model, rules = resolve_model(args.model, args.weights, example)
    if shape is None and getattr(model, "input_shape", None):  # a Keras model states its own
        example = torch.zeros(2, *model.input_shape)
    rows = inspect_model(model, example, rules=rules)
    width = max(len(r.node) for r in rows)
    for r in rows:
        print(f"{r.node:<{width}}  {r.operation:<24} {r.status:<12} {r.detail}")
    counts = {s: sum(r.status == s for r in rows) for s in ("converted", "folded", "passed", "rewritten", "unsupported")}
    print("summary: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if counts["unsupported"] else 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..convert import ConversionConfig
    from ..tasks.exporting import export_checkpoint

    from pathlib import Path

    suffix = {"nir": ".nir", "hardware": ".npz"}[args.format]
    if Path(args.out).suffix.lower() != suffix:
        raise SpikeconvError(f"--out {args.out}: --format {args.format} writes a {suffix} file; name it *{suffix}")
    bits = args.weight_bits if args.weight_bits is not None else (8 if args.format == "hardware" else None)
    config = ConversionConfig(signed=args.neuron == "buffered", max_strength=args.max_strength, reset=args.reset,
                              phi=args.phi, percentile=calibration_options(args)[0].percentile, weight_bits=bits)
    result = export_checkpoint(args.checkpoint, args.out, config, fmt=args.format, root=args.data_root,
                               calibration_samples=args.calibration_samples)
    _report(result, f"wrote {result.pop('out')}: {result.pop('summary')}", None)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..tasks.environment import describe_model, environment_report

    rows = environment_report(args.data_root)
    loads = True
    if args.model is not None:
        loads, state = describe_model(args.model)
        rows.append(("model", state))
    width = max(len(item) for item, _ in rows)
    for item, state in rows:
        print(f"{item:<{width}}  {state}")
    return 0 if loads else 1
