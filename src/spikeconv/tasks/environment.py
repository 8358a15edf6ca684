"""What this machine offers spikeconv: the fast paths that are on or off here, and why (``spikeconv doctor``)."""

from __future__ import annotations

import os

import torch

from ..cache import cache_dir
from ..data import data_root
from ..errors import DataError
from ..layers import integer_kernels_available
from ..native import native_build
from ..neuron.fused import triton_available


def environment_report(data: str | None = None) -> list[tuple[str, str]]:
    """``(item, state)`` rows: PyTorch and its threads, CUDA devices, the C kernel of the event-driven
    convolution (``spikeconv::event_conv2d`` on the CPU), oneDNN's int8 kernels (``weight_bits=8``), Triton
    (``kernel="triton"`` on CUDA), the data root and the cache.

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
        ("int8 kernels (weight_bits=8)", "available (oneDNN)" if integer_kernels_available()
         else "unavailable: integer layers compute in float"),
        ("Triton (kernel=\"triton\" on CUDA)", "installed" if triton_available() else "not installed"),
        ("data root", root),
        ("cache", f"{cache_dir()}" + (" (SPIKECONV_CACHE)" if "SPIKECONV_CACHE" in os.environ else "")),
    ]
