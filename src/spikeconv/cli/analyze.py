"""``spikeconv analyze``: the diagnostic report of a classifier or a detector checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SpikeconvError
from .help import (add_calibration_options, add_warmup_rounds_option, calibration_options, non_negative_int,
                   positive_float, positive_int, warmup_rounds)
from .report import _progress


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..data import make_dataset, make_loader
    from ..tasks.analyze import AnalyzeConfig, analyze_classifier
    from ..tasks.checkpoint import load_model

    from ..models.shipped import packaged_config, shipped_checkpoint

    source = Path(args.source)
    named_config = packaged_config(args.source) is not None and shipped_checkpoint(args.source) is None
    if source.suffix == ".toml" or (named_config and not source.exists()):
        from .config import load_run_config

        config = load_run_config(args.source)
        source = config.trained_output() or config.output  # a missing one is named by load_model
    model, payload = load_model(source)
    from ..analysis import EnergyTable

    energy = EnergyTable(args.mac_pj, args.ac_pj, "user-given" if (args.mac_pj, args.ac_pj) != (4.6, 0.9)
                         else EnergyTable().source)
    config = AnalyzeConfig(timesteps=args.timesteps, max_strength=args.max_strength, signed=not args.plain_if,
                           detail_samples=args.detail_samples, clamp=args.clamp, layer=args.layer, energy=energy,
                           percentile=calibration_options(args)[0].percentile, warmup=args.warmup,
                           warmup_rounds=warmup_rounds(args))
    from ..tasks.samples import OnDemand, images, is_detection
    from .detection import analyze_detection

    if is_detection(payload):
        if args.warmup:
            raise SpikeconvError(f"--warmup applies to classifiers; {source} is a detector, whose report "
                                 "simulates without a warm-up")
        return analyze_detection(model, payload, args, config)
    if args.split:
        raise SpikeconvError(f"--split applies to detectors; {source} is a {payload.get('dataset')} classifier "
                             "(its report uses the test split)")
    test = make_dataset(payload["dataset"], "test", root=args.data_root, limit=args.limit)
    calibration = OnDemand(lambda: images(payload, "train", limit=args.calibration_samples, root=args.data_root))
    result = analyze_classifier(model, make_loader(test, args.batch_size), config, args.out, calibration=calibration,
                                progress=_progress())
    acc = result["snn_accuracy_per_t"][str(args.timesteps)]
    print(f"SNN accuracy at T={args.timesteps}: {acc:.2f}% (ANN {result['ann_accuracy']:.2f}%); "
          f"report: {Path(args.out) / 'report.md'}")
    return 0


def add_parser(sub) -> None:
    an = sub.add_parser("analyze", help="per-layer diagnostics, error decomposition, operations: a report with figures")
    an.add_argument("source", help="a checkpoint, or a run config (its output checkpoint is used)")
    an.add_argument("--out", required=True, help="directory for report.md, report.json and the figures")
    an.add_argument("--timesteps", type=positive_int, default=8,
                    help="simulation steps T (one value; the report reads the SNN out after every t <= T)")
    an.add_argument("--max-strength", type=int, default=1)
    an.add_argument("--plain-if", action="store_true", help="use the plain IF neuron instead of the buffered one")
    an.add_argument("--limit", type=positive_int, default=1000, help="test samples for the accuracy curves")
    an.add_argument("--detail-samples", type=positive_int, default=64, help="samples for the per-layer details")
    an.add_argument("--clamp", type=non_negative_int, default=2, help="voltage-clamp steps per layer for the comparison")
    an.add_argument("--warmup", type=non_negative_int, default=0, metavar="RHO",
                    help="simulate with a warm-up of RHO <= T steps (each neuron layer starts from the membrane a "
                         "pre-run of its first RHO input steps implies)")
    add_warmup_rounds_option(an)
    an.add_argument("--layer", help="neuron layer for the Fig. S1 heat maps (default: the middle one)")
    an.add_argument("--batch-size", type=positive_int, default=250)
    an.add_argument("--split", help="detectors: the data split to analyse (default: the validation split)")
    an.add_argument("--mac-pj", type=positive_float, default=4.6, help="energy per MAC in pJ (default 45 nm, Horowitz 2014)")
    an.add_argument("--ac-pj", type=positive_float, default=0.9, help="energy per accumulate in pJ (default 45 nm)")
    an.add_argument("--data-root")
    add_calibration_options(an)
    an.set_defaults(func=cmd_analyze, needs=("matplotlib",))
