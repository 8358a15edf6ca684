r"""YOLO decoding, target assignment, loss and post-processing for :class:`~spikeconv.models.detection.TinyYOLO`.

The model's output ``p [B, A (5 + C), N]`` holds, for every anchor ``a`` and cell ``n`` of every scale
(stride ``s``, cell ``(g_x, g_y)``, anchor size ``(a_w, a_h)``), the raw values ``t``. Decoding (YOLOv5 style,
bounded so that a rate readout with an error of a few percent moves a box by a few pixels only):

.. math::
    b_{xy} = (2\sigma(t_{xy}) - 0.5 + g_{xy})\,s, \quad b_{wh} = (2\sigma(t_{wh}))^2 a_{wh},
    \quad \text{objectness} = \sigma(t_o), \quad \text{class } c = \sigma(t_{5+c}).

Loss (paper 000, section C: "standard settings of Yolo, GIoU loss"): a ground-truth box is assigned to every
anchor of every scale whose width and height ratios to it are below 4 (at least its best anchor), in the
cell holding its centre. ``L = B (w_box L_GIoU + w_obj sum_s beta_s BCE(t_o, GIoU^+) + w_cls BCE(t_cls, onehot))``
with ``L_GIoU = mean(1 - GIoU)`` over assigned anchors (``torchvision.ops.generalized_box_iou_loss``) and the
objectness target the (clamped) GIoU of the assigned prediction, 0 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms, generalized_box_iou_loss

ANCHOR_RATIO = 4.0


@dataclass(frozen=True)
class Layout:
    """Where each output column sits: ``grid [N, 2]`` cell ``(x, y)``, ``stride [N]``, ``anchors [A, N, 2]``,
    ``scale [N]`` (index of the output scale), for one input size."""

    grid: Tensor
    stride: Tensor
    anchors: Tensor
    scale: Tensor


def layout(model, height: int, width: int) -> Layout:
    """The :class:`Layout` of ``model``'s output for an input of ``height x width`` (multiples of 32)."""
    grids, strides, anchors, scales = [], [], [], []
    for k, ((h, w), s) in enumerate(zip(model.grid_sizes(height, width), model.strides)):
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grids.append(torch.stack([xs, ys], -1).reshape(-1, 2).float())
        strides.append(torch.full((h * w,), float(s)))
        anchors.append(model.anchors[k].float().cpu()[:, None, :].expand(-1, h * w, -1))
        scales.append(torch.full((h * w,), k, dtype=torch.long))
    return Layout(torch.cat(grids), torch.cat(strides), torch.cat(anchors, 1), torch.cat(scales))


def split(output: Tensor, num_anchors: int) -> Tensor:
    """``[B, A (5 + C), N] -> [B, A, N, 5 + C]``."""
    b, channels, n = output.shape
    return output.view(b, num_anchors, channels // num_anchors, n).transpose(2, 3)


def decode_boxes(raw: Tensor, lay: Layout) -> Tensor:
    """XYXY pixel boxes ``[..., A, N, 4]`` from raw values ``[..., A, N, >= 4]`` (module docstring)."""
    grid, stride, anchors = (t.to(raw.device) for t in (lay.grid, lay.stride, lay.anchors))
    xy = (raw[..., :2].sigmoid() * 2 - 0.5 + grid) * stride[:, None]
    wh = (raw[..., 2:4].sigmoid() * 2) ** 2 * anchors
    return torch.cat([xy - wh / 2, xy + wh / 2], -1)


def _scales(lay: Layout) -> list[tuple[int, float, int, int, Tensor]]:
    """Per output scale: its first column, stride, grid width and height, and anchors ``[A, 2]``."""
    out, first = [], 0
    for k in range(int(lay.scale.max()) + 1):
        count = int((lay.scale == k).sum())
        grid = lay.grid[first:first + count]
        out.append((first, float(lay.stride[first]), int(grid[:, 0].max()) + 1, int(grid[:, 1].max()) + 1,
                    lay.anchors[:, first]))
        first += count
    return out


def assign(targets: list[dict[str, Tensor]], lay: Layout, num_anchors: int) -> tuple[Tensor, ...]:
    """Positive ``(image, anchor, column)`` indices, their XYXY target boxes and labels (module docstring)."""
    images, anchor_ids, columns, boxes, labels = [], [], [], [], []
    scales = _scales(lay)
    for b, target in enumerate(targets):
        gt = target["boxes"].float().cpu()
        if gt.numel() == 0:
            continue
        centre, size = (gt[:, :2] + gt[:, 2:]) / 2, (gt[:, 2:] - gt[:, :2]).clamp(min=1e-3)
        ratios = [torch.maximum(size[:, None] / anchor[None], anchor[None] / size[:, None]).amax(-1)  # [G, A]
                  for *_, anchor in scales]
        best_overall = torch.stack([r.min(1).values for r in ratios]).min(0).values  # each box's best anchor
        for (first, stride, width, height, _), ratio in zip(scales, ratios):
            match = ratio < ANCHOR_RATIO
            match[torch.arange(len(gt)), ratio.argmin(1)] |= ratio.min(1).values <= best_overall
            g, a = match.nonzero(as_tuple=True)
            cell = (centre[g] / stride).long()
            cell[:, 0].clamp_(0, width - 1)
            cell[:, 1].clamp_(0, height - 1)
            images.append(torch.full_like(g, b))
            anchor_ids.append(a)
            columns.append(first + cell[:, 1] * width + cell[:, 0])
            boxes.append(gt[g])
            labels.append(target["labels"].cpu()[g])
    if not images:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, empty, torch.zeros(0, 4), empty
    return torch.cat(images), torch.cat(anchor_ids), torch.cat(columns), torch.cat(boxes), torch.cat(labels)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three loss terms and the per-scale objectness balance (largest stride first)."""

    box: float = 0.05
    objectness: float = 1.0
    classes: float = 0.5
    balance: tuple[float, ...] = (1.0, 4.0)


def yolo_loss(output: Tensor, targets: list[dict[str, Tensor]], lay: Layout, num_anchors: int,
              weights: LossWeights = LossWeights()) -> tuple[Tensor, dict[str, float]]:
    """The detection loss (module docstring); returns ``(loss, {"box", "obj", "cls"})``."""
    raw = split(output.float(), num_anchors)
    batch, _, _, channels = raw.shape
    b, a, n, gt, labels = (t.to(raw.device) for t in assign(targets, lay, num_anchors))
    obj_target = torch.zeros(raw.shape[:3], device=raw.device)
    box_loss = cls_loss = raw.new_zeros(())
    if len(b):
        picked = raw[b, a, n]
        lay_n = Layout(lay.grid[n.cpu()], lay.stride[n.cpu()], lay.anchors[a.cpu(), n.cpu()], lay.scale[n.cpu()])
        pred = decode_boxes(picked, lay_n)
        giou_loss = generalized_box_iou_loss(pred, gt, reduction="none")
        box_loss = giou_loss.mean()
        obj_target[b, a, n] = (1.0 - giou_loss.detach()).clamp(min=0)
        if channels > 5:
            onehot = F.one_hot(labels, channels - 5).float()
            cls_loss = F.binary_cross_entropy_with_logits(picked[:, 5:], onehot)
    obj_losses = F.binary_cross_entropy_with_logits(raw[..., 4], obj_target, reduction="none")
    scale = lay.scale.to(raw.device)
    obj_loss = sum(weights.balance[k] * obj_losses[..., scale == k].mean() for k in range(int(scale.max()) + 1))
    total = batch * (weights.box * box_loss + weights.objectness * obj_loss + weights.classes * cls_loss)
    return total, {"box": float(box_loss.detach()), "obj": float(obj_loss.detach()), "cls": float(cls_loss.detach())}


@torch.no_grad()
def postprocess(output: Tensor, lay: Layout, num_anchors: int, *, conf: float = 0.001, iou: float = 0.6,
                max_det: int = 300, size: tuple[int, int] | None = None) -> list[dict[str, Tensor]]:
    """Boxes per image after decoding, score ``objectness * class`` above ``conf`` (one candidate per box and
    class), and class-wise NMS (``torchvision.ops.batched_nms`` at ``iou``); ``{"boxes", "scores", "labels"}``
    as torchmetrics' ``MeanAveragePrecision`` takes them. ``size = (H, W)`` clips boxes to the image."""
    raw = split(output.float(), num_anchors)
    boxes_all = decode_boxes(raw, lay)
    results = []
    for k in range(raw.shape[0]):
        probs = raw[k, ..., 4:5].sigmoid() * raw[k, ..., 5:].sigmoid()  # [A, N, C]
        anchor, column, label = (probs > conf).nonzero(as_tuple=True)
        scores = probs[anchor, column, label]
        boxes = boxes_all[k, anchor, column]
        if size is not None:
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, size[1])
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, size[0])
        if scores.numel() > 30000:  # keep NMS bounded for an untrained model
            top = scores.topk(30000).indices
            boxes, scores, label = boxes[top], scores[top], label[top]
        keep = batched_nms(boxes, scores, label, iou)[:max_det]
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": label[keep]})
    return results

