"""Figures of the analysis report (the only module that imports matplotlib; headless backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from .decompose import PARTS, LayerErrors, pearson  # noqa: E402


def _save(fig, path: Path, dpi: int = 110, tight: bool = True) -> Path:
    if tight:  # a figure with a colour bar spanning several axes lays itself out
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def heatmaps_and_scatter(ann: Tensor, clamped: Tensor, unclamped: Tensor, layer: str, clamp_steps: int,
                         path: Path, maps: int = 16, r: tuple[float, float] | None = None,
                         samples: int = 1) -> Path:
    """Paper 004 Fig. S1: ANN activations and SNN rates per feature map of one sample, without and with the
    voltage clamp (panels a-c, one colour scale with its bar), and the ANN-vs-SNN scatter plots (d, e).

    ``ann``, ``clamped``, ``unclamped``: ``[C, H, W]`` (rate units) of the sample drawn. ``r``: the Pearson r
    (no clamp, clamped) to print, as the caller reports it over ``samples`` samples; by default that of
    the sample drawn (:func:`~spikeconv.analysis.decompose.pearson`).
    """
    maps = min(maps, ann.shape[0])
    r = r if r is not None else (pearson(ann, unclamped), pearson(ann, clamped))

    def grid(t: Tensor) -> Tensor:
        return torch.cat([t[c] for c in range(maps)], dim=1)

    fig = plt.figure(figsize=(max(8, maps * 0.9), 7.5))
    vmax = float(max(ann[:maps].max(), unclamped[:maps].max(), clamped[:maps].max(), 1e-6))
    heat_axes, image = [], None
    for row, (title, data) in enumerate([("(a) ANN activations", ann), ("(b) SNN rates, no clamp", unclamped),
                                         (f"(c) SNN rates, clamp {clamp_steps} steps", clamped)]):
        ax = fig.add_subplot(4, 1, row + 1)
        image = ax.imshow(grid(data).cpu().numpy(), vmin=0, vmax=vmax, cmap="viridis", aspect="equal")
        ax.set_title(f"{title} - layer {layer}, first {maps} feature maps", fontsize=9)
        ax.axis("off")
        heat_axes.append(ax)
    fig.colorbar(image, ax=heat_axes, fraction=0.02, pad=0.01, label="rate units (fraction of lambda)")
    over = f" over {samples} samples" if samples > 1 else ""
    for k, (title, data, value) in enumerate([("(d) no clamp", unclamped, r[0]), ("(e) clamped", clamped, r[1])]):
        ax = fig.add_subplot(4, 2, 7 + k)
        ax.scatter(ann.flatten().cpu().numpy(), data.flatten().cpu().numpy(), s=3, alpha=0.4)
        ax.plot([0, vmax], [0, vmax], "k--", lw=0.8)
        ax.set_xlabel("ANN activation (rate units)", fontsize=8)
        ax.set_ylabel("SNN rate", fontsize=8)
        ax.set_title(f"{title}: Pearson r = {value:.3f}{over} (points: one sample)", fontsize=9)
    return _save(fig, path, tight=False)


def correlation_vs_t(curves: dict[str, list[float]], path: Path, title: str) -> Path:
    """Per-layer ANN-vs-SNN rate correlation after every t."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, (name, curve) in enumerate(curves.items()):
        ax.plot(range(1, len(curve) + 1), curve, label=name, color=plt.cm.viridis(k / max(len(curves) - 1, 1)))
    ax.set_xlabel("timestep t")
    ax.set_ylabel("Pearson r (ANN activation, SNN rate)")
    ax.set_ylim(-0.05, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def decomposition_bars(layers: list[LayerErrors], path: Path, timesteps: int) -> Path:
    """Signed mean of every error part per layer (stacked) with the total as a marker; the right panel
    leaves out clipping, which a QReLU ANN does itself, to show the conversion's own losses."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = [layer.name for layer in layers]
    colors = dict(zip(PARTS, ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple"]))
    for ax, parts, title in [(axes[0], PARTS, "all parts"), (axes[1], PARTS[1:], "without clipping")]:
        x = list(range(len(layers)))
        pos = [0.0] * len(layers)
        neg = [0.0] * len(layers)
        for part in parts:
            values = [layer.parts[part].mean().item() for layer in layers]
            bottoms = [p if v >= 0 else n for v, p, n in zip(values, pos, neg)]
            ax.bar(x, values, bottom=bottoms, color=colors[part], label=part)
            pos = [p + max(v, 0) for p, v in zip(pos, values)]
            neg = [n + min(v, 0) for n, v in zip(neg, values)]
        totals = [sum(layer.parts[p].mean().item() for p in parts) for layer in layers]
        ax.plot(x, totals, "k*", label="sum shown (ANN - SNN)")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("mean gap, rate units (fraction of lambda)")
        ax.set_title(f"ANN-SNN gap per layer, {title} (T = {timesteps})", fontsize=9)
        ax.legend(fontsize=6)
    return _save(fig, path)


def accuracy_vs_operations(cumulative_ops: list[float], accuracy: list[float], ann_macs: float,
                           ann_accuracy: float, path: Path, quantity: str = "accuracy", title: str = "") -> Path:
    """Paper 004's curve: accuracy (or ``quantity``, e.g. mAP50, in percent) at t against cumulative synaptic
    operations up to t; ANN MACs as a line; the legend in the lower right, below the ANN's line."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(cumulative_ops, accuracy, "o-", ms=3, label=f"SNN ({quantity} at t vs operations up to t)")
    ax.axvline(ann_macs, color="tab:red", ls="--", label=f"ANN MACs ({ann_macs:.3g})")
    ax.axhline(ann_accuracy, color="tab:gray", ls=":", label=f"ANN {quantity} ({ann_accuracy:.2f}%)")
    ax.set_xscale("log")
    ax.set_xlabel("operations per sample (SNN: synaptic adds + analog MACs)")
    ax.set_ylabel("top-1 accuracy (%)" if quantity == "accuracy" else f"{quantity} (%)")
    ax.set_title(title or f"SNN {quantity} against operations (paper 004)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def detections_side_by_side(images: Tensor, columns: list[tuple[str, list[dict[str, Tensor]]]],
                            class_names: list[str] | None, path: Path, min_score: float = 0.25) -> Path:
    """One row per image, one column per detector (e.g. quantized ANN, SNN at T=4, SNN at T=8): the image with
    the boxes scoring at least ``min_score``, labelled with class and score.

    ``images``: ``[N, 3, H, W]`` in [0, 1]; each column: a title and per-image ``{"boxes", "scores", "labels"}``.
    """
    rows, cols = images.shape[0], len(columns)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for r in range(rows):
        for c, (title, found) in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(images[r].permute(1, 2, 0).clamp(0, 1).numpy())
            keep = found[r]["scores"] >= min_score
            _draw_boxes(ax, {k: v[keep] for k, v in found[r].items()}, class_names)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{title}\n(boxes with score >= {min_score})" if c == 0 else title, fontsize=8)
    return _save(fig, path, dpi=80)  # photographs: 80 dpi keeps a 4 x 3 grid near 1 MB


def _draw_boxes(ax, found: dict[str, Tensor], class_names: list[str] | None) -> None:
    from matplotlib.patches import Rectangle

    for box, score, label in zip(found["boxes"], found["scores"], found["labels"]):
        x1, y1, x2, y2 = box.tolist()
        colour = f"C{int(label) % 10}"
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.2, color=colour))
        name = class_names[int(label)] if class_names else str(int(label))
        ax.text(x1, y1, f"{name} {float(score):.2f}", fontsize=6, color="white",
                bbox={"facecolor": colour, "alpha": 0.7, "pad": 1, "lw": 0})


def stream_figures(previews: list[Tensor], found: list[dict[str, Tensor]], class_names: list[str] | None,
                   starts: list[int], out: Path, title: str = "") -> tuple[Path, Path]:
    """A PNG strip and a GIF of a stream's clips (``previews``: ``[H, W]`` mean input of each clip) with the SNN
    detector's boxes, like paper 000's Fig. 1; returns ``(strip path, gif path)``."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    count = len(previews)
    # sparse event frames: the grey scale ends at the 99.5th percentile of the non-zero pixels, not at the max
    top = [float(torch.quantile(p[p > 0][:1_000_000], 0.995)) if bool((p > 0).any()) else 1.0 for p in previews]
    fig, axes = plt.subplots(1, count, figsize=(2.6 * count, 2.4), squeeze=False)
    for ax, image, boxes, start, vmax in zip(axes[0], previews, found, starts, top):
        ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=vmax)
        _draw_boxes(ax, boxes, class_names)
        ax.set_title(f"{title} @ {start}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    strip = _save(fig, out / "strip.png")
    fig, ax = plt.subplots(figsize=(4, 3.4))

    def frame(k: int) -> None:
        ax.clear()
        ax.imshow(previews[k].numpy(), cmap="gray", vmin=0, vmax=top[k])
        _draw_boxes(ax, found[k], class_names)
        ax.set_title(f"{title} @ {starts[k]}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])

    animation = FuncAnimation(fig, frame, frames=count)
    gif = out / "stream.gif"
    animation.save(gif, writer=PillowWriter(fps=2), dpi=90)
    plt.close(fig)
    return strip, gif
