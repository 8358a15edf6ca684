"""``spikeconv stability``: paper 000's Table 2 (one recipe trained from several seeds) from the command line.

A study can be split over machines or sessions: ``--seed`` starts the new runs at another seed and
``--include`` pools the JSON of earlier runs of the same config into the summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import SpikeconvError
from .config import _load_config, _test_data
from .report import _progress, _report, _say


def cmd_stability(args: argparse.Namespace) -> int:
    from ..data import make_dataset
    from ..tasks.checkpoint import build_from_spec
    from ..tasks.recipes import recipe
    from ..tasks.stability import stability_study

    config = _load_config(args)
    root = args.data_root or config.data_root
    chosen = recipe(config.recipe)
    if chosen.task != "classification":
        raise SpikeconvError(f"{args.config} trains a {chosen.task} model; 'spikeconv stability' repeats "
                             "classification runs (paper 000 Table 2): run the detector's config with other "
                             "train.seed values instead")
    # the reused checkpoint and the earlier results are checked before the training set is decoded
    test, loader, example = _test_data(config.dataset, root, config.test_limit, config.eval_batch_size)
    changed = " and ".join(f"--{name}" for name in ("epochs", "stages", "seed") if getattr(args, name) is not None)
    first = _first_run(config, args.config, changed) if args.reuse_checkpoint else None
    earlier = [_earlier_study(path, config, len(test), args.timesteps) for path in args.include or []]
    train_set = make_dataset(config.dataset, "train", root=root, augment=chosen.loader_augments,
                             erasing=config.erasing, limit=config.train_limit)
    result = stability_study(lambda: build_from_spec(config.spec), train_set, loader, example, config.train,
                             runs=args.runs, timesteps=args.timesteps, train_fn=chosen.train, state_dir=config.state.parent / "stability",
                             progress=_progress(),
                             on_run=lambda r: _say(f"seed {r['seed']}: ANN {r['ann_accuracy']:.2f}%  "
                                                   f"SNN(T={args.timesteps}) {r['snn_accuracy']:.2f}%"
                                                   + _trained_in(r)),
                             first=first, earlier=[row for study in earlier for row in study["runs"]])
    result.update(dataset=config.dataset, model=config.model, test_samples=len(test), reused_first=first is not None,
                  epochs=config.train.epochs * getattr(config.train, "stages", 1), included=list(args.include or []))
    count = len(result["runs"])
    lines = [f"{config.model} on {config.dataset} ({len(test)} test samples), {count} run{'s' * (count != 1)} "
             f"(seed{'s' * (count != 1)} {', '.join(str(r['seed']) for r in result['runs'])}), "
             f"{result['epochs']} epochs each, buffered SNN at T={args.timesteps}: "
             + ("mean (std)" if count > 1 else "one run, no spread yet")]
    for key, label in (("ann_accuracy", "ANN"), ("snn_accuracy", "SNN"), ("difference", "SNN - ANN")):
        spread = f" ({result[key]['std']:.2f})" if count > 1 else ""
        lines.append(f"{label:<10} {result[key]['mean']:.2f}{spread}")
    _report(result, "\n".join(lines), args.json)
    return 0


def _trained_in(row: dict) -> str:
    """``"  (trained in 1.8 h)"`` when the recipe timed its epochs, else nothing."""
    seconds = row.get("train_seconds")
    if seconds is None:
        return ""
    return f"  (trained in {seconds / 3600:.2f} h)" if seconds >= 3600 else f"  (trained in {seconds / 60:.1f} min)"


def _first_run(config, source: str, args_changed_training: str):
    """The config's trained checkpoint as the study's run of seed ``train.seed`` (``--reuse-checkpoint``)."""
    from ..tasks.checkpoint import load_model
    from .reuse import check_reuse

    path = config.trained_output()
    if args_changed_training:
        raise SpikeconvError(f"--reuse-checkpoint with {args_changed_training}: the checkpoint was trained with the "
                             "config's own settings; leave out one of them")
    if path is None:
        raise SpikeconvError(f"--reuse-checkpoint: {source} has no trained checkpoint ({config.output} does not "
                             "exist); run 'spikeconv run' on it first, or leave out --reuse-checkpoint")
    model, payload = load_model(path)
    check_reuse(config, payload, source, path)
    _say(f"seed {config.train.seed}: reusing {path}")
    return model


def _earlier_study(path: str, config, test_samples: int, timesteps: int) -> dict:
    """An earlier ``spikeconv stability --json`` result of the same study (``--include``), checked to match."""
    try:
        study = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise SpikeconvError(f"--include {path}: cannot read it as a stability JSON ({error}); give a file written "
                             "by 'spikeconv stability --json'") from None
    expected = {"dataset": config.dataset, "model": config.model, "test_samples": test_samples,
                "timesteps": timesteps, "epochs": config.train.epochs * getattr(config.train, "stages", 1)}
    if not isinstance(study, dict) or not isinstance(study.get("runs"), list):
        raise SpikeconvError(f"--include {path}: not a stability result (no 'runs' list); give a file written by "
                             "'spikeconv stability --json'")
    for key, value in expected.items():
        if study.get(key) != value:
            theirs = f"its {key} is {study[key]!r}" if key in study else f"it names no {key}"
            raise SpikeconvError(f"--include {path}: {theirs}, this study's is {value!r}; only runs of the same "
                                 "config, test set and T can be pooled")
    return study
