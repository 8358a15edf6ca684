r"""Event-driven synaptic accumulation: work proportional to the number of spikes, not to the layer size.

A weight layer fed by spikes computes ``y = W * S + b`` with integer ``S``. A dense convolution touches
every input position; event-driven accumulation adds, for every nonzero input ``S[n, c, y, x] = s``,
the kernel column ``s * W[:, c, ky, kx]`` into the outputs it reaches (paper 004's "synaptic operations",
done literally)::

    y[n, :, (y + p - ky) / stride, (x + p - kx) / stride] += s * W[:, c, ky, kx]    for every (ky, kx)

Its cost grows with the number of events ``E = rate * N * C * H * W`` times ``k^2 * C_out``; the dense
convolution's with ``N * C * H * W * k^2 * C_out``, at a much higher arithmetic speed. So it wins below a
firing rate that depends on the machine and the layer (``benchmarks/event_driven.py`` measures it;
docs/performance.md records where). :class:`EventDriven` wraps a layer and picks the cheaper path per call
from the measured fraction of nonzero inputs.

Exactness: every product ``s * w`` with integer ``s`` and the sums are the dense layer's, added in another
order; the results equal the dense ones up to float rounding, and bit for bit when the weights are
integers (weights quantized for hardware, their scale in the threshold), where every partial sum is exact.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def event_linear(spikes: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``spikes @ weight.T + bias`` from the nonzero entries of ``spikes`` (``[N, in]``) only.

    Example:
        >>> w = torch.tensor([[1., 2., 3.], [4., 5., 6.]])
        >>> event_linear(torch.tensor([[0., 1., 0.], [1., 0., -1.]]), w).tolist()
        [[2.0, 5.0], [-2.0, -2.0]]
    """
    if spikes.dim() != 2:
        raise ValueError(f"event_linear expects [N, in_features] spikes, got shape {tuple(spikes.shape)}")
    sample, feature = spikes.nonzero(as_tuple=True)
    values = spikes[sample, feature]
    out = torch.zeros(spikes.shape[0], weight.shape[0], dtype=weight.dtype, device=weight.device)
    if bias is not None:
        out += bias
    return out.index_add_(0, sample, weight.t()[feature] * values.unsqueeze(1))


def event_conv2d(spikes: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """``F.conv2d(spikes, weight, bias, stride, padding)`` (no groups, no dilation) from the nonzero inputs.

    The output is channels-last (NHWC memory), as the engine's convolutions are.

    Example:
        >>> s = torch.zeros(1, 1, 3, 3); s[0, 0, 1, 1] = 1.0
        >>> w = torch.arange(9.).view(1, 1, 3, 3)
        >>> torch.equal(event_conv2d(s, w, padding=1), torch.nn.functional.conv2d(s, w, padding=1))
        True
    """
    if spikes.dim() != 4 or weight.dim() != 4:
        raise ValueError("event_conv2d expects [N, C, H, W] spikes and a [C_out, C, kH, kW] weight")
    stride_h, stride_w = (stride, stride) if isinstance(stride, int) else stride
    pad_h, pad_w = (padding, padding) if isinstance(padding, int) else padding
    batch, channels, height, width = spikes.shape
    out_channels, in_channels, kernel_h, kernel_w = weight.shape
    if in_channels != channels:
        raise ValueError(f"event_conv2d: weight expects {in_channels} input channels, spikes have {channels}")
    out_h = (height + 2 * pad_h - kernel_h) // stride_h + 1
    out_w = (width + 2 * pad_w - kernel_w) // stride_w + 1
    out = torch.zeros(batch * out_h * out_w, out_channels, dtype=weight.dtype, device=weight.device)
    n, c, y, x = spikes.nonzero(as_tuple=True)
    values = spikes[n, c, y, x].to(weight.dtype).unsqueeze(1)
    columns = weight.permute(2, 3, 1, 0)  # [kH, kW, C, C_out]: one contiguous row per (ky, kx, c)
    for ky in range(kernel_h):
        top = y + pad_h - ky
        for kx in range(kernel_w):
            left = x + pad_w - kx
            keep = (top % stride_h == 0) & (left % stride_w == 0)
            row, col = top.div(stride_h, rounding_mode="floor"), left.div(stride_w, rounding_mode="floor")
            keep &= (row >= 0) & (row < out_h) & (col >= 0) & (col < out_w)
            index = keep.nonzero(as_tuple=True)[0]
            if index.numel() == 0:
                continue
            target = (n[index] * out_h + row[index]) * out_w + col[index]
            out.index_add_(0, target, columns[ky, kx][c[index]] * values[index])
    result = out.view(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2)
    return result + bias.view(1, -1, 1, 1) if bias is not None else result


class EventDriven(nn.Module):
    """A ``Conv2d`` (no groups/dilation) or ``Linear`` that accumulates events when its input is sparse.

    Each call measures the fraction of nonzero inputs; below ``max_density`` it runs
    :func:`event_conv2d` / :func:`event_linear`, otherwise the dense layer. The weights are the wrapped
    layer's (shared, not copied). ``calls`` counts how often each path ran (diagnostics).

    Example:
        >>> layer = EventDriven(nn.Linear(3, 2), max_density=0.5)
        >>> y = layer(torch.tensor([[0., 1., 0.]]))  # one input of three is nonzero: events
        >>> layer.calls
        {'events': 1, 'dense': 0}
    """

    def __init__(self, layer: nn.Module, max_density: float = 0.002) -> None:
        super().__init__()
        if not isinstance(layer, (nn.Conv2d, nn.Linear)):
            raise TypeError(f"EventDriven wraps nn.Conv2d or nn.Linear, got {type(layer).__name__}")
        if not _event_capable(layer):
            raise ValueError("EventDriven supports Conv2d without groups or dilation, with numeric zero padding")
        if not 0.0 <= max_density <= 1.0:
            raise ValueError(f"max_density must lie in [0, 1], got {max_density}")
        self.layer = layer
        self.max_density = float(max_density)
        self.calls = {"events": 0, "dense": 0}

    def forward(self, x: Tensor) -> Tensor:
        density = torch.count_nonzero(x).item() / max(x.numel(), 1)
        if density > self.max_density:
            self.calls["dense"] += 1
            return self.layer(x)
        self.calls["events"] += 1
        layer = self.layer
        if isinstance(layer, nn.Linear):
            return event_linear(x.reshape(-1, x.shape[-1]), layer.weight, layer.bias).view(*x.shape[:-1], -1)
        return event_conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding)


def _event_capable(module: nn.Module) -> bool:
    """A ``Linear``, or a ``Conv2d`` without groups or dilation and with numeric zero padding."""
    if isinstance(module, nn.Conv2d):
        return (module.groups == 1 and module.dilation == (1, 1) and not isinstance(module.padding, str)
                and module.padding_mode == "zeros")
    return isinstance(module, nn.Linear)


def event_driven(model: nn.Module, max_density: float = 0.002) -> nn.Module:
    """A copy of ``model`` whose ``Conv2d`` (no groups/dilation) and ``Linear`` layers are wrapped in
    :class:`EventDriven` (sinabs-style replacement by type; the original is not changed).

    Each wrapped layer still runs dense whenever its input is denser than ``max_density`` (analog images,
    and the spikes of typical converted nets: docs/performance.md).
    """
    import copy

    clone = copy.deepcopy(model)
    for name, module in list(clone.named_modules()):
        if _event_capable(module):
            parent_name, _, attr = name.rpartition(".")
            parent = clone.get_submodule(parent_name) if parent_name else clone
            setattr(parent, attr, EventDriven(module, max_density))
    return clone


__all__ = ["EventDriven", "event_conv2d", "event_driven", "event_linear"]
