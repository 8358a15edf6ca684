"""One frozen, validated description of how :func:`spikeconv.sim.simulate` runs a network.

Every way of running gives the same spikes (except ``warmup``, which changes the neurons' start); the
options only trade memory against speed:

* **chunking**: ``chunk`` steps are folded into the batch at once (``1``: step by step, the least memory;
  ``None``: chosen by the engine, see :func:`spikeconv.sim.engine.choose_chunk`); ``memory_budget`` caps a
  chunk's largest activation (input + output) in bytes, measured on the first step;
* **kernel**: the neuron scan (:class:`Kernel`);
* **input**: analog (the same current every step), an ``encoder`` (e.g. Poisson), or a ``sequence``
  ``[T, B, ...]`` of frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from torch import Tensor

from ..errors import is_count


class Kernel(str, Enum):
    """The neuron scan of a run (each neuron layer's chunk of steps). Same spikes for all.

    * ``AUTO``: the C scan on the CPU when it can be built there (:mod:`spikeconv.native`), else eager;
    * ``EAGER``: PyTorch operations, one step after the other;
    * ``COMPILED``: the eager step through ``torch.compile`` (a C++ compiler on CPU, Triton on CUDA);
    * ``NATIVE``: the C scan (CPU; threshold-1 neurons, the others take the eager scan);
    * ``TRITON``: the Triton scan (CUDA; threshold-1 neurons, the others take the eager scan).
    """

    AUTO = "auto"
    EAGER = "eager"
    COMPILED = "compiled"
    NATIVE = "native"
    TRITON = "triton"


Encoder = Callable[[Tensor, int, int], Tensor]


@dataclass(frozen=True)
class SimulationConfig:
    """How :func:`~spikeconv.sim.simulate` runs (see the module docstring).

    Args:
        chunk: steps folded into the batch at once; ``None`` lets the engine choose (CPU: about 64 samples x
            steps within ``memory_budget``, 16 MiB by default; accelerators: all of T).
        memory_budget: bytes for a chunk's largest activation (input + output); ``None``: 16 MiB on the CPU
            when ``chunk`` is ``None``, unlimited otherwise.
        kernel: :class:`Kernel`.
        encoder: ``encoder(inputs, start, steps) -> [steps, B, ...]`` frames for steps ``start..start+steps-1``
            (e.g. :class:`~spikeconv.data.PoissonEncoder`; seed it).
        sequence: the inputs are already frames ``[T, B, ...]``.
        reuse_outputs: neurons write each chunk's spikes into their previous output tensor when no hook
            observes the run (fewer fresh pages; every neuron's output stays allocated).
        warmup: ``rho``: every IF neuron layer first runs ``rho <= T`` steps on its input and starts the run
            from the initial membrane that pre-run implies (:mod:`spikeconv.neuron.warmup`); the whole run is
            then one chunk (layer order). 0: none. Unlike the other options it changes the spikes.
        warmup_rounds: pre-runs of the warm-up, each from the start the previous one implied (1: one).

    Example:
        >>> SimulationConfig(chunk=1).chunk
        1
        >>> SimulationConfig(kernel="eager").kernel
        <Kernel.EAGER: 'eager'>
    """

    chunk: int | None = None
    memory_budget: int | None = None
    kernel: Kernel = Kernel.AUTO
    encoder: Encoder | None = None
    sequence: bool = False
    reuse_outputs: bool = False
    warmup: int = 0
    warmup_rounds: int = 1

    def __post_init__(self) -> None:
        if not is_count(self.warmup_rounds):
            raise ValueError(f"warmup_rounds must be a positive integer, got {self.warmup_rounds!r}")
        if not is_count(self.warmup, least=0):
            raise ValueError(f"warmup must be a number of steps >= 0, got {self.warmup!r}")
        if self.warmup and self.chunk is not None and self.chunk < ALL_STEPS:
            raise ValueError(f"warmup={self.warmup} needs each neuron layer to see its whole input at once; "
                             f"drop chunk={self.chunk} (order='layer' or the default order)")
        if self.warmup and self.memory_budget is not None:
            raise ValueError(f"warmup={self.warmup} runs all steps at once, which a memory_budget cannot cap; "
                             "drop one of them")
        if self.chunk is not None and not is_count(self.chunk):
            raise ValueError(f"chunk must be a positive integer or None, got {self.chunk!r}")
        if self.memory_budget is not None and (isinstance(self.memory_budget, bool)
                                               or not isinstance(self.memory_budget, int) or self.memory_budget <= 0):
            raise ValueError(f"memory_budget must be a positive number of bytes, got {self.memory_budget!r}")
        try:
            object.__setattr__(self, "kernel", Kernel(self.kernel))
        except ValueError as exc:
            raise ValueError(f"kernel must be one of {[k.value for k in Kernel]}, got {self.kernel!r}") from exc
        if self.encoder is not None and not callable(self.encoder):
            raise TypeError(f"encoder must be callable (inputs, start, steps) -> frames, got {type(self.encoder).__name__}")
        if self.encoder is not None and self.sequence:
            raise ValueError("give either an encoder or sequence=True, not both")

    @classmethod
    def from_options(cls, device_type: str = "cpu", *, order: str | None = None, chunk: int | None = None,
                     compile: bool = False, fused: bool | None = None, **rest) -> SimulationConfig:
        """The config that the shorthand keywords of :func:`~spikeconv.sim.simulate` describe.

        ``order="step"`` is ``chunk=1``; ``order="layer"`` folds ``chunk`` steps (all of T without one, and no
        memory budget); ``compile=True`` is ``Kernel.COMPILED``; ``fused=False`` is ``Kernel.EAGER`` and
        ``fused=True`` the device's fused scan (``NATIVE`` on the CPU, ``TRITON`` on CUDA).

        Example:
            >>> SimulationConfig.from_options(order="step", fused=False)
            SimulationConfig(chunk=1, memory_budget=None, kernel=<Kernel.EAGER: 'eager'>, encoder=None, sequence=False, reuse_outputs=False, warmup=0, warmup_rounds=1)
        """
        order = getattr(order, "value", order)
        if order not in (None, "auto", "layer", "step"):
            raise ValueError(f"order must be 'auto', 'layer' or 'step', got {order!r}")
        if compile and fused:
            raise ValueError("compile=True and fused=True both choose the kernel; pick one")
        if compile:
            kernel = Kernel.COMPILED
        elif fused is None:
            kernel = Kernel.AUTO
        elif fused:
            kernel = Kernel.NATIVE if device_type == "cpu" else Kernel.TRITON
        else:
            kernel = Kernel.EAGER
        if order == "step":
            chunk = 1
        elif order == "layer" and chunk is None:
            chunk = ALL_STEPS
        return cls(chunk=chunk, kernel=kernel, **rest)


#: ``chunk`` that folds every step of any run at once (``order="layer"`` without a chunk)
ALL_STEPS = 1 << 30
