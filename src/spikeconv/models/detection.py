"""YOLO-style detectors in the style of paper 000, section C: strided convolutions instead of pooling,
BatchNorm between each convolution and its activation, an injected activation (QReLU or ReLU), and
optional residual blocks through :class:`~spikeconv.layers.WAdd`.

Two layouts:

* ``yolov3_tiny``: two output scales (strides 32 and 16); the stride-32 branch is reduced by a 1x1
  convolution, upsampled (nearest, x2) and concatenated with the stride-16 features;
* ``yolov2_tiny``: one output scale (stride 32).

``forward`` returns ONE tensor ``[B, A * (5 + C), sum_s H_s * W_s]``: each scale's raw head output with its
spatial dimensions flattened, scales concatenated (stride 32 first). The converter needs nothing special
for it (the last convolutions are read out as rates; flatten and concatenation are ordinary rules), and
decoding (:func:`spikeconv.tasks.yolo.decode`) and NMS stay outside ``forward``.

Anchors are in input pixels, one list of ``(w, h)`` per scale (largest stride first);
:func:`kmeans_anchors` computes them from training boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..layers import Concat, WAdd
from .classification import conv_bn_act, xavier_init_
from .registry import register_model

Activation = Callable[[], nn.Module]

#: COCO anchors of YOLOv3-tiny at 416 px, largest stride first (scaled to the input size at build time)
ANCHORS_416 = (((81, 82), (135, 169), (344, 319)), ((10, 14), (23, 27), (37, 58)))
#: one-scale anchors (YOLOv2-tiny's COCO anchors times its stride 32)
ANCHORS_416_ONE = (((18, 22), (40, 49), (82, 82), (135, 169), (344, 319)),)


class Residual(nn.Module):
    """``act(WAdd(x, bn(conv(act(bn(conv(x)))))))``: a residual block whose add is a :class:`WAdd`."""

    def __init__(self, channels: int, activation: Activation) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn_act(channels, channels, activation),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.add = WAdd()
        self.act = activation()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.add(self.body(x), x))


class TinyYOLO(nn.Module):
    """A YOLO-tiny detector with one or two output scales (module docstring).

    Args:
        num_classes: C.
        anchors: per scale (largest stride first), ``(w, h)`` pairs in pixels of ``input_size``.
        widths: channels of the five stride-2 stages (strides 2..32).
        activation: factory of the activation module.
        residual: add a :class:`Residual` block after the stride-16 and stride-32 stages.
        input_size: the (square) input size the anchors refer to; any multiple of 32 runs.
    """

    def __init__(self, *, num_classes: int, anchors: Sequence[Sequence[Sequence[float]]], widths: Sequence[int],
                 activation: Activation, residual: bool = False, in_channels: int = 3, input_size: int = 416) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"widths must list 5 stage widths (strides 2..32), got {list(widths)}")
        if len(anchors) not in (1, 2) or any(len(a) == 0 for a in anchors):
            raise ValueError("anchors must hold one or two non-empty lists of (w, h) pairs (largest stride first)")
        if input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        self.num_classes, self.input_size = num_classes, input_size
        self.strides = (32, 16)[:len(anchors)]
        self.register_buffer("anchors", torch.tensor([list(map(list, a)) for a in anchors], dtype=torch.float32))
        self.num_anchors = self.anchors.shape[1]
        outputs = self.num_anchors * (5 + num_classes)
        w = list(widths)
        stride16: list[nn.Module] = []
        cin = in_channels
        for width in w[:4]:
            stride16 += conv_bn_act(cin, width, activation, stride=2)
            cin = width
        if residual:
            stride16.append(Residual(cin, activation))
        self.stride16 = nn.Sequential(*stride16)
        stride32: list[nn.Module] = [*conv_bn_act(w[3], w[4], activation, stride=2),
                                     *conv_bn_act(w[4], 2 * w[4], activation)]
        if residual:
            stride32.append(Residual(2 * w[4], activation))
        stride32 += conv_bn_act(2 * w[4], w[4], activation, kernel=1)
        self.stride32 = nn.Sequential(*stride32)
        self.head32 = nn.Sequential(*conv_bn_act(w[4], 2 * w[4], activation), nn.Conv2d(2 * w[4], outputs, 1))
        if len(anchors) == 2:
            self.route = nn.Sequential(*conv_bn_act(w[4], w[4] // 2, activation, kernel=1))
            self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
            self.concat = Concat()
            self.head16 = nn.Sequential(*conv_bn_act(w[4] // 2 + w[3], w[4], activation),
                                        nn.Conv2d(w[4], outputs, 1))
        xavier_init_(self)
        self._init_head_biases()

    def _init_head_biases(self) -> None:
        """Objectness starts near 0.01 and class scores near 1/C (a YOLO convention that steadies early training)."""
        for head, stride in zip(self.heads(), self.strides):
            bias = head[-1].bias.detach().view(self.num_anchors, -1)
            bias[:, 4] = float(torch.log(torch.tensor(8.0 / (640 / stride) ** 2)))
            bias[:, 5:] = float(torch.log(torch.tensor(0.6 / (self.num_classes - 0.99))))

    def heads(self) -> list[nn.Sequential]:
        """The output heads, largest stride first."""
        return [self.head32, self.head16] if len(self.strides) == 2 else [self.head32]

    def grid_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(H_s, W_s)`` of every output scale for an input of ``height x width``."""
        return [(-(-height // s), -(-width // s)) for s in self.strides]

    def forward(self, x: Tensor) -> Tensor:
        f16 = self.stride16(x)
        f32 = self.stride32(f16)
        outs = [self.head32(f32)]
        if len(self.strides) == 2:
            outs.append(self.head16(self.concat(self.upsample(self.route(f32)), f16)))
        return torch.cat([o.flatten(2) for o in outs], dim=2)


def _scaled(anchors: Sequence[Sequence[Sequence[float]]], input_size: int) -> list[list[list[float]]]:
    return [[[a * input_size / 416 for a in pair] for pair in scale] for scale in anchors]


@register_model("yolov3_tiny")
def yolov3_tiny(*, activation: Activation = nn.ReLU, num_classes: int = 80, input_size: int = 416,
                anchors: Sequence | None = None, width: float = 1.0, residual: bool = False,
                in_channels: int = 3) -> TinyYOLO:
    """YOLOv3-tiny-style detector, two scales; ``width`` scales the stage widths 16, 32, 64, 128, 256.

    Example:
        >>> m = yolov3_tiny(num_classes=3, input_size=64, width=0.25).eval()
        >>> tuple(m(torch.zeros(1, 3, 64, 64)).shape)  # 3 anchors x (5 + 3), 2x2 + 4x4 cells
        (1, 24, 20)
    """
    widths = [max(4, int(round(c * width))) for c in (16, 32, 64, 128, 256)]
    return TinyYOLO(num_classes=num_classes, anchors=anchors or _scaled(ANCHORS_416, input_size), widths=widths,
                    activation=activation, residual=residual, in_channels=in_channels, input_size=input_size)


@register_model("yolov2_tiny")
def yolov2_tiny(*, activation: Activation = nn.ReLU, num_classes: int = 80, input_size: int = 416,
                anchors: Sequence | None = None, width: float = 1.0, residual: bool = False,
                in_channels: int = 3) -> TinyYOLO:
    """YOLOv2-tiny-style detector, one scale (stride 32), five anchors by default."""
    widths = [max(4, int(round(c * width))) for c in (16, 32, 64, 128, 256)]
    return TinyYOLO(num_classes=num_classes, anchors=anchors or _scaled(ANCHORS_416_ONE, input_size),
                    widths=widths, activation=activation, residual=residual, in_channels=in_channels,
                    input_size=input_size)


def kmeans_anchors(wh: Tensor, k: int, *, iterations: int = 100) -> Tensor:
    r"""``k`` anchors ``(w, h)`` from box sizes ``wh [N, 2]`` by k-means with distance ``1 - IoU`` (YOLOv2),
    sorted by area, largest first. Deterministic: the centres start at evenly spaced ranks of the box areas.

    ``IoU((w, h), (a_w, a_h)) = min(w, a_w) min(h, a_h) / (w h + a_w a_h - min(w, a_w) min(h, a_h))``.

    Example:
        >>> wh = torch.tensor([[10., 10.], [11., 11.], [100., 50.], [98., 52.]])
        >>> kmeans_anchors(wh, 2).round().tolist()
        [[99.0, 51.0], [10.0, 10.0]]
    """
    if wh.dim() != 2 or wh.shape[1] != 2 or wh.shape[0] < k:
        raise ValueError(f"kmeans_anchors needs at least k={k} box sizes [N, 2], got shape {tuple(wh.shape)}")
    ordered = wh[wh.prod(-1).argsort()]
    centers = ordered[torch.linspace(0, wh.shape[0] - 1, k).round().long()].clone()  # spread over the sizes
    for _ in range(iterations):
        inter = torch.minimum(wh[:, None], centers[None]).prod(-1)
        iou = inter / (wh.prod(-1)[:, None] + centers.prod(-1)[None] - inter)
        assign = iou.argmax(1)
        new = torch.stack([wh[assign == j].mean(0) if bool((assign == j).any()) else centers[j]
                           for j in range(k)])
        if torch.equal(new, centers):
            break
        centers = new
    return centers[centers.prod(-1).argsort(descending=True)]
