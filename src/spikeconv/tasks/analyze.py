"""``spikeconv analyze``: a self-contained diagnostic report for a classifier (Markdown + PNG + JSON)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..analysis import (
    EnergyTable,
    accuracy_per_step,
    analog_twin,
    count_operations,
    decompose,
    early_exit,
    energy_summary,
    layer_agreement,
    pearson,
    prediction_agreement,
    rate_correlation,
    record,
    twin_currents,
)
from ..atomic import atomic_write
from ..convert import ConversionConfig, convert
from ..errors import is_count
from ..neuron import IFNeuron
from ..sim import simulate
from .classification import ann_predictions, dequantized, evaluate_ann, is_quantized


@dataclass(frozen=True)
class AnalyzeConfig:
    """What the report measures. ``clamp`` is paper 004's voltage clamp (steps per layer of depth) used
    for the with/without comparison of Fig. S1. ``warmup``: the SNN runs with a warm-up of that many steps
    (:func:`spikeconv.neuron.warmed_up_membrane`; ``warmup <= timesteps``), repeated ``warmup_rounds``
    times from the start the previous pre-run implied; the clamped comparison runs without one (the two do
    not combine)."""

    timesteps: int = 8
    max_strength: int = 1
    signed: bool = True
    detail_samples: int = 64
    clamp: int = 2
    margins: tuple[float, ...] = (0.5, 0.8, 0.95)
    layer: str | None = None
    energy: EnergyTable = field(default_factory=EnergyTable)
    percentile: float = 99.9
    warmup: int = 0
    warmup_rounds: int = 1

    def __post_init__(self) -> None:
        if not is_count(self.warmup_rounds):
            raise ValueError(f"warmup_rounds={self.warmup_rounds!r} must be a positive integer (1: one pre-run)")
        if not 0 <= self.warmup <= self.timesteps:
            raise ValueError(f"warmup={self.warmup} must lie in 0..timesteps={self.timesteps}: the pre-run reads "
                             "the run's own first steps; give a warm-up of at most T steps")

    def conversion(self, voltage_clamp: int = 0) -> ConversionConfig:
        """The conversion the report analyses (``percentile``: the bounds of plain ReLU activations)."""
        return ConversionConfig(signed=self.signed, max_strength=self.max_strength, percentile=self.percentile,
                                voltage_clamp=voltage_clamp)


def _pick_layer(snn: nn.Module, requested: str | None) -> str:
    names = [name for name, m in snn.named_modules() if isinstance(m, IFNeuron)]
    if requested is not None:
        if requested not in names:
            raise ValueError(f"layer {requested!r} is not a neuron layer; choose one of {names}")
        return requested
    return names[len(names) // 2]


def _active_rates(spikes: Tensor, clamp_steps: int) -> Tensor:
    active = spikes[clamp_steps:]
    return active.sum(0) / max(active.shape[0], 1)


def layer_diagnostics(model: nn.Module, snn: nn.Module, example: Tensor, xd: Tensor, config: AnalyzeConfig,
                      out: Path, calibration: Iterable[Tensor] | None = None) -> tuple[dict[str, Any], dict[str, Path], list[float]]:
    """The task-independent part of the report on the detail inputs ``xd``: error decomposition per layer,
    ANN-SNN rate correlations with and without voltage clamp (paper 004 Fig. S1), operations and energy,
    firing rates, and where the spike counts leave the levels of the quantized ANN (an ideal ``T``-step run,
    :mod:`spikeconv.analysis.agreement`). Returns ``(result entries, figures, cumulative operations per sample
    after each t)``."""
    from ..analysis import figures

    T = config.timesteps
    currents, _ = twin_currents(analog_twin(snn), xd)
    level_currents, _ = twin_currents(analog_twin(snn, steps=T), xd)
    with record(snn) as rec, count_operations(snn) as ops:
        # layer order: the analog first layer is computed (and counted) once
        simulate(snn, xd, T, order="layer", warmup=config.warmup, warmup_rounds=config.warmup_rounds)
    layers = decompose(rec, currents)
    curves = rate_correlation(rec, currents)
    energy = energy_summary(ops, config.energy)
    per_step_ops = torch.zeros(T)
    for layer_ops in ops.values():
        per_step_ops += torch.tensor(layer_ops.sop_adds) + torch.tensor(layer_ops.analog_macs)
    cumulative_ops = (per_step_ops.cumsum(0) / xd.shape[0]).tolist()

    clamped_snn = convert(model, example, config.conversion(voltage_clamp=config.clamp), calibration=calibration)
    depth_extra = max(n.clamp_steps for n in clamped_snn.modules() if isinstance(n, IFNeuron))
    with record(clamped_snn) as rec_clamp:
        simulate(clamped_snn, xd, T + depth_extra, order="layer")
    layer = _pick_layer(snn, config.layer)
    neuron = snn.get_submodule(layer)
    ann_rate = (currents[layer] / neuron.config.threshold).clamp(0, neuron.config.max_strength)
    clamp_steps = clamped_snn.get_submodule(layer).clamp_steps
    rates_free = _active_rates(rec[layer].spikes, 0)
    rates_clamped = _active_rates(rec_clamp[layer].spikes, clamp_steps)

    r_free, r_clamped = pearson(ann_rate, rates_free), pearson(ann_rate, rates_clamped)
    clamp_of = {name: m.clamp_steps for name, m in clamped_snn.named_modules() if isinstance(m, IFNeuron)}
    clamped_curves = rate_correlation(rec_clamp, currents, skip=clamp_of, steps=T)

    figs = {}
    if ann_rate.dim() == 4:
        figs["fig_s1"] = figures.heatmaps_and_scatter(ann_rate[0], rates_clamped[0], rates_free[0], layer,
                                                      clamp_steps, out / "fig_s1_heatmaps.png",
                                                      r=(r_free, r_clamped), samples=int(ann_rate.shape[0]))
    figs["correlation"] = figures.correlation_vs_t(curves, out / "correlation_vs_t.png",
                                                   "ANN-SNN rate correlation per layer (no clamp)")
    figs["correlation_clamped"] = figures.correlation_vs_t(
        clamped_curves, out / "correlation_vs_t_clamped.png",
        f"with voltage clamp ({config.clamp} steps per layer; t counted after each layer's clamp)")
    figs["decomposition"] = figures.decomposition_bars(layers, out / "decomposition.png", T)
    result = {
        "detail_samples": int(xd.shape[0]),
        "conversion": {"signed": config.signed, "max_strength": config.max_strength, "warmup": config.warmup,
                       "warmup_rounds": config.warmup_rounds},
        "decomposition": {layer_err.name: layer_err.summary() for layer_err in layers},
        "level_agreement": layer_agreement(rec, level_currents),
        "correlation_vs_t": curves, "correlation_vs_t_clamped": clamped_curves,
        "fig_s1": {"layer": layer, "clamp_steps": clamp_steps, "r_no_clamp": r_free,
                   "r_clamped": r_clamped},
        "operations": {"per_sample": energy, "cumulative_per_t": cumulative_ops,
                       "per_layer": {name: {"ann_macs": o.macs_per_sample,
                                            "sop_adds_per_sample": sum(o.sop_adds) / xd.shape[0],
                                            "sop_events_per_sample": sum(o.sop_events) / xd.shape[0],
                                            "analog_macs_per_sample": sum(o.analog_macs) / xd.shape[0]}
                                     for name, o in ops.items()},
                       "energy_table": asdict(config.energy)},
        "firing_rates": {name: r.spikes.abs().mean().item() for name, r in rec.items()},
    }
    return result, figs, cumulative_ops


def report_inputs(loader: Iterable, out_dir: str | Path) -> tuple[Path, list, Tensor]:
    """``(the output folder, created; the evaluation batches; a 2-sample example batch)`` of a report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    batches = list(loader)
    if not batches:
        raise ValueError("the evaluation data is empty")
    return out, batches, batches[0][0][:2]


def write_report(result: dict[str, Any], out: Path) -> None:
    """``report.json`` and ``report.md`` in ``out``, each written atomically."""
    import json

    atomic_write(out / "report.json", lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2)))
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(render_markdown(result)))


def analyze_classifier(model: nn.Module, loader: Iterable, config: AnalyzeConfig, out_dir: str | Path, *,
                       calibration: Iterable[Tensor] | None = None,
                       progress: Callable[..., Iterable] = lambda it, **_: it) -> dict[str, Any]:
    """Measure everything of the report on ``loader`` (accuracy) and its first ``detail_samples``
    (decomposition, correlations, heat maps, operations); write ``report.md``, ``report.json`` and PNGs.
    ``calibration`` batches set the bounds of plain ReLU activations (data-based normalization)."""
    from ..analysis import figures

    out, batches, example = report_inputs(loader, out_dir)
    T = config.timesteps
    snn = convert(model, example, config.conversion(), calibration=calibration)
    readouts, labels = [], []
    for x, y in progress(batches, desc=f"SNN T={T}"):
        readouts.append(simulate(snn, x, T, warmup=config.warmup, warmup_rounds=config.warmup_rounds))
        labels.append(y)
    readout, label = torch.cat(readouts, 1), torch.cat(labels)
    acc_t = accuracy_per_step(readout, label).tolist()
    ann_pred, _ = ann_predictions(model, batches)
    ann_acc = 100.0 * (ann_pred == label).float().mean().item()
    ann_clip_acc = evaluate_ann(dequantized(model), batches) if is_quantized(model) else ann_acc
    xd = torch.cat([b[0] for b in batches])[: config.detail_samples]
    layers, figs, cumulative_ops = layer_diagnostics(model, snn, example, xd, config, out, calibration)
    figs["accuracy_vs_ops"] = figures.accuracy_vs_operations(cumulative_ops, acc_t, layers["operations"]["per_sample"]["ann_macs"],
                                                             ann_acc, out / "accuracy_vs_operations.png")
    result = {
        "timesteps": T, "samples": int(label.numel()), "quality": "accuracy",
        "ann_accuracy": ann_acc, "ann_clip_accuracy": ann_clip_acc,
        "snn_accuracy_per_t": {str(t + 1): a for t, a in enumerate(acc_t)},
        "early_exit": [early_exit(readout, label, m) for m in config.margins],
        "prediction_agreement": prediction_agreement(readout[-1].argmax(-1), ann_pred, label),
        **layers, "figures": {k: v.name for k, v in figs.items()},
    }
    write_report(result, out)
    return result


def render_markdown(r: dict[str, Any]) -> str:
    """The human-readable report."""
    T = r["timesteps"]
    lines = [f"# spikeconv analysis (T = {T})", "",
             f"Conversion: buffered neuron = {r['conversion']['signed']}, S^max = {r['conversion']['max_strength']}"
             f"{_warmup_text(r['conversion'].get('warmup', 0), r['conversion'].get('warmup_rounds', 1))}. "
             f"{'mAP' if r.get('quality') == 'map' else 'Accuracy'} on {r['samples']} test samples; layer details on "
             f"the first {r['detail_samples']}.", "",
             *QUALITY_SECTIONS[r.get("quality", "accuracy")](r), *_agreement_section(r)]
    lines += ["", "## Where the gap comes from (rate units, mean over neurons; parts add up to the total)", "",
              "| layer | total | clipping | input | quantization | over-fire | residual charge | neg. spikes |",
              "|---|---|---|---|---|---|---|---|"]
    for name, s in r["decomposition"].items():
        lines.append(f"| {name} | {s['total']:+.4f} | {s['clipping']:+.4f} | {s['input']:+.4f} | "
                     f"{s['quantization']:+.4f} | {s['overfire']:+.4f} | {s['residual']:+.4f} | "
                     f"{s['negative_spikes']:.4f} |")
    lines += ["", "![decomposition](decomposition.png)", "",
              "## ANN vs SNN per layer (paper 004, Fig. S1)", "",
              f"Layer {r['fig_s1']['layer']}: Pearson r = {r['fig_s1']['r_no_clamp']:.3f} without clamp, "
              f"{r['fig_s1']['r_clamped']:.3f} with a {r['fig_s1']['clamp_steps']}-step voltage clamp.", ""]
    if "fig_s1" in r["figures"]:
        lines += ["![Fig. S1](fig_s1_heatmaps.png)", ""]
    lines += ["![correlation](correlation_vs_t.png) ![correlation, clamped](correlation_vs_t_clamped.png)", "",
              "## Operations and energy (per sample)", ""]
    e = r["operations"]["per_sample"]
    table = r["operations"]["energy_table"]
    lines += [f"ANN: {e['ann_macs']:.4g} MACs = {e['ann_energy_pj'] / 1e6:.4g} uJ. "
              f"SNN over T = {T}: {e['snn_sop_adds']:.4g} synaptic adds ({e['snn_sop_events']:.4g} as shift-adds "
              f"for multi-bit spikes) + {e['snn_analog_macs']:.4g} analog MACs = {e['snn_energy_pj'] / 1e6:.4g} uJ "
              f"({table['mac_pj']} pJ/MAC, {table['ac_pj']} pJ/add: {table['source']}).", "",
              "| layer | ANN MACs | SNN adds | SNN analog MACs |", "|---|---|---|---|"]
    for name, o in r["operations"]["per_layer"].items():
        lines.append(f"| {name} | {o['ann_macs']:.4g} | {o['sop_adds_per_sample']:.4g} | "
                     f"{o['analog_macs_per_sample']:.4g} |")
    lines += ["", f"![quality vs operations]({_figure_file(r)})", "", "## Firing rates (mean |spike| per neuron per step)",
              "", "| layer | rate |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in r["firing_rates"].items()]
    return "\n".join(lines) + "\n"


def _agreement_section(r: dict[str, Any]) -> list[str]:
    lines = ["", f"## Against the quantized ANN (the levels of an ideal {r['timesteps']}-step run)", ""]
    images = r.get("prediction_agreement")
    if images:
        lines += [f"The SNN at T = {r['timesteps']} and the quantized ANN classify {images['differ']} of "
                  f"{images['images']} images differently: the ANN is right on {images['ann_right_snn_wrong']} of "
                  f"them, the SNN on {images['snn_right_ann_wrong']}.", ""]
    lines += [f"Neurons of the first {r['detail_samples']} images whose spike count is not the quantized ANN's "
              "level, and why: the layer's own spike timing (count != what its mean input current gives) or its "
              "input (that current already gives another level). The first layer with a share above zero is "
              "where the departure starts.", "",
              "| layer | count != level | own timing | input | mean abs. difference (levels) |", "|---|---|---|---|---|"]
    return lines + [f"| {name} | {100 * a['differs']:.2f}% | {100 * a['own']:.2f}% | {100 * a['inherited']:.2f}% | "
                    f"{a['level_error']:.4f} |" for name, a in r.get("level_agreement", {}).items()]


def _warmup_text(warmup: int, rounds: int = 1) -> str:
    if not warmup:
        return ""
    repeated = f" {rounds} pre-runs, each from the start the previous one implied;" if rounds > 1 else ""
    return (f", warm-up of {warmup} steps (each neuron layer starts from the membrane a pre-run of its first "
            f"{warmup} input steps implies;{repeated} the voltage-clamped comparison runs without it)")


def _figure_file(r: dict[str, Any]) -> str:
    return r["figures"].get("accuracy_vs_ops", "accuracy_vs_operations.png")


def _accuracy_section(r: dict[str, Any]) -> list[str]:
    lines = ["## Accuracy after every t (anytime readout)", "",
             f"ANN (as trained): {r['ann_accuracy']:.2f}%, ANN without quantization: {r['ann_clip_accuracy']:.2f}%", "",
             "| t | " + " | ".join(r["snn_accuracy_per_t"]) + " |",
             "|---|" + "---|" * len(r["snn_accuracy_per_t"]),
             "| SNN % | " + " | ".join(f"{v:.2f}" for v in r["snn_accuracy_per_t"].values()) + " |", "",
             "Early exit (stop a sample when softmax top-1 minus top-2 >= margin):", "",
             "| margin | accuracy % | mean timesteps |", "|---|---|---|"]
    return lines + [f"| {e['margin']} | {e['accuracy']:.2f} | {e['mean_timesteps']:.2f} |" for e in r["early_exit"]]


def _map_section(r: dict[str, Any]) -> list[str]:
    per_t = r["snn_map50_per_t"]
    cells = ["n/a" if v is None else f"{100 * v:.2f}" for v in per_t.values()]
    agree = ["n/a" if v is None else f"{100 * v:.2f}" for v in r["snn_agreement50_per_t"].values()]
    return ["## mAP50 after every t (anytime readout, decoded and NMS-ed at each t)", "",
            f"Quantized ANN: mAP50 {100 * (r['qann_map50'] or 0):.2f}; ANN without quantization: "
            f"mAP50 {100 * (r['ann_map50'] or 0):.2f} (COCO protocol, {r['samples']} images).", "",
            "| t | " + " | ".join(per_t) + " |", "|---|" + "---|" * len(per_t),
            "| SNN mAP50 % | " + " | ".join(cells) + " |",
            "| agreement mAP50 % | " + " | ".join(agree) + " |", "",
            "Agreement: the SNN's boxes scored against its quantized ANN's boxes (score >= 0.25) as ground truth."]


#: the first section of the report, by the task's quality measure
QUALITY_SECTIONS = {"accuracy": _accuracy_section, "map": _map_section}
