"""The detection side of ``spikeconv run`` and ``spikeconv evaluate``: COCO128 data, training, mAP tables."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import SpikeconvError
from ..tasks.samples import DETECTION_SPLITS, OnDemand, detection_data, images
from .help import calibration_options
from .report import _progress, _report, _say

def evaluate_detector(model, spec: dict[str, Any], *, timesteps, variants, splits, batch_size: int,
                      limit: int | None, root: str | None, conversion=None,
                      calibration_samples: int = 2000) -> dict[str, Any]:
    """The mAP table of every split; ``{"model", "dataset", "splits": {split: table}}``. ``conversion``: the
    base ConversionConfig (e.g. the percentile of plain-ReLU bounds, taken from ``calibration_samples``
    training images)."""
    from torch.utils.data import DataLoader

    from ..data.detection import collate
    from ..tasks.detection_eval import detection_table

    calibration = calibration_for(spec, root, calibration_samples)
    result: dict[str, Any] = {"model": spec["model"], "dataset": spec["dataset"], "splits": {}}
    for split in splits:
        data = detection_data(spec, split, root, limit=limit)
        for line in data.report.lines():
            _say(f"{spec['dataset']}/{split}: {line}")
        loader = DataLoader(data, batch_size=batch_size, collate_fn=collate)
        example = next(iter(loader))[0][:2]
        table = detection_table(model, loader, example, timesteps, variants, calibration=calibration,
                                conversion=conversion, progress=_progress())
        table["dataset"] = f"{spec['dataset']}/{split}"
        table["snn"] = {k: {str(t): v for t, v in rows.items()} for k, rows in table["snn"].items()}
        result["splits"][split] = table
    return result


def report_detection(result: dict[str, Any], json_path: str | None) -> None:
    from ..tasks.detection_eval import format_detection_table

    text = "\n\n".join(format_detection_table(table) for table in result["splits"].values())
    _report(result, text + "\n(absolute mAP on 128 images is low; the table measures the conversion)", json_path)


def run_detection(config, args: argparse.Namespace) -> int:
    """``spikeconv run`` for a detection config: train (or load the checkpoint), then the mAP tables."""
    from ..tasks.checkpoint import build_from_spec, save_checkpoint
    from ..tasks.detection import train_detector, with_fitted_anchors
    from ..tasks.distributed import barrier, is_main
    from .reuse import trained_model

    root = args.data_root or config.data_root

    def train(config):
        train_split = DETECTION_SPLITS[config.dataset][0]
        train_set = detection_data(config.spec, train_split, root, augment=True, limit=config.train_limit)
        for line in train_set.report.lines():
            _say(f"{config.dataset}/{train_split}: {line}")
        spec = with_fitted_anchors(config.spec, build_from_spec(config.spec), train_set)
        model = build_from_spec(spec)
        history = train_detector(model, train_set, config.train, state_path=config.state, progress=_progress(),
                                 on_epoch=lambda e, r: _say(f"epoch {e}: loss {r['loss']:.4f} (GIoU {r['box']:.3f} "
                                                            f"obj {r['obj']:.4f} cls {r['cls']:.4f}) lr {r['lr']:.2e}"))
        if is_main():
            save_checkpoint(config.output, model.cpu(), spec, history=history, command=f"spikeconv run {args.config}")
        barrier()
        return model, spec

    model, spec = trained_model(config, args.config, args.retrain, train)
    splits = config.splits or DETECTION_SPLITS[config.dataset][1:]
    result = evaluate_detector(model, spec, timesteps=config.timesteps, variants=config.variants, splits=splits,
                               batch_size=config.eval_batch_size, limit=config.test_limit, root=root)
    report_detection(result, args.json)
    return 0


def evaluate_detection_checkpoint(model, payload: dict[str, Any], args: argparse.Namespace, variants) -> int:
    """``spikeconv evaluate DETECTOR.pt``: the mAP tables of the chosen splits (classification-only options
    refused by name)."""
    for option, default in (("event_driven", False), ("calibrate_for", None)):
        if getattr(args, option, default) not in (default, []):
            raise SpikeconvError(f"--{option.replace('_', '-')} is not available for detectors yet; "
                                 "evaluate the float-weight SNN variants")
    splits = args.splits or DETECTION_SPLITS[payload["dataset"]][1:]
    batch = min(args.batch_size, 32)
    conversion, samples = calibration_options(args)
    if args.figure:
        detection_figure(model, payload, args.figure, variants[0], args.timesteps, splits[0], args.data_root,
                         conversion=conversion, calibration_samples=samples)
    result = evaluate_detector(model, payload, timesteps=args.timesteps, variants=variants, splits=splits,
                               batch_size=batch, limit=args.limit, root=args.data_root, conversion=conversion,
                               calibration_samples=samples)
    report_detection(result, args.json)
    return 0


def calibration_for(spec: dict[str, Any], root: str | None, samples: int = 64) -> OnDemand:
    """Training images for the bounds of plain ReLU activations, decoded only if the conversion reads them
    (never for a QReLU detector)."""
    return OnDemand(lambda: images(spec, "train", limit=samples, batch_size=32, root=root))


def analyze_detection(model, payload: dict[str, Any], args: argparse.Namespace, config) -> int:
    """``spikeconv analyze DETECTOR.pt``: mAP per t and the per-layer report, on the validation split."""
    from pathlib import Path

    from torch.utils.data import DataLoader

    from ..data.detection import collate
    from ..tasks.analyze_detection import analyze_detector

    split = args.split or DETECTION_SPLITS[payload["dataset"]][1]
    data = detection_data(payload, split, args.data_root, limit=args.limit)
    loader = DataLoader(data, batch_size=min(args.batch_size, 32), collate_fn=collate)
    result = analyze_detector(model, loader, config, args.out, progress=_progress(),
                              calibration=calibration_for(payload, args.data_root, args.calibration_samples))
    value = result["snn_map50_per_t"][str(args.timesteps)]
    shown = "n/a" if value is None else f"{100 * value:.2f}"
    _say(f"{payload['dataset']}/{split}: {result['samples']} images")
    print(f"SNN mAP50 at T={args.timesteps}: {shown} (quantized ANN {100 * (result['qann_map50'] or 0):.2f}); "
          f"report: {Path(args.out) / 'report.md'}")
    return 0


def detection_figure(model, spec: dict[str, Any], path: str, variant, timesteps, split: str, root: str | None,
                     count: int = 4, conversion=None, calibration_samples: int = 2000) -> None:
    """Boxes of the quantized ANN and of the SNN (``variant``) at the two largest T side by side on the first
    ``count`` images of ``split`` (matplotlib, PNG)."""
    from dataclasses import replace
    from pathlib import Path

    from ..analysis.figures import detections_side_by_side
    from ..convert import ConversionConfig, convert
    from ..data.detection import collate
    from ..sim import simulate
    from ..tasks.yolo import layout, postprocess

    data = detection_data(spec, split, root, limit=count)
    x, _ = collate([data[k] for k in range(len(data))])
    lay = layout(model, *x.shape[-2:])
    config = replace(conversion or ConversionConfig(), signed=variant.neuron == "buffered",
                     max_strength=variant.max_strength)
    snn = convert(model, x[:2], config, calibration=calibration_for(spec, root, calibration_samples))
    steps = sorted(set(timesteps))[-2:]
    readout = simulate(snn, x, steps[-1])
    columns = [("quantized ANN", postprocess(model(x), lay, model.num_anchors, size=tuple(x.shape[-2:])))]
    columns += [(f"SNN {variant.key}, T={t}", postprocess(readout[t - 1], lay, model.num_anchors,
                                                          size=tuple(x.shape[-2:]))) for t in steps]
    detections_side_by_side(x, columns, data.class_names, Path(path))
    _say(f"figure: {path}")
