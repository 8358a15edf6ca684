"""Detection metrics of the ANN, the quantized ANN and the converted SNN at every T from one simulation.

mAP50 and mAP50:95 come from ``torchmetrics.detection.MeanAveragePrecision`` (COCO protocol, faster-coco-eval
backend), boxes and ground truth both in pixels of the letterboxed input (IoU, hence mAP over all areas, is
unchanged by the letterbox's uniform scale and shift). The SNN is simulated once to the largest T; its
anytime readout after each T (the rate of the last convolutions, paper 000 section C) is decoded and
NMS-ed like the ANN's output. **Agreement** scores the SNN's boxes against its own quantized ANN's boxes
(score >= ``AGREEMENT_SCORE``) as ground truth: it measures the conversion even where the ANN is weak.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from ..convert import ConversionConfig, convert
from ..sim import SimulationConfig, simulate
from .classification import Progress, SNNVariant, _model_device, _plain, dequantized
from .yolo import Layout, layout, postprocess

#: qANN detections at or above this score are the ground truth of the agreement metric
AGREEMENT_SCORE = 0.25
MAX_DETECTIONS = 100


def mean_average_precision():
    """A COCO-style ``MeanAveragePrecision`` (needs the ``detection`` extra: torchmetrics + faster-coco-eval)."""
    try:
        from torchmetrics.detection import MeanAveragePrecision
    except ImportError as exc:
        raise ImportError("detection metrics need torchmetrics and faster-coco-eval: "
                          "pip install 'spikeconv[detection]'") from exc
    backend = "faster_coco_eval"
    try:
        import faster_coco_eval  # noqa: F401  (the faster backend, when installed)
    except ImportError:
        backend = "pycocotools"
    return MeanAveragePrecision(iou_type="bbox", backend=backend)


def _scores(metric) -> dict[str, float | None]:
    """mAP50 and mAP50:95 (``None`` where undefined: torchmetrics answers -1 when no image has a true box)."""
    values = metric.compute()
    return {key: (float(values[name]) if float(values[name]) >= 0 else None)
            for key, name in (("map50", "map_50"), ("map", "map"))}


def _percent(value: float | None, width: int = 8) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{100 * value:>{width}.2f}"


def as_truth(predictions: list[dict[str, Tensor]], min_score: float = AGREEMENT_SCORE) -> list[dict[str, Tensor]]:
    """Detections at or above ``min_score`` as ground truth (for the agreement metric)."""
    return [{"boxes": p["boxes"][p["scores"] >= min_score], "labels": p["labels"][p["scores"] >= min_score]}
            for p in predictions]


@torch.no_grad()
def ann_detections(model: nn.Module, loader: Iterable, *, progress: Progress = _plain, desc: str = "ANN"
                   ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
    """``(predictions, targets)`` of ``model`` over ``loader`` of ``(images, targets)`` batches."""
    device = _model_device(model)
    predictions, truth = [], []
    lay: Layout | None = None
    for x, targets in progress(loader, desc=desc, leave=False):
        lay = lay or layout(model, *x.shape[-2:])
        out = model(x.to(device)).cpu()
        predictions += postprocess(out, lay, model.num_anchors, max_det=MAX_DETECTIONS, size=tuple(x.shape[-2:]))
        truth += targets
    return predictions, truth


def ann_scores(model: nn.Module, batches: Sequence, *, progress: Progress = _plain
               ) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]], dict[str, dict[str, float | None]]]:
    """The quantized ANN's detections and the ground truth over ``batches``, and ``{"ann", "qann"}``: the
    mAP50 and mAP50:95 of the ANN without quantization and of the quantized ANN."""
    qann, truth = ann_detections(model, batches, progress=progress, desc="quantized ANN")
    scores = {}
    for key, found in (("ann", ann_detections(dequantized(model), batches, progress=progress, desc="ANN")[0]),
                       ("qann", qann)):
        metric = mean_average_precision()
        metric.update(found, truth)
        scores[key] = _scores(metric)
    return qann, truth, scores


@torch.no_grad()
def snn_detection_scores(snn: nn.Module, batches: Sequence, steps: Sequence[int], lay: Layout, num_anchors: int,
                         reference: list[dict[str, Tensor]], *, progress: Progress = _plain, desc: str = "SNN",
                         simulation: SimulationConfig | None = None) -> dict[int, dict[str, float | None]]:
    """``{t: {"map50", "map", "agreement50"}}`` of ``snn`` over ``batches`` of ``(images, targets)``, from one
    simulation of ``max(steps)`` steps; ``reference`` holds the boxes the agreement is scored against.
    ``simulation`` configures the simulation, e.g. ``SimulationConfig(encoder=CameraEncoder())`` for images
    seen through a spike camera (:mod:`spikeconv.data.camera`)."""
    device = _model_device(snn)
    metrics = {t: (mean_average_precision(), mean_average_precision()) for t in steps}
    offset = 0
    for x, targets in progress(batches, desc=desc, leave=False):
        readout = simulate(snn, x.to(device), max(steps), simulation).cpu()
        truth = reference[offset:offset + x.shape[0]]
        offset += x.shape[0]
        for t in steps:
            found = postprocess(readout[t - 1], lay, num_anchors, max_det=MAX_DETECTIONS, size=tuple(x.shape[-2:]))
            metrics[t][0].update(found, targets)
            metrics[t][1].update(found, truth)
    return {t: {**_scores(m), "agreement50": _scores(agree)["map50"]} for t, (m, agree) in metrics.items()}


def detection_table(model: nn.Module, loader: Iterable, example: Tensor, timesteps: Sequence[int],
                    variants: Sequence[SNNVariant], *, conversion: ConversionConfig | None = None,
                    calibration: Iterable[Tensor] | None = None, progress: Progress = _plain,
                    simulation: SimulationConfig | None = None) -> dict[str, Any]:
    """mAP50 and mAP50:95 of the ANN (clip, no quantization), the quantized ANN and every SNN variant at every T,
    plus the SNN's agreement mAP50 with the quantized ANN (module docstring). ``simulation``: see
    :func:`snn_detection_scores` (the ANN rows always see the images themselves).

    Returns ``{"images", "ann": {"map50", "map"}, "qann": {...}, "snn": {variant: {T: {"map50", "map",
    "agreement50"}}}}``.
    """
    model = model.eval()
    steps = sorted({int(t) for t in timesteps})
    if not steps or steps[0] < 1:
        raise ValueError(f"timesteps must be positive integers, got {list(timesteps)}")
    batches = list(loader)
    if not batches:
        raise ValueError("the evaluation loader yielded no images")
    result: dict[str, Any] = {"images": sum(x.shape[0] for x, _ in batches), "snn": {}}
    qann, truth, scores = ann_scores(model, batches, progress=progress)
    result.update(scores)
    agreement_truth = as_truth(qann)
    lay = layout(model, *example.shape[-2:])
    base = conversion or ConversionConfig()
    for variant in variants:
        cfg = ConversionConfig(**{**asdict(base), "signed": variant.neuron == "buffered",
                                  "max_strength": variant.max_strength,
                                  "weight_bits": variant.weight_bits or base.weight_bits})
        snn = convert(model, example, cfg, calibration=calibration)
        result["snn"][variant.key] = snn_detection_scores(snn, batches, steps, lay, model.num_anchors,
                                                          agreement_truth, progress=progress, desc=f"SNN {variant.key}",
                                                          simulation=simulation)
    return result


def format_detection_table(result: dict[str, Any]) -> str:
    """The mAP-vs-T tables of :func:`detection_table` as text (mAP in percent)."""
    variants = result["snn"]
    steps = sorted({int(t) for rows in variants.values() for t in rows})
    width = max([18, *(len(k) + 1 for k in variants)])
    lines = [f"{result.get('dataset', '')}: {result['images']} images",
             f"ANN (clip, no quantization): mAP50 {_percent(result['ann']['map50'], 6)}  mAP50:95 {_percent(result['ann']['map'], 6)}",
             f"quantized ANN (QReLU):       mAP50 {_percent(result['qann']['map50'], 6)}  mAP50:95 {_percent(result['qann']['map'], 6)}"]
    for metric, title in (("map50", "SNN mAP50"), ("map", "SNN mAP50:95"),
                          ("agreement50", f"SNN agreement mAP50 (vs quantized-ANN boxes, score >= {AGREEMENT_SCORE})")):
        lines.append(title)
        lines.append(f"{'':<{width}}" + "".join(f"{'T=' + str(t):>8}" for t in steps))
        for key, rows in variants.items():
            rows = {int(t): v for t, v in rows.items()}
            lines.append(f"{key:<{width}}" + "".join(_percent(rows[t][metric]) for t in steps))
    return "\n".join(lines)
