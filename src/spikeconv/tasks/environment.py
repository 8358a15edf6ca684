"""What this machine offers spikeconv: the fast paths that are on or off here, and why (``spikeconv doctor``)."""

from __future__ import annotations

import os

import torch

from ..cache import cache_dir
from ..data import data_root
from ..errors import DataError
from ..layers import integer_kernels_available
from ..layers.onednn import saturating_pairs
from ..native import native_build
from ..neuron.fused import triton_available
from .allocator import keeps_memory, on_glibc
from .fast import uses_bf16


def environment_report(data: str | None = None) -> list[tuple[str, str]]:
    """``(item, state)`` rows: PyTorch and its threads, CUDA devices, the C kernel of the event-driven
    convolution (``spikeconv::event_conv2d`` on the CPU), oneDNN's int8 kernels (``weight_bits=8``), native
    bfloat16 for the fast recipe's training, Triton
    (``kernel="triton"`` on CUDA), whether freed memory is kept (:mod:`spikeconv.tasks.allocator`), the data
    root and the cache.

    Example:
        >>> dict(environment_report())["PyTorch"].startswith(torch.__version__)
        True
    """
    build = native_build()
    try:
        root = str(data_root(data))
    except DataError as error:
        root = f"not found ({error})"
    devices = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
               if torch.cuda.is_available() else [])
    return [
        ("PyTorch", f"{torch.__version__}, {torch.get_num_threads()} CPU threads"),
        ("CUDA", ", ".join(devices) if devices else "no device"),
        ("C kernel (event_driven on the CPU)",
         f"built: {build.path}" if build.available else f"off, PyTorch path: {build.reason}"),
        ("int8 kernels (weight_bits=8)", _int8_state()),
        ("bfloat16 training (train.bf16 = \"auto\")", "native: on" if uses_bf16("auto", torch.device("cpu"))
         else "not native on this CPU: off (float32)"),
        ("Triton (kernel=\"triton\" on CUDA)", "installed" if triton_available() else "not installed"),
        ("freed memory kept (every command)", _allocator_state()),
        ("data root", root),
        ("cache", f"{cache_dir()}" + (" (SPIKECONV_CACHE)" if "SPIKECONV_CACHE" in os.environ else "")),
    ]


def _allocator_state() -> str:
    if keeps_memory():
        return "on: glibc reuses large blocks (SPIKECONV_KEEP_MEMORY=0 turns it off)"
    return "off (SPIKECONV_KEEP_MEMORY=0)" if on_glibc() else "off: not glibc"


def _int8_state() -> str:
    if not integer_kernels_available():
        return "unavailable: integer layers compute in float"
    if saturating_pairs():
        return "available (oneDNN); no VNNI: signed spikes split into two unsigned calls to stay exact"
    return "available (oneDNN, VNNI)"


def describe_model(source: str) -> tuple[bool, str]:
    """``(loads, description)`` of a model file for ``spikeconv doctor MODEL``: what it is, whether it loads,
    and which commands take it (a spikeconv checkpoint: every command; a user model: ``inspect`` and the
    Python API).

    Example:
        >>> loads, state = describe_model("no/such/file.pt")
        >>> loads, state.startswith("does not load: checkpoint no/such/file.pt does not exist")
        (False, True)
    """
    from pathlib import Path

    from ..errors import SpikeconvError
    from .checkpoint import load_checkpoint, user_model_kind
    from .loading import load_user_model
    from .samples import is_detection

    kind = user_model_kind(Path(source))
    if kind == "a TorchScript archive":  # it loads through ONNX, traced on an input of its shape
        return True, (f"{kind}; 'spikeconv inspect {source} --input-shape C H W' converts it through ONNX "
                      "(the other commands take spikeconv checkpoints)")
    try:
        if kind is not None:
            model = load_user_model(source)
            layers = sum(1 for _ in model.modules()) - 1
            return True, (f"{kind}, loads ({layers} modules); 'spikeconv inspect {source}' reports what converts, "
                          "the Python API converts it (the other commands take spikeconv checkpoints)")
        payload = load_checkpoint(source)
    except SpikeconvError as error:
        return False, f"does not load: {error}"
    activation = payload.get("activation", {})
    if isinstance(activation, dict):
        levels = activation.get("levels")
        activation = f"{activation.get('kind', '?')}" + (f" with {levels} levels" if levels else "")
    if is_detection(payload):
        task, commands = "detector", "evaluate, tradeoff, analyze, inspect, stream and run take it"
    else:
        task, commands = "classifier", "evaluate, tradeoff, analyze, inspect, export and run take it"
    return True, (f"spikeconv checkpoint: {payload.get('model')} {task} on {payload.get('dataset')}, "
                  f"{activation}; {commands}")
