r"""The simulation engine: run a converted network for T timesteps and read it out after every step.

Time is folded into the batch in chunks of ``chunk`` steps, ``[chunk*B, ...]``: every stateless layer (conv,
linear, pooling, add, concat) runs once per chunk and only the neurons loop over its steps, carrying their
state from chunk to chunk. ``chunk=1`` is step by step (streaming, least memory); all of T at once fills an
accelerator. Every chunking gives the same spikes (exactly, where the arithmetic is exact; with float
weights up to the summation order a backend picks for a batch size; docs/simulation.md).

With an analog (constant) input the layers before the first neuron run once on ``[B, ...]`` and the first
neuron integrates that current at every step.

Readout (paper 000 section C, hybrid inference): the network's output at step t is the current of its
last (analog) layer; the readout after t steps is its running mean,
``y(t) = (1/t) sum_{t'<=t} out(t')``, i.e. the output spike rate times the layer's scale. One run thus
gives the readout for every ``t <= T`` (the whole accuracy-vs-T curve).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..errors import is_count
from ..neuron import NeuronRun, SpikingModule, compiled_scan_kernel, is_constant, true_divide
from ..neuron.functional import ScanKernel
from ..neuron.fused import fused_scan_kernel, native_available, native_scan_kernel, triton_available
from .config import ALL_STEPS, Kernel, SimulationConfig


CPU_FOLDED_BATCH = 64  # on CPU, fold at most this many samples x steps into one batch
CPU_AUTO_BUDGET = 16 << 20  # on CPU, an automatic chunk folds only while its largest activation (in + out) fits


def choose_chunk(device: torch.device, batch: int, config: SimulationConfig) -> tuple[int, int | None]:
    """``(steps folded into the batch at once, memory budget in bytes or None)`` for a run of ``config``.

    An explicit ``config.chunk`` is kept. Otherwise, on accelerators all of T (it fills the device); on the CPU
    ``max(1, 64 // batch)`` steps, so that about 64 samples x steps go through each layer at once (small
    folded batches make the convolutions efficient, while activations above ~32 MiB pay for fresh memory at
    every layer), capped by ``CPU_AUTO_BUDGET``: 16 MiB for a chunk's largest input + output, which keeps the
    peak memory below the peers' at little cost in time (docs/simulation.md).

    Example:
        >>> choose_chunk(torch.device("cpu"), 8, SimulationConfig())
        (8, 16777216)
        >>> choose_chunk(torch.device("cpu"), 128, SimulationConfig())
        (1, 16777216)
    """
    if config.chunk is not None:
        return config.chunk, config.memory_budget
    if torch.device(device).type != "cpu":
        return ALL_STEPS, config.memory_budget
    budget = config.memory_budget if config.memory_budget is not None else CPU_AUTO_BUDGET
    return max(1, CPU_FOLDED_BATCH // max(batch, 1)), budget


def chunk_for_budget(step_bytes: int, budget: int, timesteps: int) -> int:
    """Steps to fold into one batch so that the largest activation of a chunk, ``steps * step_bytes``
    (its input and output both live: counted twice), stays within ``budget`` bytes; at least 1.

    Example:
        >>> chunk_for_budget(step_bytes=8 << 20, budget=64 << 20, timesteps=16)  # 8 MiB a step, 64 MiB
        4
    """
    if budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {budget}")
    return max(1, min(timesteps, budget // max(2 * step_bytes, 1)))


@contextmanager
def _largest_activation(model: nn.Module) -> Iterator[list[int]]:
    """Record the largest output (bytes) of any leaf module while the context is open."""
    largest = [0]

    def hook(module: nn.Module, inputs: tuple, output) -> None:
        if isinstance(output, Tensor):
            largest[0] = max(largest[0], output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        yield largest
    finally:
        for handle in handles:
            handle.remove()


def neurons_of(model: nn.Module) -> list[SpikingModule]:
    """All stateful spiking modules of ``model`` (neurons, spiking pools...), in registration order."""
    return [m for m in model.modules() if isinstance(m, SpikingModule)]


def observed(model: nn.Module) -> bool:
    """True if a forward hook or pre-hook (global or on any module of ``model``) could keep a tensor of a run.

    Example:
        >>> net = nn.Sequential(nn.Linear(1, 1))
        >>> observed(net), observed(net.register_forward_hook(lambda *a: None) and net)
        (False, True)
    """
    from torch.nn.modules import module as torch_module
    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@contextmanager
def neuron_runs(model: nn.Module, batch: int, kernel: ScanKernel | None = None,
                reuse_output: bool = False, compact_state: bool = False, warmup: int = 0,
                warmup_rounds: int = 1) -> Iterator[list[NeuronRun]]:
    """Attach fresh :class:`NeuronRun` records to every neuron of ``model``; remove them on exit.

    ``kernel`` is the neuron scan the IF neurons use (None: eager; see :func:`compiled_scan_kernel`).
    ``reuse_output``: IF neurons write each chunk's spikes into their previous output tensor (only safe
    when nothing outside the forward pass keeps those tensors; :func:`simulate` sets it when no hook is
    registered). ``compact_state``: the caller keeps every run's ``start`` exact (the first step of each
    chunk, counted from the run's start), so buffered neurons with threshold 1 may keep ``-V^b`` in int8 for
    as long as it fits (``steps * S^max <= 127``, :func:`spikeconv.neuron.compact_buffer_fits`) and widen it
    to the membrane's dtype, exactly, before a chunk that could pass that bound.
    ``warmup``: IF neurons start from the membrane a pre-run of that many steps implies (the caller gives
    them the whole run as one chunk), repeated ``warmup_rounds`` times. The records are removed also when the
    body raises, so no state outlives a run.
    """
    neurons = neurons_of(model)
    busy = [n for n in neurons if n._run is not None]
    if busy:
        raise RuntimeError("this network is already being simulated (re-entrant simulate calls are not supported)")
    scratch: dict = {}  # one scratch pool for all neurons: scratch never outlives a step
    runs = [NeuronRun(steps=1, batch=batch, kernel=kernel, reuse_output=reuse_output, work=scratch,
                      compact_state=compact_state, warmup=warmup, warmup_rounds=warmup_rounds) for _ in neurons]
    try:
        for neuron, run in zip(neurons, runs):
            neuron._run = run
        yield runs
    finally:
        for neuron in neurons:
            neuron._run = None


def _check_inputs(x: Tensor, timesteps: int) -> None:
    if not is_count(timesteps):
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    if not isinstance(x, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError("inputs contain NaN or infinite values; clean or normalise the data before simulating")


def scan_kernel_for(device: torch.device, kernel: Kernel | str = Kernel.AUTO) -> ScanKernel | None:
    """The neuron scan of ``kernel`` on ``device``; ``None`` is the eager scan.

    ``AUTO``: the C scan on the CPU when it can be built here (:func:`spikeconv.native.if_scan_`), else eager;
    ``NATIVE``: the C scan (eager where it cannot be built); ``TRITON``: the Triton scan (CUDA only);
    ``COMPILED``: :func:`spikeconv.neuron.compiled_scan_kernel`.

    Example:
        >>> scan_kernel_for(torch.device("cpu"), "eager") is None
        True
    """
    kind, kernel = torch.device(device).type, Kernel(kernel)
    if kernel is Kernel.COMPILED:
        return compiled_scan_kernel()
    if kernel is Kernel.TRITON:
        if kind != "cuda":
            raise ValueError(f"the Triton scan runs on CUDA, not on {kind}; use kernel='native' or 'auto' there")
        return fused_scan_kernel if triton_available() else None
    if kernel in (Kernel.AUTO, Kernel.NATIVE) and kind == "cpu" and native_available():
        return native_scan_kernel
    return None


@torch.no_grad()
def simulate(model: nn.Module, inputs: Tensor, timesteps: int, config: SimulationConfig | None = None,
             **options) -> Tensor:
    r"""Simulate ``model`` for ``timesteps`` steps and return the readout after every step, ``[T, B, ...]``.

    Args:
        model: a converted network (see :func:`spikeconv.convert.convert`) or any module with neurons.
        inputs: ``[B, ...]`` analog input (the same current at every step) unless the config has an
            ``encoder`` or ``sequence=True`` (then ``[T', B, ...]`` frames with ``T' >= T``).
        timesteps: T >= 1.
        config: :class:`SimulationConfig` (chunking, memory budget, neuron kernel, encoder). Every config
            gives the same spikes.
        **options: shorthand for the config (:meth:`SimulationConfig.from_options`): ``order`` (``"auto"``,
            ``"layer"``, ``"step"``), ``chunk``, ``memory_budget``, ``compile``, ``fused``, ``encoder``,
            ``sequence``, ``reuse_outputs``, ``warmup``.

    Returns:
        ``readout[t-1] = (1/t) * sum_{t'<=t} model_output(t')`` for ``t = 1..T``.

    Example:
        >>> from spikeconv.neuron import IFNeuron, NeuronConfig
        >>> net = nn.Sequential(IFNeuron(NeuronConfig()))
        >>> simulate(net, torch.tensor([[0.75]]), timesteps=4)[-1].item()  # floor(4*0.75)/4
        0.75
        >>> simulate(net, torch.tensor([[0.75]]), 4, SimulationConfig(chunk=1, kernel="eager"))[-1].item()
        0.75
    """
    if options:
        if config is not None:
            raise TypeError("give either a SimulationConfig or its shorthand keywords, not both")
        config = SimulationConfig.from_options(inputs.device.type if isinstance(inputs, Tensor) else "cpu", **options)
    config = config if config is not None else SimulationConfig()
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"config must be a spikeconv.sim.SimulationConfig, got {type(config).__name__}")
    return _run(model, inputs, timesteps, config)


def _run(model: nn.Module, inputs: Tensor, timesteps: int, config: SimulationConfig) -> Tensor:
    _check_inputs(inputs, timesteps)
    if config.warmup > timesteps:
        raise ValueError(f"warmup={config.warmup} steps exceed timesteps={timesteps}: the pre-run reads the run's "
                         "own input; use warmup <= timesteps")
    if not neurons_of(model):
        raise ValueError(f"{type(model).__name__} has no spiking neurons, so simulating it would return its own "
                         "output as if it were a spiking network's: convert it first (snn = convert(ann, x))")
    kernel = scan_kernel_for(inputs.device, config.kernel)
    encoder, sequence = config.encoder, config.sequence
    if sequence and inputs.shape[0] < timesteps:
        raise ValueError(f"the input sequence has {inputs.shape[0]} steps, fewer than timesteps={timesteps}")
    if encoder is None:
        _check_fits(model, inputs, sequence)
    try:
        return _simulate_chunks(model, inputs, timesteps, config, kernel)
    except RuntimeError as exc:  # a size the converted network cannot take (its channels were checked above)
        expected = getattr(model, "input_shape", None)
        sample = tuple(inputs.shape[2:] if sequence else inputs.shape[1:])
        if encoder is None and expected is not None and sample != tuple(expected):
            raise ValueError(f"inputs of per-sample shape {sample} do not fit this network, converted with inputs "
                             f"of shape {tuple(expected)} ({str(exc).splitlines()[0]})") from exc
        raise


def _check_fits(model: nn.Module, inputs: Tensor, sequence: bool) -> None:
    """Refuse inputs a converted network cannot take, naming the shape or dtype it was converted with."""
    sample = tuple(inputs.shape[2:] if sequence else inputs.shape[1:])
    batch = inputs.shape[1] if sequence else inputs.shape[0]
    if batch == 0 or inputs.dim() < (3 if sequence else 2):
        raise ValueError(f"inputs of shape {tuple(inputs.shape)} hold no samples; give a batch [B, ...]"
                         f"{' of a sequence [T, B, ...]' if sequence else ''} with B >= 1")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point, got {inputs.dtype}; e.g. images.float() / 255")
    expected = getattr(model, "input_shape", None)
    if expected is not None and (len(sample) != len(expected) or sample[:1] != tuple(expected)[:1]):
        raise ValueError(f"inputs of per-sample shape {sample} do not fit this network, converted with inputs of "
                         f"shape {tuple(expected)} (channels first: [B, C, H, W])")


def _simulate_chunks(model: nn.Module, inputs: Tensor, timesteps: int, config: SimulationConfig, kernel) -> Tensor:
    """The simulation proper: chunks of steps through ``model``, the running mean readout after every step."""
    encoder, sequence = config.encoder, config.sequence
    batch = inputs.shape[1] if sequence else inputs.shape[0]
    # int8 -V^b (NeuronRun.compact_state) saves memory traffic on the CPU and inside the fused scan; the eager
    # scan on a GPU is launch-bound and its int8 casts cost launches: float32 buffer 16% less time there (H200)
    compact = inputs.device.type == "cpu" or kernel is fused_scan_kernel
    step_chunk, memory_budget = choose_chunk(inputs.device, batch, config)
    if config.warmup:  # every neuron's pre-run reads the first steps of its input: one chunk of all steps
        step_chunk, memory_budget = timesteps, None
    step_chunk = min(step_chunk, timesteps)
    readout: Tensor | None = None
    running: Tensor | None = None
    with neuron_runs(model, batch, kernel, reuse_output=config.reuse_outputs and not observed(model),
                     compact_state=compact, warmup=config.warmup, warmup_rounds=config.warmup_rounds) as runs:
        start = 0
        while start < timesteps:
            measuring = memory_budget is not None and start == 0 and step_chunk > 1
            steps = 1 if measuring else min(step_chunk, timesteps - start)
            for run in runs:
                run.steps, run.start = steps, start
            if encoder is not None:
                frames = encoder(inputs, start, steps)
                current = frames.flatten(0, 1)
            elif sequence:
                current = inputs[start:start + steps].flatten(0, 1)
            else:
                current = inputs
            if measuring:
                with _largest_activation(model) as largest:
                    out = model(current)
                step_chunk = min(step_chunk, chunk_for_budget(largest[0], memory_budget, timesteps))
            else:
                out = model(current)
            if is_constant(out, steps, batch):
                out = out.unsqueeze(0).expand(steps, *out.shape)
            else:
                out = out.view(steps, batch, *out.shape[1:])
            if readout is None:
                readout = out.new_empty((timesteps, *out.shape[1:]))
                running = torch.zeros_like(out[0])
                counts = torch.arange(1, timesteps + 1, dtype=out.dtype, device=out.device)  # t, made once
            for k in range(steps):
                running += out[k]
                true_divide(running, counts[start + k], out=readout[start + k])  # bit-identical on CPU and CUDA
            start += steps
    transform = getattr(model, "readout_transform", None)
    return transform(readout) if callable(transform) else readout
