"""Thin ``nn.Module`` wrappers around the pure neuron functions, and other stateful spiking layers.

A spiking module holds its configuration and nothing else between runs. During a run the simulation
engine attaches a :class:`NeuronRun` (first step and length of the current chunk, batch size, carried
state) and removes it when the run ends, also after an exception; calling one outside a run raises.

Inside a run the input is time folded into the batch, ``[steps * batch, ...]`` (step-major), or
``[batch, ...]`` for a current that is the same at every step (the first layer of an analog input); the
output is always ``[steps * batch, ...]``. When the engine sets ``NeuronRun.reuse_output``
(``simulate(reuse_outputs=True)`` and no hook observes the model), an IF neuron writes each chunk's
spikes into the tensor it returned for the previous chunk, which the layers after it have consumed by
then: no fresh memory (and no page faults) per step. Code that keeps a neuron's output across chunks
must copy it; forward hooks turn the reuse off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .config import NeuronConfig, check_spike_dtype, compact_buffer_fits, if_init, negated_buffer
from .functional import ScanKernel, if_scan_
from .warmup import warmed_up_membrane


@dataclass
class NeuronRun:
    """Per-run bookkeeping the engine attaches to a spiking module."""

    steps: int
    batch: int
    start: int = 0
    state: Any = None  # IFState for IF neurons (buffer = -V^b for threshold-1 buffered ones), counts for pools
    work: dict = field(default_factory=dict)  # scratch pool reused from step to step (engines share one per run)
    kernel: ScanKernel | None = None  # the neuron scan to use (None: eager)
    reuse_output: bool = False  # write each chunk's spikes into the previous chunk's output tensor
    output: Any = None  # that tensor (IF neurons)
    compact_state: bool = False  # set by engines that keep ``start`` exact: threshold-1 buffered neurons then
    # keep -V^b in int8 while it fits (spikeconv.neuron.compact_buffer_fits) and widen it before it could not
    warmup: int = 0  # IF neurons set V(0) from a pre-run of this many steps (spikeconv.neuron.warmup); the
    # engine then gives the whole run to every neuron as one chunk
    warmup_rounds: int = 1  # pre-runs of the warm-up, each from the start the previous one implied


def is_constant(x: Tensor, steps: int, batch: int) -> bool:
    """Whether ``x`` holds one current for every step of a chunk of ``steps``: ``[batch, ...]`` instead of
    ``[steps * batch, ...]``. With an analog input the layers before the first neuron run once per chunk, and
    every consumer (neurons, recordings, operation counts, the readout) reads that shape through this test.

    Example:
        >>> is_constant(torch.zeros(4, 3), steps=2, batch=4), is_constant(torch.zeros(8, 3), steps=2, batch=4)
        (True, False)
    """
    return x.shape[0] == batch and steps > 1


class SpikingModule(nn.Module):
    """Base of every module that carries state over time (the engine finds them by this type)."""

    def __init__(self) -> None:
        super().__init__()
        self._run: NeuronRun | None = None

    def _active_run(self) -> NeuronRun:
        run = self._run
        if run is None:
            raise RuntimeError(
                f"{type(self).__name__} carries state over time and runs only inside spikeconv.simulate(...); "
                "call simulate(model, inputs, timesteps=T) instead of model(inputs)"
            )
        return run

    def _as_sequence(self, x: Tensor, run: NeuronRun) -> tuple[Tensor, bool]:
        """``(current, constant)``: ``[steps, batch, ...]``, or ``[batch, ...]`` if the same at every step."""
        if is_constant(x, run.steps, run.batch):
            return x, True
        if x.shape[0] == run.steps * run.batch:
            return x.view(run.steps, run.batch, *x.shape[1:]), False
        raise ValueError(
            f"{type(self).__name__} got a leading dimension of {x.shape[0]}, expected steps*batch = "
            f"{run.steps * run.batch} or batch = {run.batch}; do not reshape the batch dimension inside a "
            "converted model"
        )


class IFNeuron(SpikingModule):
    """Integrate-and-fire neuron population (plain, buffered and/or multi-bit); see ``neuron.functional``.

    ``clamp_steps`` is the voltage clamp of paper 004 (section 2, Fig. S1): for the first ``clamp_steps``
    steps of a run the membrane is held at ``V(0)``, the input is ignored and no spike is sent.

    ``current_offset`` (a buffer, ``None`` unless calibrated; shape ``[C, 1, 1]`` or ``[C]``) is a constant
    current added to the input at every step, ``V'(t) = V(t-1) + x(t) + b_cal``: a bias in threshold units
    set by :func:`spikeconv.analysis.calibrate_offsets`.

    ``spike_dtype`` (None: the input current's dtype) may be ``torch.int8``: the spikes then take a quarter
    of the memory and integer layers read them without a conversion. The converter sets it
    (``ConversionConfig(weight_bits=...)``) on neurons whose spikes go only to integer layers and weighted
    adds; float layers do not take int8 inputs.

    Example:
        >>> from spikeconv.sim import simulate
        >>> net = nn.Sequential(IFNeuron(NeuronConfig(threshold=1.0)))
        >>> simulate(net, torch.tensor([[0.5]]), timesteps=4).squeeze().tolist()  # running rates
        [0.0, 0.5, 0.3333333432674408, 0.5]
    """

    def __init__(self, config: NeuronConfig | None = None, clamp_steps: int = 0,
                 spike_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if clamp_steps < 0:
            raise ValueError(f"clamp_steps must be >= 0, got {clamp_steps}")
        self.config = config if config is not None else NeuronConfig()
        self.clamp_steps = int(clamp_steps)
        self.spike_dtype = check_spike_dtype(spike_dtype, self.config.max_strength)
        self.register_buffer("current_offset", None)

    def forward(self, x: Tensor) -> Tensor:
        run = self._active_run()
        current, constant = self._as_sequence(x, run)
        if self.current_offset is not None:
            current = current + self.current_offset
        skip = min(max(self.clamp_steps - run.start, 0), run.steps)
        like = current if constant else current[0]
        dtype = self.spike_dtype or like.dtype
        if skip == run.steps:  # the whole chunk is clamped: no integration, no spikes
            return like.new_zeros((run.steps * like.shape[0], *like.shape[1:]), dtype=dtype)
        if run.state is None:  # the run owns this state: the in-place scan advances it without copies
            # a run whose engine keeps ``start`` exact starts a threshold-1 buffer in int8 ...
            compact = run.compact_state and compact_buffer_fits(self.config, 1)
            run.state = if_init(like, self.config, buffer_dtype=torch.int8 if compact else None)
            if run.warmup:
                run.state = run.state._replace(v=self._warm_membrane(current, constant, run))
        buffer = run.state.buffer
        if buffer is not None and buffer.dtype == torch.int8 and not compact_buffer_fits(
                self.config, run.start + run.steps):  # ... and widens it (exactly) before V^b could pass 127
            run.state = run.state._replace(buffer=buffer.to(run.state.v.dtype))
        # with threshold 1 the run keeps -V^b in state.buffer (one pass less per step; it starts at 0)
        negated = negated_buffer(self.config)
        steps = run.steps - skip
        out = _reusable(run, steps, like, dtype)
        if constant:
            active = if_scan_(current, run.state, self.config, steps=steps, work=run.work,
                              kernel=run.kernel, negated_buffer=negated, out=out, spike_dtype=dtype)
        else:
            active = if_scan_(current[skip:], run.state, self.config, work=run.work, kernel=run.kernel,
                              negated_buffer=negated, out=out, spike_dtype=dtype)
        if run.reuse_output:
            run.output = active
        spikes = active if skip == 0 else torch.cat([active.new_zeros((skip, *active.shape[1:])), active])
        return spikes.flatten(0, 1)

    def _warm_membrane(self, current: Tensor, constant: bool, run: NeuronRun) -> Tensor:
        if self.clamp_steps:
            raise ValueError("a warm-up sets V(0) from the first steps' input, which the voltage clamp "
                             f"(clamp_steps={self.clamp_steps}) holds back; use one of the two")
        # the engine gives a warmed-up run one chunk of all steps (SimulationConfig refuses smaller chunks)
        return warmed_up_membrane(current, self.config, run.warmup, constant, run.kernel,
                                  rounds=run.warmup_rounds).to(run.state.v.dtype)

    def extra_repr(self) -> str:
        c = self.config
        text = (f"threshold={c.threshold}, reset={c.reset.value}, max_strength={c.max_strength}, "
                f"signed={c.signed}, phi={c.phi}")
        text += f", clamp_steps={self.clamp_steps}" if self.clamp_steps else ""
        text += f", spike_dtype={self.spike_dtype}" if self.spike_dtype is not None else ""
        return text + (", calibrated" if self.current_offset is not None else "")


def _reusable(run: NeuronRun, steps: int, like: Tensor, dtype: torch.dtype) -> Tensor | None:
    """The previous chunk's spike tensor if the run reuses outputs and it fits ``steps`` frames like ``like``
    of ``dtype``."""
    previous = run.output
    if (not run.reuse_output or previous is None or previous.shape != (steps, *like.shape)
            or previous.dtype != dtype or previous.device != like.device or previous[0].stride() != like.stride()):
        return None
    return previous


class SpikingMaxPool2d(SpikingModule):
    """Spiking max-pooling over spike counts ``C_i(t) = sum_{t' <= t} S_i(t')`` of the inputs ``i`` of a window.

    ``mode="gate"`` (SNN Toolbox, paper 004): each output passes the spikes of the input whose accumulated
    count (up to and including this step) is the largest; ties go to the first. When several inputs fire
    at similar rates the leader changes and the output count drifts from the largest input count: it can
    pass more spikes than any input (tests/test_convert_relu.py) or fewer.

    ``mode="count"``: the output emits ``S(t) = max_i C_i(t) - max_i C_i(t-1)``, so its count equals the
    largest input count at every step (its rate converges to the ANN's max of rates). ``S(t)`` is an
    integer with ``|S(t)| <= max_i |S_i(t)|``: a valid spike of the same strength range.

    Example:
        >>> from spikeconv.sim import simulate
        >>> pool = SpikingMaxPool2d(2)
        >>> x = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # one always-spiking input
        >>> simulate(nn.Sequential(pool), x, timesteps=3)[-1].flatten().tolist()
        [1.0]
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
                 mode: str = "gate") -> None:
        super().__init__()
        if mode not in ("gate", "count"):
            raise ValueError(f"SpikingMaxPool2d mode must be 'gate' or 'count', got {mode!r}")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode, self.mode = dilation, ceil_mode, mode

    def _pool(self, x: Tensor) -> Tensor:
        return nn.functional.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                        ceil_mode=self.ceil_mode)

    def _forward_count(self, seq: Tensor, constant: bool, run: NeuronRun) -> Tensor:
        steps, batch = run.steps, run.batch
        if constant:
            seq = seq.unsqueeze(0).expand(steps, *seq.shape)
        counts, previous = run.state if run.state is not None else (None, None)
        cumulative = torch.cumsum(seq, 0)
        if counts is not None:
            cumulative = cumulative + counts
        pooled = self._pool(cumulative.flatten(0, 1))
        pooled = pooled.view(steps, batch, *pooled.shape[1:])
        if previous is None:
            previous = torch.zeros_like(pooled[0])
        spikes = torch.diff(pooled, dim=0, prepend=previous.unsqueeze(0))
        run.state = (cumulative[-1], pooled[-1])
        return spikes.flatten(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        run = self._active_run()
        seq, constant = self._as_sequence(x, run)
        if self.mode == "count":
            return self._forward_count(seq, constant, run)
        counts = run.state if run.state is not None else torch.zeros_like(seq if constant else seq[0])
        outputs = []
        for t in range(run.steps):
            spikes = seq if constant else seq[t]
            counts = counts + spikes
            _, index = nn.functional.max_pool2d(counts, self.kernel_size, self.stride, self.padding,
                                                self.dilation, ceil_mode=self.ceil_mode, return_indices=True)
            outputs.append(spikes.flatten(2).gather(2, index.flatten(2)).view_as(index))
        run.state = counts
        return torch.stack(outputs).flatten(0, 1)


class SpikingSoftmax(SpikingModule):
    """Spiking softmax output: each step, every sample emits one spike from the class drawn from
    ``softmax(V(t) / t)``, where ``V`` accumulates the input current; the spike rate approximates the
    softmax of the mean current. Seeded: the same ``seed`` gives the same spikes.
    """

    def __init__(self, dim: int = -1, seed: int = 0) -> None:
        super().__init__()
        self.dim, self.seed = dim, seed

    def forward(self, x: Tensor) -> Tensor:
        run = self._active_run()
        seq, constant = self._as_sequence(x, run)
        if run.state is None:
            gen = torch.Generator(device=x.device).manual_seed(self.seed)
            run.state = (torch.zeros_like(seq if constant else seq[0]), gen)
        membrane, gen = run.state
        outputs = []
        for t in range(run.steps):
            membrane = membrane + (seq if constant else seq[t])
            probs = torch.softmax(membrane / (run.start + t + 1), dim=self.dim)
            flat = probs.movedim(self.dim, -1).reshape(-1, probs.shape[self.dim])
            choice = torch.multinomial(flat, 1, generator=gen)
            spikes = torch.zeros_like(flat).scatter_(1, choice, 1.0)
            outputs.append(spikes.view(*probs.movedim(self.dim, -1).shape).movedim(-1, self.dim))
        run.state = (membrane, gen)
        return torch.stack(outputs).flatten(0, 1)
