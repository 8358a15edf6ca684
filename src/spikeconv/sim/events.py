r"""Event-driven synaptic accumulation: work proportional to the number of spikes, not to the layer size.

A weight layer fed by spikes computes ``y = W * S + b`` with integer ``S``. A dense convolution touches
every input position; event-driven accumulation adds, for every nonzero input ``S[n, c, y, x] = s``,
the kernel column ``s * W[:, c, ky, kx]`` into the outputs it reaches (paper 004's "synaptic operations",
done literally)::

    y[n, :, (y + p - ky) / stride, (x + p - kx) / stride] += s * W[:, c, ky, kx]    for every (ky, kx)

Its cost grows with the number of events ``E = rate * N * C * H * W`` times ``k^2 * C_out``; the dense
convolution's with ``N * C * H * W * k^2 * C_out``, at a higher arithmetic speed. The operator
:func:`spikeconv.native.event_conv2d` runs, on the CPU, a C kernel that gathers the events per output
position (the same sums, pulled instead of pushed) and wins up to firing rates of 0.3-0.5 on 3x3 layers;
elsewhere (other devices, or no C compiler) its PyTorch reference, the scatter of :func:`event_conv2d` and
:func:`event_linear` here, which wins only below about 0.2% (``benchmarks/event_driven.py``;
docs/simulation.md). :class:`EventDriven` wraps a layer and picks the
path per call from the measured fraction of nonzero inputs, or keeps a path fixed by
:func:`event_driven` from a measured run.

Exactness: every product ``s * w`` with integer ``s`` and the sums are the dense layer's, added in another
order; the results equal the dense ones up to float rounding, and bit for bit when the weights are
integers (weights quantized for hardware, their scale in the threshold), where every partial sum is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .. import native
from ..errors import is_count
from ..layers import IntegerConv2d, IntegerLinear
from ..layers.replace import set_submodule
from .engine import simulate

#: the density below which the PyTorch scatter version (no C kernel, or another device) beats the dense
#: layer (docs/simulation.md)
SCATTER_MAX_DENSITY = 0.002


def default_max_density(layer: nn.Module) -> float:
    r"""The input density below which the C event kernel beats the dense float32 layer on this kind of CPU.

    The events cost one pass over the input (listing the spikes) plus ``rate x w`` additions of weight rows
    per input value, ``w = C_out k_h k_w / (s_h s_w)`` (``C_out`` for a Linear); the dense layer costs
    ``k_h k_w C_in`` multiply-adds per output value, each cheaper than a gathered addition. The gathered rows
    of one kernel tap (``C_in`` rows of 64 output channels) stay in L1/L2 for small ``C_in``. Measured
    (``benchmarks/event_driven.py --batch 256``, 2-core AVX-512 CPU: docs/simulation.md), the crossovers
    of 3x3 layers were 0.35-0.5+ for 32-128 input channels (0/1 spikes above 0.5, -1/0/1 spikes lower), 0.3-0.5
    for the strided ones, 0.4-0.45 for 256 input channels, 0.35-0.4 for 512, and never (above 0.01) for the 1x1
    strided shortcut or a 10-way classifier. So: 0 (always dense) for ``w < 128``; else 0.4 for
    ``C_in <= 128`` and 0.35 for ``C_in <= 256`` (0.3 for both when strided), 0.3 above. On a 2-core AVX2 CPU
    (``event_driven_avx2.json``) they were 0.3-0.4 for 32-64 input channels and 0.2-0.3 for 128-512: near
    enough that one table serves both.

    Example:
        >>> default_max_density(nn.Conv2d(64, 64, 3, padding=1)), default_max_density(nn.Conv2d(64, 128, 1, 2))
        (0.4, 0.0)
    """
    if isinstance(layer, nn.Conv2d):
        strided = layer.stride[0] * layer.stride[1] > 1
        work = layer.out_channels * layer.kernel_size[0] * layer.kernel_size[1] / (layer.stride[0] * layer.stride[1])
        inputs = layer.in_channels
    else:
        strided, work, inputs = False, layer.out_features, layer.in_features
    if work < 128:
        return 0.0
    if strided or inputs > 256:
        return 0.3
    return 0.4 if inputs <= 128 else 0.35


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
    """``F.conv2d(spikes, weight, bias, stride, padding)`` (no groups, no dilation) from the nonzero inputs, by
    scattering (:func:`spikeconv.native.event_conv2d_reference`, any device). The output is channels-last
    (NHWC memory), as the engine's convolutions are.

    Example:
        >>> s = torch.zeros(1, 1, 3, 3); s[0, 0, 1, 1] = 1.0
        >>> w = torch.arange(9.).view(1, 1, 3, 3)
        >>> torch.equal(event_conv2d(s, w, padding=1), torch.nn.functional.conv2d(s, w, padding=1))
        True
    """
    if spikes.dim() != 4 or weight.dim() != 4:
        raise ValueError("event_conv2d expects [N, C, H, W] spikes and a [C_out, C, kH, kW] weight")
    if weight.shape[1] != spikes.shape[1]:
        raise ValueError(f"event_conv2d: weight expects {weight.shape[1]} input channels, spikes have {spikes.shape[1]}")
    return native.event_conv2d_reference(spikes, weight.permute(2, 3, 1, 0), bias, _pair(stride), _pair(padding))


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _as_rows(weight: Tensor) -> Tensor:
    """A view of a Conv2d / Linear weight as the C kernel's rows ``[kH, kW, C, C_out]`` / ``[1, 1, in, out]``."""
    return weight.permute(2, 3, 1, 0) if weight.dim() == 4 else weight.t()[None, None]


class EventDriven(nn.Module):
    """A ``Conv2d`` (no groups/dilation) or ``Linear`` that accumulates events when its input is sparse.

    Each call measures the fraction of nonzero inputs; up to ``max_density`` it accumulates events, otherwise
    it runs the dense layer. Events run in the operator :func:`spikeconv.native.event_conv2d` (int8 or float32
    spikes, float32 weights, no autograd; it counts the spikes): its C kernel on the CPU, its PyTorch scatter
    elsewhere (much slower). ``max_density=None``: :func:`default_max_density` for the C kernel,
    :data:`SCATTER_MAX_DENSITY` for the scatter. ``mode="events"`` / ``"dense"`` fixes the path
    instead (:func:`event_driven` with ``inputs`` sets it from a measured run): then every call sums each
    output in the same order, so every execution order and chunking of a run gives the same bits. The weights
    are the wrapped layer's (shared, not copied). :func:`watch_paths` counts which path each call took.

    Example:
        >>> layer = EventDriven(nn.Linear(3, 2), max_density=0.5)
        >>> with torch.no_grad(), watch_paths(layer) as paths:  # while autograd records: the dense layer
        ...     y = layer(torch.tensor([[0., 1., 0.]]))  # one input of three is nonzero: events
        >>> paths
        {'': {'events': 1, 'dense': 0}}
    """

    MODES = ("auto", "events", "dense")

    def __init__(self, layer: nn.Module, max_density: float | None = None, mode: str = "auto") -> None:
        super().__init__()
        if not isinstance(layer, (nn.Conv2d, nn.Linear)):
            raise TypeError(f"EventDriven wraps nn.Conv2d or nn.Linear, got {type(layer).__name__}")
        if not _event_capable(layer):
            raise ValueError("EventDriven supports Conv2d without groups or dilation, with numeric zero padding")
        if max_density is not None and not 0.0 <= max_density <= 1.0:
            raise ValueError(f"max_density must lie in [0, 1] or be None (measured defaults), got {max_density}")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}, got {mode!r}")
        self.layer = layer
        self.max_density = None if max_density is None else float(max_density)
        self.mode = mode
        self.density: float | None = None  # the input density measured by event_driven(..., inputs=...)
        self._observer: Callable[[str], None] | None = None  # set only inside watch_paths
        self._rows_cache: Tensor | None = None
        self._rows_key: tuple | None = None

    def _rows(self) -> Tensor:
        """The weight as contiguous rows ``[kH, kW, C, C_out]`` (a Linear: ``[1, 1, in, out]``) for the event
        operator: a view when the weight is stored that way (:meth:`store_as_rows`), else a copy, made again
        only when the weight changes."""
        weight = self.layer.weight.detach()
        rows = _as_rows(weight)
        if rows.is_contiguous() and rows.dtype == torch.float32:
            self._drop_rows_copy()
            return rows
        key = (weight.data_ptr(), None if weight.is_inference() else weight._version, weight.shape)
        if self._rows_key != key:
            self._rows_cache, self._rows_key = rows.float().contiguous(), key
        return self._rows_cache

    def store_as_rows(self) -> None:
        """Store the wrapped layer's weight in the event operator's row order (same values and shape, other strides),
        so that the events need no second copy of it; the dense layer then reads strided weights (slower, and
        it may round differently): :func:`event_driven` does it for the layers it fixes to events."""
        weight = self.layer.weight
        stored = _as_rows(weight.detach()).float().contiguous()
        view = stored.permute(3, 2, 0, 1) if weight.dim() == 4 else stored[0, 0].t()
        self.layer.weight = nn.Parameter(view, requires_grad=weight.requires_grad)
        self._drop_rows_copy()

    def _drop_rows_copy(self) -> None:
        """Forget the row-ordered copy of the weight :meth:`_rows` made (remade on the next call if needed)."""
        self._rows_cache = self._rows_key = None

    def _limit(self, compiled: bool) -> float:
        """The density up to which this layer takes events: ``max_density``, or the measured default of the
        implementation that runs them (:func:`default_max_density` for the C kernel, :data:`SCATTER_MAX_DENSITY`
        for the scatter)."""
        if self.max_density is not None:
            return self.max_density
        return default_max_density(self.layer) if compiled else SCATTER_MAX_DENSITY

    def _event_arguments(self, x: Tensor) -> tuple | None:
        """``(spikes, rows, bias, stride, padding)`` for :func:`spikeconv.native.event_conv2d`, or None where
        the operator does not apply (a weight or input dtype it does not take, autograd recording, shapes it
        does not take): then the layer runs densely."""
        layer = self.layer
        if (layer.weight.dtype != torch.float32
                or (torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad))):
            return None
        bias = None if layer.bias is None else layer.bias.detach()
        if isinstance(layer, nn.Linear):
            if x.dim() < 2:
                return None
            arguments = (x.reshape(-1, x.shape[-1])[:, :, None, None], self._rows(), bias, (1, 1), (0, 0))
        elif x.dim() == 4:
            arguments = (x, self._rows(), bias, tuple(layer.stride), tuple(layer.padding))
        else:
            return None
        return arguments if native.event_supported(*arguments) else None

    def _took(self, path: str) -> None:
        if self._observer is not None:
            self._observer(path)

    def _dense(self, x: Tensor) -> Tensor:
        self._took("dense")
        return self.layer(x)

    def forward(self, x: Tensor) -> Tensor:
        """The layer on ``x``: events if ``x`` is no denser than ``max_density``, else the dense layer."""
        if self.mode == "dense":
            return self._dense(x)
        arguments = self._event_arguments(x)
        if arguments is None:
            return self._dense(x)
        limit = 1.0 if self.mode == "events" else self._limit(native.runs_compiled(x))
        out, events = native.event_conv2d(*arguments, max_density=limit)  # its count measures the density
        if events > limit * arguments[0].numel():
            return self._dense(x)
        self._took("events")
        return out.view(*x.shape[:-1], -1) if isinstance(self.layer, nn.Linear) else out


def _event_capable(module: nn.Module) -> bool:
    """A ``Linear``, or a ``Conv2d`` without groups or dilation and with numeric zero padding; not an integer
    layer (its int8 kernels are exact and faster than events at the rates converted nets fire)."""
    if isinstance(module, (IntegerConv2d, IntegerLinear)):
        return False
    if isinstance(module, nn.Conv2d):
        return (module.groups == 1 and module.dilation == (1, 1) and not isinstance(module.padding, str)
                and module.padding_mode == "zeros")
    return isinstance(module, nn.Linear)


@dataclass
class _InputCount:
    """What :func:`event_driven`'s measuring run records of one wrapped layer's inputs."""

    nonzero: int = 0  # nonzero input values over the run
    total: int = 0  # input values over the run
    events: bool = True  # whether the event operator takes every call
    compiled: bool = True  # whether its C kernel runs every call
    kinds: set = field(default_factory=set)  # the kinds of input (shape, dtype, device) already checked


def event_driven(model: nn.Module, max_density: float | None = None, *, inputs: Tensor | None = None,
                 timesteps: int = 8) -> nn.Module:
    """A copy of ``model`` whose ``Conv2d`` (no groups/dilation) and ``Linear`` layers are wrapped in
    :class:`EventDriven` (sinabs-style replacement by type; the original is not changed; integer layers are
    left as they are).

    Without ``inputs`` each wrapped layer chooses per call: events up to ``max_density`` (None: the measured
    crossover of each layer, :func:`default_max_density`), else dense (e.g. on analog images). With
    ``inputs`` (a batch like the ones to come), the copy is simulated once for ``timesteps`` steps, each
    layer's input density ``rho`` measured over the whole run, and its path fixed: events where
    ``rho <= max_density``, dense elsewhere (``EventDriven.mode``; the measured ``rho`` in ``.density``). A
    fixed path gives every execution order and chunking the same bits and skips the density check; the
    layers fixed to events keep their weight in the kernel's row order (:meth:`EventDriven.store_as_rows`),
    the others none, so the copy holds each weight once. (Choosing per call keeps a row-ordered copy of every
    wrapped weight besides the weight: 43 MiB more on the CIFAR ResNet-18.)
    Results equal the dense network's up to float summation order (a spike near threshold may flip); bit
    for bit on integer weights.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(2, 64, 3, padding=1), nn.Flatten(), nn.Linear(64 * 16, 10))
        >>> [type(m).__name__ for m in event_driven(net)]
        ['EventDriven', 'Flatten', 'EventDriven']
    """
    import copy

    if not is_count(timesteps):
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    clone = copy.deepcopy(model)
    wrappers = []
    for name, module in list(clone.named_modules()):
        if _event_capable(module):
            wrapper = EventDriven(module, max_density)
            set_submodule(clone, name, wrapper)
            wrappers.append(wrapper)
    if inputs is None:
        return clone
    counts = {id(w): _InputCount() for w in wrappers}

    def count(wrapper: EventDriven, args: tuple) -> None:
        x, entry = args[0], counts[id(wrapper)]
        entry.nonzero += int(torch.count_nonzero(x))
        entry.total += x.numel()
        kind = (tuple(x.shape[1:]), x.dtype, x.device)
        if entry.events and kind not in entry.kinds:  # once per kind of input: frames differ, nothing else
            entry.kinds.add(kind)
            entry.events = wrapper._event_arguments(x) is not None
            entry.compiled = entry.compiled and native.runs_compiled(x)
            wrapper._drop_rows_copy()  # the check's row copy: one layer's at a time

    for wrapper in wrappers:
        wrapper.mode = "dense"  # the measuring run is the dense network's
    handles = [w.register_forward_pre_hook(count) for w in wrappers]
    try:
        with torch.no_grad():
            simulate(clone, inputs, timesteps)
    finally:
        for handle in handles:
            handle.remove()
    for wrapper in wrappers:
        entry = counts[id(wrapper)]
        wrapper.density = entry.nonzero / entry.total if entry.total else None
        events = entry.events and entry.total and wrapper.density <= wrapper._limit(entry.compiled)
        wrapper.mode = "events" if events else "dense"
        if events:
            wrapper.store_as_rows()  # one copy of the weight, in the operator's order
    return clone


@contextmanager
def watch_paths(model: nn.Module) -> Iterator[dict[str, dict[str, int]]]:
    """Count, while the context is open, how often each :class:`EventDriven` layer of ``model`` took its event
    path and its dense path: ``{module path: {"events": n, "dense": n}}``. Nothing is recorded outside it.

    Example: ``with watch_paths(snn) as paths: simulate(snn, x, 8)``.
    """
    counts: dict[str, dict[str, int]] = {}
    wrappers = [(name, m) for name, m in model.named_modules() if isinstance(m, EventDriven)]
    try:
        for name, wrapper in wrappers:
            entry = counts.setdefault(name, {"events": 0, "dense": 0})
            wrapper._observer = lambda path, entry=entry: entry.__setitem__(path, entry[path] + 1)
        yield counts
    finally:
        for _, wrapper in wrappers:
            wrapper._observer = None


__all__ = ["EventDriven", "SCATTER_MAX_DENSITY", "default_max_density", "event_conv2d", "event_driven",
           "event_linear", "watch_paths"]
