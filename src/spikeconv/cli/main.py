"""The ``spikeconv`` command line: one library call per subcommand.

Every expected failure (bad path, corrupt checkpoint, bad option, unsupported layer) prints one line
``spikeconv: error: ...`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from typing import Any

from ..errors import SpikeconvError
from .help import (add_calibration_options, add_warmup_rounds_option, calibration_options, phi_fraction, positive_int,
                   warmup_rounds)
from .models import cmd_doctor, cmd_export, cmd_inspect
from .config import _load_config, _test_data
from .stability import cmd_stability
from .report import _progress, _report, _say, check_outputs, format_table, format_tradeoff

log = logging.getLogger("spikeconv")


def _evaluate_model(model, spec: dict[str, Any], timesteps, variants, *, batch_size: int, limit: int | None,
                    root: str | None, calibrate_for: int | None = None,
                    calibration_samples: int = 2000, conversion=None, warmup=(), warmup_rounds=1) -> dict[str, Any]:
    from ..tasks.classification import accuracy_table
    from ..tasks.samples import OnDemand, images

    test, loader, example = _test_data(spec["dataset"], root, limit, batch_size)
    # decoded only if a plain ReLU, offset calibration or an event-driven run reads them
    calibration = OnDemand(lambda: images(spec, "train", limit=calibration_samples, root=root))
    result = accuracy_table(model, loader, example, timesteps, variants, progress=_progress(),
                            calibration=calibration, calibrate_for=calibrate_for, conversion=conversion,
                            warmup=warmup, warmup_rounds=warmup_rounds)
    result = {"dataset": spec["dataset"], "test_samples": len(test), "model": spec["model"], **result}
    result["snn_accuracy"] = {k: {str(t): a for t, a in v.items()} for k, v in result["snn_accuracy"].items()}
    return result


def cmd_run(args: argparse.Namespace) -> int:
    from ..data import make_dataset
    from ..tasks.checkpoint import build_from_spec, save_checkpoint
    from ..tasks.distributed import barrier, is_main
    from ..tasks.recipes import recipe
    from .reuse import trained_model

    config = _load_config(args)
    if recipe(config.recipe).task == "detection":
        from .detection import run_detection

        return run_detection(config, args)
    root = args.data_root or config.data_root

    def train(config):
        chosen = recipe(config.recipe)
        train_set = make_dataset(config.dataset, "train", root=root, augment=chosen.loader_augments,
                                 erasing=config.erasing, limit=config.train_limit)
        model = build_from_spec(config.spec)
        history = chosen.train(model, train_set, config.train, state_path=config.state, progress=_progress(),
                               on_epoch=lambda e, r: _say(f"epoch {e}: loss {r['loss']:.4f} "
                                                          f"train acc {r['train_accuracy']:.2f}%"))
        if is_main():
            save_checkpoint(config.output, model.cpu(), config.spec, history=history,
                            command=f"spikeconv run {args.config}")
        barrier()
        return model, config.spec

    model, _ = trained_model(config, args.config, args.retrain, train)
    result = _evaluate_model(model, config.spec, config.timesteps, config.variants,
                             batch_size=config.eval_batch_size, limit=config.test_limit, root=root,
                             calibrate_for=config.calibrate_for)
    _report(result, format_table(result), args.json)
    return 0


def cmd_tradeoff(args: argparse.Namespace) -> int:
    from ..neuron import check_max_strength
    from ..tasks.checkpoint import load_model
    from ..tasks.classification import SNNVariant

    for s in args.max_strengths:
        check_max_strength(s)
    model, payload = load_model(args.checkpoint)
    variants = [SNNVariant("buffered", s) for s in args.max_strengths]
    from ..tasks.samples import DETECTION_SPLITS, is_detection
    from .detection import evaluate_detector, report_detection

    conversion, samples = calibration_options(args)
    if is_detection(payload):  # the same S^max x T grid, scored by mAP
        splits = DETECTION_SPLITS[payload["dataset"]][1:]
        result = evaluate_detector(model, payload, timesteps=args.timesteps, variants=variants, splits=splits,
                                   batch_size=min(args.batch_size, 32), limit=args.limit, root=args.data_root,
                                   conversion=conversion, calibration_samples=samples)
        report_detection(result, args.json)
        return 0
    result = _evaluate_model(model, payload, args.timesteps, variants, batch_size=args.batch_size,
                             limit=args.limit, root=args.data_root, calibration_samples=samples,
                             conversion=conversion)
    _report(result, format_tradeoff(result), args.json)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..layers.grid import MAX_BITS, check_weight_bits
    from ..tasks.checkpoint import load_model
    from ..tasks.classification import SNNVariant

    if any(t < 1 for t in args.timesteps):
        raise SpikeconvError(f"--timesteps must be positive integers, got {args.timesteps}")
    for s in args.max_strengths:
        if s < 1 or s & (s - 1):
            raise SpikeconvError(f"--max-strengths must be powers of two (1, 2, 4, ...), got {s}")
    model, payload = load_model(args.checkpoint)
    from ..tasks.samples import is_detection

    if (args.splits or args.figure) and not is_detection(payload):
        raise SpikeconvError(f"--splits and --figure apply to detectors; {args.checkpoint} is a "
                             f"{payload.get('dataset')} classifier")
    for bits in args.weight_bits or []:
        try:
            check_weight_bits(bits)
        except ValueError as exc:
            raise SpikeconvError(f"--weight-bits must lie between 2 and {MAX_BITS}, got {bits}") from exc
    variants = [SNNVariant(n, s, b) for b in [None, *(args.weight_bits or [])]
                for n in args.neurons for s in args.max_strengths]
    if args.event_driven:
        variants += [SNNVariant(n, s, None, events=True) for n in args.neurons for s in args.max_strengths]
    if args.calibrate_for is not None and args.calibrate_for < 1:
        raise SpikeconvError(f"--calibrate-for must be a positive T, got {args.calibrate_for}")
    conversion, samples = calibration_options(args)
    for rho in args.warmup or []:
        if rho > max(args.timesteps):
            raise SpikeconvError(f"--warmup {rho} exceeds the largest of --timesteps {args.timesteps}: the pre-run "
                                 "reads the run's own first steps; give a T >= the warm-up")
    rounds = warmup_rounds(args)
    if is_detection(payload):
        if args.warmup:
            raise SpikeconvError("--warmup applies to classifiers; evaluate the detector without it")
        from .detection import evaluate_detection_checkpoint

        return evaluate_detection_checkpoint(model, payload, args, variants)
    result = _evaluate_model(model, payload, args.timesteps, variants, batch_size=args.batch_size,
                             limit=args.limit, root=args.data_root, calibrate_for=args.calibrate_for,
                             calibration_samples=samples, conversion=conversion, warmup=args.warmup or (),
                             warmup_rounds=rounds)
    _report(result, format_table(result), args.json)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse's own prints the whole usage first) that points at ``--help``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="spikeconv", description="Convert ANNs to low-latency spiking networks.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"spikeconv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser("run", help="train (or load) the QReLU ANN, convert, simulate, print accuracy vs T")
    run.add_argument("config", help="a TOML run config, or a packaged config's name (mnist, cifar10, cifar10_fast, ...)")
    run.add_argument("--data-root", help="data directory (default: $SPIKECONV_DATA or ../shared/data)")
    run.add_argument("--retrain", action="store_true", help="train even if the output checkpoint exists")
    run.add_argument("--json", help="also write the results to this JSON file")
    run.add_argument("--epochs", type=positive_int, help="override train.epochs (per stage) for a short run")
    run.add_argument("--stages", type=positive_int, help="override train.stages (training + fine-tuning = 2)")
    run.add_argument("--limit", type=positive_int,
                     help="override evaluate.test_limit: score an evenly strided subset of this many test samples")
    run.set_defaults(func=cmd_run)

    st = sub.add_parser("stability", help="train from N seeds; mean and std of ANN, SNN and their difference")
    st.add_argument("config")
    st.add_argument("--runs", type=positive_int, default=3)
    st.add_argument("--timesteps", type=positive_int, default=8)
    st.add_argument("--epochs", type=positive_int, help="override train.epochs (per stage)")
    st.add_argument("--stages", type=positive_int, help="override train.stages")
    st.add_argument("--limit", type=positive_int, help="evaluate on an evenly strided subset of the test set")
    st.add_argument("--reuse-checkpoint", action="store_true",
                    help="take the config's trained checkpoint as the run of its own seed (train.seed) instead of "
                         "training it again; the other runs use seeds train.seed + 1, ...")
    st.add_argument("--seed", type=int, help="override train.seed: the runs use seeds SEED, SEED + 1, ...")
    st.add_argument("--include", nargs="+", metavar="JSON",
                    help="pool earlier 'stability --json' results of the same config (other seeds) into the summary")
    st.add_argument("--data-root")
    st.add_argument("--json")
    st.set_defaults(func=cmd_stability)

    tr = sub.add_parser("tradeoff", help="Table 1: buffered SNN accuracy for S^max x T of a checkpoint")
    tr.add_argument("checkpoint")
    tr.add_argument("--max-strengths", type=int, nargs="+", default=[1, 2, 4])
    tr.add_argument("--timesteps", type=positive_int, nargs="+", default=[1, 2, 4, 8, 16])
    tr.add_argument("--batch-size", type=positive_int, default=500)
    tr.add_argument("--limit", type=positive_int)
    tr.add_argument("--data-root")
    tr.add_argument("--json")
    add_calibration_options(tr)
    tr.set_defaults(func=cmd_tradeoff)

    ev = sub.add_parser("evaluate", help="ANN and SNN accuracy vs T for a saved checkpoint")
    ev.add_argument("checkpoint")
    ev.add_argument("--timesteps", type=positive_int, nargs="+", default=[1, 2, 4, 8, 16])
    ev.add_argument("--neurons", nargs="+", choices=["if", "buffered"], default=["if", "buffered"])
    ev.add_argument("--max-strengths", type=int, nargs="+", default=[1, 2])
    ev.add_argument("--batch-size", type=positive_int, default=500)
    ev.add_argument("--limit", type=positive_int, help="evaluate on an evenly strided subset of this many test samples")
    ev.add_argument("--weight-bits", type=int, nargs="+", metavar="B",
                    help="also evaluate every variant with B-bit hardware weights (integer arithmetic on spikes)")
    ev.add_argument("--event-driven", action="store_true",
                    help="also evaluate every float-weight variant event-driven (spikeconv.sim.event_driven: the "
                         "sparse layers gather only their input spikes; paths fixed from a run on 64 calibration images)")
    ev.add_argument("--calibrate-for", type=positive_int, metavar="T",
                    help="also evaluate every variant after offset calibration for this T")
    ev.add_argument("--warmup", type=positive_int, nargs="+", metavar="RHO",
                    help="also evaluate every variant with a warm-up of RHO steps (each neuron layer pre-runs RHO "
                         "steps of its input and shifts its initial membrane; docs/conversion.md), at the T >= RHO")
    add_warmup_rounds_option(ev)
    ev.add_argument("--figure", metavar="PNG",
                    help="detectors: draw the quantized ANN's and the SNN's boxes on 4 images side by side")
    ev.add_argument("--splits", nargs="+", metavar="SPLIT",
                    help="detectors: the data splits to score (default: the validation split, e.g. val2017)")
    ev.add_argument("--data-root")
    ev.add_argument("--json", help="write the results to this JSON file")
    add_calibration_options(ev)
    ev.set_defaults(func=cmd_evaluate)

    ins = sub.add_parser("inspect", help="coverage report: every operation as converted/passed/folded/unsupported")
    ins.add_argument("model", help="registry name, torchvision:NAME, checkpoint.pt, model.onnx, model.pt2, "
                     "model.keras / model.h5 (Keras), TorchScript or file.py:Class")
    ins.add_argument("--weights", help="state dict for file.py:Class")
    ins.add_argument("--input-shape", type=positive_int, nargs="+",
                     help="per-sample shape, e.g. 1 28 28 (default: a checkpoint's data set, else 3 32 32)")
    ins.set_defaults(func=cmd_inspect)

    from .analyze import add_parser as add_analyze_parser

    add_analyze_parser(sub)

    ex = sub.add_parser("export", help="convert a checkpoint and write it as a NIR graph or an integer hardware "
                        "file (docs/export.md)")
    ex.add_argument("checkpoint")
    ex.add_argument("--out", required=True, help="the file to write (.nir, or .npz for --format hardware)")
    ex.add_argument("--format", default="nir", choices=["nir", "hardware"],
                    help="nir: NIR graph; hardware: int8 weights, scales and neurons with a NumPy reference simulator")
    ex.add_argument("--weight-bits", type=int, default=None,
                    help="hardware weights on a B-bit grid (2..8; default: 8 for --format hardware, float for nir)")
    ex.add_argument("--neuron", default="buffered", choices=["if", "buffered"], help="neuron kind (default: buffered)")
    ex.add_argument("--max-strength", type=int, default=1, help="S^max, the largest spike strength (default: 1)")
    ex.add_argument("--reset", default="subtract", choices=["subtract", "zero"], help="reset rule (default: subtract)")
    ex.add_argument("--phi", type=phi_fraction, default=None,
                    help="initial membrane as a fraction of the threshold (default: each QReLU's phi; 0 for ReLU)")
    ex.add_argument("--data-root")
    add_calibration_options(ex)
    ex.set_defaults(func=cmd_export)

    from .streams import add_parser as add_stream_parser

    add_stream_parser(sub)

    doc = sub.add_parser("doctor", help="what this machine offers (C kernels, int8 kernels, CUDA, Triton, data) "
                         "and, given a model, what it is and whether it loads")
    doc.add_argument("model", nargs="?", help="a checkpoint or user model file (optional): what it is, whether it "
                     "loads, which commands take it")
    doc.add_argument("--data-root")
    doc.set_defaults(func=cmd_doctor)
    from .help import document

    return document(parser)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spikeconv`` command."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("faster_coco_eval", "matplotlib"):  # the COCO summary of every evaluation, animation notes
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..tasks.allocator import keep_freed_memory
    from ..tasks.distributed import barrier, init_from_env, shutdown

    from ..extras import first_missing, missing_dependency

    try:
        missing = first_missing(getattr(args, "needs", ()))
        if missing is not None:  # before any work: a command whose report needs an extra
            raise SpikeconvError(f"'spikeconv {args.command}' {missing_dependency(missing)}")
        check_outputs(args)
        init_from_env()
        with keep_freed_memory():  # large tensors reused instead of mapped afresh: about 2x faster training steps
            status = args.func(args)
        barrier()  # under torchrun: no process tears the group down while another still talks to it
        return status
    except (SpikeconvError, ValueError, TypeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"spikeconv: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command reads or writes: permissions, a full disk, a missing folder
        target = f" {exc.filename}" if exc.filename else ""
        print(f"spikeconv: error: cannot access{target}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional dependency this input needs
        print(f"spikeconv: error: '{args.command}' {missing_dependency(exc.name or str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikeconv: interrupted; files are written atomically, so none is half-written (a training run "
              "resumes from its last epoch)", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        if os.environ.get("SPIKECONV_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"spikeconv: internal error: {type(exc).__name__}: {first} (a bug: please report it; "
              "SPIKECONV_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 3
    finally:
        shutdown()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
