r"""The simulation engine: run a converted network for T timesteps and read it out after every step.

Two exact execution orders give bit-identical spikes (a test proves it on a residual network):

* ``ExecutionOrder.LAYER``: time folded into the batch, ``[T*B, ...]``; every stateless layer (conv,
  linear, pooling, add, concat) runs once over all timesteps and only the neurons loop over T.
  Optionally in chunks of ``chunk`` steps; neuron state is carried from chunk to chunk.
* ``ExecutionOrder.STEP``: one timestep at a time (chunks of 1): streaming, least memory.

With an analog (constant) input the layers before the first neuron run once on ``[B, ...]`` and the first
neuron integrates that current at every step.

Readout (paper 000 section C, hybrid inference): the network's output at step t is the current of its
last (analog) layer; the readout after t steps is its running mean,
``y(t) = (1/t) sum_{t'<=t} out(t')``, i.e. the output spike rate times the layer's scale. One run thus
gives the readout for every ``t <= T`` (the whole accuracy-vs-T curve).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum

import torch
from torch import Tensor, nn

from ..neuron import NeuronRun, SpikingModule, compiled_scan_kernel, true_divide
from ..neuron.functional import ScanKernel
from ..neuron.fused import fused_scan_kernel, native_available, native_scan_kernel, triton_available


class ExecutionOrder(str, Enum):
    """How the engine orders the work of a run (all give identical spikes)."""

    AUTO = "auto"
    LAYER = "layer"
    STEP = "step"


CPU_FOLDED_BATCH = 64  # on CPU, fold at most this many samples x steps into one batch
CPU_AUTO_BUDGET = 16 << 20  # on CPU, "auto" folds only while a chunk's largest activation (in + out) fits


def choose_order(device: torch.device, order: ExecutionOrder | str, batch: int = 1,
                 chunk: int | None = None) -> tuple[ExecutionOrder, int | None]:
    """Resolve ``"auto"`` into an order and a chunk length (steps folded into the batch at once).

    On accelerators: time folded into the batch over all T (fills the device). On CPU: chunks of
    ``max(1, 64 // batch)`` steps, so that about 64 samples x steps go through each layer at once:
    measured on a 2-core CPU (docs/performance.md), small folded batches make the convolutions efficient,
    while large ones (above ~32 MiB per activation) pay for fresh memory at every layer; batches of 64
    or more therefore run step by step. :func:`simulate` further caps the CPU chunk with a memory budget
    of ``CPU_AUTO_BUDGET`` (16 MiB for a chunk's largest input + output), which costs little time and
    keeps the peak below the peers' (docs/performance.md).

    Example:
        >>> choose_order(torch.device("cpu"), "auto", batch=8)
        (<ExecutionOrder.LAYER: 'layer'>, 8)
        >>> choose_order(torch.device("cpu"), "auto", batch=128)[0].value
        'step'
    """
    order = ExecutionOrder(order)
    if order is not ExecutionOrder.AUTO:
        return order, chunk
    if device.type != "cpu":
        return ExecutionOrder.LAYER, chunk
    steps = chunk or max(1, CPU_FOLDED_BATCH // max(batch, 1))
    return (ExecutionOrder.STEP, None) if steps == 1 else (ExecutionOrder.LAYER, steps)


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
                reuse_output: bool = False, compact_state: bool = False) -> Iterator[list[NeuronRun]]:
    """Attach fresh :class:`NeuronRun` records to every neuron of ``model``; remove them on exit.

    ``kernel`` is the neuron scan the IF neurons use (None: eager; see :func:`compiled_scan_kernel`).
    ``reuse_output``: IF neurons write each chunk's spikes into their previous output tensor (only safe
    when nothing outside the forward pass keeps those tensors; :func:`simulate` sets it when no hook is
    registered). ``compact_state``: the caller keeps every run's ``start`` exact (the first step of each
    chunk, counted from the run's start), so buffered neurons with threshold 1 may keep ``-V^b`` in int8 for
    as long as it fits (``steps * S^max <= 127``, :func:`spikeconv.neuron.compact_buffer_fits`) and widen it
    to the membrane's dtype, exactly, before a chunk that could pass that bound.
    The records are removed also when the body raises, so no state outlives a run.
    """
    neurons = neurons_of(model)
    busy = [n for n in neurons if n._run is not None]
    if busy:
        raise RuntimeError("this network is already being simulated (re-entrant simulate calls are not supported)")
    scratch: dict = {}  # one scratch pool for all neurons: scratch never outlives a step
    runs = [NeuronRun(steps=1, batch=batch, kernel=kernel, reuse_output=reuse_output, work=scratch,
                      compact_state=compact_state) for _ in neurons]
    try:
        for neuron, run in zip(neurons, runs):
            neuron._run = run
        yield runs
    finally:
        for neuron in neurons:
            neuron._run = None


def _check_inputs(x: Tensor, timesteps: int, chunk: int | None, memory_budget: int | None = None) -> None:
    if memory_budget is not None and memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget}")
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer or None, got {chunk!r}")
    if not isinstance(x, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError("inputs contain NaN or infinite values; clean or normalise the data before simulating")


def scan_kernel_for(device: torch.device, fused: bool | None = None) -> ScanKernel | None:
    """The neuron scan :func:`simulate` uses on ``device`` without ``compile``; None is the eager scan.

    On the CPU the C scan (:func:`spikeconv.native.if_scan_`) unless ``fused`` is False or it cannot be built
    here; on CUDA the Triton scan only when ``fused`` is True and Triton is installed (not yet timed on a GPU).

    Example:
        >>> scan_kernel_for(torch.device("cpu"), fused=False) is None
        True
    """
    kind = torch.device(device).type
    if kind == "cpu" and fused is not False and native_available():
        return native_scan_kernel
    if kind == "cuda" and fused and triton_available():
        return fused_scan_kernel
    return None


@torch.no_grad()
def simulate(
    model: nn.Module,
    inputs: Tensor,
    timesteps: int,
    *,
    order: ExecutionOrder | str = ExecutionOrder.AUTO,
    chunk: int | None = None,
    encoder: Callable[[Tensor, int, int], Tensor] | None = None,
    sequence: bool = False,
    compile: bool = False,
    fused: bool | None = None,
    memory_budget: int | None = None,
    reuse_outputs: bool = False,
) -> Tensor:
    r"""Simulate ``model`` for ``timesteps`` steps and return the readout after every step, ``[T, B, ...]``.

    Args:
        model: a converted network (see :func:`spikeconv.convert.convert`) or any module with neurons.
        inputs: ``[B, ...]`` analog input (the same current at every step) unless ``sequence`` or
            ``encoder`` is given.
        timesteps: T >= 1.
        order: ``"layer"`` (time folded into the batch), ``"step"`` (one step at a time) or ``"auto"``
            (:func:`choose_order`: chunks of about 64 samples x steps on CPU within a memory budget of
            ``CPU_AUTO_BUDGET`` unless ``memory_budget`` is given, all of T elsewhere).
        chunk: with ``order="layer"``, run at most this many steps at once (memory bound); state carries.
        encoder: ``encoder(inputs, start, steps) -> [steps, B, ...]`` spike frames for steps
            ``start .. start+steps-1`` (e.g. Poisson). Seed it for reproducibility.
        sequence: ``inputs`` is already a time series ``[T, B, ...]``.
        compile: fuse each neuron layer's scan of a chunk through ``torch.compile``
            (:func:`compiled_scan_kernel`; a C++ compiler on CPU, Triton on CUDA; the first call compiles for
            seconds). Same spikes as the eager scan.
        fused: run each IF layer's chunk as one fused kernel (:mod:`spikeconv.neuron.fused`; threshold-1
            neurons, the others take the eager scan). None (default): the C scan on the CPU when a C compiler
            is there to build it (:mod:`spikeconv.native`), the eager scan on CUDA. True: also the
            Triton scan on CUDA (opt-in: verified through Triton's interpreter and compiled for sm_90 ahead of
            time, not yet timed on a GPU; docs/performance.md). False: the eager scan. Same spikes either way.
        memory_budget: bytes allowed for the largest activation of a chunk. The first step runs alone
            while the largest layer output is measured; the remaining steps are then folded in chunks of
            :func:`chunk_for_budget` steps (never more than ``order``/``chunk`` would fold). Same spikes.
        reuse_outputs: neurons overwrite their previous output tensor (below). Same spikes.

    Returns:
        ``readout[t-1] = (1/t) * sum_{t'<=t} model_output(t')`` for ``t = 1..T``.

    With ``reuse_outputs=True`` and no forward hook registered on the model (or globally), IF neurons
    write each chunk's spikes into the tensor they returned for the previous chunk: no fresh memory per
    step, 3-5% faster on a trained CIFAR ResNet-18, but every neuron's output stays allocated for the whole
    run (peak 152 instead of 108 MiB there; docs/performance.md). A custom module that keeps a neuron's
    output across chunks must then copy it.

    Example:
        >>> from spikeconv.neuron import IFNeuron, NeuronConfig
        >>> net = nn.Sequential(IFNeuron(NeuronConfig()))
        >>> simulate(net, torch.tensor([[0.75]]), timesteps=4)[-1].item()  # floor(4*0.75)/4
        0.75
    """
    _check_inputs(inputs, timesteps, chunk, memory_budget)
    kernel = compiled_scan_kernel() if compile else scan_kernel_for(inputs.device, fused)
    if sequence and inputs.shape[0] < timesteps:
        raise ValueError(f"the input sequence has {inputs.shape[0]} steps, fewer than timesteps={timesteps}")
    batch = inputs.shape[1] if sequence else inputs.shape[0]
    # int8 -V^b (NeuronRun.compact_state) saves memory traffic on the CPU and inside the fused scan; the eager
    # scan on a GPU is launch-bound and its int8 casts cost launches: float32 buffer 16% less time there (H200)
    compact = inputs.device.type == "cpu" or kernel is fused_scan_kernel
    if memory_budget is None and ExecutionOrder(order) is ExecutionOrder.AUTO and inputs.device.type == "cpu":
        memory_budget = CPU_AUTO_BUDGET
    order, chunk = choose_order(inputs.device, order, batch, chunk)
    step_chunk = 1 if order is ExecutionOrder.STEP else (chunk or timesteps)
    readout: Tensor | None = None
    running: Tensor | None = None
    with neuron_runs(model, batch, kernel, reuse_output=reuse_outputs and not observed(model),
                     compact_state=compact) as runs:
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
            if out.shape[0] == batch and steps > 1:
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
