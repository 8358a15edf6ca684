"""``spikeconv analyze`` for a detector: mAP50 and agreement after every t, then the same per-layer report as
for classifiers (error decomposition, rate correlations, Fig. S1, synaptic operations and energy)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..convert import convert
from .analyze import AnalyzeConfig, layer_diagnostics, report_inputs, write_report
from .detection_eval import ann_scores, as_truth, snn_detection_scores
from .yolo import layout


def analyze_detector(model: nn.Module, loader: Iterable, config: AnalyzeConfig, out_dir: str | Path, *,
                     calibration: Iterable[torch.Tensor] | None = None, progress: Callable[..., Iterable] = lambda it, **_: it) -> dict[str, Any]:
    """The analysis report of a :class:`~spikeconv.models.detection.TinyYOLO` on ``loader`` of
    ``(images, targets)`` batches; writes ``report.md``, ``report.json`` and PNGs into ``out_dir``."""
    from ..analysis import figures

    out, batches, example = report_inputs(loader, out_dir)
    T = config.timesteps
    qann, _, scores = ann_scores(model, batches, progress=progress)
    snn = convert(model, example, config.conversion(), calibration=calibration)
    lay = layout(model, *example.shape[-2:])
    per_t = snn_detection_scores(snn, batches, list(range(1, T + 1)), lay, model.num_anchors, as_truth(qann),
                                 progress=progress, desc=f"SNN T={T}")
    xd = torch.cat([b[0] for b in batches])[: config.detail_samples]
    layers, figs, cumulative_ops = layer_diagnostics(model, snn, example, xd, config, out, calibration)
    map50 = [100 * (per_t[t]["map50"] or 0.0) for t in range(1, T + 1)]
    figs["accuracy_vs_ops"] = figures.accuracy_vs_operations(
        cumulative_ops, map50, layers["operations"]["per_sample"]["ann_macs"], 100 * (scores["qann"]["map50"] or 0.0),
        out / "map50_vs_operations.png", quantity="mAP50")
    result = {
        "timesteps": T, "samples": sum(x.shape[0] for x, _ in batches), "quality": "map",
        "qann_map50": scores["qann"]["map50"], "qann_map": scores["qann"]["map"],
        "ann_map50": scores["ann"]["map50"], "ann_map": scores["ann"]["map"],
        "snn_map50_per_t": {str(t): v["map50"] for t, v in per_t.items()},
        "snn_map_per_t": {str(t): v["map"] for t, v in per_t.items()},
        "snn_agreement50_per_t": {str(t): v["agreement50"] for t, v in per_t.items()},
        **layers, "figures": {k: v.name for k, v in figs.items()},
    }
    write_report(result, out)
    return result
