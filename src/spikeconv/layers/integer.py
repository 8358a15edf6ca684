r"""Integer weight layers: weights on a per-channel integer grid, spikes times weights summed exactly in int32.

Hardware that runs a converted SNN stores its weights as small integers with one scale per output
channel. With ``b``-bit weights (``2 <= b <= 8``) every output channel ``o`` of a weight layer keeps

    s_o = max |W_o| / (2^(b-1) - 1),      Q_o = round(W_o / s_o)  in  [-(2^(b-1) - 1), 2^(b-1) - 1]

(:func:`weight_grid`), and the layer's weight becomes ``W'_o = s_o Q_o`` (:func:`quantize_weight`).
Between the layers of a converted network travel integer spikes ``S`` (0/1; -1/0/1 for the buffered
neuron; up to ``S^max`` for multi-bit spikes), so a layer fed by spikes computes

    y_o = s_o * (Q * S)_o + b_o

where ``(Q * S)`` is a sum of integer products. :class:`IntegerConv2d` and :class:`IntegerLinear`
compute it with oneDNN's int8 kernels (uint8 spikes, int8 weights, int32 sums; the spikes are shifted
by 128 when they can be negative and the kernel removes the shift exactly, or, on small maps with a known
spike bound ``c``, shifted by ``c`` and the shift removed from the exact sum; a call whose spikes hold no
negative value, e.g. the first step of a buffered neuron, runs the unsigned kernel; on a CPU without VNNI,
whose kernels saturate shifted spikes (:mod:`spikeconv.layers.onednn`), signed spikes are split into their
positive and negative parts, two unsigned calls): the sum is exact, then rounded once to float32 and scaled,
``fl(fl(fl(Q * S) * s_o) + b_o)``. On a 2-core AVX-512 VNNI CPU that is 2-3x
faster than the float32 convolution (docs/simulation.md). Where the kernels do not exist (CUDA, a
build without oneDNN) or autograd is recording, the layers run the float layer on ``W'``, which equals
the integer result up to float summation order (bit for bit when every partial sum is exact, e.g. for
power-of-two scales).

The layers are ``nn.Conv2d`` / ``nn.Linear`` (the float weight ``W'`` is their ``weight``; the scales are
the buffer ``weight_scale``), so state dicts, hooks and ``isinstance`` rules keep working. The packed
int8 weight is derived from ``weight`` and ``weight_scale`` on first use and re-derived whenever either
changes; a weight moved off its grid raises :class:`ValueError`. Input values must be integers in
``[0, 127]`` (``input_signed=False``) or ``[-128, 127]`` (``input_signed=True``): the converter installs
these layers only where the input is spikes (:func:`spikeconv.convert.convert` with ``weight_bits``). The
input may be float32 or int8 (neurons with ``spike_dtype=torch.int8``, which the converter sets where
every consumer of a neuron takes int8: the spikes are then read as they are, without a conversion pass).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .grid import _per_channel, check_weight_bits, max_code, quantize_weight, weight_grid
from .onednn import _PackedWeight, _version_key, integer_kernels_available, pairs_exact, split_sum
from .sparse import _skip_silent

#: signed convolutions with a known spike bound take the shifted path (IntegerConv2d._path) on output maps
#: of at most this many positions (16x16): on the trained VGG's and ResNet-18's real spikes it took 0.93-1.04x
#: the IF layer's time there against the zero point's 0.94-1.54x, and 1.04-1.08x against 0.99-1.01x on 32x32
#: maps (benchmarks/signed_spikes.py --models; docs/simulation.md)
SHIFTED_MAX_POSITIONS = 256
#: the same for convolutions without padding (1x1 shortcuts), where the zero point costs less: 8x8
SHIFTED_MAX_POSITIONS_UNPADDED = 64
#: signed convolutions with padding and an unknown spike bound pad the shifted spikes themselves
#: (self-padded path) on output maps of at most this many positions (8x8); elsewhere oneDNN's zero point
SMALL_MAP_POSITIONS = 64


class _IntegerWeights:
    """Shared part of the integer layers: grid check, packing memo, input encoding and path choice."""

    weight: Tensor
    weight_scale: Tensor
    bias: Tensor | None
    input_signed: bool
    skip_silent: bool
    _memo: _PackedWeight

    def _adopt(self, layer: nn.Module, bits: int, input_signed: bool, skip_silent: bool,
               spike_bound: int | None = None):
        """Take ``layer``'s bias and its weight on the ``bits``-bit grid (``layer`` unchanged); returns self."""
        self.bits = check_weight_bits(bits)
        if spike_bound is not None and not (isinstance(spike_bound, int) and 1 <= spike_bound <= 127):
            raise ValueError(f"spike_bound must be an integer from 1 to 127 (the largest |spike|), got {spike_bound!r}")
        self.spike_bound = spike_bound
        grid, scale = quantize_weight(layer.weight.detach(), bits)
        self.weight = nn.Parameter(grid, requires_grad=layer.weight.requires_grad)
        self.bias = layer.bias
        self.register_buffer("weight_scale", scale.to(grid.device))  # type: ignore[attr-defined]
        self.input_signed = bool(input_signed)
        self.skip_silent = bool(skip_silent)
        self._memo = _PackedWeight()
        self.train(layer.training)  # type: ignore[attr-defined]
        return self

    @property
    def input_zero_point(self) -> int:
        """The shift added to the spikes before the uint8 kernel: 128 for signed spikes, else 0."""
        return 128 if self.input_signed else 0

    def _codes(self) -> Tensor:
        weight = self.weight.detach()
        codes = torch.round(weight.float() / _per_channel(self.weight_scale, weight))
        if not (bool((codes * _per_channel(self.weight_scale, codes)).to(weight.dtype).eq(weight).all())
                and bool(codes.abs().le(max_code(self.bits)).all())):
            raise ValueError(f"the weight of this {type(self).__name__} is no longer on its {self.bits}-bit grid "
                             "(weight_scale x integer codes); it was changed after quantization. Rebuild the layer "
                             "with from_layer(), or convert again with weight_bits set")
        return codes.to(torch.int8)

    def _weight_key(self) -> tuple:
        return _version_key(self.weight, self.weight_scale)

    def _weight_zero_points(self) -> Tensor:
        """The kernels' per-channel weight zero points: all 0 (symmetric grid); made once per layer."""
        return self._memo.get("weight zero points", (), lambda: torch.zeros(self.weight.shape[0], dtype=torch.long))

    def _packed_weight(self, zero_point: int | None = None) -> Tensor:
        """The packed weight for spikes with this zero point (default :attr:`input_zero_point`)."""
        zero_point = self.input_zero_point if zero_point is None else zero_point
        return self._memo.get(f"packed, zero point {zero_point}", self._weight_key(),
                              lambda: self._pack(self._codes(), zero_point=zero_point))

    @staticmethod
    def _int8_spikes(x: Tensor) -> Tensor:
        """``x`` as int8: the neuron's own int8 spikes as they are (never written), float spikes converted
        (PyTorch converts float -> int8 about 10x faster than float -> uint8 on this CPU)."""
        return x if x.dtype == torch.int8 else x.to(torch.int8)

    def _negative(self, spikes: Tensor) -> bool:
        """Whether this call's spikes need the signed paths: a signed layer's input holding a negative value."""
        # amin() is one vectorised pass over the int8 spikes; (spikes < 0).any() measured ~90x slower on them
        return self.input_signed and bool(spikes.amin() < 0)

    def _integer_input(self, spikes: Tensor, negative: bool) -> tuple[Tensor, int]:
        """``(uint8 spikes, zero point)`` for the kernel from int8 ``spikes``: as they are with zero point 0
        when none is ``negative``, else ``S + 128`` with zero point 128."""
        if not negative:
            return spikes.view(torch.uint8), 0
        return spikes.view(torch.uint8) ^ 128, 128  # two's complement + 128 = the sign bit flipped

    def _split_exact(self) -> bool:
        """Whether signed spikes must be split: shifted by 128 they would saturate this CPU's pair sums."""
        return not pairs_exact(255, max_code(self.bits))

    def _split_path(self, fan_in: int) -> str:
        """``"split"`` if every partial sum of the split stays below 2^24 (exact in float32), else ``"float64"``."""
        return "split" if fan_in * max_code(self.bits) * (self.spike_bound or 128) < 2 ** 24 else "float64"

    def _split_forward(self, path: str, spikes: Tensor, full: Tensor) -> Tensor:
        """Signed int8 ``spikes`` by ``path`` of :meth:`_split_path` (``full``: the layer's own input, for float64)."""
        return self._scaled(split_sum(spikes, self._unsigned_sum)) if path == "split" else self._exact_float64(full)

    def _unit_scales(self) -> Tensor:
        return self._memo.get("unit", (), lambda: torch.ones(self.weight.shape[0]))

    def _exact_float64(self, x: Tensor) -> Tensor:
        """``fl(fl(fl(Q * S) * s) + b)``, the sum in float64 (exact below 2^53), for too large split sums."""
        return self._scaled(self._float64_sum(x.double(), self._codes().double()).float())

    def _uses_kernel(self, x: Tensor) -> bool:
        return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.int8) and self.weight.dtype == torch.float32
                and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
                and integer_kernels_available())

    def float_layer(self) -> nn.Module:
        """The plain ``nn.Conv2d`` / ``nn.Linear`` sharing this layer's weight and bias (for non-spike inputs)."""
        if isinstance(self, nn.Conv2d):
            new: nn.Module = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                                       self.padding, self.dilation, self.groups, self.bias is not None, device="meta")
        else:
            new = nn.Linear(self.in_features, self.out_features, self.bias is not None, device="meta")
        new.weight, new.bias = self.weight, self.bias
        new.train(self.training)
        return new

    def _float_forward(self, x: Tensor) -> Tensor:
        return super().forward(x if x.is_floating_point() else x.to(self.weight.dtype))  # type: ignore[misc]

    def forward(self, x: Tensor) -> Tensor:
        """The layer on spikes ``x`` (float, or the int8 spikes of a neuron with ``spike_dtype=torch.int8``)."""
        compute = self._integer_forward if self._uses_kernel(x) else self._float_forward
        return _skip_silent(self, compute, x) if self.skip_silent else compute(x)


class IntegerConv2d(_IntegerWeights, nn.Conv2d):
    """``nn.Conv2d`` on integer spikes with ``bits``-bit per-channel weights, summed exactly in int32
    (module docstring): ``y_o = s_o (Q * S)_o + b_o``. Build it with :meth:`from_layer`.

    Example:
        >>> conv = IntegerConv2d.from_layer(nn.Conv2d(2, 4, 3, padding=1), bits=8)
        >>> spikes = torch.randint(0, 2, (3, 2, 5, 5)).float()
        >>> torch.allclose(conv(spikes), nn.functional.conv2d(spikes, conv.weight, conv.bias, padding=1), atol=1e-6)
        True
    """

    @staticmethod
    def accepts(layer: nn.Module) -> bool:
        """Whether :meth:`from_layer` can take ``layer``: an ``nn.Conv2d`` with zero padding given as numbers."""
        return isinstance(layer, nn.Conv2d) and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)

    @classmethod
    def from_layer(cls, layer: nn.Conv2d, bits: int = 8, *, input_signed: bool = False,
                   skip_silent: bool = False, spike_bound: int | None = None) -> IntegerConv2d:
        """A new layer with ``layer``'s geometry and bias and its weight put on the ``bits``-bit grid
        (``layer`` is not changed). ``input_signed``: spikes may be negative; ``skip_silent``: also skip
        silent frames (:mod:`spikeconv.layers.sparse`); ``spike_bound``: the largest ``|S|`` the input
        carries (``S^max``; None: unknown), which lets signed layers on small maps use the shifted path
        (:meth:`_shifted_forward`)."""
        if not cls.accepts(layer):
            raise ValueError("IntegerConv2d needs an nn.Conv2d with zero padding given as numbers, got "
                             f"{type(layer).__name__} (padding {layer.padding!r}, mode {layer.padding_mode!r})")
        new = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                  layer.dilation, layer.groups, layer.bias is not None, device="meta")
        return new._adopt(layer, bits, input_signed, skip_silent, spike_bound)

    def _path(self, x: Tensor, negative: bool | None = None) -> str:
        """How this call runs the kernel (all exact, docs/simulation.md); ``negative``: whether ``x`` holds a
        negative spike of a signed layer (:meth:`_negative`; found out when None):

        * ``"kernel"``: no negative spike (the unsigned kernel), else oneDNN with the zero point of signed
          spikes (it pads with it itself) on larger maps;
        * ``"shifted"``: signed spikes of known bound, every sum below 2^24, an output map of at most
          ``SHIFTED_MAX_POSITIONS`` positions (``..._UNPADDED`` without padding; any map without VNNI):
          :meth:`_shifted_forward` (on the trained nets' spikes 0.93-1.04x the IF layer's time where the
          zero point took 0.94-1.54x; ``benchmarks/signed_spikes.py`` on random spikes ranks them closer);
        * ``"split"`` / ``"float64"``: on a CPU without VNNI (:mod:`~spikeconv.layers.onednn`):
          :func:`~spikeconv.layers.onednn.split_sum`, or :meth:`_exact_float64` for sums that could pass 2^24;
        * ``"self-padded"``: signed spikes of unknown bound on a padded map of at most
          ``SMALL_MAP_POSITIONS`` positions: the layer pads the shifted spikes with the zero point itself
          (oneDNN's own zero-point padding took 1.54-1.58x the unsigned time on 512 channels at 4x4 with
          float32 spikes, self-padding 1.35-1.37x).
        """
        if negative is None:
            negative = self._negative(x)
        if not negative:
            return "kernel"
        positions = self._output_positions(x.shape[-2], x.shape[-1])
        padded = any(p > 0 for p in self.padding)
        fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        small = positions <= (SHIFTED_MAX_POSITIONS if padded else SHIFTED_MAX_POSITIONS_UNPADDED)
        if (self.spike_bound is not None and fan_in * 127 * 2 * self.spike_bound < 2 ** 24
                and pairs_exact(2 * self.spike_bound, max_code(self.bits)) and (small or self._split_exact())):
            return "shifted"  # without VNNI on every map: 1.1-1.6x the unsigned time against the split's 2.0-2.7x
        if self._split_exact():
            return self._split_path(fan_in)
        if padded and positions <= SMALL_MAP_POSITIONS:
            return "self-padded"
        return "kernel"

    def _pack(self, codes: Tensor, padding: list[int] | None = None, zero_point: int | None = None) -> Tensor:
        """oneDNN's packed weight for this geometry; by default the layer's padding and input zero point."""
        return torch.ops.onednn.qconv_prepack(
            codes, self.weight_scale, 1.0, self.input_zero_point if zero_point is None else zero_point,
            self._kernel_stride(), list(self.padding) if padding is None else padding, list(self.dilation), self.groups,
            None)

    def _convolve(self, spikes: Tensor, packed: Tensor, padding: list[int], zero_point: int, scale: Tensor,
                  bias: Tensor | None) -> Tensor:
        """The fused kernel: ``fl(fl(sum * scale) + bias)`` with the int32 sum over ``spikes - zero_point``."""
        return torch.ops.onednn.qconv2d_pointwise(
            spikes, 1.0, zero_point, packed, scale, self._weight_zero_points(), bias, self._kernel_stride(), padding,
            list(self.dilation), self.groups, 1.0, 0, torch.float32, "none", [], "")

    def _padded_signed_input(self, x: Tensor) -> Tensor:
        """``x + 128`` as uint8 (NHWC memory), surrounded by ``padding`` frames of 128 (= spike value 0)."""
        count, channels, height, width = x.shape
        pad_h, pad_w = self.padding
        spikes = torch.full((count, height + 2 * pad_h, width + 2 * pad_w, channels), 128, dtype=torch.uint8)
        inner = spikes[:, pad_h:pad_h + height, pad_w:pad_w + width]
        inner.view(torch.int8).copy_(x.permute(0, 2, 3, 1))
        inner.bitwise_xor_(128)  # two's complement with the sign bit flipped = value + 128
        return spikes.permute(0, 3, 1, 2)

    def _output_positions(self, height: int, width: int) -> int:
        sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in
                 zip((height, width), self.padding, self.dilation, self.kernel_size, self._kernel_stride())]
        return sizes[0] * sizes[1]

    def _shifted_forward(self, spikes: Tensor) -> Tensor:
        r"""Signed int8 spikes (channels-last, as :meth:`_integer_forward` passes them) through the unsigned
        kernel, exactly: with ``c = spike_bound``, ``S + c >= 0`` and

            (Q * S)_o = (Q * (S + c))_o - c M_o,     M_o = sum of Q_o over the window's in-bounds taps

        (``M`` depends on the position only at the borders; computed once per input size). The kernel runs
        with unit scales and no zero point, so its float32 output is the exact integer ``Q * (S + c)``
        (below 2^24); the subtraction is exact too, then ``y = fl(fl(sum * s) + b)`` as on the other paths.
        Chosen by :meth:`_path` where it measured fastest (docs/simulation.md).
        """
        bound = self.spike_bound
        total = self._unsigned_sum((spikes + bound).view(torch.uint8))
        height, width = spikes.shape[-2:]
        offset = self._memo.get("offset", (*self._weight_key(), height, width, bound),
                                lambda: self._window_sums(height, width).mul_(bound))
        return self._scaled(total.sub_(offset))

    def _unsigned_sum(self, spikes: Tensor) -> Tensor:
        """The exact float32 sum ``Q * S`` of uint8 ``spikes``: no zero point, no bias, the unit scales given at
        run time (they rule, not the ones packed with the weight)."""
        return self._convolve(spikes, self._packed_weight(0), list(self.padding), 0, self._unit_scales(), None)

    def _scaled(self, total: Tensor) -> Tensor:
        """``fl(fl(total * s) + b)`` per output channel, in place."""
        total.mul_(self.weight_scale.view(1, -1, 1, 1))
        return total if self.bias is None else total.add_(self.bias.detach().view(1, -1, 1, 1))

    def _float64_sum(self, x: Tensor, codes: Tensor) -> Tensor:
        return F.conv2d(x, codes, None, self.stride, self.padding, self.dilation, self.groups)

    def _window_sums(self, height: int, width: int) -> Tensor:
        """``M``: the sum of each output channel's integer weights over the in-bounds taps, per position."""
        ones = torch.ones(1, self.in_channels, height, width)
        sums = F.conv2d(ones, self._codes().float(), None, self._kernel_stride(), self.padding, self.dilation,
                        self.groups)
        return sums.contiguous(memory_format=torch.channels_last)

    def _subsamples(self) -> bool:
        """Whether this is a strided 1x1 convolution without padding, run at stride 1 on every ``stride``-th
        row and column: the same sums, and not oneDNN's AVX2 kernel for it, which returned wrong sums for 8,
        24 or 40 input channels at batch 56 (``tests/test_integer_paths.py``)."""
        return self.kernel_size == (1, 1) and self.padding == (0, 0) and self.stride != (1, 1)

    def _kernel_stride(self) -> list[int]:
        return [1, 1] if self._subsamples() else list(self.stride)

    def _integer_forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            return self._float_forward(x)
        full = x
        if self._subsamples():
            x = x[:, :, ::self.stride[0], ::self.stride[1]]
        spikes = self._int8_spikes(x.contiguous(memory_format=torch.channels_last))
        negative = self._negative(spikes)
        path = self._path(spikes, negative)
        if path == "shifted":
            return self._shifted_forward(spikes)
        if path in ("split", "float64"):
            return self._split_forward(path, spikes, full)
        if path == "self-padded":
            spikes, padding, zero_point = self._padded_signed_input(spikes), [0, 0], self.input_zero_point
            packed = self._memo.get("self-padded", (*self._weight_key(), zero_point),
                                    lambda: self._pack(self._codes(), padding))
        else:
            (spikes, zero_point), padding = self._integer_input(spikes, negative), list(self.padding)
            packed = self._packed_weight(zero_point)
        return self._convolve(spikes, packed, padding, zero_point, self.weight_scale,
                              None if self.bias is None else self.bias.detach())


class IntegerLinear(_IntegerWeights, nn.Linear):
    """``nn.Linear`` on integer spikes with ``bits``-bit per-channel weights, summed exactly in int32
    (module docstring): ``y_o = s_o (Q S)_o + b_o``. Build it with :meth:`from_layer`.

    Example:
        >>> fc = IntegerLinear.from_layer(nn.Linear(4, 3), bits=8)
        >>> spikes = torch.tensor([[1., 0., 1., 1.]])
        >>> torch.allclose(fc(spikes), nn.functional.linear(spikes, fc.weight, fc.bias), atol=1e-6)
        True
    """

    @staticmethod
    def accepts(layer: nn.Module) -> bool:
        """Whether :meth:`from_layer` can take ``layer``: an ``nn.Linear``."""
        return isinstance(layer, nn.Linear)

    @classmethod
    def from_layer(cls, layer: nn.Linear, bits: int = 8, *, input_signed: bool = False,
                   skip_silent: bool = False, spike_bound: int | None = None) -> IntegerLinear:
        """A new layer with ``layer``'s shape and bias and its weight put on the ``bits``-bit grid (``layer``
        is not changed); options as :meth:`IntegerConv2d.from_layer`."""
        if not cls.accepts(layer):
            raise ValueError(f"IntegerLinear needs an nn.Linear, got {type(layer).__name__}")
        new = cls(layer.in_features, layer.out_features, layer.bias is not None, device="meta")
        return new._adopt(layer, bits, input_signed, skip_silent, spike_bound)

    def _pack(self, codes: Tensor, zero_point: int | None = None) -> Tensor:
        return torch.ops.onednn.qlinear_prepack(codes, None)  # the same for every input zero point

    def _integer_forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            return self._float_forward(x)
        spikes = self._int8_spikes(x.reshape(-1, x.shape[-1]))
        negative = self._negative(spikes)
        if negative and self._split_exact():  # this CPU would saturate the zero point's shifted spikes
            out = self._split_forward(self._split_path(self.in_features), spikes, spikes)
            return out.view(*x.shape[:-1], self.out_features)
        spikes, zero_point = self._integer_input(spikes, negative)
        out = torch.ops.onednn.qlinear_pointwise(
            spikes, 1.0, zero_point, self._packed_weight(), self.weight_scale, self._weight_zero_points(),
            None if self.bias is None else self.bias.detach(), 1.0, 0, torch.float32, "none", [], "")
        return out.view(*x.shape[:-1], self.out_features)

    def _unsigned_sum(self, spikes: Tensor) -> Tensor:
        """The exact float32 sum ``Q S`` of uint8 ``spikes`` (unit scales, no zero point, no bias)."""
        return torch.ops.onednn.qlinear_pointwise(spikes, 1.0, 0, self._packed_weight(), self._unit_scales(),
                                                  self._weight_zero_points(), None, 1.0, 0, torch.float32, "none",
                                                  [], "")

    def _scaled(self, total: Tensor) -> Tensor:
        """``fl(fl(total * s) + b)`` per output feature, in place."""
        total.mul_(self.weight_scale)
        return total if self.bias is None else total.add_(self.bias.detach())

    def _float64_sum(self, x: Tensor, codes: Tensor) -> Tensor:
        return F.linear(x, codes)


__all__ = ["IntegerConv2d", "IntegerLinear", "check_weight_bits", "integer_kernels_available", "quantize_weight", "weight_grid"]
